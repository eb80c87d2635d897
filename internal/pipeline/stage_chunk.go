package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
)

// ChunkArgs is the job of the chunk stage.
type ChunkArgs StageArgs

// Kind is the River job kind.
func (ChunkArgs) Kind() string { return runstate.Chunk.Kind() }

// stageChunk splits the markdown into the chunk buffer.
var stageChunk = bind[ChunkArgs](&stage{
	name:     runstate.Chunk,
	accepts:  []runstate.Status{runstate.ParseValidated, runstate.Chunking},
	working:  runstate.Chunking,
	entry:    runstate.ParseValidated,
	priority: 3,
}, (*run).chunk)

// chunk: markdown → chunk buffer rows (deterministic ids; ON CONFLICT DO NOTHING).
func (r *run) chunk(ctx context.Context) (applyFunc, error) {
	raw, err := r.readObject(ctx, r.parsed)
	if err != nil {
		return nil, err
	}
	chunks, err := r.p.chunker.Chunk(string(raw))
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, "CHUNK_FAILED", err, "the document could not be split into chunks")
	}
	if len(chunks) == 0 {
		return nil, fault.Permanentf("NO_CHUNKS", "the document produced no chunks")
	}
	name, version := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	n := len(chunks)
	ids, ords, shas, texts, tokens := make([]uuid.UUID, n), make([]int32, n), make([]string, n), make([]string, n), make([]int32, n)
	metas := make([]string, n)
	for i, c := range chunks {
		ids[i] = ChunkID(r.docID, name, version, c.Ord)
		ords[i], shas[i], texts[i], tokens[i] = int32(c.Ord), c.SHA256, c.Text, int32(c.TokenCount)
		m, _ := json.Marshal(map[string]any{"heading_path": nonNil(c.HeadingPath), "page_start": c.PageStart, "page_end": c.PageEnd})
		metas[i] = string(m)
	}
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_chunk_buffer
			(chunk_id, document_id, chunker_name, chunker_version, chunk_ord, chunk_sha, text, token_count, meta)
			SELECT u.id, $1, $2, $3, u.ord, u.sha, u.text, u.tokens, u.meta::jsonb
			FROM unnest($4::uuid[], $5::int[], $6::text[], $7::text[], $8::int[], $9::text[]) AS u(id, ord, sha, text, tokens, meta)
			ON CONFLICT DO NOTHING`, r.docID, name, version, ids, ords, shas, texts, tokens, metas)
		if err != nil {
			return "", fmt.Errorf("write chunk buffer: %w", err)
		}
		r.progress = map[string]any{"chunks_total": n, "chunks_done": n, "embeds_total": n, "embeds_done": 0}
		pj, _ := json.Marshal(r.progress)
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET chunker_name = $2, chunker_version = $3, progress = progress || $4::jsonb WHERE job_id = $1`,
			r.jobID, name, version, pj); err != nil {
			return "", fmt.Errorf("record chunker and progress: %w", err)
		}
		return advance, r.event(ctx, tx, "stage_done", "info", "CHUNK_BUFFERED", map[string]any{
			"chunks": n, "inserted": tag.RowsAffected(), "chunker": name + "@" + version})
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
