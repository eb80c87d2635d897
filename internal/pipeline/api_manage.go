package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// ErrNotActive is returned by Cancel for a run that has already ended.
var ErrNotActive = errors.New("the run has already ended")

// ErrBusy is returned by DeleteDocument when a stage attempt keeps working on the
// document for longer than the delete waits; try again.
var ErrBusy = errors.New("a stage is still working on the document")

// CodeCancelled is last_error.code (and the event code) of a cancelled run.
const CodeCancelled = "CANCELLED"

// stageForStatus is the stage that moves a run out of status (nil for terminal ones).
func stageForStatus(status runstate.Status) *stage {
	if status == runstate.Uploaded {
		return stageParse
	}
	for _, s := range stages {
		if slices.Contains(s.accepts, status) || s.working == status {
			return s
		}
	}
	if status == runstate.ChunksStored {
		return stageEmbed
	}
	return nil
}

// Cancel stops a run the scope may see: it is dead-lettered in the status of the stage
// it was in (failed_parse, failed_chunking or failed_embedding) with last_error code
// CANCELLED, and its queued River jobs are cancelled. A stage attempt running at that
// moment cannot commit (its final transaction sees the status changed) and its retry
// finds nothing to do. The run can be re-driven with Retry. Errors: ErrNotFound,
// ErrNotActive (the run is complete, duplicate or already dead-lettered).
func (p *Pipeline) Cancel(ctx context.Context, s Scope, jobID uuid.UUID, reason string) (JobInfo, error) {
	var docID, corrID uuid.UUID
	var from, failStatus runstate.Status
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var userID uuid.UUID
		err := tx.QueryRow(ctx, `SELECT j.status, j.document_id, j.correlation_id, d.user_id
			FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
			WHERE j.job_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2) FOR UPDATE OF j`, jobID, s.arg()).Scan(&from, &docID, &corrID, &userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("job %s: %w", jobID, ErrNotFound)
		} else if err != nil {
			return err
		}
		st := stageForStatus(from)
		if from.Terminal() || st == nil {
			return fmt.Errorf("%w (status %s)", ErrNotActive, from)
		}
		failStatus = st.failStatus
		if reason == "" {
			reason = "cancelled through the API"
		}
		le, _ := json.Marshal(lastError{Code: CodeCancelled, Message: reason, Retryable: false, Stage: st.name, At: time.Now().UTC()})
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET status = $2, state = $4, last_error = $3, finished_at = now(),
			    progress = progress || '{"percent": -1}'::jsonb
			WHERE job_id = $1`, jobID, failStatus, le, runstate.Deadletter); err != nil {
			return fmt.Errorf("cancel run: %w", err)
		}
		return insertEvent(ctx, tx, eventRow{jobID: jobID, docID: docID, corrID: corrID, typ: "deadletter", stage: st.name,
			severity: "warn", code: CodeCancelled, workerID: p.workerID,
			payload: map[string]any{"message": reason, "from": from, "status": failStatus}})
	})
	if err != nil {
		return JobInfo{}, err
	}
	if err := p.cancelRiverJobs(ctx, jobID); err != nil {
		// Harmless: a leftover stage job finds the run dead-lettered and does nothing.
		p.log.Warn("cancel: could not cancel queued stage jobs", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "error", err)
	}
	p.log.Info("run cancelled", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "from", from, "to", failStatus)
	return ScopedJob(ctx, p.pool, s, jobID)
}

// cancelRiverJobs cancels the run's stage jobs that have not finished.
func (p *Pipeline) cancelRiverJobs(ctx context.Context, jobID uuid.UUID) error {
	rows, err := p.pool.Query(ctx, `SELECT id FROM river_job
		WHERE args->>'upload_job_id' = $1 AND kind LIKE 'docpipe.%'
		  AND state NOT IN ('completed', 'cancelled', 'discarded')`, jobID.String())
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if _, err := p.river.JobCancel(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteDocument removes a document the scope may see: its runs are stopped, its rows
// (runs, chunks, vectors, buffers, events, webhook log) deleted in one transaction,
// then its stored objects (original and parsed markdown). It waits (up to lockWait)
// for a stage attempt working on the document to let go, so no stage writes after
// the delete. ErrNotFound for an unknown or another tenant's document.
func (p *Pipeline) DeleteDocument(ctx context.Context, s Scope, docID uuid.UUID) error {
	const lockWait = 15 * time.Second
	var userID uuid.UUID
	var rawPath, parsedPath string
	err := p.pool.QueryRow(ctx, `SELECT user_id, raw_path, coalesce(parsed_path, '') FROM upload_pipeline.documents
		WHERE document_id = $1 AND ($2::uuid IS NULL OR user_id = $2)`, docID, s.arg()).Scan(&userID, &rawPath, &parsedPath)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("document %s: %w", docID, ErrNotFound)
	} else if err != nil {
		return err
	}
	rows, err := p.pool.Query(ctx, `SELECT job_id, correlation_id FROM upload_pipeline.upload_jobs WHERE document_id = $1
		ORDER BY created_at DESC`, docID)
	if err != nil {
		return err
	}
	type runIDs struct{ job, corr uuid.UUID }
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (runIDs, error) {
		var x runIDs
		return x, r.Scan(&x.job, &x.corr)
	})
	if err != nil {
		return err
	}
	jobs := make([]uuid.UUID, len(runs))
	var corrID uuid.UUID // the latest run's, for the log lines
	for i, r := range runs {
		jobs[i] = r.job
		if i == 0 {
			corrID = r.corr
		}
		if err := p.cancelRiverJobs(ctx, r.job); err != nil {
			p.log.Warn("delete: could not cancel stage jobs", "job_id", r.job, "document_id", docID, "correlation_id", r.corr, "error", err)
		}
	}

	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Hold each run's advisory lock (the one stage attempts take) across the delete.
	locked, err := lockRuns(ctx, conn, jobs, lockWait)
	defer unlockRuns(ctx, conn, locked)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM upload_pipeline.documents WHERE document_id = $1 AND ($2::uuid IS NULL OR user_id = $2)`, docID, s.arg())
		if err != nil {
			return fmt.Errorf("delete document: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("document %s: %w", docID, ErrNotFound) // deleted concurrently
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys := map[string]bool{rawPath: true, storage.RawKey(userID, docID): true, storage.ParsedKey(userID, docID): true}
	if parsedPath != "" {
		keys[parsedPath] = true
	}
	var errs []error
	for k := range keys {
		if err := p.store.Delete(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("delete object %s: %w", k, err))
		}
	}
	p.log.Info("document deleted", "document_id", docID, "correlation_id", corrID, "user_id", userID, "runs", len(jobs))
	return errors.Join(errs...)
}

func lockRuns(ctx context.Context, conn *pgxpool.Conn, jobs []uuid.UUID, wait time.Duration) ([]uuid.UUID, error) {
	deadline := time.Now().Add(wait)
	var locked []uuid.UUID
	for _, j := range jobs {
		for {
			var ok bool
			if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))`, j).Scan(&ok); err != nil {
				return locked, err
			}
			if ok {
				locked = append(locked, j)
				break
			}
			if time.Now().After(deadline) {
				return locked, fmt.Errorf("%w (run %s, waited %s); try again", ErrBusy, j, wait)
			}
			select {
			case <-ctx.Done():
				return locked, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return locked, nil
}

func unlockRuns(ctx context.Context, conn *pgxpool.Conn, jobs []uuid.UUID) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, j := range jobs {
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended($1::text, 0))`, j); err != nil {
			conn.Conn().Close(uctx) // the locks die with the connection
			return
		}
	}
}
