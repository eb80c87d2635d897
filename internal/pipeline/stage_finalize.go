package pipeline

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
)

// FinalizeArgs is the job of the finalize stage.
type FinalizeArgs StageArgs

// Kind is the River job kind.
func (FinalizeArgs) Kind() string { return runstate.Finalize.Kind() }

// stageFinalize publishes the buffers to document_chunks; the run is complete.
var stageFinalize = bind[FinalizeArgs](&stage{
	name:     runstate.Finalize,
	accepts:  []runstate.Status{runstate.EmbeddingsStored},
	entry:    runstate.EmbeddingsStored,
	priority: 1,
}, (*run).finalize)

// finalize: buffers → document_chunks in one transaction, buffers cleared.
func (r *run) finalize(ctx context.Context) (applyFunc, error) {
	var model, version string
	if err := r.conn.QueryRow(ctx, `SELECT coalesce(embed_model, ''), coalesce(embed_version, '') FROM upload_pipeline.upload_jobs WHERE job_id = $1`,
		r.jobID).Scan(&model, &version); err != nil {
		return nil, fmt.Errorf("read embedding model: %w", err)
	}
	if model == "" {
		return nil, fault.Permanentf("EMBED_MODEL_UNKNOWN", "the run has no recorded embedding model")
	}
	name, cver := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, error) {
		if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_chunks
			(chunk_id, document_id, user_id, chunker_name, chunker_version, chunk_ord, chunk_sha, text, token_count, meta,
			 embed_model, embed_version, dims, embedding, vector_sha)
			SELECT c.chunk_id, c.document_id, $2, c.chunker_name, c.chunker_version, c.chunk_ord, c.chunk_sha, c.text, c.token_count, c.meta,
			       v.embed_model, v.embed_version, v.dims, v.embedding, v.vector_sha
			FROM upload_pipeline.document_chunk_buffer c
			JOIN upload_pipeline.document_vector_buffer v ON v.chunk_id = c.chunk_id AND v.embed_model = $5 AND v.embed_version = $6
			WHERE c.document_id = $1 AND c.chunker_name = $3 AND c.chunker_version = $4
			ON CONFLICT DO NOTHING`, r.docID, r.userID, name, cver, model, version); err != nil {
			return "", fmt.Errorf("publish chunks: %w", err)
		}
		var have, want int
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM upload_pipeline.document_chunks WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3 AND embed_model = $4 AND embed_version = $5),
			(SELECT count(*) FROM upload_pipeline.document_chunk_buffer WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3)`,
			r.docID, name, cver, model, version).Scan(&have, &want); err != nil {
			return "", fmt.Errorf("count published chunks: %w", err)
		}
		if want == 0 || have < want {
			return "", fault.Transientf("FINALIZE_INCOMPLETE", "%d chunks published, %d buffered", have, want)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM upload_pipeline.document_vector_buffer WHERE document_id = $1`, r.docID); err != nil {
			return "", fmt.Errorf("clear vector buffer: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM upload_pipeline.document_chunk_buffer WHERE document_id = $1`, r.docID); err != nil {
			return "", fmt.Errorf("clear chunk buffer: %w", err)
		}
		return runstate.Complete, nil
	}, nil
}
