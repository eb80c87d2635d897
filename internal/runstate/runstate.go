// Package runstate is the vocabulary of a pipeline run (a row of
// upload_pipeline.upload_jobs): its statuses, its states and the stages that move it.
//
// It is the one place these words are spelled. The pipeline, the read side, the API's
// enums, the metrics' labels, the alert rules and the CLI all derive from it, and a
// test compares it with the database's CHECK constraints and status_rank in both
// directions, so a status added in one place only fails the build's tests.
//
// Status is the business position of the run in the machine (DESIGN.md §2); State is
// the scheduling condition of the run within its status (waiting, working, retrying,
// ended). The database keeps them consistent: complete and duplicate runs are done,
// failed runs are dead-lettered, every other status is queued, working or retryable.
package runstate

import (
	"slices"
	"strings"
)

// Status is upload_jobs.status.
type Status string

// The statuses, in the order of the forward path, then the exits.
const (
	// Uploaded: the bytes are stored and verified, and the document and its run are
	// created. Submit moves the run on to parse_queued in the same transaction.
	Uploaded Status = "uploaded"
	// ParseQueued: the parse job is queued (by Submit, or by a re-drive of parse). A
	// remote parse stays here while the remote service works.
	ParseQueued Status = "parse_queued"
	// Parsed: the parsed markdown is stored; the validate job is queued.
	Parsed Status = "parsed"
	// ParseValidated: the parsed content is non-empty, normalized and no duplicate of
	// another document of the same user; the chunk job is queued.
	ParseValidated Status = "parse_validated"
	// Chunking: a chunk attempt has started.
	Chunking Status = "chunking"
	// ChunksStored is on the schema's forward path between chunking and
	// embedding_queued. No stage writes it today (chunk moves straight to
	// embedding_queued); a run found in it belongs to the embed stage.
	ChunksStored Status = "chunks_stored"
	// EmbeddingQueued: the chunks are in the chunk buffer; the embed job is queued.
	EmbeddingQueued Status = "embedding_queued"
	// EmbeddingInProgress: an embed attempt has started; every committed micro-batch of
	// vectors updates the run's progress.
	EmbeddingInProgress Status = "embedding_in_progress"
	// EmbeddingsStored: every buffered chunk has its vector; the finalize job is queued.
	EmbeddingsStored Status = "embeddings_stored"
	// Complete: finalize published the chunks to document_chunks. Final.
	Complete Status = "complete"
	// FailedParse: dead-lettered in parse or validate (a permanent error, the last
	// attempt failing, or a cancel). A re-drive moves it back into the machine.
	FailedParse Status = "failed_parse"
	// FailedChunking: dead-lettered in chunk.
	FailedChunking Status = "failed_chunking"
	// FailedEmbedding: dead-lettered in embed or finalize.
	FailedEmbedding Status = "failed_embedding"
	// Duplicate: validate found the parsed content identical to another document of
	// the same user; nothing more is done. Final.
	Duplicate Status = "duplicate"
)

// Statuses lists every status: the forward path in order (Rank 1, 2, …), then the
// failures, then duplicate. It is the migration's CHECK list on upload_jobs.status.
func Statuses() []Status {
	return []Status{
		Uploaded, ParseQueued, Parsed, ParseValidated, Chunking, ChunksStored,
		EmbeddingQueued, EmbeddingInProgress, EmbeddingsStored, Complete,
		FailedParse, FailedChunking, FailedEmbedding, Duplicate,
	}
}

// ActiveStatuses lists the statuses a run can still move out of by itself (those
// that are not Terminal), in the order of Statuses.
func ActiveStatuses() []Status {
	return slices.DeleteFunc(Statuses(), Status.Terminal)
}

// FailedStatuses lists the dead-letter statuses, in the order of Statuses.
func FailedStatuses() []Status {
	return slices.DeleteFunc(Statuses(), func(s Status) bool { return !s.Failed() })
}

// Rank is the position of s on the forward path (1 = uploaded … complete), the value
// of the database's status_rank: a run may only move to a higher rank, or out to a
// failure or duplicate. Failures, duplicate and unknown statuses have rank 0.
func (s Status) Rank() int {
	for i, f := range Statuses() {
		if f == s {
			return i + 1
		}
		if f == Complete {
			break
		}
	}
	return 0
}

// Failed reports whether s is a dead-letter status. Those are named failed_<what>:
// the migration's CHECK constraints and status trigger recognise them by that prefix
// (LIKE 'failed\_%'), so a new failure status needs no edit here.
func (s Status) Failed() bool {
	return strings.HasPrefix(string(s), "failed_")
}

