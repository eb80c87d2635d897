package alerts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/alerts"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// eventually is the generous bound for anything the evaluator does (it runs every 100 ms).
const eventually = 15 * time.Second

var user = uuid.MustParse("00000000-0000-4000-8000-0000000000cc")

// hook is a Slack-compatible webhook receiver.
type hook struct {
	srv   *httptest.Server
	mu    sync.Mutex
	texts []string
	fail  atomic.Bool
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Text == "" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook: bad request (%v): %+v", err, body)
		}
		if h.fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		h.mu.Lock()
		h.texts = append(h.texts, body.Text)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// count is the number of notices received that start with prefix and mention name.
func (h *hook) count(prefix, name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.texts {
		if strings.HasPrefix(s, prefix) && strings.Contains(s, " "+name) {
			n++
		}
	}
	return n
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type engine struct {
	*alerts.Engine
	hook *hook
	logs *syncBuffer
	stop func()
}

// fast are the options of every test: short intervals, no caching.
func fast(o alerts.Options) alerts.Options {
	o.Interval = 100 * time.Millisecond
	if o.NoWorkerFor == 0 {
		o.NoWorkerFor = 200 * time.Millisecond
	}
	if o.DatabaseFor == 0 {
		o.DatabaseFor = 200 * time.Millisecond
	}
	if o.StorageFor == 0 {
		o.StorageFor = time.Nanosecond
	}
	o.CheckTimeout = time.Second
	return o
}

func startEngine(t *testing.T, pool *pgxpool.Pool, o alerts.Options, h *hook) *engine {
	t.Helper()
	o = fast(o)
	logs := &syncBuffer{}
	o.Log = slog.New(slog.NewJSONHandler(logs, nil))
	if h == nil {
		h = newHook(t)
	}
	o.WebhookURL = h.srv.URL + "/services/T000/B000/secret"
	if o.Source == nil {
		o.Source = metrics.NewSource(pool, metrics.SourceOptions{MinInterval: -1, SlowInterval: -1})
	}
	e := alerts.New(pool, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &engine{Engine: e, hook: h, logs: logs, stop: stop}
}

// waitLeader waits until e evaluates (and has taken a first sample).
func waitLeader(t *testing.T, e *engine) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !e.Leader() {
		if time.Now().After(deadline) {
			t.Fatal("the engine never became the evaluator")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// waitFor waits until the alert (name, subject) is in state, as GET /v1/alerts shows it.
func waitFor(t *testing.T, e *engine, name, subject, state string) alerts.Alert {
	t.Helper()
	deadline := time.Now().Add(eventually)
	var last []alerts.Alert
	for time.Now().Before(deadline) {
		last = get(t, e.Handler())
		for _, a := range last {
			if a.Name == name && a.Subject == subject && a.State == state {
				return a
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("alert %s (%s) not %s within %s; alerts: %+v", name, subject, state, eventually, last)
	return alerts.Alert{}
}

func get(t *testing.T, h http.Handler) []alerts.Alert {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/alerts", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/alerts: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body struct {
		Alerts []alerts.Alert `json:"alerts"`
	}
	dbtest.Must(t, json.Unmarshal(rec.Body.Bytes(), &body), "decode /v1/alerts")
	if body.Alerts == nil {
		t.Fatalf("GET /v1/alerts: no alerts list: %s", rec.Body)
	}
	return body.Alerts
}

// checkAnnounced checks that the alert was delivered once as firing and, if
// resolved, once as resolved, to the webhook and to the log.
func checkAnnounced(t *testing.T, e *engine, name string, resolved bool) {
	t.Helper()
	want := 0
	if resolved {
		want = 1
	}
	deadline := time.Now().Add(eventually)
	for time.Now().Before(deadline) && e.hook.count("[RESOLVED]", name) < want {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few more evaluations must not repeat anything
	if n := e.hook.count("[FIRING", name); n != 1 {
		t.Errorf("%s: %d firing notices on the webhook, want 1", name, n)
	}
	if n := e.hook.count("[RESOLVED]", name); n != want {
		t.Errorf("%s: %d resolution notices on the webhook, want %d", name, n, want)
	}
	logs := e.logs.String()
	if n := logLines(logs, "alert firing", name); n != 1 {
		t.Errorf("%s: %d firing log lines, want 1", name, n)
	}
	if n := logLines(logs, "alert resolved", name); n != want {
		t.Errorf("%s: %d resolution log lines, want %d", name, n, want)
	}
	if strings.Contains(logs, "/services/T000/B000/secret") {
		t.Error("the webhook URL (a secret) appears in the logs")
	}
}

// logLines counts the JSON log lines with message msg about alert name.
func logLines(logs, msg, name string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, `"alert":"`+name+`"`) {
			n++
		}
	}
	return n
}

func checkAlert(t *testing.T, a alerts.Alert, severity string) {
	t.Helper()
	anchor := "docs/RUNBOOK.md#" + strings.ToLower(a.Name)
	if a.Severity != severity || a.Runbook != anchor || !strings.Contains(a.Message, "Runbook: "+anchor) || a.FiredAt.IsZero() {
		t.Errorf("alert %+v: want severity %s and runbook %s in the message", a, severity, anchor)
	}
	if a.State == alerts.Resolved && (a.ResolvedAt == nil || a.ResolvedAt.Before(a.FiredAt)) {
		t.Errorf("resolved alert %+v has no resolution time after its firing", a)
	}
}

type failingEmbedder struct{ embed.Embedder }

func (failingEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, fault.Transientf("UPSTREAM_503", "embedding service answered 503")
}

func newPipeline(t *testing.T, pool *pgxpool.Pool, emb embed.Embedder, o pipeline.Options) *pipeline.Pipeline {
	t.Helper()
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{MaxTokens: 128, OverlapTokens: 16})
	dbtest.Must(t, err, "chunker")
	if emb == nil {
		emb, err = embed.NewLocal(1536)
		dbtest.Must(t, err, "embedder")
	}
	if o.RetryBase == 0 {
		o.RetryBase, o.RetryMax = 20*time.Millisecond, 50*time.Millisecond
	}
	p, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parse.NewLocal(parse.Options{}), Chunker: ch, Embedder: emb}, o)
	dbtest.Must(t, err, "pipeline")
	return p
}

func startPipeline(t *testing.T, p *pipeline.Pipeline) func() {
	t.Helper()
	dbtest.Must(t, p.Start(context.Background()), "start pipeline")
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = p.Stop(ctx)
		})
	}
	t.Cleanup(stop)
	return stop
}

