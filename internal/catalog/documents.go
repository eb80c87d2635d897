package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/runstate"
)

// DocumentInfo is a document as people see it, with its latest run.
type DocumentInfo struct {
	DocumentID uuid.UUID
	UserID     uuid.UUID
	Filename   string
	MIME       string
	Bytes      int64
	SHA256     string
	Pages      int
	Chunks     int // searchable chunks (published by finalize)
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Job        *JobInfo // latest run; nil only while a document is being deleted
}

const documentSelect = `
SELECT d.document_id, d.user_id, d.filename, d.mime, d.bytes_len, d.file_sha256, coalesce(d.page_count, 0),
       d.created_at, d.updated_at,
       (SELECT count(DISTINCT c.chunk_ord) FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id),
       j.job_id, j.status, j.state, j.progress, j.retry_count, j.last_error, j.correlation_id, j.tokens,
       j.cost_usd::float8, j.created_at, j.updated_at, j.finished_at
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (SELECT * FROM upload_pipeline.upload_jobs x WHERE x.document_id = d.document_id
                   ORDER BY x.created_at DESC, x.job_id DESC LIMIT 1) j ON true`

func scanDocument(row pgx.Row) (DocumentInfo, error) {
	var d DocumentInfo
	var jobID, corrID *uuid.UUID
	var status *runstate.Status
	var state *runstate.State
	var progress, le []byte
	var retries *int
	var tokens *int64
	var cost *float64
	var jc, ju *time.Time
	var jf *time.Time
	err := row.Scan(&d.DocumentID, &d.UserID, &d.Filename, &d.MIME, &d.Bytes, &d.SHA256, &d.Pages, &d.CreatedAt, &d.UpdatedAt,
		&d.Chunks, &jobID, &status, &state, &progress, &retries, &le, &corrID, &tokens, &cost, &jc, &ju, &jf)
	if err != nil || jobID == nil {
		return d, err
	}
	ji := JobInfo{JobID: *jobID, DocumentID: d.DocumentID, UserID: d.UserID, Filename: d.Filename, Status: *status, State: *state,
		RetryCount: *retries, CorrelationID: *corrID, Pages: d.Pages, Tokens: *tokens, CostUSD: *cost,
		CreatedAt: *jc, UpdatedAt: *ju, FinishedAt: jf}
	ji.setProgress(progress, le)
	d.Job = &ji
	return d, nil
}

// GetDocument reads one document if the scope may see it (ErrNotFound otherwise).
func GetDocument(ctx context.Context, q Querier, s Scope, docID uuid.UUID) (DocumentInfo, error) {
	d, err := scanDocument(q.QueryRow(ctx, documentSelect+` WHERE d.document_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)`, docID, s.arg()))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("document %s: %w", docID, ErrNotFound)
	} else if err != nil {
		return d, fmt.Errorf("read document %s: %w", docID, err)
	}
	return d, nil
}

// ListDocuments lists the documents the scope may see, newest first.
func ListDocuments(ctx context.Context, q Querier, s Scope, pg Page) ([]DocumentInfo, error) {
	bt, bid := pg.before()
	rows, err := q.Query(ctx, documentSelect+`
		WHERE ($1::uuid IS NULL OR d.user_id = $1)
		  AND ($2::timestamptz IS NULL OR (d.created_at, d.document_id) < ($2, $3))
		ORDER BY d.created_at DESC, d.document_id DESC LIMIT $4`, s.arg(), bt, bid, pg.limit())
	if err != nil {
		return nil, fmt.Errorf("list documents: %w", err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DocumentInfo, error) { return scanDocument(r) })
	if err != nil {
		return nil, fmt.Errorf("list documents: %w", err)
	}
	return docs, nil
}
