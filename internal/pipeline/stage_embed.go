package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	pgvector "github.com/pgvector/pgvector-go"

	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
)

// EmbedArgs is the job of the embed stage.
type EmbedArgs StageArgs

// Kind is the River job kind.
func (EmbedArgs) Kind() string { return runstate.Embed.Kind() }

// stageEmbed fills the vector buffer, one committed micro-batch at a time.
var stageEmbed = bind[EmbedArgs](&stage{
	name:     runstate.Embed,
	accepts:  []runstate.Status{runstate.EmbeddingQueued, runstate.EmbeddingInProgress},
	working:  runstate.EmbeddingInProgress,
	entry:    runstate.EmbeddingQueued,
	priority: 2,
}, (*run).embed)

// embed: vectors for every buffered chunk that has none yet, one committed micro-batch
// at a time, so a retry embeds only what is missing.
func (r *run) embed(ctx context.Context) (applyFunc, error) {
	e := r.p.embedder
	model, version, dims := e.Model(), e.Version(), e.Dims()
	if _, err := r.conn.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET embed_model = $2, embed_version = $3, embed_dims = $4 WHERE job_id = $1`,
		r.jobID, model, version, dims); err != nil {
		return nil, fmt.Errorf("record embedding model: %w", err)
	}
	name, version2 := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	var total int
	if err := r.conn.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.document_chunk_buffer
		WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3`, r.docID, name, version2).Scan(&total); err != nil {
		return nil, fmt.Errorf("count buffered chunks: %w", err)
	}
	if total == 0 {
		return nil, fault.Transientf("CHUNK_BUFFER_EMPTY", "no buffered chunks to embed")
	}
	rows, err := r.conn.Query(ctx, `SELECT c.chunk_id, c.text, c.token_count FROM upload_pipeline.document_chunk_buffer c
		WHERE c.document_id = $1 AND c.chunker_name = $2 AND c.chunker_version = $3
		  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.document_vector_buffer v
		                  WHERE v.chunk_id = c.chunk_id AND v.embed_model = $4 AND v.embed_version = $5)
		ORDER BY c.chunk_ord`, r.docID, name, version2, model, version)
	if err != nil {
		return nil, fmt.Errorf("list chunks to embed: %w", err)
	}
	type pending struct {
		id     uuid.UUID
		text   string
		tokens int
	}
	todo, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pending, error) {
		var p pending
		return p, row.Scan(&p.id, &p.text, &p.tokens)
	})
	if err != nil {
		return nil, fmt.Errorf("list chunks to embed: %w", err)
	}
	done := total - len(todo)
	r.log.Info("embedding", "chunks_total", total, "already_embedded", done, "model", model)
	batch := r.p.opts.EmbedBatch
	service := embedService(e)
	sink := &usageSink{}
	for start := 0; start < len(todo); start += batch {
		if start > 0 && r.nearDeadline(ctx) {
			// Progress is committed; continue in a fresh attempt rather than time out.
			return nil, &snooze{0, "embedding progress committed; attempt time nearly used"}
		}
		if err := r.overBudget(ctx, service); err != nil {
			return nil, err
		}
		part := todo[start:min(start+batch, len(todo))]
		texts := make([]string, len(part))
		var localTokens int64
		for i, p := range part {
			texts[i] = p.text
			localTokens += int64(p.tokens)
		}
		vecs, err := e.Embed(embed.WithUsage(ctx, sink.add), texts)
		billed := sink.take()
		if service == ServiceLocal && err == nil {
			billed = usage{tokens: localTokens} // in-process: no requests, no cost; count the tokens
		}
		var wait *embed.WaitError
		if errors.As(err, &wait) {
			// The client's rate limiter has no slot before this attempt's deadline:
			// wait for it without holding a worker or counting a failure.
			err = &snooze{wait.Wait, "embedding rate limit: next slot in " + wait.Wait.Round(time.Millisecond).String()}
		}
		if err != nil {
			// Requests that succeeded before the failure are billed all the same.
			if berr := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error { return r.bill(ctx, tx, service, billed) }); berr != nil {
				r.log.Error("could not record embedding usage", "error", berr)
			}
			return nil, err
		}
		if len(vecs) != len(part) {
			return nil, fault.Transientf("EMBED_COUNT_MISMATCH", "the embedder returned %d vectors for %d texts", len(vecs), len(part))
		}
		ids := make([]uuid.UUID, len(part))
		vs := make([]pgvector.Vector, len(part))
		shas := make([]string, len(part))
		for i, v := range vecs {
			if len(v) != dims {
				return nil, fault.Permanentf("EMBED_DIMS_MISMATCH", "the embedder returned %d dimensions, expected %d", len(v), dims)
			}
			ids[i], vs[i], shas[i] = part[i].id, pgvector.NewVector(v), embed.VectorSHA(v)
		}
		done += len(part)
		r.progress["embeds_done"], r.progress["embeds_total"] = done, total
		err = pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			if err := r.bill(ctx, tx, service, billed); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_vector_buffer
				(chunk_id, document_id, embed_model, embed_version, dims, embedding, vector_sha, batch_id)
				SELECT u.id, $1, $2, $3, $4, u.v, u.sha, $5
				FROM unnest($6::uuid[], $7::vector[], $8::text[]) AS u(id, v, sha)
				ON CONFLICT DO NOTHING`, r.docID, model, version, dims, uuid.Must(uuid.NewV7()), ids, vs, shas); err != nil {
				return fmt.Errorf("write vector buffer: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
				SET progress = progress || jsonb_build_object('embeds_done', $2::int, 'embeds_total', $3::int, 'percent', $4::float8)
				WHERE job_id = $1`, r.jobID, done, total, runstate.Percent(runstate.EmbeddingInProgress, done, total)); err != nil {
				return fmt.Errorf("record embedding progress: %w", err)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store embedding batch: %w", err)
		}
		if d := r.p.opts.EmbedBatchDelay; d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
	}
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, error) {
		var have int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.document_vector_buffer v
			JOIN upload_pipeline.document_chunk_buffer c USING (chunk_id)
			WHERE c.document_id = $1 AND c.chunker_name = $2 AND c.chunker_version = $3 AND v.embed_model = $4 AND v.embed_version = $5`,
			r.docID, name, version2, model, version).Scan(&have); err != nil {
			return "", fmt.Errorf("count vectors: %w", err)
		}
		if have != total {
			return "", fault.Transientf("EMBED_INCOMPLETE", "%d of %d chunks have vectors", have, total)
		}
		return advance, r.event(ctx, tx, "stage_done", "info", "EMBED_BUFFERED", map[string]any{
			"vectors": have, "model": model})
	}, nil
}

// nearDeadline reports whether less than a fifth of the attempt's time (at least 2 s) is left.
func (r *run) nearDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return false
	}
	return time.Until(dl) < max(2*time.Second, r.p.opts.JobTimeout/5)
}