func submit(t *testing.T, p *pipeline.Pipeline, name string, data []byte) pipeline.Submitted {
	t.Helper()
	s, err := p.Submit(context.Background(), pipeline.Submission{UserID: user, Filename: name, Data: data})
	dbtest.Must(t, err, "submit %s", name)
	return s
}

func wait(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) catalog.JobInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	ji, err := catalog.Wait(ctx, pool, catalog.AllUsers(), id, nil)
	dbtest.Must(t, err, "wait for %s", id)
	return ji
}

func execSQL(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	dbtest.Must(t, err, "%s", sql)
}

// Documents wait and no worker runs: DocpipeNoLiveWorker fires (and shows in GET
// /v1/alerts); a worker starts, the documents complete, it resolves.
func TestNoLiveWorker(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	p := newPipeline(t, pool, nil, pipeline.Options{})
	s := submit(t, p, "a.md", []byte("# Waiting\n\nA document nobody works on yet.\n"))
	e := startEngine(t, pool, alerts.Options{}, nil)

	a := waitFor(t, e, alerts.NoLiveWorker, "", alerts.Firing)
	checkAlert(t, a, alerts.Critical)
	if !strings.Contains(a.Message, "1 jobs wait") || !strings.Contains(a.Message, "docpipe worker") {
		t.Errorf("message does not say what waits and what to do: %s", a.Message)
	}
	if list := get(t, e.Handler()); len(list) == 0 || list[0].Name != alerts.NoLiveWorker {
		t.Errorf("the critical firing alert is not listed first: %+v", list)
	}

	stopWorker := startPipeline(t, p)
	hb := metrics.StartHeartbeat(context.Background(), pool, metrics.Worker{ID: p.WorkerID(), Concurrency: 4})
	defer hb.Stop(context.Background())
	if ji := wait(t, pool, s.JobID); ji.Status != runstate.Complete {
		t.Fatalf("run ended in %s", ji.Status)
	}
	checkAlert(t, waitFor(t, e, alerts.NoLiveWorker, "", alerts.Resolved), alerts.Critical)
	checkAnnounced(t, e, alerts.NoLiveWorker, true)

	// The only worker stops (gracefully) while a new document waits: it fires again,
	// a second firing with its own notice.
	stopWorker()
	hb.Stop(context.Background())
	submit(t, p, "b.md", []byte("# Waiting again\n\nThe worker is gone.\n"))
	again := waitFor(t, e, alerts.NoLiveWorker, "", alerts.Firing)
	if !again.FiredAt.After(a.FiredAt) || again.ResolvedAt != nil {
		t.Errorf("second firing %+v does not start a new episode after %s", again, a.FiredAt)
	}
	deadline := time.Now().Add(eventually)
	for e.hook.count("[FIRING", alerts.NoLiveWorker) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.hook.count("[FIRING", alerts.NoLiveWorker); n != 2 {
		t.Errorf("%d firing notices for two firings", n)
	}
}

