package pipeline_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

const corpus = "../../testdata/corpus"

var user = uuid.MustParse("00000000-0000-4000-8000-0000000000aa")

var (
	parserOnce sync.Once
	parser     *parse.Local
)

// sharedParser is one pdfium pool for the whole test binary (its first start is slow).
func sharedParser() *parse.Local {
	parserOnce.Do(func() {
		parser = parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-test-wazero"), Workers: 2})
	})
	return parser
}

type env struct {
	pool  *pgxpool.Pool
	url   string
	store storage.Store
	pipes []*pipeline.Pipeline
}

type setupOpts struct {
	workers  int // pipelines (River clients) on the same database
	embedder embed.Embedder
	remote   pipeline.RemoteParser
	opts     pipeline.Options
}

func newEnv(t *testing.T, so setupOpts) *env {
	t.Helper()
	pool, url := dbtest.Pool(t)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{MaxTokens: 512, OverlapTokens: 64})
	dbtest.Must(t, err, "chunker")
	if so.embedder == nil {
		so.embedder, err = embed.NewLocal(1536)
		dbtest.Must(t, err, "embedder")
	}
	if so.workers == 0 {
		so.workers = 1
	}
	o := so.opts
	if o.RetryBase == 0 {
		o.RetryBase, o.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	}
	e := &env{pool: pool, url: url, store: store}
	for range so.workers {
		p, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: sharedParser(), Remote: so.remote, Chunker: ch, Embedder: so.embedder}, o)
		dbtest.Must(t, err, "pipeline")
		dbtest.Must(t, p.Start(context.Background()), "start")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = p.Stop(ctx)
		})
		e.pipes = append(e.pipes, p)
	}
	return e
}

func (e *env) submit(t *testing.T, name string, data []byte) pipeline.Submitted {
	t.Helper()
	s, err := e.pipes[0].Submit(context.Background(), pipeline.Submission{UserID: user, Filename: name, Data: data})
	dbtest.Must(t, err, "submit %s", name)
	return s
}

func (e *env) wait(t *testing.T, jobID uuid.UUID, d time.Duration) catalog.JobInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ji, err := catalog.Wait(ctx, e.pool, catalog.AllUsers(), jobID, nil)
	if err != nil {
		t.Fatalf("wait for job %s: %v (last status %s)", jobID, err, ji.Status)
	}
	return ji
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	dbtest.Must(t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n), "count %s", sql)
	return n
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	dbtest.Must(t, err, "read corpus file %s", name)
	return b
}

