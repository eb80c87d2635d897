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
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
)

// StageArgs are the arguments of every stage job: the upload job (run) to advance.
type StageArgs struct {
	UploadJobID uuid.UUID `json:"upload_job_id"`
}

func (a StageArgs) id() uuid.UUID { return a.UploadJobID }

// The job kinds, one per stage.
type (
	ParseArgs    StageArgs
	ValidateArgs StageArgs
	ChunkArgs    StageArgs
	EmbedArgs    StageArgs
	FinalizeArgs StageArgs
)

func (ParseArgs) Kind() string    { return "docpipe.parse" }
func (ValidateArgs) Kind() string { return "docpipe.validate" }
func (ChunkArgs) Kind() string    { return "docpipe.chunk" }
func (EmbedArgs) Kind() string    { return "docpipe.embed" }
func (FinalizeArgs) Kind() string { return "docpipe.finalize" }

type stageArgs interface {
	river.JobArgs
	ParseArgs | ValidateArgs | ChunkArgs | EmbedArgs | FinalizeArgs
}

// applyFunc writes a stage's durable result inside the final transaction and returns
// the status to move to and the next stage (nil when the run ends).
type applyFunc func(ctx context.Context, tx pgx.Tx) (status runstate.Status, next *stage, err error)

// stage describes one step of the machine.
type stage struct {
	name       string
	accepts    []runstate.Status // statuses in which the stage may (re)run
	working    runstate.Status   // status written when the stage starts ("" = unchanged)
	entry      runstate.Status   // status a re-drive puts the run back into
	failStatus runstate.Status   // dead-letter status
	priority   int               // River priority (1 = first); later stages first so documents finish
	args       func(uuid.UUID) river.JobArgs
	do         func(ctx context.Context, r *run) (applyFunc, error)
	register   func(*river.Workers, *Pipeline)
}

var (
	stageParse    = &stage{name: "parse", accepts: []runstate.Status{runstate.ParseQueued}, entry: runstate.ParseQueued, failStatus: runstate.FailedParse, priority: 4}
	stageValidate = &stage{name: "validate", accepts: []runstate.Status{runstate.Parsed}, entry: runstate.Parsed, failStatus: runstate.FailedParse, priority: 3}
	stageChunk    = &stage{name: "chunk", accepts: []runstate.Status{runstate.ParseValidated, runstate.Chunking}, working: runstate.Chunking, entry: runstate.ParseValidated, failStatus: runstate.FailedChunking, priority: 3}
	stageEmbed    = &stage{name: "embed", accepts: []runstate.Status{runstate.EmbeddingQueued, runstate.EmbeddingInProgress}, working: runstate.EmbeddingInProgress, entry: runstate.EmbeddingQueued, failStatus: runstate.FailedEmbedding, priority: 2}
	stageFinalize = &stage{name: "finalize", accepts: []runstate.Status{runstate.EmbeddingsStored}, entry: runstate.EmbeddingsStored, failStatus: runstate.FailedEmbedding, priority: 1}
	stages        = []*stage{stageParse, stageValidate, stageChunk, stageEmbed, stageFinalize}
)

func init() {
	bind[ParseArgs](stageParse, (*run).parse)
	bind[ValidateArgs](stageValidate, (*run).validate)
	bind[ChunkArgs](stageChunk, (*run).chunk)
	bind[EmbedArgs](stageEmbed, (*run).embed)
	bind[FinalizeArgs](stageFinalize, (*run).finalize)
}

func bind[T stageArgs](s *stage, do func(*run, context.Context) (applyFunc, error)) {
	s.do = func(ctx context.Context, r *run) (applyFunc, error) { return do(r, ctx) }
	s.args = func(id uuid.UUID) river.JobArgs { return T{UploadJobID: id} }
	s.register = func(w *river.Workers, p *Pipeline) { river.AddWorker(w, &stageWorker[T]{p: p, s: s}) }
}