// A run sits in parse_queued past that status's deadline: DocpipeDocumentStuck
// fires for that status; a worker moves it on and it resolves.
func TestDocumentStuck(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	p := newPipeline(t, pool, nil, pipeline.Options{})
	s := submit(t, p, "stuck.md", []byte("# Stuck\n\nThis one waits in parse_queued.\n"))
	e := startEngine(t, pool, alerts.Options{StatusDeadlines: map[runstate.Status]time.Duration{runstate.ParseQueued: 300 * time.Millisecond}}, nil)

	a := waitFor(t, e, alerts.DocumentStuck, "parse_queued", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "1 documents") || !strings.Contains(a.Message, "parse_queued") {
		t.Errorf("message: %s", a.Message)
	}
	startPipeline(t, p)
	wait(t, pool, s.JobID)
	waitFor(t, e, alerts.DocumentStuck, "parse_queued", alerts.Resolved)
	checkAnnounced(t, e, alerts.DocumentStuck, true)
}

// A run is dead-lettered: DocpipeDeadLettersIncreasing fires; once the window
// passes without another, it resolves.
func TestDeadLettersIncreasing(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	p := newPipeline(t, pool, nil, pipeline.Options{})
	startPipeline(t, p)
	e := startEngine(t, pool, alerts.Options{DeadLetterWindow: 1500 * time.Millisecond}, nil)
	waitLeader(t, e)

	s := submit(t, p, "empty.txt", nil) // fails at parse: EMPTY_FILE
	if ji := wait(t, pool, s.JobID); ji.State != runstate.Deadletter {
		t.Fatalf("run ended in %s/%s", ji.Status, ji.State)
	}
	a := waitFor(t, e, alerts.DeadLettersIncreasing, "", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "parse 1") {
		t.Errorf("message does not name the stage: %s", a.Message)
	}
	waitFor(t, e, alerts.DeadLettersIncreasing, "", alerts.Resolved)
	checkAnnounced(t, e, alerts.DeadLettersIncreasing, true)
}

