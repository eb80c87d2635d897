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
	want := []struct {
		kind     string
		priority int
	}{{"docpipe.parse", 4}, {"docpipe.validate", 3}, {"docpipe.chunk", 3}, {"docpipe.embed", 2}, {"docpipe.finalize", 1}}
	id := uuid.MustParse("0190a0a0-0000-7000-8000-000000000001")
	for i, s := range stages {
		args := s.args(id)
		if args.Kind() != want[i].kind || s.priority != want[i].priority {
			t.Errorf("%s: kind %s priority %d, want %s %d", s.name, args.Kind(), s.priority, want[i].kind, want[i].priority)
		}
		if b, _ := json.Marshal(args); string(b) != `{"upload_job_id":"`+id.String()+`"}` {
			t.Errorf("%s: args JSON %s", s.name, b)
		}
	}
}

// A stage that does not end the run hands it to the next stage in the list, which
// must start in the status the stage moved it to.
func TestSuccessorFollowsTheList(t *testing.T) {
	for _, c := range []struct {
		from   *stage
		status runstate.Status
		want   *stage
		err    bool
	}{
		{stageParse, runstate.Parsed, stageValidate, false},
		{stageValidate, runstate.ParseValidated, stageChunk, false},
		{stageValidate, runstate.Duplicate, nil, false},
		{stageChunk, runstate.EmbeddingQueued, stageEmbed, false},
		{stageEmbed, runstate.EmbeddingsStored, stageFinalize, false},
		{stageFinalize, runstate.Complete, nil, false},
		{stageParse, runstate.ParseValidated, nil, true},      // skips validate
		{stageFinalize, runstate.EmbeddingsStored, nil, true}, // last stage, not terminal
	} {
		got, err := c.from.successor(c.status)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s → %s: %v, %v", c.from.name, c.status, got, err)
		}
	}
}
