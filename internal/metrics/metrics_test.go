package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

var user = uuid.MustParse("00000000-0000-4000-8000-0000000000bb")

func newPipeline(t *testing.T, pool *pgxpool.Pool) *pipeline.Pipeline {
	t.Helper()
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{MaxTokens: 128, OverlapTokens: 16})
	dbtest.Must(t, err, "chunker")
	emb, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	parser := parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-test-wazero")})
	t.Cleanup(func() { parser.Close() })
	p, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parser, Chunker: ch, Embedder: emb},
		pipeline.Options{RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxAttempts: 2})
	dbtest.Must(t, err, "pipeline")
	return p
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	dbtest.Must(t, err, "GET /metrics")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	dbtest.Must(t, err, "parse /metrics")
	return fams
}

// value is the sum of the samples of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
	var sum float64
	var found bool
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		t.Fatalf("metric %s%v: no sample", name, want)
	}
	return sum
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) float64 {
	t.Helper()
	var n float64
	dbtest.Must(t, pool.QueryRow(context.Background(), sql).Scan(&n), "%s", sql)
	return n
}

// Ingest sample documents (five formats) and two broken files through a real
// pipeline; /metrics parses with the Prometheus text parser and agrees with the database.
func TestMetricsAgreeWithDatabase(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	p := newPipeline(t, pool)
	dbtest.Must(t, p.Start(context.Background()), "start")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	hb := metrics.StartHeartbeat(context.Background(), pool, metrics.Worker{ID: p.WorkerID(), Concurrency: 4})
	metrics.SetBreakerState("openai-test", "closed")

	m := metrics.New(pool, metrics.Options{
		SourceOptions: metrics.SourceOptions{MinInterval: -1, SlowInterval: -1},
		Budgets:       map[string]float64{"openai": 5},
		StorageCheck:  func(context.Context) error { return nil },
	})
	// A first scrape before any work: counters start from what the database holds.
	before := scrape(t, m.Handler())
	if v := value(t, before, "docpipe_documents_completed_total"); v != 0 {
		t.Fatalf("completed before ingesting = %v", v)
	}

	files, err := filepath.Glob("../../samples/*")
	dbtest.Must(t, err, "samples")
	files = append(files, "../../testdata/corpus/corrupt-not-a-pdf.pdf", "../../testdata/corpus/corrupt-not-a-zip.docx")
	if len(files) < 4 {
		t.Fatalf("only %d sample files", len(files))
	}
	var jobs []uuid.UUID
	for _, f := range files {
		data, err := os.ReadFile(f)
		dbtest.Must(t, err, "read %s", f)
		s, err := p.Submit(context.Background(), pipeline.Submission{UserID: user, Filename: filepath.Base(f), Data: data})
		dbtest.Must(t, err, "submit %s", f)
		jobs = append(jobs, s.JobID)
	}
	// The empty file dead-letters at parse.
	s, err := p.Submit(context.Background(), pipeline.Submission{UserID: user, Filename: "empty.txt", Data: nil})
	dbtest.Must(t, err, "submit empty")
	jobs = append(jobs, s.JobID)
	for _, id := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ji, err := catalog.Wait(ctx, pool, catalog.AllUsers(), id, nil)
		cancel()
		dbtest.Must(t, err, "wait %s", id)
		if !ji.Status.Terminal() {
			t.Fatalf("run %s ended in %s", id, ji.Status)
		}
	}

	fams := scrape(t, m.Handler())
	checks := []struct {
		metric string
		labels []string
		sql    string
	}{
		{"docpipe_documents", []string{"status", "complete"}, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`},
		{"docpipe_documents", []string{"state", "deadletter"}, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE state = 'deadletter'`},
		{"docpipe_documents_completed_total", nil, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`},
		{"docpipe_chunks_searchable", nil, `SELECT count(*) FROM upload_pipeline.document_chunks`},
		{"docpipe_chunks_published_total", nil, `SELECT count(*) FROM upload_pipeline.document_chunks`},
		{"docpipe_usage_tokens_total", nil, `SELECT sum(tokens) FROM upload_pipeline.upload_jobs`},
		{"docpipe_usage_tokens_total", nil, `SELECT sum(token_count) FROM upload_pipeline.document_chunks`},
		{"docpipe_usage_tokens_today", nil, `SELECT sum(tokens) FROM upload_pipeline.upload_jobs`},
		{"docpipe_dead_letters_total", nil, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'deadletter'`},
		{"docpipe_stage_results_total", []string{"outcome", "done"}, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'stage_done' AND code = 'STAGE_DONE'`},
		{"docpipe_stage_results_total", []string{"outcome", "retry"}, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'retry'`},
		{"docpipe_documents_uploaded_total", nil, `SELECT count(*) FROM upload_pipeline.upload_jobs`},
		{"docpipe_stage_results_total", []string{"stage", "finalize", "outcome", "done"}, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`},
		{"docpipe_stage_duration_seconds", nil, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'stage_done' AND code = 'STAGE_DONE'`},
		{"docpipe_upload_to_complete_seconds", nil, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`},
		{"docpipe_stage_started_total", []string{"stage", "parse"}, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'stage_started' AND stage = 'parse'`},
		{"docpipe_buffer_rows", nil, `SELECT (SELECT count(*) FROM upload_pipeline.document_chunk_buffer) + (SELECT count(*) FROM upload_pipeline.document_vector_buffer)`},
		{"docpipe_queue_waiting_jobs", nil, `SELECT 0`},
		{"docpipe_workers_live", nil, `SELECT 1`},
		{"docpipe_river_leader_elected", nil, `SELECT 1`},
		{"docpipe_database_up", nil, `SELECT 1`},
		{"docpipe_storage_up", nil, `SELECT 1`},
		{"docpipe_budget_daily_usd", []string{"service", "openai"}, `SELECT 5`},
		{"docpipe_workers_breaker_state", []string{"service", "openai-test", "state", "closed"}, `SELECT 1`},
	}
	for _, c := range checks {
		got, want := value(t, fams, c.metric, c.labels...), count(t, pool, c.sql)
		if got != want {
			t.Errorf("%s%v = %v, database says %v", c.metric, c.labels, got, want)
		}
	}
	if n := value(t, fams, "docpipe_documents", "status", "complete"); n < 4 {
		t.Errorf("only %v documents complete", n)
	}
	if n := value(t, fams, "docpipe_dead_letters_total"); n < 1 {
		t.Errorf("dead letters = %v, want the empty file at least", n)
	}
	// Failures carry their error code; the empty file fails at parse.
	if f := fams["docpipe_stage_failures_total"]; f == nil || len(f.Metric) == 0 {
		t.Error("docpipe_stage_failures_total: no samples")
	}

	// A second exporter started now reads the same totals (they come from the database).
	m2 := metrics.New(pool, metrics.Options{SourceOptions: metrics.SourceOptions{MinInterval: -1, SlowInterval: -1}})
	fams2 := scrape(t, m2.Handler())
	for _, name := range []string{"docpipe_documents_completed_total", "docpipe_dead_letters_total", "docpipe_chunks_published_total", "docpipe_stage_duration_seconds"} {
		if a, b := value(t, fams, name), value(t, fams2, name); a != b {
			t.Errorf("%s: first exporter %v, fresh exporter %v", name, a, b)
		}
	}

	// Labels stay bounded: no ids anywhere.
	for name, f := range fams {
		for _, mm := range f.Metric {
			for _, l := range mm.Label {
				if _, err := uuid.Parse(l.GetValue()); err == nil {
					t.Errorf("%s has an id as label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// A stopped worker stops counting at once.
	hb.Stop(context.Background())
	if v := value(t, scrape(t, m.Handler()), "docpipe_workers_live"); v != 0 {
		t.Errorf("workers live after Stop = %v", v)
	}
}

// With the database gone, /metrics still answers: database_up 0 and the counters
// read so far.
func TestMetricsDatabaseDown(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	m := metrics.New(pool, metrics.Options{SourceOptions: metrics.SourceOptions{MinInterval: -1, QueryTimeout: 2 * time.Second}})
	if v := value(t, scrape(t, m.Handler()), "docpipe_database_up"); v != 1 {
		t.Fatalf("database_up = %v", v)
	}
	pool.Close()
	fams := scrape(t, m.Handler())
	if v := value(t, fams, "docpipe_database_up"); v != 0 {
		t.Fatalf("database_up with a closed pool = %v", v)
	}
	value(t, fams, "docpipe_stage_results_total")
}

// Every status, state and stage of the vocabulary is exported, at 0 when no run is
// in it, so a new one appears on /metrics (and in alerts) without an edit here; the
// pipeline's job kinds map to the stage labels.
func TestLabelsCoverTheVocabulary(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	m := metrics.New(pool, metrics.Options{SourceOptions: metrics.SourceOptions{MinInterval: -1, SlowInterval: -1}})
	fams := scrape(t, m.Handler())
	for _, st := range runstate.Statuses() {
		for _, state := range st.States() {
			value(t, fams, "docpipe_documents", "status", string(st), "state", string(state))
		}
		if !st.Terminal() {
			value(t, fams, "docpipe_documents_oldest_unchanged_seconds", "status", string(st))
		}
	}
	for _, st := range runstate.Stages() {
		value(t, fams, "docpipe_queue_waiting_jobs", "stage", string(st))
		value(t, fams, "docpipe_stage_started_total", "stage", string(st))
		value(t, fams, "docpipe_dead_letters_total", "stage", string(st))
	}
	for _, k := range []river.JobArgs{pipeline.ParseArgs{}, pipeline.ValidateArgs{}, pipeline.ChunkArgs{}, pipeline.EmbedArgs{}, pipeline.FinalizeArgs{}} {
		if got := metrics.StageOfKind(k.Kind()); !slices.Contains(runstate.Stages(), runstate.Stage(got)) {
			t.Errorf("kind %s → stage label %s, not a stage", k.Kind(), got)
		}
	}
}

// In-process metrics: external calls, breaker state, River attempts and rescues.
func TestProcessMetrics(t *testing.T) {
	m := metrics.New(nil, metrics.Options{})
	// Unique labels: the in-process metrics are package-level and outlive one run (-count).
	run := uuid.NewString()[:8]
	svc, svcHTTP, svcTrack, kind := "svc-test-"+run, "svc-http-"+run, "svc-track-"+run, "docpipe.embed-"+run
	stage := metrics.StageOfKind(kind)
	metrics.ObserveExternalCall(svc, metrics.OutcomeRateLimited, 429, 30*time.Millisecond)
	metrics.ObserveExternalCall(svc, metrics.OutcomeOK, 200, 10*time.Millisecond)
	metrics.ObserveExternalCall(svc, "weird", 0, time.Millisecond)
	metrics.SetBreakerState(svc, "open")
	metrics.SetRateLimitRemaining(svc, "tokens", 1234)

	// Through the instrumented transport: a 429 with limit headers, a 200, no answer.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-remaining-tokens", "999")
		if r.URL.Path == "/limited" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	hc := &http.Client{Transport: metrics.Transport(svcHTTP, nil)}
	for _, p := range []string{"/limited", "/ok"} {
		resp, err := hc.Get(srv.URL + p)
		dbtest.Must(t, err, "GET %s", p)
		resp.Body.Close()
	}
	srv.Close()
	if _, err := hc.Get(srv.URL); err == nil {
		t.Fatal("GET on a closed server succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	metrics.TrackBreaker(ctx, svcTrack, func() string { return "half-open" })

	mw := metrics.RiverMiddleware().(rivertype.WorkerMiddleware)
	rescued := &rivertype.JobRow{Kind: kind, Attempt: 2, Errors: []rivertype.AttemptError{{Attempt: 1, Error: "Stuck job rescued by JobRescuer"}}}
	_ = mw.Work(context.Background(), rescued, func(context.Context) error { return nil })
	_ = mw.Work(context.Background(), &rivertype.JobRow{Kind: kind}, func(context.Context) error { return river.JobSnooze(time.Second) })
	_ = mw.Work(context.Background(), &rivertype.JobRow{Kind: kind}, func(context.Context) error { return errors.New("boom") })

	fams := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"docpipe_external_requests_total", []string{"service", svc, "code", "429", "outcome", "rate_limited"}, 1},
		{"docpipe_external_requests_total", []string{"service", svc, "code", "none", "outcome", "other"}, 1},
		{"docpipe_external_request_duration_seconds", []string{"service", svc, "outcome", "ok"}, 1},
		{"docpipe_breaker_state", []string{"service", svc, "state", "open"}, 1},
		{"docpipe_breaker_state", []string{"service", svc, "state", "closed"}, 0},
		{"docpipe_rate_limit_remaining", []string{"service", svc, "resource", "tokens"}, 1234},
		{"docpipe_external_requests_total", []string{"service", svcHTTP, "code", "429", "outcome", "rate_limited"}, 1},
		{"docpipe_external_requests_total", []string{"service", svcHTTP, "code", "200", "outcome", "ok"}, 1},
		{"docpipe_external_requests_total", []string{"service", svcHTTP, "code", "none", "outcome", "network"}, 1},
		{"docpipe_external_rate_limit_remaining", []string{"service", svcHTTP, "resource", "tokens"}, 999},
		{"docpipe_breaker_state", []string{"service", svcTrack, "state", "half-open"}, 1},
		{"docpipe_jobs_rescued_total", []string{"stage", stage}, 1},
		{"docpipe_job_attempts_total", []string{"stage", stage, "result", "snooze"}, 1},
		{"docpipe_job_attempts_total", []string{"stage", stage, "result", "error"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := metrics.BreakerStates()[svc]; got != "open" {
		t.Errorf("BreakerStates()[%s] = %q", svc, got)
	}
	if _, ok := fams["docpipe_documents"]; ok {
		t.Error("database metrics exported without a pool")
	}
	for name := range fams {
		if !strings.HasPrefix(name, "docpipe_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("unexpected metric %s", name)
		}
	}
}

// Events are counted once each, in commit order: an event committed while an older
// transaction is still open is counted at once, and the older one's events are
// counted when it commits, never twice.
func TestEventCountersFollowCommits(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	ctx := context.Background()
	src := metrics.NewSource(pool, metrics.SourceOptions{MinInterval: -1, SlowInterval: -1})
	deadLetters := func() int64 {
		t.Helper()
		s, err := src.Snapshot(ctx)
		dbtest.Must(t, err, "snapshot")
		return s.Events.DeadLetters()
	}
	insert := `INSERT INTO upload_pipeline.events (event_id, type, stage, severity, code) VALUES (gen_random_uuid(), 'deadletter', 'parse', 'error', 'TEST')`
	if n := deadLetters(); n != 0 {
		t.Fatalf("dead letters at start = %d", n)
	}
	long, err := pool.Begin(ctx)
	dbtest.Must(t, err, "begin")
	defer long.Rollback(ctx)
	_, err = long.Exec(ctx, insert)
	dbtest.Must(t, err, "insert in the long transaction")
	_, err = pool.Exec(ctx, insert)
	dbtest.Must(t, err, "insert")
	if n := deadLetters(); n != 1 {
		t.Fatalf("dead letters with one committed and one open = %d, want 1", n)
	}
	if n := deadLetters(); n != 1 {
		t.Fatalf("dead letters on the next read = %d, want 1", n)
	}
	dbtest.Must(t, long.Commit(ctx), "commit")
	if n := deadLetters(); n != 2 {
		t.Fatalf("dead letters after the long transaction committed = %d, want 2", n)
	}
	aborted, err := pool.Begin(ctx)
	dbtest.Must(t, err, "begin")
	_, err = aborted.Exec(ctx, insert)
	dbtest.Must(t, err, "insert")
	dbtest.Must(t, aborted.Rollback(ctx), "rollback")
	for range 3 {
		if n := deadLetters(); n != 2 {
			t.Fatalf("dead letters after a rollback = %d, want 2", n)
		}
	}
	// A fresh Source counts the same from scratch.
	fresh := metrics.NewSource(pool, metrics.SourceOptions{MinInterval: -1})
	s, err := fresh.Snapshot(ctx)
	dbtest.Must(t, err, "snapshot")
	if n := s.Events.DeadLetters(); n != 2 {
		t.Fatalf("fresh source: %d dead letters, want 2", n)
	}
}
