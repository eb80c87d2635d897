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
)

// What the read side (internal/catalog) asks of the engine when people cancel a run or
// delete a document: the cancel's move to the dead letter, the run's stage jobs in
// River, and the lock every stage attempt holds on its run.

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

// CancelRun dead-letters a run that has not ended, inside tx: it moves to the
// dead-letter status of the stage it is in (failed_parse, failed_chunking or
// failed_embedding) with last_error code CANCELLED and reason as the message, and a
// deadletter event is written. A stage attempt running at that moment cannot commit
// (its final transaction sees the status changed) and its retry finds nothing to do;
// Retry re-drives the run. The caller checks who may cancel the run, and cancels its
// queued jobs (CancelStageJobs) after tx commits. It returns the status the run was in
// and the one it is in now.
func (p *Pipeline) CancelRun(ctx context.Context, tx pgx.Tx, jobID uuid.UUID, reason string) (from, to runstate.Status, err error) {
	var docID, corrID uuid.UUID
	err = tx.QueryRow(ctx, `SELECT status, document_id, correlation_id FROM upload_pipeline.upload_jobs
		WHERE job_id = $1 FOR UPDATE`, jobID).Scan(&from, &docID, &corrID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	} else if err != nil {
		return "", "", fmt.Errorf("read run %s: %w", jobID, err)
	}
	st := stageForStatus(from)
	if from.Terminal() || st == nil {
		return from, "", fmt.Errorf("run %s has ended (status %s): nothing to cancel", jobID, from)
	}
	le, _ := json.Marshal(lastError{Code: CodeCancelled, Message: reason, Retryable: false, Stage: st.name, At: time.Now().UTC()})
	if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
		SET status = $2, state = $4, last_error = $3, finished_at = now(),
		    progress = progress || '{"percent": -1}'::jsonb
		WHERE job_id = $1`, jobID, st.failStatus, le, runstate.Deadletter); err != nil {
		return from, "", fmt.Errorf("cancel run: %w", err)
	}
	err = insertEvent(ctx, tx, eventRow{jobID: jobID, docID: docID, corrID: corrID, typ: "deadletter", stage: st.name,
		severity: "warn", code: CodeCancelled, workerID: p.workerID,
		payload: map[string]any{"message": reason, "from": from, "status": st.failStatus}})
	return from, st.failStatus, err
}

// CancelStageJobs cancels the run's stage jobs that have not finished. One left over
// (a cancel that failed, or a job being fetched at that moment) finds its run ended or
// gone and does nothing.
func (p *Pipeline) CancelStageJobs(ctx context.Context, jobID uuid.UUID) error {
	rows, err := p.pool.Query(ctx, `SELECT id FROM river_job
		WHERE args->>'upload_job_id' = $1 AND kind LIKE 'docpipe.%'
		  AND state NOT IN ('completed', 'cancelled', 'discarded')`, jobID.String())
	if err != nil {
		return fmt.Errorf("find stage jobs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("find stage jobs: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if _, err := p.river.JobCancel(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TryLockRun takes, on conn, the session advisory lock a stage attempt holds on its run
// while it works (see work); false when someone else holds it. Holding it keeps stage
// attempts of the run from starting.
func (p *Pipeline) TryLockRun(ctx context.Context, conn *pgxpool.Conn, jobID uuid.UUID) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))`, jobID).Scan(&ok); err != nil {
		return false, fmt.Errorf("lock run %s: %w", jobID, err)
	}
	return ok, nil
}

// UnlockRun releases a lock TryLockRun took on conn.
func (p *Pipeline) UnlockRun(ctx context.Context, conn *pgxpool.Conn, jobID uuid.UUID) error {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1::text, 0))`, jobID); err != nil {
		return fmt.Errorf("unlock run %s: %w", jobID, err)
	}
	return nil
}
