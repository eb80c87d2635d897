package pipeline_test

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

// openAITwin starts the OpenAI twin and a client for it with fast backoff.
func openAITwin(t *testing.T, o mock.OpenAIOptions) (*mock.OpenAIServer, *embed.OpenAI) {
	t.Helper()
	o.APIKey = "sk-test"
	twin := mock.NewOpenAIServer(o)
	srv := httptest.NewServer(twin)
	t.Cleanup(srv.Close)
	client, err := embed.NewOpenAI(embed.OpenAIOptions{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Model: "text-embedding-3-small",
		BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond, BreakerFailures: 3, BreakerTimeout: time.Minute})
	dbtest.Must(t, err, "openai client")
	return twin, client
}

// doc is a markdown document of n sections long enough to make n chunks.
func doc(i, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Policy %d\n\n", i)
	for s := range n {
		fmt.Fprintf(&b, "## Section %d.%d\n\n", i, s)
		for k := range 60 {
			fmt.Fprintf(&b, "Clause %d of section %d in policy %d covers benefit %d with a copay of %d dollars. ", k, s, i, i*k+s, (i+k+s)%97)
		}
		b.WriteString("\n\n")
	}
	return []byte(b.String())
}

// 100 documents through the OpenAI client against the twin: without faults, and
// with 20% 500s and 10% 429s. All complete with the same vectors as the local
// embedder; the faulty run sends at most 1.5x the requests of the clean one, and
// no batch is split (each chunk is embedded by exactly one successful request, and
// there are as many successful requests as micro-batches).
func TestOpenAITwinFaultsNoRetryStorm(t *testing.T) {
	t.Parallel()
	const docs, sections = 100, 2
	run := func(o mock.OpenAIOptions) (mock.OpenAIServerStats, *env, []pipeline.Submitted) {
		twin, client := openAITwin(t, o)
		e := newEnv(t, setupOpts{embedder: client, workers: 2, opts: pipeline.Options{EmbedBatch: 1, Workers: 4}})
		var subs []pipeline.Submitted
		for i := range docs {
			subs = append(subs, e.submit(t, fmt.Sprintf("policy-%03d.md", i), doc(i, sections)))
		}
		for _, s := range subs {
			if ji := e.wait(t, s.JobID, 3*time.Minute); ji.Status != runstate.Complete {
				t.Fatalf("job %s: %s %s", s.JobID, ji.Status, ji.LastError)
			}
		}
		return twin.Stats(), e, subs
	}
	clean, ce, _ := run(mock.OpenAIOptions{Seed: 1})
	faulty, fe, subs := run(mock.OpenAIOptions{Seed: 1, ErrorRates: map[int]float64{500: 0.2}, RateLimit429: 0.1})

	chunks := fe.count(t, `SELECT count(*) FROM upload_pipeline.document_chunks`)
	if clean.Status[200] != int64(chunks) || faulty.Status[200] != int64(chunks) {
		t.Errorf("successful requests: clean %d, faulty %d; want one per micro-batch (%d)", clean.Status[200], faulty.Status[200], chunks)
	}
	if faulty.Inputs != int64(chunks) {
		t.Errorf("twin embedded %d inputs for %d chunks: a batch was split or re-sent", faulty.Inputs, chunks)
	}
	if faulty.Status[500] == 0 || faulty.Status[429] == 0 {
		t.Errorf("faults not injected: %v", faulty.Status)
	}
	if float64(faulty.Requests) > 1.5*float64(clean.Requests) {
		t.Errorf("faulty run sent %d requests, clean %d: more than 1.5x", faulty.Requests, clean.Requests)
	}
	t.Logf("requests: clean %d, faulty %d (%.2fx; %v)", clean.Requests, faulty.Requests, float64(faulty.Requests)/float64(clean.Requests), faulty.Status)

	// Same chunks and vectors as the local embedder path.
	local := newEnv(t, setupOpts{})
	for i, s := range subs[:5] {
		ls := local.submit(t, fmt.Sprintf("policy-%03d.md", i), doc(i, sections))
		local.wait(t, ls.JobID, time.Minute)
		if a, b := vectorSHAs(t, local, ls.DocumentID), vectorSHAs(t, fe, s.DocumentID); len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("doc %d: local embedder and OpenAI twin vectors differ (%d vs %d)", i, len(a), len(b))
		}
	}
	// Tokens and cost are billed per job and per day.
	var tokens int64
	var cost float64
	dbtest.Must(t, fe.pool.QueryRow(t.Context(), `SELECT sum(tokens)::bigint, sum(cost_usd)::float8 FROM upload_pipeline.upload_jobs`).Scan(&tokens, &cost), "sum")
	if tokens != faulty.Tokens || cost <= 0 {
		t.Errorf("jobs billed %d tokens ($%f), the twin embedded %d", tokens, cost, faulty.Tokens)
	}
	if day := fe.count(t, `SELECT tokens::int FROM upload_pipeline.usage_daily WHERE service = 'openai'`); int64(day) != tokens {
		t.Errorf("usage_daily has %d tokens, jobs %d", day, tokens)
	}
	_ = ce
}

