package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Engine is what Cancel and DeleteDocument need from the pipeline that moves runs
// along (*pipeline.Pipeline implements it): the catalog finds the rows in the caller's
// scope, the engine owns the run's transitions, its River jobs and the lock its stage
// attempts hold.
type Engine interface {
	// CancelRun dead-letters a run that has not ended, inside tx, and returns the
	// status it was in and the one it is in now.
	CancelRun(ctx context.Context, tx pgx.Tx, jobID uuid.UUID, reason string) (from, to runstate.Status, err error)
	// CancelStageJobs cancels the run's stage jobs that have not finished.
	CancelStageJobs(ctx context.Context, jobID uuid.UUID) error
	// TryLockRun takes the run's lock on conn, as a stage attempt does; false when held.
	TryLockRun(ctx context.Context, conn *pgxpool.Conn, jobID uuid.UUID) (bool, error)
	// UnlockRun releases it.
	UnlockRun(ctx context.Context, conn *pgxpool.Conn, jobID uuid.UUID) error
}

// Manager cancels runs and deletes documents, the two changes people make to what
// the catalog shows them.
type Manager struct {
	Pool   *pgxpool.Pool
	Engine Engine
	Store  storage.Store // holds the documents' objects
	Log    *slog.Logger  // nil = discard
	// LockWait is how long DeleteDocument waits for a stage attempt working on the
	// document to let go (default 15 s).
	LockWait time.Duration
}

func (m Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

// Cancel stops a run the scope may see: it is dead-lettered in the status of the stage
// it was in (failed_parse, failed_chunking or failed_embedding) with last_error code
// CANCELLED, and its queued River jobs are cancelled. A stage attempt running at that
// moment cannot commit (its final transaction sees the status changed) and its retry
// finds nothing to do. The run can be re-driven with Retry. Errors: ErrNotFound,
// ErrNotActive (the run is complete, duplicate or already dead-lettered).
func (m Manager) Cancel(ctx context.Context, s Scope, jobID uuid.UUID, reason string) (JobInfo, error) {
	var docID, corrID uuid.UUID
	var from, failStatus runstate.Status
	if reason == "" {
		reason = "cancelled through the API"
	}
	err := pgx.BeginFunc(ctx, m.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT j.status, j.document_id, j.correlation_id
			FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
			WHERE j.job_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2) FOR UPDATE OF j`, jobID, s.arg()).Scan(&from, &docID, &corrID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("job %s: %w", jobID, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("read run %s: %w", jobID, err)
		}
		if from.Terminal() {
			return fmt.Errorf("%w (status %s)", ErrNotActive, from)
		}
		_, failStatus, err = m.Engine.CancelRun(ctx, tx, jobID, reason)
		return err
	})
	if err != nil {
		return JobInfo{}, err
	}
	if err := m.Engine.CancelStageJobs(ctx, jobID); err != nil {
		// Harmless: a leftover stage job finds the run dead-lettered and does nothing.
		m.log().Warn("cancel: could not cancel queued stage jobs", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "error", err)
	}
	m.log().Info("run cancelled", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "from", from, "to", failStatus)
	return GetJob(ctx, m.Pool, s, jobID)
}

// DeleteDocument removes a document the scope may see: its runs are stopped, its rows
// (runs, chunks, vectors, buffers, events, webhook log) deleted in one transaction,
// then its stored objects (original and parsed markdown). It waits (up to LockWait)
// for a stage attempt working on the document to let go, so no stage writes after
// the delete. ErrNotFound for an unknown or another tenant's document.
func (m Manager) DeleteDocument(ctx context.Context, s Scope, docID uuid.UUID) error {
	lockWait := m.LockWait
	if lockWait <= 0 {
		lockWait = 15 * time.Second
	}
	var userID uuid.UUID
	var rawPath, parsedPath string
	err := m.Pool.QueryRow(ctx, `SELECT user_id, raw_path, coalesce(parsed_path, '') FROM upload_pipeline.documents
		WHERE document_id = $1 AND ($2::uuid IS NULL OR user_id = $2)`, docID, s.arg()).Scan(&userID, &rawPath, &parsedPath)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("document %s: %w", docID, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("read document %s: %w", docID, err)
	}
	rows, err := m.Pool.Query(ctx, `SELECT job_id, correlation_id FROM upload_pipeline.upload_jobs WHERE document_id = $1
		ORDER BY created_at DESC`, docID)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	type runIDs struct{ job, corr uuid.UUID }
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (runIDs, error) {
		var x runIDs
		return x, r.Scan(&x.job, &x.corr)
	})
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	jobs := make([]uuid.UUID, len(runs))
	var corrID uuid.UUID // the latest run's, for the log lines
	for i, r := range runs {
		jobs[i] = r.job
		if i == 0 {
			corrID = r.corr
		}
		if err := m.Engine.CancelStageJobs(ctx, r.job); err != nil {
			m.log().Warn("delete: could not cancel stage jobs", "job_id", r.job, "document_id", docID, "correlation_id", r.corr, "error", err)
		}
	}

	conn, err := m.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// Hold each run's lock (the one stage attempts take) across the delete.
	locked, err := m.lockRuns(ctx, conn, jobs, lockWait)
	defer m.unlockRuns(ctx, conn, locked)
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
		if err := m.Store.Delete(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("delete object %s: %w", k, err))
		}
	}
	m.log().Info("document deleted", "document_id", docID, "correlation_id", corrID, "user_id", userID, "runs", len(jobs))
	return errors.Join(errs...)
}

func (m Manager) lockRuns(ctx context.Context, conn *pgxpool.Conn, jobs []uuid.UUID, wait time.Duration) ([]uuid.UUID, error) {
	deadline := time.Now().Add(wait)
	var locked []uuid.UUID
	for _, j := range jobs {
		for {
			ok, err := m.Engine.TryLockRun(ctx, conn, j)
			if err != nil {
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

func (m Manager) unlockRuns(ctx context.Context, conn *pgxpool.Conn, jobs []uuid.UUID) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, j := range jobs {
		if err := m.Engine.UnlockRun(uctx, conn, j); err != nil {
			conn.Conn().Close(uctx) // the locks die with the connection
			return
		}
	}
}