// Terminal reports whether a run in s will not move again by itself: complete,
// duplicate, or a failure (which only a re-drive moves).
func (s Status) Terminal() bool {
	return s == Complete || s == Duplicate || s.Failed()
}

// States lists the states a run in s can be in (the migration's
// ck_upload_jobs_terminal_state): done for complete and duplicate, deadletter for
// failures, queued, working or retryable otherwise. Unknown statuses have none.
func (s Status) States() []State {
	switch {
	case s == Complete || s == Duplicate:
		return []State{Done}
	case s.Failed():
		return []State{Deadletter}
	case s.Rank() > 0:
		return ActiveStates()
	}
	return nil
}

var percent = map[Status]float64{
	Uploaded: 5, ParseQueued: 10, Parsed: 30, ParseValidated: 35,
	Chunking: 40, ChunksStored: 50, EmbeddingQueued: 50,
	EmbeddingInProgress: 50, EmbeddingsStored: 95, Complete: 100,
}

// Percent is the progress shown for a run: by status, and within embedding by the
// share of chunks embedded. Failed and duplicate runs report -1.
func Percent(s Status, embedsDone, embedsTotal int) float64 {
	p, ok := percent[s]
	if !ok {
		return -1
	}
	if s == EmbeddingInProgress && embedsTotal > 0 {
		p += 45 * float64(embedsDone) / float64(embedsTotal)
	}
	return p
}

// State is upload_jobs.state.
type State string

// The states.
const (
	// Queued: the run waits for its stage's job (new, advanced, or re-driven).
	Queued State = "queued"
	// Working: a stage attempt has started on the run.
	Working State = "working"
	// Retryable: the last attempt failed with a transient error; River retries it.
	Retryable State = "retryable"
	// Done: the run is complete or duplicate.
	Done State = "done"
	// Deadletter: the run failed for good (failed_*); `docpipe jobs retry` re-drives it.
	Deadletter State = "deadletter"
)

// States lists every state: the migration's CHECK list on upload_jobs.state.
func States() []State {
	return []State{Queued, Working, Retryable, Done, Deadletter}
}

// ActiveStates lists the states of runs that have not ended.
func ActiveStates() []State {
	return []State{Queued, Working, Retryable}
}

// Active reports whether a run in s has not ended.
func (s State) Active() bool { return slices.Contains(ActiveStates(), s) }

// Stage is one step of the machine, also the label of its River job kind, of
// events, of last_error.stage and of the per-stage metrics.
type Stage string

// The stages, in the order a run goes through them.
const (
	Parse    Stage = "parse"    // stored bytes → parsed markdown
	Validate Stage = "validate" // normalize, hash, detect duplicates
	Chunk    Stage = "chunk"    // markdown → chunk buffer
	Embed    Stage = "embed"    // chunk buffer → vector buffer, micro-batch by micro-batch
	Finalize Stage = "finalize" // buffers → document_chunks, buffers cleared
)

// Upload is the stage named on the events of a submission itself, before any stage
// job runs. It is not one of Stages.
const Upload Stage = "upload"

// Stages lists the stages in order: a run goes from each to the next.
func Stages() []Stage {
	return []Stage{Parse, Validate, Chunk, Embed, Finalize}
}

// KindPrefix starts the River job kind of every stage.
const KindPrefix = "docpipe."

// Kind is the River job kind of the stage ("docpipe.parse"). Jobs in flight carry it,
// so it never changes for an existing stage.
func (s Stage) Kind() string { return KindPrefix + string(s) }

// FailStatus is the status a run dead-lettered in this stage moves to.
func (s Stage) FailStatus() Status {
	switch s {
	case Parse, Validate:
		return FailedParse
	case Chunk:
		return FailedChunking
	case Embed, Finalize:
		return FailedEmbedding
	}
	return ""
}

// Join lists values with sep between them, for help texts and descriptions built from
// this vocabulary ("queued|working|…").
func Join[T ~string](values []T, sep string) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, sep)
}

// SQLList renders values as the items of an SQL IN list ('a', 'b'), for SQL text
// built from this vocabulary. Literal text (not a parameter) lets the planner match
// partial indexes such as ix_upload_jobs_active (WHERE state IN (…)).
func SQLList[T ~string](values []T) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "'" + strings.ReplaceAll(string(v), "'", "''") + "'"
	}
	return strings.Join(quoted, ", ")
}