func chunkSHAs(t *testing.T, e *env, docID uuid.UUID) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT chunk_sha FROM upload_pipeline.document_chunks WHERE document_id = $1 ORDER BY chunk_ord`, docID)
	dbtest.Must(t, err, "chunk shas")
	var out []string
	for rows.Next() {
		var s string
		dbtest.Must(t, rows.Scan(&s), "scan")
		out = append(out, s)
	}
	return out
}

// 1. The 232-page PDF completes, deterministically, and is searchable.
func TestLargePDFDeterministicAndSearchable(t *testing.T) {
	t.Parallel()
	data := readCorpus(t, "scan_classic_hmo.pdf")
	var runs [][]string
	for i := range 2 {
		e := newEnv(t, setupOpts{})
		s := e.submit(t, "scan_classic_hmo.pdf", data)
		ji := e.wait(t, s.JobID, 3*time.Minute)
		if ji.Status != runstate.Complete {
			t.Fatalf("run %d: status %s, last error %s", i, ji.Status, ji.LastError)
		}
		if ji.Pages != 232 {
			t.Errorf("run %d: pages = %d, want 232", i, ji.Pages)
		}
		shas := chunkSHAs(t, e, s.DocumentID)
		if len(shas) < 100 || len(shas) != ji.ChunksTotal {
			t.Fatalf("run %d: %d chunks published, progress says %d", i, len(shas), ji.ChunksTotal)
		}
		if n := e.count(t, `SELECT count(*) FROM upload_pipeline.document_chunk_buffer`) + e.count(t, `SELECT count(*) FROM upload_pipeline.document_vector_buffer`); n != 0 {
			t.Errorf("run %d: %d rows left in the buffers after finalize", i, n)
		}
		emb, _ := embed.NewLocal(1536)
		hits, err := catalog.Search(context.Background(), e.pool, emb, catalog.UserScope(user), catalog.SearchRequest{Query: "deductible", K: 5})
		dbtest.Must(t, err, "search")
		if len(hits) == 0 {
			t.Fatal("search deductible: no hits")
		}
		for _, h := range hits {
			if h.DocumentID != s.DocumentID || !strings.Contains(strings.ToLower(h.Text), "deductible") {
				t.Fatalf("search deductible: hit %d (score %.3f) does not mention it:\n%s", h.Ord, h.Score, h.Text)
			}
		}
		runs = append(runs, shas)
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Fatalf("chunking is not deterministic: %d vs %d chunks", len(runs[0]), len(runs[1]))
	}
}

// 2. The same file twice for the same user: one document, one run, one set of chunks.
func TestSameFileTwiceIsOneDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setupOpts{})
	data := []byte("# Policy\n\nThe annual deductible is $500 per member.\n")
	var wg sync.WaitGroup
	subs := make([]pipeline.Submitted, 4)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i] = e.submit(t, fmt.Sprintf("copy-%d.md", i), data)
		}()
	}
	wg.Wait()
	dups := 0
	for _, s := range subs {
		if s.DocumentID != subs[0].DocumentID || s.JobID != subs[0].JobID {
			t.Fatalf("different ids for the same bytes: %+v", subs)
		}
		if s.Duplicate {
			dups++
		}
	}
	if dups != len(subs)-1 {
		t.Errorf("%d submissions reported duplicate, want %d", dups, len(subs)-1)
	}
	ji := e.wait(t, subs[0].JobID, time.Minute)
	if ji.Status != runstate.Complete {
		t.Fatalf("status %s", ji.Status)
	}
	again := e.submit(t, "again.md", data)
	if !again.Duplicate || again.JobID != subs[0].JobID || again.Status != runstate.Complete {
		t.Fatalf("resubmit after completion: %+v", again)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.documents`); n != 1 {
		t.Errorf("documents = %d, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.upload_jobs`); n != 1 {
		t.Errorf("upload_jobs = %d, want 1", n)
	}
	if n, want := e.count(t, `SELECT count(*) FROM upload_pipeline.document_chunks`), ji.ChunksTotal; n != want || n == 0 {
		t.Errorf("document_chunks = %d, want %d", n, want)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'docpipe.parse'`); n != 1 {
		t.Errorf("parse jobs = %d, want 1", n)
	}
	// Different bytes with the same parsed content → duplicate status, nothing embedded twice.
	dup := e.submit(t, "copy.txt", []byte("# Policy\r\n\r\n\r\nThe annual deductible is $500 per member.   \r\n"))
	if dup.Duplicate {
		t.Fatal("different bytes reported as the same upload")
	}
	dji := e.wait(t, dup.JobID, time.Minute)
	if dji.Status != runstate.Duplicate {
		t.Fatalf("same parsed content: status %s, want duplicate", dji.Status)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.document_chunks WHERE document_id = $1`, dup.DocumentID); n != 0 {
		t.Errorf("duplicate content was chunked: %d chunks", n)
	}
}