// The embedding service fails every call: the embed stage's error rate fires; with
// no more attempts in the window it resolves.
func TestStageErrorRateHigh(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	local, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	p := newPipeline(t, pool, failingEmbedder{local}, pipeline.Options{MaxAttempts: 3})
	startPipeline(t, p)
	e := startEngine(t, pool, alerts.Options{ErrorRateWindow: 1500 * time.Millisecond, ErrorRateMinAttempts: 2, ErrorRateThreshold: 0.5}, nil)
	waitLeader(t, e)

	s := submit(t, p, "embed-fails.md", []byte("# Embed\n\nThe embedder answers 503 to everything.\n"))
	if ji := wait(t, pool, s.JobID); ji.Status != runstate.FailedEmbedding {
		t.Fatalf("run ended in %s", ji.Status)
	}
	a := waitFor(t, e, alerts.StageErrorRateHigh, "embed", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "100% of embed attempts failed") {
		t.Errorf("message: %s", a.Message)
	}
	waitFor(t, e, alerts.StageErrorRateHigh, "embed", alerts.Resolved)
	checkAnnounced(t, e, alerts.StageErrorRateHigh, true)
	for _, a := range get(t, e.Handler()) {
		if a.Name == alerts.StageErrorRateHigh && a.Subject != "embed" {
			t.Errorf("error rate alert for a healthy stage: %+v", a)
		}
	}
}

// Spending crosses 80 % and then 100 % of the daily budget; the next day both resolve.
func TestBudget(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	e := startEngine(t, pool, alerts.Options{Budgets: map[string]float64{"openai": 10, "llamaparse": 0}}, nil)
	today := `(now() AT TIME ZONE 'UTC')::date`
	execSQL(t, pool, `INSERT INTO upload_pipeline.usage_daily (day, service, requests, tokens, cost_usd) VALUES (`+today+`, 'openai', 10, 1000, 8.5)`)
	a := waitFor(t, e, alerts.Budget80, "openai", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "$8.50") || !strings.Contains(a.Message, "85%") || !strings.Contains(a.Message, "DOCPIPE_BUDGET_OPENAI_USD") {
		t.Errorf("message: %s", a.Message)
	}
	for _, a := range get(t, e.Handler()) {
		if a.Name == alerts.BudgetExhausted {
			t.Fatalf("budget exhausted at 85%%: %+v", a)
		}
	}
	execSQL(t, pool, `UPDATE upload_pipeline.usage_daily SET cost_usd = 10.2`)
	checkAlert(t, waitFor(t, e, alerts.BudgetExhausted, "openai", alerts.Firing), alerts.Critical)

	execSQL(t, pool, `UPDATE upload_pipeline.usage_daily SET day = day - 1`) // a new UTC day
	waitFor(t, e, alerts.BudgetExhausted, "openai", alerts.Resolved)
	waitFor(t, e, alerts.Budget80, "openai", alerts.Resolved)
	checkAnnounced(t, e, alerts.Budget80, true)
	checkAnnounced(t, e, alerts.BudgetExhausted, true)
}

// Buffer rows pile up and nothing is finalized: DocpipeBuffersNotFinalized fires;
// once the buffers are drained it resolves.
func TestBuffersNotFinalized(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	doc, job := uuid.New(), uuid.New()
	execSQL(t, pool, `INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len, file_sha256, raw_path)
		VALUES ($1, $2, 'big.pdf', 'application/pdf', 10, repeat('a', 64), 'raw/x')`, doc, user)
	execSQL(t, pool, `INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, status, state, correlation_id)
		VALUES ($1, $2, 'embedding_in_progress', 'working', $1)`, job, doc)
	for i := range 3 {
		execSQL(t, pool, `INSERT INTO upload_pipeline.document_chunk_buffer
			(chunk_id, document_id, chunker_name, chunker_version, chunk_ord, chunk_sha, text, token_count, created_at)
			VALUES ($1, $2, 'test', '1', $3, 'sha', 'text', 1, now() - interval '1 hour')`, uuid.New(), doc, i)
	}
	e := startEngine(t, pool, alerts.Options{BufferStall: 500 * time.Millisecond}, nil)
	a := waitFor(t, e, alerts.BuffersNotFinalized, "", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "3 rows") {
		t.Errorf("message: %s", a.Message)
	}
	execSQL(t, pool, `DELETE FROM upload_pipeline.document_chunk_buffer`)
	waitFor(t, e, alerts.BuffersNotFinalized, "", alerts.Resolved)
	checkAnnounced(t, e, alerts.BuffersNotFinalized, true)
}

