package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// run is one stage attempt on one upload job.
type run struct {
	p        *Pipeline
	st       *stage
	conn     *pgxpool.Conn // holds the run's advisory lock for the whole attempt
	job      *rivertype.JobRow
	log      *slog.Logger
	jobID    uuid.UUID
	docID    uuid.UUID
	userID   uuid.UUID
	corrID   uuid.UUID
	status   runstate.Status
	filename string
	mime     string
	rawPath  string
	parsed   string // parsed_path
	remoteID string // upload_jobs.parse_job_id (remote parser job)
	progress map[string]any
}

const loadRunSQL = `
SELECT j.status, j.correlation_id, j.progress, d.document_id, d.user_id, d.filename, d.mime,
       d.raw_path, coalesce(d.parsed_path, ''), coalesce(j.parse_job_id, '')
FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
WHERE j.job_id = $1`

func (r *run) readObject(ctx context.Context, key string) ([]byte, error) {
	b, err := storage.ReadAll(ctx, r.p.store, key, r.p.opts.MaxUploadBytes*4)
	if errors.Is(err, storage.ErrNotFound) {
		// The run only exists once its bytes were stored: a missing object is an
		// outage or a lost object. Retry; the attempt limit dead-letters it.
		return nil, fault.Wrap(fault.Transient, "STORAGE_OBJECT_MISSING", err, "stored object %s is missing", key)
	} else if err != nil {
		return nil, fault.Wrap(fault.Transient, "STORAGE_READ", err, "could not read stored object %s", key)
	}
	return b, nil
}

// snooze ends an attempt that has more to do later (progress made, or waiting on a
// remote service): the job is snoozed, which does not use up an attempt, and the next
// attempt resumes from what was committed.
type snooze struct {
	after  time.Duration
	reason string
}

func (s *snooze) Error() string { return "stage continues in a new attempt: " + s.reason }

// work runs one stage attempt: lock, load, check, mark started, do, commit.
func (p *Pipeline) work(ctx context.Context, s *stage, job *rivertype.JobRow, jobID uuid.UUID, complete func(context.Context, pgx.Tx) error) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	// A session advisory lock on the run: held while this attempt lives, released by the
	// server if the worker dies (the connection closes), so two workers never work on the
	// same run at once even if River rescues a job whose worker is only slow.
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))`, jobID).Scan(&locked); err != nil {
		return fmt.Errorf("lock run %s: %w", jobID, err)
	}
	if !locked {
		var docID, corrID uuid.UUID // for the log line only; rare, so one more small query
		_ = conn.QueryRow(ctx, `SELECT document_id, correlation_id FROM upload_pipeline.upload_jobs WHERE job_id = $1`, jobID).Scan(&docID, &corrID)
		p.log.Info("run is locked by another worker; snoozing", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "stage", s.name)
		return river.JobSnooze(2 * time.Second)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended($1::text, 0))`, jobID); err != nil {
			// The lock dies with the connection; make sure the pool does not reuse it.
			conn.Conn().Close(uctx)
		}
	}()

	r := &run{p: p, st: s, conn: conn, job: job, jobID: jobID}
	var progress []byte
	err = conn.QueryRow(ctx, loadRunSQL, jobID).Scan(&r.status, &r.corrID, &progress, &r.docID, &r.userID,
		&r.filename, &r.mime, &r.rawPath, &r.parsed, &r.remoteID)
	if errors.Is(err, pgx.ErrNoRows) {
		p.log.Warn("run no longer exists (document deleted?); dropping job", "job_id", jobID, "stage", s.name)
		return p.completeOnly(ctx, conn, complete)
	} else if err != nil {
		return fmt.Errorf("load run %s: %w", jobID, err)
	}
	_ = json.Unmarshal(progress, &r.progress)
	r.log = p.log.With("job_id", jobID, "document_id", r.docID, "correlation_id", r.corrID, "stage", s.name,
		"attempt", job.Attempt, "river_job_id", job.ID)

	if !slices.Contains(s.accepts, r.status) {
		// Already advanced (a duplicate delivery or a retry after a crash past the
		// commit), or ended: nothing to do.
		r.log.Info("stage has nothing to do in this status", "status", r.status)
		return p.completeOnly(ctx, conn, complete)
	}

	if err := r.markStarted(ctx); err != nil {
		return err
	}
	start := time.Now()
	apply, err := s.do(ctx, r)
	var sn *snooze
	if errors.As(err, &sn) {
		r.log.Info("stage waits and continues in a new attempt", "reason", sn.reason, "after", sn.after)
		return river.JobSnooze(sn.after)
	}
	if err == nil {
		err = r.commit(ctx, apply, complete, start)
	}
	if err != nil {
		return r.fail(ctx, err)
	}
	return nil
}

func (p *Pipeline) completeOnly(ctx context.Context, conn *pgxpool.Conn, complete func(context.Context, pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return complete(ctx, tx) })
}

