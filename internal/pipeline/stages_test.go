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

// Job kinds, priorities and the arguments' JSON are what jobs already in a deployed
// database carry: they must never change for an existing stage.
func TestStageJobsAreStable(t *testing.T) {
	id := uuid.MustParse("0190a0a0-0000-7000-8000-000000000001")
	for _, want := range []struct {
		name     runstate.Stage
		kind     string
		priority int
	}{
		{"parse", "docpipe.parse", 4}, {"validate", "docpipe.validate", 3}, {"chunk", "docpipe.chunk", 3},
		{"embed", "docpipe.embed", 2}, {"finalize", "docpipe.finalize", 1},
	} {
		s := stageByName(want.name)
		if s == nil {
			t.Errorf("stage %s is gone", want.name)
			continue
		}
		args := s.args(id)
		if args.Kind() != want.kind || s.priority != want.priority {
			t.Errorf("%s: kind %s priority %d, want %s %d", s.name, args.Kind(), s.priority, want.kind, want.priority)
		}
		if b, _ := json.Marshal(args); string(b) != `{"upload_job_id":"`+id.String()+`"}` {
			t.Errorf("%s: args JSON %s", s.name, b)
		}
	}
}

// A stage that advances hands the run to the next stage in the list, in that stage's
// entry status (the same statuses as when each stage named its own); a terminal status
// ends the run.
func TestAfterFollowsTheList(t *testing.T) {
	for _, c := range []struct {
		from   *stage
		result runstate.Status
		status runstate.Status
		next   *stage
		err    bool
	}{
		{stageParse, advance, runstate.Parsed, stageValidate, false},
		{stageValidate, advance, runstate.ParseValidated, stageChunk, false},
		{stageValidate, runstate.Duplicate, runstate.Duplicate, nil, false},
		{stageChunk, advance, runstate.EmbeddingQueued, stageEmbed, false},
		{stageEmbed, advance, runstate.EmbeddingsStored, stageFinalize, false},
		{stageFinalize, runstate.Complete, runstate.Complete, nil, false},
		{stageFinalize, advance, "", nil, true},              // the last stage cannot advance
		{stageParse, runstate.ParseValidated, "", nil, true}, // a stage never names a status to go on in
	} {
		status, next, err := c.from.after(c.result)
		if status != c.status || next != c.next || (err != nil) != c.err {
			t.Errorf("%s returns %q: %q, %v, %v", c.from.name, c.result, status, next, err)
		}
	}
}