// 4. Four workers drain 200 small documents: each completes once; no run is worked by
// two workers at the same time.
func TestConcurrentWorkersDrainBacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setupOpts{workers: 4, opts: pipeline.Options{Workers: 4}})
	const n = 200
	jobs := make([]uuid.UUID, n)
	for i := range n {
		jobs[i] = e.submit(t, fmt.Sprintf("doc-%03d.md", i), fmt.Appendf(nil, "# Document %d\n\nCoverage note number %d: copay applies to visit type %d.\n", i, i, i%7)).JobID
	}
	for _, id := range jobs {
		if ji := e.wait(t, id, 2*time.Minute); ji.Status != runstate.Complete {
			t.Fatalf("job %s: %s %s", id, ji.Status, ji.LastError)
		}
	}
	// Every stage finished exactly once per run.
	if got, want := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE type = 'stage_done' AND code = 'STAGE_DONE'`), n*len(runstate.Stages()); got != want {
		t.Errorf("stage_done events = %d, want %d", got, want)
	}
	if got := e.count(t, `SELECT count(*) FROM (SELECT job_id, stage FROM upload_pipeline.events WHERE code = 'STAGE_DONE' GROUP BY 1, 2 HAVING count(*) > 1) x`); got != 0 {
		t.Errorf("%d (run, stage) pairs finished more than once", got)
	}
	// No two stage attempts of the same run overlap in time: each start comes after the
	// previous attempt's end (events are written in commit order per run).
	overlaps := e.count(t, `
		WITH ev AS (
			SELECT job_id, type, ts, lag(type) OVER (PARTITION BY job_id ORDER BY ts, event_id) AS prev
			FROM upload_pipeline.events WHERE type IN ('stage_started', 'stage_done') AND code IN ('STAGE_STARTED', 'STAGE_DONE'))
		SELECT count(*) FROM ev WHERE type = 'stage_started' AND prev = 'stage_started'`)
	if overlaps != 0 {
		t.Errorf("%d stage attempts started while another attempt on the same run was open", overlaps)
	}
	workers := e.count(t, `SELECT count(DISTINCT worker_id) FROM upload_pipeline.events WHERE type = 'stage_started'`)
	if workers < 2 {
		t.Errorf("work spread over %d workers, want several", workers)
	}
	if got := e.count(t, `SELECT count(*) FROM upload_pipeline.document_chunks`); got < n {
		t.Errorf("document_chunks = %d, want >= %d", got, n)
	}
}

// flaky fails on demand, then embeds for real.
type flaky struct {
	embed.Embedder
	transientLeft atomic.Int32 // fail this many calls transiently
	permanent     atomic.Bool  // fail every call permanently
	calls         atomic.Int32
}

func (f *flaky) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	f.calls.Add(1)
	if f.permanent.Load() {
		return nil, fault.Permanentf("INSUFFICIENT_QUOTA", "the embedding account has no quota left")
	}
	if f.transientLeft.Add(-1) >= 0 {
		return nil, fault.Transientf("UPSTREAM_503", "the embedding service answered 503")
	}
	return f.Embedder.Embed(ctx, texts)
}

// 5. Transient failures are retried; permanent ones dead-letter with their reason and
// can be re-driven.
func TestEmbedFailuresRetryDeadletterRedrive(t *testing.T) {
	t.Parallel()
	local, _ := embed.NewLocal(1536)
	f := &flaky{Embedder: local}
	e := newEnv(t, setupOpts{embedder: f, opts: pipeline.Options{MaxAttempts: 4}})

	f.transientLeft.Store(2)
	s := e.submit(t, "transient.md", []byte("# Transient\n\nThis one succeeds on the third embedding attempt.\n"))
	ji := e.wait(t, s.JobID, time.Minute)
	if ji.Status != runstate.Complete || ji.RetryCount != 2 {
		t.Fatalf("after transient failures: status %s retries %d (%s)", ji.Status, ji.RetryCount, ji.LastError)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND type = 'retry' AND code = 'UPSTREAM_503'`, s.JobID); n != 2 {
		t.Errorf("retry events = %d, want 2", n)
	}

	f.permanent.Store(true)
	s2 := e.submit(t, "permanent.md", []byte("# Permanent\n\nThis one hits a permanent embedding error.\n"))
	ji = e.wait(t, s2.JobID, time.Minute)
	if ji.Status != runstate.FailedEmbedding || ji.State != runstate.Deadletter {
		t.Fatalf("after permanent failure: %s/%s", ji.Status, ji.State)
	}
	if !strings.Contains(string(ji.LastError), "INSUFFICIENT_QUOTA") || !strings.Contains(string(ji.LastError), "no quota left") {
		t.Errorf("last_error = %s", ji.LastError)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND type = 'deadletter'`, s2.JobID); n != 1 {
		t.Errorf("deadletter events = %d, want 1", n)
	}
	if _, err := e.pipes[0].Retry(context.Background(), s.JobID); !errors.Is(err, pipeline.ErrNotDeadLettered) {
		t.Errorf("retry of a complete run: err = %v", err)
	}

	f.permanent.Store(false)
	status, err := e.pipes[0].Retry(context.Background(), s2.JobID)
	dbtest.Must(t, err, "retry")
	if status != runstate.EmbeddingQueued {
		t.Errorf("re-driven to %s, want %s", status, runstate.EmbeddingQueued)
	}
	ji = e.wait(t, s2.JobID, time.Minute)
	if ji.Status != runstate.Complete {
		t.Fatalf("after re-drive: %s %s", ji.Status, ji.LastError)
	}
}

// zipBomb is a .docx whose document.xml inflates to size bytes.
func zipBomb(t *testing.T, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("word/document.xml")
	dbtest.Must(t, err, "zip")
	chunk := bytes.Repeat([]byte("A"), 1<<20)
	for range size >> 20 {
		_, _ = w.Write(chunk)
	}
	dbtest.Must(t, zw.Close(), "zip close")
	return buf.Bytes()
}

// 7. Every corrupt file in the corpus (and other bad input) ends in failed_parse with a
// reason a person can read.
func TestBadInputFailsParseReadably(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setupOpts{})
	inputs := map[string][]byte{
		"bomb.docx":   zipBomb(t, 64<<20),
		"empty.pdf":   {},
		"garbage.bin": {0x00, 0xff, 0x13, 0x37, 0x00, 0x9c, 0x01, 0x02, 0x00, 0x00, 0xfe},
	}
	entries, err := os.ReadDir(corpus)
	dbtest.Must(t, err, "read the corpus")
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "corrupt-") {
			inputs[ent.Name()] = readCorpus(t, ent.Name())
		}
	}
	if len(inputs) < 5 {
		t.Fatalf("expected the corpus' corrupt files, got %d inputs", len(inputs))
	}
	for name, data := range inputs {
		s := e.submit(t, name, data)
		ji := e.wait(t, s.JobID, time.Minute)
		if ji.Status != runstate.FailedParse || ji.State != runstate.Deadletter {
			t.Errorf("%s: status %s/%s, want failed_parse/deadletter", name, ji.Status, ji.State)
			continue
		}
		var le struct {
			Code, Message, Stage string
			Retryable            bool
		}
		dbtest.Must(t, json.Unmarshal(ji.LastError, &le), "last_error")
		if le.Retryable || le.Stage != "parse" || le.Code == "" || len(le.Message) < 15 ||
			strings.Contains(le.Message, "panic") || strings.Contains(le.Message, "goroutine") || strings.Contains(le.Message, ".go:") {
			t.Errorf("%s: last_error %s", name, ji.LastError)
		}
		if ji.RetryCount != 0 {
			t.Errorf("%s: a permanent parse failure was retried %d times", name, ji.RetryCount)
		}
		t.Logf("%s → %s: %s", name, le.Code, le.Message)
	}
}

// slow makes each embedding call take a while.
type slow struct {
	embed.Embedder
	d time.Duration
}

func (s slow) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	time.Sleep(s.d)
	return s.Embedder.Embed(ctx, texts)
}

// Embedding that outlasts one attempt's timeout continues in new attempts without
// using up retries.
func TestLongEmbeddingContinuesAcrossAttempts(t *testing.T) {
	t.Parallel()
	local, _ := embed.NewLocal(1536)
	e := newEnv(t, setupOpts{embedder: slow{local, 150 * time.Millisecond}, opts: pipeline.Options{
		JobTimeout: 3 * time.Second, EmbedBatch: 2, MaxAttempts: 1}})
	var doc strings.Builder
	for i := range 40 {
		fmt.Fprintf(&doc, "# Part %d\n\nPart %d explains coverage rule %d in detail.\n\n", i, i, i*3)
	}
	s := e.submit(t, "long.md", []byte(doc.String()))
	ji := e.wait(t, s.JobID, 2*time.Minute)
	if ji.Status != runstate.Complete || ji.RetryCount != 0 {
		t.Fatalf("status %s, retries %d, last error %s", ji.Status, ji.RetryCount, ji.LastError)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND stage = 'embed' AND type = 'stage_started'`, s.JobID); n < 2 {
		t.Errorf("embed attempts = %d, want the work spread over several", n)
	}
}