func (r *run) markStarted(ctx context.Context) error {
	status := r.status
	if r.st.working != "" {
		status = r.st.working
	}
	return pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET status = $2, state = $5, started_at = coalesce(started_at, now()),
			    progress = progress || jsonb_build_object('percent', $3::float8, 'stage', $4::text)
			WHERE job_id = $1`, r.jobID, status, runstate.Percent(status, 0, 0), r.st.name, runstate.Working)
		if err != nil {
			return fmt.Errorf("mark %s started: %w", r.st.name, err)
		}
		r.status = status
		r.log.Info("stage started")
		return r.event(ctx, tx, "stage_started", "info", "STAGE_STARTED", nil)
	})
}

// commit is the stage's one transaction: durable writes, status move, next job, completion.
func (r *run) commit(ctx context.Context, apply applyFunc, complete func(context.Context, pgx.Tx) error, start time.Time) error {
	return pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		var cur runstate.Status
		if err := tx.QueryRow(ctx, `SELECT status FROM upload_pipeline.upload_jobs WHERE job_id = $1 FOR UPDATE`, r.jobID).Scan(&cur); err != nil {
			return fmt.Errorf("lock run row: %w", err)
		}
		if cur != r.status {
			return fault.Transientf("STATUS_CHANGED", "the run moved from %s to %s while the %s stage ran", r.status, cur, r.st.name)
		}
		result, err := apply(ctx, tx)
		if err != nil {
			return err
		}
		status, next, err := r.st.after(result)
		if err != nil {
			return err
		}
		state := runstate.Queued // for the next stage
		if status.Terminal() {
			state = status.States()[0] // the one state of a status that ends the run: done
		}
		done, total := intField(r.progress, "embeds_done"), intField(r.progress, "embeds_total")
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET status = $2, state = $3, last_error = NULL,
			    progress = progress || jsonb_build_object('percent', $4::float8, 'stage', $5::text),
			    finished_at = CASE WHEN $6 THEN now() END
			WHERE job_id = $1`, r.jobID, status, state, runstate.Percent(status, done, total), r.st.name, status.Terminal()); err != nil {
			return fmt.Errorf("move to %s: %w", status, err)
		}
		if next != nil {
			if err := r.p.enqueue(ctx, tx, next, r.jobID); err != nil {
				return err
			}
		}
		if err := r.event(ctx, tx, "stage_done", "info", "STAGE_DONE", map[string]any{
			"status": status, "duration_ms": time.Since(start).Milliseconds()}); err != nil {
			return err
		}
		if status == runstate.Complete {
			if err := r.event(ctx, tx, "finalized", "info", "DOCUMENT_COMPLETE", nil); err != nil {
				return err
			}
		}
		if err := complete(ctx, tx); err != nil {
			return fmt.Errorf("complete river job: %w", err)
		}
		r.log.Info("stage done", "status", status, "duration", time.Since(start).Round(time.Millisecond))
		return nil
	})
}

// lastError is upload_jobs.last_error.
type lastError struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Retryable bool           `json:"retryable"`
	Stage     runstate.Stage `json:"stage"`
	Attempt   int            `json:"attempt"`
	At        time.Time      `json:"at"`
	RetryAt   time.Time      `json:"retry_at,omitzero"`
}

// fail records a failed attempt: a retry (transient, attempts left) or the dead letter.
func (r *run) fail(ctx context.Context, cause error) error {
	fe := fault.Classify(cause)
	final := fe.Kind == fault.Permanent || r.job.Attempt >= r.job.MaxAttempts
	le := lastError{Code: fe.Code, Message: fe.Message, Retryable: !final, Stage: r.st.name, Attempt: r.job.Attempt, At: time.Now().UTC()}
	if fe.Err != nil && fe.Code == "INTERNAL" {
		le.Message = fe.Err.Error()
	}
	// Record the failure even if the attempt's context was cancelled (timeout, shutdown).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := pgx.BeginFunc(wctx, r.conn, func(tx pgx.Tx) error {
		var cur runstate.Status
		if err := tx.QueryRow(wctx, `SELECT status FROM upload_pipeline.upload_jobs WHERE job_id = $1 FOR UPDATE`, r.jobID).Scan(&cur); err != nil {
			return fmt.Errorf("lock run row: %w", err)
		}
		if cur.Terminal() {
			return nil
		}
		if final {
			b, _ := json.Marshal(le)
			if _, err := tx.Exec(wctx, `UPDATE upload_pipeline.upload_jobs
				SET status = $2, state = $4, last_error = $3, finished_at = now(),
				    progress = progress || '{"percent": -1}'::jsonb
				WHERE job_id = $1`, r.jobID, r.st.failStatus, b, runstate.Deadletter); err != nil {
				return fmt.Errorf("dead-letter run: %w", err)
			}
			return r.event(wctx, tx, "deadletter", "error", fe.Code, map[string]any{
				"message": le.Message, "kind": fe.Kind.String(), "status": r.st.failStatus})
		}
		le.RetryAt = r.p.retry.NextRetry(r.job).UTC()
		b, _ := json.Marshal(le)
		if _, err := tx.Exec(wctx, `UPDATE upload_pipeline.upload_jobs
			SET state = $3, retry_count = retry_count + 1, last_error = $2
			WHERE job_id = $1`, r.jobID, b, runstate.Retryable); err != nil {
			return fmt.Errorf("mark run retryable: %w", err)
		}
		return r.event(wctx, tx, "retry", "warn", fe.Code, map[string]any{
			"message": le.Message, "max_attempts": r.job.MaxAttempts})
	})
	if err != nil {
		r.log.Error("could not record the failure; River will retry the job", "error", err, "cause", cause)
		return cause
	}
	if final {
		r.log.Error("stage failed; run dead-lettered", "code", fe.Code, "error", cause, "status", r.st.failStatus)
		return river.JobCancel(cause)
	}
	r.log.Warn("stage failed; will retry", "code", fe.Code, "error", cause)
	return cause
}

func intField(m map[string]any, k string) int {
	switch v := m[k].(type) {
	case float64:
		return int(v)
	case int:
		return v
	}
	return 0
}