func vectorSHAs(t *testing.T, e *env, docID uuid.UUID) []string {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT vector_sha FROM upload_pipeline.document_chunks WHERE document_id = $1 ORDER BY chunk_ord`, docID)
	dbtest.Must(t, err, "query")
	var out []string
	for rows.Next() {
		var s string
		dbtest.Must(t, rows.Scan(&s), "scan")
		out = append(out, s)
	}
	return out
}

// insufficient_quota is permanent: the run dead-letters with that reason and the
// breaker opens, so other workers stop calling.
func TestOpenAIInsufficientQuotaDeadletters(t *testing.T) {
	t.Parallel()
	_, client := openAITwin(t, mock.OpenAIOptions{InsufficientQuota: true})
	e := newEnv(t, setupOpts{embedder: client})
	s := e.submit(t, "quota.md", doc(1, 1))
	ji := e.wait(t, s.JobID, time.Minute)
	if ji.Status != runstate.FailedEmbedding || ji.State != runstate.Deadletter || !strings.Contains(string(ji.LastError), "INSUFFICIENT_QUOTA") {
		t.Fatalf("status %s/%s, last error %s", ji.Status, ji.State, ji.LastError)
	}
	if ji.RetryCount != 0 {
		t.Errorf("retried %d times; insufficient_quota is permanent", ji.RetryCount)
	}
	if st := client.BreakerState(); st != "open" {
		t.Errorf("breaker %s, want open", st)
	}
}

// A spent daily budget pauses embedding (the job waits, nothing fails, one
// BUDGET_PAUSED event); the next day it resumes and completes. Crossing 80% and
// 100% is announced once each.
func TestDailyBudgetPausesAndResumes(t *testing.T) {
	t.Parallel()
	_, client := openAITwin(t, mock.OpenAIOptions{})
	var now atomic.Int64
	day1 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	now.Store(day1.UnixNano())
	e := newEnv(t, setupOpts{embedder: client, opts: pipeline.Options{
		Budgets:       pipeline.Budgets{pipeline.ServiceOpenAI: 0.00001}, // a few hundred tokens at $0.02/1M
		BudgetRecheck: 100 * time.Millisecond,
		Now:           func() time.Time { return time.Unix(0, now.Load()) },
	}})
	first := e.submit(t, "first.md", doc(1, 2))
	if ji := e.wait(t, first.JobID, time.Minute); ji.Status != runstate.Complete {
		t.Fatalf("first: %s %s", ji.Status, ji.LastError)
	}
	second := e.submit(t, "second.md", doc(2, 2))
	deadline := time.Now().Add(30 * time.Second)
	for e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'BUDGET_PAUSED'`, second.JobID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("second job never paused on the spent budget")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // several re-checks while paused
	ji, err := catalog.GetJob(t.Context(), e.pool, catalog.AllUsers(), second.JobID)
	dbtest.Must(t, err, "get")
	if ji.Status.Terminal() || ji.State == runstate.Deadletter {
		t.Fatalf("paused job ended: %s/%s", ji.Status, ji.State)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'BUDGET_PAUSED'`, second.JobID); n != 1 {
		t.Errorf("%d BUDGET_PAUSED events, want 1", n)
	}
	for _, code := range []string{"BUDGET_80", "BUDGET_REACHED"} {
		if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE code = $1`, code); n != 1 {
			t.Errorf("%d %s events, want 1", n, code)
		}
	}
	now.Store(day1.Add(24 * time.Hour).UnixNano()) // the next day
	if ji := e.wait(t, second.JobID, time.Minute); ji.Status != runstate.Complete {
		t.Fatalf("second after the day turned: %s %s", ji.Status, ji.LastError)
	}
	if n := e.count(t, `SELECT count(DISTINCT day) FROM upload_pipeline.usage_daily WHERE service = 'openai'`); n != 2 {
		t.Errorf("usage on %d days, want 2", n)
	}
}
