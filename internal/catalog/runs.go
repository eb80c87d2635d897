package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/runstate"
)

// JobInfo is a run as people see it (Wire gives the API's form).
type JobInfo struct {
	JobID         uuid.UUID
	DocumentID    uuid.UUID
	UserID        uuid.UUID
	Filename      string
	Status        runstate.Status
	State         runstate.State
	Stage         string
	Percent       float64
	ChunksTotal   int
	EmbedsDone    int
	EmbedsTotal   int
	RetryCount    int
	LastError     json.RawMessage
	CorrelationID uuid.UUID
	Pages         int
	Tokens        int64
	CostUSD       float64
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
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
	ji.Percent = runstate.Percent(ji.Status, ji.EmbedsDone, ji.EmbedsTotal)
	if len(lastError) > 0 {
		ji.LastError = lastError
	}
}

// GetJob reads one run if the scope may see it (ErrNotFound otherwise).
func GetJob(ctx context.Context, q Querier, s Scope, jobID uuid.UUID) (JobInfo, error) {
	ji, err := scanJobInfo(q.QueryRow(ctx, jobInfoSelect+` WHERE j.job_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)`, jobID, s.arg()))
	if errors.Is(err, pgx.ErrNoRows) {
		return ji, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	} else if err != nil {
		return ji, fmt.Errorf("read job %s: %w", jobID, err)
	}
	return ji, nil
}

// ListJobs lists runs the scope may see, newest first. state filters by state or
// status ("" = any); documentID (non-nil) by document.
func ListJobs(ctx context.Context, q Querier, s Scope, state string, documentID *uuid.UUID, pg Page) ([]JobInfo, error) {
	bt, bid := pg.before()
	rows, err := q.Query(ctx, jobInfoSelect+`
		WHERE ($1::uuid IS NULL OR d.user_id = $1)
		  AND ($2 = '' OR j.state = $2 OR j.status = $2)
		  AND ($3::uuid IS NULL OR j.document_id = $3)
		  AND ($4::timestamptz IS NULL OR (j.created_at, j.job_id) < ($4, $5))
		ORDER BY j.created_at DESC, j.job_id DESC LIMIT $6`, s.arg(), state, documentID, bt, bid, pg.limit())
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobInfo, error) { return scanJobInfo(r) })
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// ActiveRuns counts the runs the scope may see that are queued, working or waiting to
// retry.
func ActiveRuns(ctx context.Context, q Querier, s Scope) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
		WHERE ($1::uuid IS NULL OR d.user_id = $1) AND j.state IN (`+runstate.SQLList(runstate.ActiveStates())+`)`, s.arg()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count active runs: %w", err)
	}
	return n, nil
}

// Wait polls until the run reaches a terminal status or ctx ends; onProgress (optional)
// is called whenever status or percent changes.
func Wait(ctx context.Context, q Querier, s Scope, jobID uuid.UUID, onProgress func(JobInfo)) (JobInfo, error) {
	var last JobInfo
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := GetJob(ctx, q, s, jobID)
		if err != nil {
			return info, err
		}
		if onProgress != nil && (info.Status != last.Status || info.Percent != last.Percent) {
			onProgress(info)
		}
		last = info
		if info.Status.Terminal() {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-t.C:
		}
	}
}