// A circuit breaker opens, seen through the Breakers hook (this process) and
// through a worker's heartbeat (another process); closing them resolves both.
func TestBreakerOpen(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	var local atomic.Value
	local.Store("closed")
	e := startEngine(t, pool, alerts.Options{Breakers: func() map[string]string {
		return map[string]string{"openai": local.Load().(string)}
	}}, nil)
	metrics.SetBreakerState("llamaparse", "closed")
	hb := metrics.StartHeartbeat(context.Background(), pool, metrics.Worker{ID: "worker-" + uuid.NewString(), Interval: 100 * time.Millisecond})
	defer hb.Stop(context.Background())
	waitLeader(t, e)

	local.Store("open")
	checkAlert(t, waitFor(t, e, alerts.BreakerOpen, "openai", alerts.Firing), alerts.Warning)
	metrics.SetBreakerState("llamaparse", "open")
	a := waitFor(t, e, alerts.BreakerOpen, "llamaparse", alerts.Firing)
	if !strings.Contains(a.Message, "open in 1 worker") {
		t.Errorf("message: %s", a.Message)
	}
	local.Store("half-open")
	metrics.SetBreakerState("llamaparse", "closed")
	waitFor(t, e, alerts.BreakerOpen, "openai", alerts.Resolved)
	waitFor(t, e, alerts.BreakerOpen, "llamaparse", alerts.Resolved)
	if n := e.hook.count("[FIRING", alerts.BreakerOpen); n != 2 {
		t.Errorf("%d firing notices for two breakers", n)
	}
}

// The storage check fails: DocpipeStorageUnreachable fires; it answers again: resolved.
// Two engines run; only the evaluator announces, and when it stops the other takes
// over without announcing anything twice.
func TestStorageUnreachableOneEvaluator(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	var down atomic.Bool
	check := func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp 10.0.0.9:9000: connect: connection refused")
		}
		return nil
	}
	h := newHook(t)
	e1 := startEngine(t, pool, alerts.Options{StorageCheck: check}, h)
	waitLeader(t, e1)
	e2 := startEngine(t, pool, alerts.Options{StorageCheck: check}, h)
	time.Sleep(300 * time.Millisecond)
	if !e1.Leader() || e2.Leader() {
		t.Fatalf("leaders: first %v, second %v; want exactly the first", e1.Leader(), e2.Leader())
	}

	down.Store(true)
	a := waitFor(t, e2, alerts.StorageUnreachable, "", alerts.Firing) // the other process shows it too
	checkAlert(t, a, alerts.Critical)
	if !strings.Contains(a.Message, "connection refused") {
		t.Errorf("message: %s", a.Message)
	}
	e1.stop() // the evaluator goes away; the second takes over
	deadline := time.Now().Add(eventually)
	for !e2.Leader() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !e2.Leader() {
		t.Fatal("the second engine did not take over")
	}
	time.Sleep(300 * time.Millisecond)
	down.Store(false)
	waitFor(t, e2, alerts.StorageUnreachable, "", alerts.Resolved)
	time.Sleep(300 * time.Millisecond)
	if n := h.count("[FIRING", alerts.StorageUnreachable); n != 1 {
		t.Errorf("%d firing notices from two engines, want 1", n)
	}
	if n := h.count("[RESOLVED]", alerts.StorageUnreachable); n != 1 {
		t.Errorf("%d resolution notices from two engines, want 1", n)
	}
	if logLines(e1.logs.String(), "alert firing", alerts.StorageUnreachable) != 1 || logLines(e2.logs.String(), "alert resolved", alerts.StorageUnreachable) != 1 {
		t.Errorf("the firing should be logged by the first engine and the resolution by the second:\n%s\n%s", e1.logs, e2.logs)
	}
	if logLines(e2.logs.String(), "alert firing", alerts.StorageUnreachable) != 0 {
		t.Errorf("the second engine announced the firing again:\n%s\nfirst engine:\n%s", e2.logs, e1.logs)
	}
}

