package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/docpipe/docpipe/internal/runstate"
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
	Status        runstate.Status `json:"status"`
	State         runstate.State  `json:"state"`
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
	var pr map[string]any
	_ = json.Unmarshal(progress, &pr)
	ji.ChunksTotal, ji.EmbedsDone, ji.EmbedsTotal = intField(pr, "chunks_total"), intField(pr, "embeds_done"), intField(pr, "embeds_total")
	ji.Stage, _ = pr["stage"].(string)
	ji.Percent = runstate.Percent(ji.Status, ji.EmbedsDone, ji.EmbedsTotal)
	if len(le) > 0 {
		ji.LastError = le
	}
	return ji, nil
}

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
