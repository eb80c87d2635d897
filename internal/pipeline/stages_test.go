package pipeline

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/runstate"
)

// The stage list is the vocabulary's, in order, and each stage's statuses fit it:
// it starts in its entry status, the entry statuses move forward along the list, and
// it dead-letters into the vocabulary's failure status of the stage.
func TestStagesFollowTheVocabulary(t *testing.T) {
	var names []runstate.Stage
	prev := 0
	for _, s := range stages {
		names = append(names, s.name)
		if !slices.Contains(s.accepts, s.entry) || (s.working != "" && !slices.Contains(s.accepts, s.working)) {
			t.Errorf("%s: accepts %v, entry %s, working %q", s.name, s.accepts, s.entry, s.working)
		}
		if s.entry.Rank() <= prev {
			t.Errorf("%s starts in %s (rank %d), not after the previous stage (rank %d)", s.name, s.entry, s.entry.Rank(), prev)
		}
		prev = s.entry.Rank()
		if s.failStatus != s.name.FailStatus() || !s.failStatus.Failed() {
			t.Errorf("%s dead-letters into %q", s.name, s.failStatus)
		}
	}
	if !slices.Equal(names, runstate.Stages()) {
		t.Errorf("stages %v, runstate %v", names, runstate.Stages())
	}
}

// Job kinds, priorities, the arguments' JSON and the entry status a run waits in for a
// stage are what runs and jobs already in a deployed database carry: they must never
// change for an existing stage.
func TestStageJobsAreStable(t *testing.T) {
	id := uuid.MustParse("0190a0a0-0000-7000-8000-000000000001")
	for _, want := range []struct {
		name     runstate.Stage
		kind     string
		priority int
		entry    runstate.Status
	}{
		{"parse", "docpipe.parse", 4, "parse_queued"},
		{"validate", "docpipe.validate", 3, "parsed"},
		{"chunk", "docpipe.chunk", 3, "parse_validated"},
		{"embed", "docpipe.embed", 2, "embedding_queued"},
		{"finalize", "docpipe.finalize", 1, "embeddings_stored"},
	} {
		s := stageByName(want.name)
		if s == nil {
			t.Errorf("stage %s is gone", want.name)
			continue
		}
		args := s.args(id)
		if args.Kind() != want.kind || s.priority != want.priority || s.entry != want.entry {
			t.Errorf("%s: kind %s priority %d entry %s, want %s %d %s", s.name, args.Kind(), s.priority, s.entry, want.kind, want.priority, want.entry)
		}
		if b, _ := json.Marshal(args); string(b) != `{"upload_job_id":"`+id.String()+`"}` {
			t.Errorf("%s: args JSON %s", s.name, b)
		}
	}
}

// A stage that advances hands the run to the next stage in the list, in that stage's
// entry status (the same statuses as when each stage named its own); a terminal status
// ends the run; the last stage cannot advance and no stage names a status to go on in.
func TestAfterFollowsTheList(t *testing.T) {
	for i, s := range stages[:len(stages)-1] {
		next := stages[i+1]
		if status, got, err := s.after(advance); status != next.entry || got != next || err != nil {
			t.Errorf("%s advances to %q, %v, %v; want %s in %s", s.name, status, got, err, next.name, next.entry)
		}
		if _, _, err := s.after(next.entry); err == nil {
			t.Errorf("%s may name the status %s to go on in", s.name, next.entry)
		}
	}
	last := stages[len(stages)-1]
	if _, _, err := last.after(advance); err == nil {
		t.Errorf("the last stage %s may advance", last.name)
	}
	for _, c := range []struct {
		from   *stage
		result runstate.Status
	}{{stageValidate, runstate.Duplicate}, {stageFinalize, runstate.Complete}} {
		if status, next, err := c.from.after(c.result); status != c.result || next != nil || err != nil {
			t.Errorf("%s returns %s: %q, %v, %v; want the run to end", c.from.name, c.result, status, next, err)
		}
	}
}