// A failing webhook is retried until it takes the notice, and the notice is not
// logged twice.
func TestWebhookRetried(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	h := newHook(t)
	h.fail.Store(true)
	e := startEngine(t, pool, alerts.Options{StorageCheck: func(context.Context) error { return errors.New("no route to host") }}, h)
	waitFor(t, e, alerts.StorageUnreachable, "", alerts.Firing)
	deadline := time.Now().Add(eventually)
	for !strings.Contains(e.logs.String(), "webhook delivery failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	h.fail.Store(false)
	for h.count("[FIRING", alerts.StorageUnreachable) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	checkAnnounced(t, e, alerts.StorageUnreachable, false)
}

// proxy is a TCP proxy to the test database that can be cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	dbtest.Must(t, err, "listen")
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// The database goes away: the evaluator announces DocpipeDatabaseUnreachable and
// GET /v1/alerts still answers with it; the database comes back: resolved,
// announced, and recorded in the table.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	direct, dbURL := dbtest.Pool(t)
	u, err := url.Parse(dbURL)
	dbtest.Must(t, err, "url")
	px := newProxy(t, u.Host)
	u.Host = px.ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, u.String(), 4)
	dbtest.Must(t, err, "open through the proxy")
	t.Cleanup(pool.Close)

	e := startEngine(t, pool, alerts.Options{}, nil)
	waitLeader(t, e)
	px.setCut(true)
	a := waitFor(t, e, alerts.DatabaseUnreachable, "", alerts.Firing)
	checkAlert(t, a, alerts.Critical)
	deadline := time.Now().Add(eventually)
	for e.hook.count("[FIRING", alerts.DatabaseUnreachable) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	px.setCut(false)
	waitFor(t, e, alerts.DatabaseUnreachable, "", alerts.Resolved)
	checkAnnounced(t, e, alerts.DatabaseUnreachable, true)
	var state string
	dbtest.Must(t, direct.QueryRow(context.Background(), `SELECT coalesce(notified_state, '') FROM upload_pipeline.alerts
		WHERE name = $1 AND state = 'resolved' AND resolved_at > fired_at`, alerts.DatabaseUnreachable).Scan(&state), "outage row")
	if state != alerts.Resolved {
		t.Errorf("outage row notified_state = %q", state)
	}
	// The evaluator is elected again once the database is back.
	deadline = time.Now().Add(eventually)
	for !e.Leader() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !e.Leader() {
		t.Error("the engine did not take the evaluator's lock again")
	}
}

// A schema changed by hand raises DocpipeSchemaDrift naming what drifted; restoring
// it resolves the alert at the next check.
func TestSchemaDrift(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	execSQL(t, pool, `DROP TRIGGER trg_upload_jobs_status ON upload_pipeline.upload_jobs`)
	d := db.NewDriftChecker(pool, db.DriftOptions{})
	e := startEngine(t, pool, alerts.Options{SchemaCheck: d.Drifted, SchemaCheckInterval: 200 * time.Millisecond}, nil)
	a := waitFor(t, e, alerts.SchemaDrift, "", alerts.Firing)
	checkAlert(t, a, alerts.Warning)
	if !strings.Contains(a.Message, "trigger trg_upload_jobs_status on upload_pipeline.upload_jobs missing") || !strings.Contains(a.Message, "docpipe validate db") {
		t.Errorf("message: %s", a.Message)
	}
	execSQL(t, pool, `CREATE TRIGGER trg_upload_jobs_status BEFORE UPDATE OF status ON upload_pipeline.upload_jobs
		FOR EACH ROW EXECUTE FUNCTION upload_pipeline.check_status_transition()`)
	waitFor(t, e, alerts.SchemaDrift, "", alerts.Resolved)
	checkAnnounced(t, e, alerts.SchemaDrift, true)
}
