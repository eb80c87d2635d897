package pipeline

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/docpipe/docpipe/internal/runstate"
)

// stages is the machine in order (runstate.Stages): a run that finishes a stage
// without ending moves on to the next one in this list. Each stage is declared in its
// own file, stage_<name>.go.
var stages = []*stage{stageParse, stageValidate, stageChunk, stageEmbed, stageFinalize}

// stage describes one step of the machine.
type stage struct {
	name     runstate.Stage
	accepts  []runstate.Status // statuses in which the stage may (re)run
	working  runstate.Status   // status written when the stage starts ("" = unchanged)
	entry    runstate.Status   // status the run waits in for this stage (and a re-drive puts it back into)
	priority int               // River priority (1 = first); later stages first so documents finish

	// Filled by bind.
	failStatus runstate.Status // dead-letter status: runstate's FailStatus of the stage
	args       func(uuid.UUID) river.JobArgs
	do         func(ctx context.Context, r *run) (applyFunc, error)
	register   func(*river.Workers, *Pipeline)
}

// applyFunc writes a stage's durable result inside the final transaction and returns
// where the run goes: advance, or a terminal status (duplicate, complete) that ends it.
type applyFunc func(ctx context.Context, tx pgx.Tx) (runstate.Status, error)

// advance, returned by an applyFunc, moves the run on to the next stage of the list: it
// takes that stage's entry status and the stage's job is queued. A stage never names
// its successor, so a stage added to the list changes no other stage.
const advance runstate.Status = ""

// next is the stage after s in stages; nil for the last one.
func (s *stage) next() *stage {
	for i, st := range stages[:len(stages)-1] {
		if st == s {
			return stages[i+1]
		}
	}
	return nil
}

// after is where a run goes when s's attempt returns result (advance or a terminal
// status): the status to write, and the stage to queue (nil when the run ends).
func (s *stage) after(result runstate.Status) (runstate.Status, *stage, error) {
	switch next := s.next(); {
	case result == advance && next != nil:
		return next.entry, next, nil
	case result == advance:
		return "", nil, fmt.Errorf("stage %s is the last one: it must end the run, not advance", s.name)
	case result.Terminal():
		return result, nil, nil
	}
	return "", nil, fmt.Errorf("stage %s returned %s, which neither advances nor ends the run", s.name, result)
}

func stageByName(name runstate.Stage) *stage {
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// StageArgs are the arguments of every stage job: the upload job (run) to advance.
// Each stage's job kind is a type with these fields (ParseArgs, …) in its file.
type StageArgs struct {
	UploadJobID uuid.UUID `json:"upload_job_id"`
}

// stageArgs is any stage's job arguments.
type stageArgs interface {
	river.JobArgs
	~struct {
		UploadJobID uuid.UUID `json:"upload_job_id"`
	}
}

// bind completes a stage declared in its file: its job arguments T, its work, its
// failure status, and the River worker that runs it.
func bind[T stageArgs](s *stage, do func(*run, context.Context) (applyFunc, error)) *stage {
	s.failStatus = s.name.FailStatus()
	s.do = func(ctx context.Context, r *run) (applyFunc, error) { return do(r, ctx) }
	s.args = func(id uuid.UUID) river.JobArgs { return T{UploadJobID: id} }
	s.register = func(w *river.Workers, p *Pipeline) { river.AddWorker(w, &stageWorker[T]{p: p, s: s}) }
	return s
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
	return w.p.work(ctx, w.s, job.JobRow, StageArgs(job.Args).UploadJobID, func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}