func stageByName(name string) *stage {
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (p *Pipeline) insertOpts(s *stage) *river.InsertOpts {
	// No River unique options: a stage job that finds its run in a status it does not
	// accept completes as a no-op, and the run's advisory lock keeps two jobs of one run
	// from working at once. (Uniqueness would also block a re-drive while the failed
	// attempt's job is still finishing.)
	return &river.InsertOpts{Queue: Queue, Priority: s.priority}
}

// enqueue inserts the stage job for a run inside tx.
func (p *Pipeline) enqueue(ctx context.Context, tx pgx.Tx, s *stage, jobID uuid.UUID) error {
	if _, err := p.river.InsertTx(ctx, tx, s.args(jobID), p.insertOpts(s)); err != nil {
		return fmt.Errorf("enqueue %s: %w", s.name, err)
	}
	return nil
}

type stageWorker[T stageArgs] struct {
	river.WorkerDefaults[T]
	p *Pipeline
	s *stage
}

func (w *stageWorker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	id := StageArgs(job.Args).id()
	return w.p.work(ctx, w.s, job.JobRow, id, func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

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
			SET status = $2, state = 'working', started_at = coalesce(started_at, now()),
			    progress = progress || jsonb_build_object('percent', $3::float8, 'stage', $4::text)
			WHERE job_id = $1`, r.jobID, status, runstate.Percent(status, 0, 0), r.st.name)
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
		status, next, err := apply(ctx, tx)
		if err != nil {
			return err
		}
		state := runstate.Queued
		if status == runstate.Complete || status == runstate.Duplicate {
			state = runstate.Done
		}
		done, total := intField(r.progress, "embeds_done"), intField(r.progress, "embeds_total")
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET status = $2, state = $3, last_error = NULL,
			    progress = progress || jsonb_build_object('percent', $4::float8, 'stage', $5::text),
			    finished_at = CASE WHEN $3 = 'done' THEN now() END
			WHERE job_id = $1`, r.jobID, status, state, runstate.Percent(status, done, total), r.st.name); err != nil {
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
	Code      string    `json:"code"`
	Message   string    `json:"message"`
	Retryable bool      `json:"retryable"`
	Stage     string    `json:"stage"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
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
			return err
		}
		if cur.Terminal() {
			return nil
		}
		if final {
			b, _ := json.Marshal(le)
			if _, err := tx.Exec(wctx, `UPDATE upload_pipeline.upload_jobs
				SET status = $2, state = 'deadletter', last_error = $3, finished_at = now(),
				    progress = progress || '{"percent": -1}'::jsonb
				WHERE job_id = $1`, r.jobID, r.st.failStatus, b); err != nil {
				return err
			}
			return r.event(wctx, tx, "deadletter", "error", fe.Code, map[string]any{
				"message": le.Message, "kind": fe.Kind.String(), "status": r.st.failStatus})
		}
		le.RetryAt = r.p.retry.NextRetry(r.job).UTC()
		b, _ := json.Marshal(le)
		if _, err := tx.Exec(wctx, `UPDATE upload_pipeline.upload_jobs
			SET state = 'retryable', retry_count = retry_count + 1, last_error = $2
			WHERE job_id = $1`, r.jobID, b); err != nil {
			return err
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

// event appends to the audit trail.
func (r *run) event(ctx context.Context, tx pgx.Tx, typ, severity, code string, payload map[string]any) error {
	return insertEvent(ctx, tx, eventRow{
		jobID: r.jobID, docID: r.docID, typ: typ, stage: r.st.name, severity: severity, code: code,
		payload: payload, corrID: r.corrID, workerID: r.p.workerID, attempt: r.job.Attempt,
	})
}

type eventRow struct {
	jobID, docID, corrID uuid.UUID
	typ, stage, severity string
	code, workerID       string
	payload              map[string]any
	attempt              int
}

func insertEvent(ctx context.Context, tx pgx.Tx, e eventRow) error {
	if e.payload == nil {
		e.payload = map[string]any{}
	}
	b, err := json.Marshal(e.payload)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO upload_pipeline.events
		(event_id, job_id, document_id, type, stage, severity, code, payload, correlation_id, worker_id, attempt)
		VALUES ($1, $2, $3, $4, nullif($5, ''), $6, $7, $8, $9, nullif($10, ''), nullif($11, 0))`,
		uuid.Must(uuid.NewV7()), e.jobID, e.docID, e.typ, e.stage, e.severity, e.code, b, e.corrID, e.workerID, e.attempt)
	if err != nil {
		return fmt.Errorf("write event %s: %w", e.code, err)
	}
	return nil
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