// The parse stage with the LlamaParse client against its local twin (polling only,
// webhooks dropped) produces the same chunks as the local parser.
func TestRemoteParserMatchesLocal(t *testing.T) {
	t.Parallel()
	twin := mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: "llx-test", Parser: sharedParser(), Delay: 300 * time.Millisecond, WebhookDrop: 1, Seed: 1})
	srv := httptest.NewServer(twin)
	t.Cleanup(func() { srv.Close(); twin.Close() })
	client, err := llamaparse.New(llamaparse.Options{BaseURL: srv.URL, APIKey: "llx-test"})
	dbtest.Must(t, err, "client")

	files := []string{"sample-policy.pdf", "plan-summary.md", "faq.html", "dental-vision-rider.docx"}
	shas := map[string][2][]string{}
	for i, remote := range []bool{false, true} {
		e := newEnv(t, setupOpts{remote: map[bool]pipeline.RemoteParser{true: client}[remote]})
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join("../../samples", f))
			dbtest.Must(t, err, "read sample")
			s := e.submit(t, f, data)
			ji := e.wait(t, s.JobID, time.Minute)
			if ji.Status != runstate.Complete {
				t.Fatalf("%s (remote=%v): %s %s", f, remote, ji.Status, ji.LastError)
			}
			v := shas[f]
			v[i] = chunkSHAs(t, e, s.DocumentID)
			shas[f] = v
			if remote {
				if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'PARSE_REQUESTED'`, s.JobID); n != 1 {
					t.Errorf("%s: %d remote submissions, want 1", f, n)
				}
			}
		}
	}
	for f, v := range shas {
		if len(v[0]) == 0 || !slices.Equal(v[0], v[1]) {
			t.Errorf("%s: local parser gave %d chunks, LlamaParse twin %d, or they differ", f, len(v[0]), len(v[1]))
		}
	}
	if twin.Uploads() != int64(len(files)) {
		t.Errorf("twin saw %d uploads, want %d", twin.Uploads(), len(files))
	}
}

// A remote parse that never finishes fails the stage as expired at the deadline,
// without ever holding a worker while it waits.
func TestRemoteParseDeadline(t *testing.T) {
	t.Parallel()
	twin := mock.NewLlamaParseServer(mock.LlamaParseOptions{Parser: sharedParser(), NeverFinish: true, WebhookDrop: 1, Seed: 2})
	srv := httptest.NewServer(twin)
	t.Cleanup(func() { srv.Close(); twin.Close() })
	client, err := llamaparse.New(llamaparse.Options{BaseURL: srv.URL, APIKey: "k"})
	dbtest.Must(t, err, "client")
	e := newEnv(t, setupOpts{remote: client, opts: pipeline.Options{RemoteParseDeadline: 2 * time.Second}})
	s := e.submit(t, "stuck.md", []byte("# Never\n\nThis parse never finishes.\n"))
	ji := e.wait(t, s.JobID, time.Minute)
	if ji.Status != runstate.FailedParse || !strings.Contains(string(ji.LastError), "LLAMAPARSE_EXPIRED") {
		t.Fatalf("status %s, last error %s", ji.Status, ji.LastError)
	}
	if polls := e.count(t, `SELECT (progress->>'remote_polls')::int FROM upload_pipeline.upload_jobs WHERE job_id = $1`, s.JobID); polls < 1 {
		t.Errorf("remote status polled %d times", polls)
	}
}

// webhookServer routes LlamaParse webhooks to the pipeline the way the API does.
func webhookServer(t *testing.T, p *pipeline.Pipeline) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/webhooks/llamaparse/{job_id}/{token}", func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(r.PathValue("job_id"))
		if err != nil {
			http.Error(w, "bad job id", http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, err = p.LlamaParseWebhook(r.Context(), id, r.PathValue("token"), r.RemoteAddr, body)
		switch {
		case errors.Is(err, pipeline.ErrWebhookToken):
			w.WriteHeader(http.StatusUnauthorized)
		case errors.Is(err, pipeline.ErrNotFound):
			w.WriteHeader(http.StatusNotFound)
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// With a poll interval of an hour, only the webhook can move the parse on: every
// webhook is delivered three times and each run is still parsed once; a webhook
// with a wrong token gets 401 and changes nothing.
func TestRemoteParseWebhookPath(t *testing.T) {
	t.Parallel()
	twin := mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: "llx-test", Parser: sharedParser(), Delay: 200 * time.Millisecond,
		WebhookDuplicate: true, Seed: 3})
	lp := httptest.NewServer(twin)
	t.Cleanup(func() { lp.Close(); twin.Close() })
	client, err := llamaparse.New(llamaparse.Options{BaseURL: lp.URL, APIKey: "llx-test"})
	dbtest.Must(t, err, "client")

	// The webhook server needs the pipeline and the pipeline needs its URL: route through a switch.
	var target atomic.Pointer[httptest.Server]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target.Load().Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	e := newEnv(t, setupOpts{remote: client, opts: pipeline.Options{
		WebhookBaseURL: front.URL, WebhookSecret: []byte("webhook-secret"), RemotePollInterval: time.Hour}})
	target.Store(webhookServer(t, e.pipes[0]))

	files := []string{"plan-summary.md", "faq.html"}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("../../samples", f))
		dbtest.Must(t, err, "read sample")
		s := e.submit(t, f, data)
		ji := e.wait(t, s.JobID, time.Minute)
		if ji.Status != runstate.Complete {
			t.Fatalf("%s: %s %s", f, ji.Status, ji.LastError)
		}
		for code, want := range map[string]int{"PARSE_REQUESTED": 1, "LLAMAPARSE_WEBHOOK": 1} {
			if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = $2`, s.JobID, code); n != want {
				t.Errorf("%s: %d %s events, want %d", f, n, code, want)
			}
		}
		if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'PARSE_STORED'`, s.JobID); n != 1 {
			t.Errorf("%s: parse finished %d times, want 1", f, n)
		}
		// Wrong token: 401, nothing recorded.
		before := e.count(t, `SELECT count(*) FROM upload_pipeline.webhook_log WHERE job_id = $1`, s.JobID)
		resp, err := http.Post(front.URL+"/v1/webhooks/llamaparse/"+s.JobID.String()+"/"+strings.Repeat("0", 64), "application/json",
			strings.NewReader(`{"job_id":"x","status":"SUCCESS"}`))
		dbtest.Must(t, err, "post")
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong token: HTTP %d, want 401", resp.StatusCode)
		}
		if after := e.count(t, `SELECT count(*) FROM upload_pipeline.webhook_log WHERE job_id = $1`, s.JobID); after != before {
			t.Errorf("wrong token changed webhook_log: %d -> %d", before, after)
		}
	}
	// All three deliveries of each webhook arrived (the last two acknowledged as duplicates).
	deadline := time.Now().Add(10 * time.Second)
	for twin.Stats().WebhooksDelivered < int64(3*len(files)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := twin.Stats().WebhooksDelivered; got < int64(3*len(files)) {
		t.Errorf("twin delivered %d webhooks, want %d", got, 3*len(files))
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE code = 'LLAMAPARSE_WEBHOOK'`); n != len(files) {
		t.Errorf("%d webhook events after duplicates, want %d", n, len(files))
	}
}

