package runstate_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/runstate"
)

// vocabulary is the run vocabulary as one side spells it: runstate, or the live
// catalog of a migrated database.
type vocabulary struct {
	statuses []string // upload_jobs.status values (ck_upload_jobs_status)
	states   []string // upload_jobs.state values (ck_upload_jobs_state)
	ranks    []string // "status=rank" for the forward path (status_rank)
	pairs    []string // "status/state" combinations a row may hold (ck_upload_jobs_terminal_state)
}

// codeVocabulary is the vocabulary runstate gives for these statuses and states.
func codeVocabulary(statuses []runstate.Status, states []runstate.State) vocabulary {
	var v vocabulary
	for _, st := range states {
		v.states = append(v.states, string(st))
	}
	for _, s := range statuses {
		v.statuses = append(v.statuses, string(s))
		if r := s.Rank(); r > 0 {
			v.ranks = append(v.ranks, fmt.Sprintf("%s=%d", s, r))
		}
		for _, st := range s.States() {
			if slices.Contains(states, st) {
				v.pairs = append(v.pairs, string(s)+"/"+string(st))
			}
		}
	}
	return v
}

var (
	quotedValue = regexp.MustCompile(`'([^']*)'::text`)
	rankCase    = regexp.MustCompile(`WHEN '([^']*)' THEN (\d+)`)
)

// catalogVocabulary reads the vocabulary from the database the migrations built: the
// CHECK lists, the body of status_rank (checked against calling it), and which
// (status, state) rows the constraints accept.
func catalogVocabulary(t *testing.T, pool *pgxpool.Pool) vocabulary {
	t.Helper()
	ctx := context.Background()
	check := func(name string) []string {
		var def string
		dbtest.Must(t, pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
			WHERE conrelid = 'upload_pipeline.upload_jobs'::regclass AND conname = $1`, name).Scan(&def), "constraint %s", name)
		var out []string
		for _, m := range quotedValue.FindAllStringSubmatch(def, -1) {
			out = append(out, m[1])
		}
		if len(out) == 0 {
			t.Fatalf("no values in %s: %s", name, def)
		}
		return out
	}
	v := vocabulary{statuses: check("ck_upload_jobs_status"), states: check("ck_upload_jobs_state")}

	var src string
	dbtest.Must(t, pool.QueryRow(ctx, `SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'upload_pipeline' AND p.proname = 'status_rank'`).Scan(&src), "status_rank source")
	for _, m := range rankCase.FindAllStringSubmatch(src, -1) {
		v.ranks = append(v.ranks, m[1]+"="+m[2])
	}
	// The parse above must agree with what the function returns.
	for _, s := range v.statuses {
		var rank *int
		dbtest.Must(t, pool.QueryRow(ctx, `SELECT upload_pipeline.status_rank($1)`, s).Scan(&rank), "status_rank(%s)", s)
		parsed := slices.IndexFunc(v.ranks, func(r string) bool { return r == s+"="+strconv.Itoa(deref(rank)) })
		if (rank != nil) != (parsed >= 0) {
			t.Fatalf("status_rank(%s) = %v, but its source reads %v", s, rank, v.ranks)
		}
	}

	docID := uuid.New()
	_, err := pool.Exec(ctx, `INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len, file_sha256, raw_path)
		VALUES ($1, $2, 'x', 'text/plain', 1, repeat('a', 64), 'raw')`, docID, uuid.New())
	dbtest.Must(t, err, "insert document")
	for _, s := range v.statuses {
		for _, st := range v.states {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, status, state, correlation_id)
					VALUES ($1, $2, $3, $4, $1)`, uuid.New(), docID, s, st); err != nil {
					return err
				}
				return errRollback
			})
			if err == errRollback {
				v.pairs = append(v.pairs, s+"/"+st)
			}
		}
	}
	return v
}

var errRollback = fmt.Errorf("rollback")

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// compare lists every difference between runstate and the database, in both
// directions.
func compare(code, db vocabulary) []string {
	var out []string
	for _, l := range []struct {
		what     string
		code, db []string
	}{
		{"status", code.statuses, db.statuses},
		{"state", code.states, db.states},
		{"rank", code.ranks, db.ranks},
		{"status/state pair", code.pairs, db.pairs},
	} {
		for _, c := range l.code {
			if !slices.Contains(l.db, c) {
				out = append(out, fmt.Sprintf("%s %s is in runstate but not in the migrations", l.what, c))
			}
		}
		for _, d := range l.db {
			if !slices.Contains(l.code, d) {
				out = append(out, fmt.Sprintf("%s %s is in the migrations but not in runstate", l.what, d))
			}
		}
	}
	return out
}

// runstate and the migrated database agree on every status, state, rank and
// status/state pair: adding one in either place only fails here.
func TestVocabularyMatchesMigrations(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	for _, p := range compare(codeVocabulary(runstate.Statuses(), runstate.States()), catalogVocabulary(t, pool)) {
		t.Error(p)
	}
}

// The comparison reports a status or state that only one side has, whichever side.
func TestVocabularyComparisonReportsBothDirections(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	db := catalogVocabulary(t, pool)
	statuses := append(slices.DeleteFunc(runstate.Statuses(), func(s runstate.Status) bool { return s == runstate.Chunking }), "reviewing")
	states := append(slices.DeleteFunc(runstate.States(), func(s runstate.State) bool { return s == runstate.Retryable }), "paused")
	got := compare(codeVocabulary(statuses, states), db)
	for _, want := range []string{
		"status reviewing is in runstate but not in the migrations",
		"status chunking is in the migrations but not in runstate",
		"state paused is in runstate but not in the migrations",
		"state retryable is in the migrations but not in runstate",
		fmt.Sprintf("rank chunking=%d is in the migrations but not in runstate", runstate.Chunking.Rank()),
		"status/state pair chunking/queued is in the migrations but not in runstate",
		"status/state pair uploaded/retryable is in the migrations but not in runstate",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
	// A rank out of order is a difference both ways.
	code := codeVocabulary(runstate.Statuses(), runstate.States())
	code.ranks[0], code.ranks[1] = "uploaded=2", "parse_queued=1"
	got = compare(code, db)
	for _, want := range []string{
		"rank uploaded=2 is in runstate but not in the migrations",
		"rank uploaded=1 is in the migrations but not in runstate",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
}
