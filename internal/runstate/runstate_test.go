package runstate_test

import (
	"slices"
	"testing"

	"github.com/docpipe/docpipe/internal/runstate"
)

// Every status is exactly one of: on the forward path (ranked, with a progress
// percent and the active states, or complete), failed (dead-lettered), duplicate.
func TestStatusClasses(t *testing.T) {
	seen := map[runstate.Status]bool{}
	prevRank := 0
	for _, s := range runstate.Statuses() {
		if seen[s] {
			t.Errorf("status %s listed twice", s)
		}
		seen[s] = true
		switch {
		case s.Rank() > 0:
			if s.Rank() != prevRank+1 {
				t.Errorf("%s: rank %d after rank %d: the forward path must come first, in order", s, s.Rank(), prevRank)
			}
			prevRank = s.Rank()
			if p := runstate.Percent(s, 0, 0); p < 0 || p > 100 {
				t.Errorf("%s: percent %v on the forward path", s, p)
			}
			want := runstate.ActiveStates()
			if s == runstate.Complete {
				want = []runstate.State{runstate.Done}
			}
			if !slices.Equal(s.States(), want) || s.Terminal() != (s == runstate.Complete) {
				t.Errorf("%s: states %v, terminal %v", s, s.States(), s.Terminal())
			}
		case s.Failed():
			if !s.Terminal() || !slices.Equal(s.States(), []runstate.State{runstate.Deadletter}) || runstate.Percent(s, 0, 0) != -1 {
				t.Errorf("%s: a failure must be terminal, dead-lettered, at -1%%", s)
			}
		case s == runstate.Duplicate:
			if !s.Terminal() || !slices.Equal(s.States(), []runstate.State{runstate.Done}) || runstate.Percent(s, 0, 0) != -1 {
				t.Errorf("duplicate must be terminal, done, at -1%%")
			}
		default:
			t.Errorf("status %s is neither ranked, failed nor duplicate", s)
		}
	}
	if runstate.Complete.Rank() != prevRank {
		t.Errorf("complete must end the forward path")
	}
	if got := len(runstate.ActiveStatuses()); got != prevRank-1 {
		t.Errorf("%d active statuses, want every ranked status but complete (%d)", got, prevRank-1)
	}
	if runstate.Status("reviewing").Rank() != 0 || runstate.Status("reviewing").States() != nil {
		t.Error("an unknown status has a rank or states")
	}
}

// Percent grows along the forward path, and within embedding by the share embedded.
func TestPercent(t *testing.T) {
	prev := 0.0
	for _, s := range runstate.Statuses() {
		if s.Rank() == 0 {
			continue
		}
		if p := runstate.Percent(s, 0, 0); p < prev {
			t.Errorf("%s at %v%%, after %v%%", s, p, prev)
		} else {
			prev = p
		}
	}
	if p := runstate.Percent(runstate.EmbeddingInProgress, 10, 20); p != 72.5 {
		t.Errorf("half embedded: %v%%, want 72.5", p)
	}
}

// Each stage fails into a failure status, and each failure status is some stage's.
func TestStageFailStatuses(t *testing.T) {
	used := map[runstate.Status]bool{}
	for _, st := range runstate.Stages() {
		f := st.FailStatus()
		if !f.Failed() {
			t.Errorf("stage %s fails into %q, not a failure status", st, f)
		}
		used[f] = true
	}
	for _, s := range runstate.Statuses() {
		if s.Failed() && !used[s] {
			t.Errorf("no stage fails into %s", s)
		}
	}
	if runstate.Parse.Kind() != "docpipe.parse" {
		t.Errorf("parse kind %q", runstate.Parse.Kind())
	}
}

func TestSQLList(t *testing.T) {
	if got := runstate.SQLList(runstate.ActiveStates()); got != "'queued', 'working', 'retryable'" {
		t.Errorf("SQLList = %s", got)
	}
	if got := runstate.SQLList([]string{"it's"}); got != "'it''s'" {
		t.Errorf("quote not doubled: %s", got)
	}
}