// PARTIAL_SUCCESS is accepted with a warning event by default and fails the stage
// when configured so.
func TestRemoteParsePartialSuccess(t *testing.T) {
	t.Parallel()
	twin := mock.NewLlamaParseServer(mock.LlamaParseOptions{Parser: sharedParser(), FinalStatus: "PARTIAL_SUCCESS", WebhookDrop: 1, Seed: 4})
	srv := httptest.NewServer(twin)
	t.Cleanup(func() { srv.Close(); twin.Close() })
	client, err := llamaparse.New(llamaparse.Options{BaseURL: srv.URL, APIKey: "k"})
	dbtest.Must(t, err, "client")
	data := []byte("# Partly\n\nSome pages of this document could not be read.\n")
	for _, reject := range []bool{false, true} {
		e := newEnv(t, setupOpts{remote: client, opts: pipeline.Options{RejectPartial: reject, RemotePollInterval: 100 * time.Millisecond}})
		s := e.submit(t, "partial.md", data)
		ji := e.wait(t, s.JobID, time.Minute)
		warnings := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'LLAMAPARSE_PARTIAL_SUCCESS'`, s.JobID)
		switch {
		case !reject && (ji.Status != runstate.Complete || warnings != 1):
			t.Errorf("accept: %s, %d warnings", ji.Status, warnings)
		case reject && (ji.Status != runstate.FailedParse || !strings.Contains(string(ji.LastError), "LLAMAPARSE_PARTIAL")):
			t.Errorf("fail: %s %s", ji.Status, ji.LastError)
		}
	}
}

// A remote job that disappears (LlamaParse restarted or expired it) is submitted
// again instead of failing the document.
func TestRemoteParseJobLostIsResubmitted(t *testing.T) {
	t.Parallel()
	first := mock.NewLlamaParseServer(mock.LlamaParseOptions{Parser: sharedParser(), NeverFinish: true, WebhookDrop: 1, Seed: 5})
	second := mock.NewLlamaParseServer(mock.LlamaParseOptions{Parser: sharedParser(), Delay: 100 * time.Millisecond, WebhookDrop: 1, Seed: 6})
	t.Cleanup(func() { first.Close(); second.Close() })
	var current atomic.Pointer[mock.LlamaParseServer]
	current.Store(first)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	client, err := llamaparse.New(llamaparse.Options{BaseURL: srv.URL, APIKey: "k"})
	dbtest.Must(t, err, "client")
	e := newEnv(t, setupOpts{remote: client, opts: pipeline.Options{RemotePollInterval: 100 * time.Millisecond}})
	s := e.submit(t, "lost.md", []byte("# Lost\n\nThe parser forgot this job.\n"))
	deadline := time.Now().Add(30 * time.Second)
	for e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'PARSE_REQUESTED'`, s.JobID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never submitted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	current.Store(second) // the service restarts and knows nothing of the first job
	ji := e.wait(t, s.JobID, time.Minute)
	if ji.Status != runstate.Complete {
		t.Fatalf("status %s %s", ji.Status, ji.LastError)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND code = 'LLAMAPARSE_JOB_LOST'`, s.JobID); n != 1 {
		t.Errorf("%d LLAMAPARSE_JOB_LOST events, want 1", n)
	}
}
