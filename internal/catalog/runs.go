// Package catalog is docpipe's read side: queries over runs, documents, chunks and
// events, search (vector, keyword, hybrid), and the two things people do to what they
// see, cancel a run and delete a document. Everything is scoped through one Scope: a
// user's objects, or every user's for operators. The engine that moves runs along
// (internal/pipeline) writes what this package reads.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/docpipe/docpipe/internal/pipeline"
)

// Querier is what read paths need (a pool, a connection or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// JobInfo is a run as people see it.
type JobInfo struct {
	JobID         uuid.UUID       `json:"job_id"`
	DocumentID    uuid.UUID       `json:"document_id"`
	UserID        uuid.UUID       `json:"user_id"`
	Filename      string          `json:"filename"`
	Status        string          `json:"status"`
	State         string          `json:"state"`
	Stage         string          `json:"stage,omitempty"`
	Percent       float64         `json:"percent"`
	ChunksTotal   int             `json:"chunks_total"`
	EmbedsDone    int             `json:"embeds_done"`
	EmbedsTotal   int             `json:"embeds_total"`
	RetryCount    int             `json:"retry_count"`
	LastError     json.RawMessage `json:"last_error,omitempty"`
	CorrelationID uuid.UUID       `json:"correlation_id"`
	Pages         int             `json:"pages,omitempty"`
	Tokens        int64           `json:"tokens"`
	CostUSD       float64         `json:"cost_usd"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
}

const jobInfoSelect = `
SELECT j.job_id, j.document_id, d.user_id, d.filename, j.status, j.state, j.progress, j.retry_count, j.last_error,
       j.correlation_id, coalesce(d.page_count, 0), j.tokens, j.cost_usd::float8, j.created_at, j.updated_at, j.finished_at
FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)`

func scanJobInfo(row pgx.Row) (JobInfo, error) {
	var ji JobInfo
	var progress []byte
	var le []byte
	err := row.Scan(&ji.JobID, &ji.DocumentID, &ji.UserID, &ji.Filename, &ji.Status, &ji.State, &progress, &ji.RetryCount, &le,
		&ji.CorrelationID, &ji.Pages, &ji.Tokens, &ji.CostUSD, &ji.CreatedAt, &ji.UpdatedAt, &ji.FinishedAt)
	if err != nil {
		return ji, err
	}
	ji.setProgress(progress, le)
	return ji, nil
}

// setProgress fills the fields read from upload_jobs.progress and last_error.
func (ji *JobInfo) setProgress(progress, lastError []byte) {
	var pr struct {
		Stage       string  `json:"stage"`
		ChunksTotal float64 `json:"chunks_total"`
		EmbedsDone  float64 `json:"embeds_done"`
		EmbedsTotal float64 `json:"embeds_total"`
	}
	_ = json.Unmarshal(progress, &pr)
	ji.Stage = pr.Stage
	ji.ChunksTotal, ji.EmbedsDone, ji.EmbedsTotal = int(pr.ChunksTotal), int(pr.EmbedsDone), int(pr.EmbedsTotal)
	ji.Percent = pipeline.Percent(ji.Status, ji.EmbedsDone, ji.EmbedsTotal)
	if len(lastError) > 0 {
		ji.LastError = lastError
	}
}

// ErrNotFound is returned for an unknown job or document, and for one outside the scope.
var ErrNotFound = errors.New("not found")

// GetJob reads one run.
func GetJob(ctx context.Context, q Querier, jobID uuid.UUID) (JobInfo, error) {
	ji, err := scanJobInfo(q.QueryRow(ctx, jobInfoSelect+` WHERE j.job_id = $1`, jobID))
	if errors.Is(err, pgx.ErrNoRows) {
		return ji, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	return ji, err
}

// ListJobs lists runs, newest first; state "" means any.
func ListJobs(ctx context.Context, q Querier, state string, limit int) ([]JobInfo, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := q.Query(ctx, jobInfoSelect+` WHERE ($1 = '' OR j.state = $1 OR j.status = $1) ORDER BY j.created_at DESC, j.job_id DESC LIMIT $2`, state, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobInfo, error) { return scanJobInfo(r) })
}

// Event is one audit-trail row.
type Event struct {
	Time     time.Time       `json:"ts"`
	Type     string          `json:"type"`
	Stage    string          `json:"stage,omitempty"`
	Severity string          `json:"severity"`
	Code     string          `json:"code"`
	Payload  json.RawMessage `json:"payload"`
	WorkerID string          `json:"worker_id,omitempty"`
	Attempt  int             `json:"attempt,omitempty"`
}

// JobEvents lists a run's events, oldest first.
func JobEvents(ctx context.Context, q Querier, jobID uuid.UUID) ([]Event, error) {
	rows, err := q.Query(ctx, `SELECT ts, type, coalesce(stage, ''), severity, code, payload, coalesce(worker_id, ''), coalesce(attempt, 0)
		FROM upload_pipeline.events WHERE job_id = $1 ORDER BY ts, event_id`, jobID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		return e, r.Scan(&e.Time, &e.Type, &e.Stage, &e.Severity, &e.Code, &e.Payload, &e.WorkerID, &e.Attempt)
	})
}

// Hit is one search result.
type Hit struct {
	DocumentID  uuid.UUID `json:"document_id"`
	Filename    string    `json:"filename"`
	ChunkID     uuid.UUID `json:"chunk_id"`
	Ord         int       `json:"chunk_ord"`
	HeadingPath []string  `json:"heading_path"`
	PageStart   int       `json:"page_start,omitempty"`
	PageEnd     int       `json:"page_end,omitempty"`
	Score       float64   `json:"score"` // cosine similarity, 1 = identical direction
	Text        string    `json:"text"`
}

// Wait polls until the run reaches a terminal status or ctx ends; onProgress (optional)
// is called whenever status or percent changes.
func Wait(ctx context.Context, q Querier, jobID uuid.UUID, onProgress func(JobInfo)) (JobInfo, error) {
	var last JobInfo
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := GetJob(ctx, q, jobID)
		if err != nil {
			return info, err
		}
		if onProgress != nil && (info.Status != last.Status || info.Percent != last.Percent) {
			onProgress(info)
		}
		last = info
		if pipeline.Terminal(info.Status) {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-t.C:
		}
	}
}
