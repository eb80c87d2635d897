package llamaparse_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
)

var (
	parserOnce sync.Once
	parser     *parse.Local
)

// sharedParser is one local parser for the test binary; the wazero cache
// keeps pdfium's compile out of repeated runs.
func sharedParser() *parse.Local {
	parserOnce.Do(func() {
		parser = parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-llamaparse-test-wazero-cache")})
	})
	return parser
}

func TestMain(m *testing.M) {
	code := m.Run()
	if parser != nil {
		_ = parser.Close()
	}
	os.Exit(code)
}

const testKey = "llx-test-secret-key-123456"

// twin starts a LlamaParse twin behind an httptest server.
func twin(t *testing.T, opts mock.LlamaParseOptions) (*mock.LlamaParseServer, string) {
	t.Helper()
	if opts.Parser == nil {
		opts.Parser = sharedParser()
	}
	srv := mock.NewLlamaParseServer(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ts.URL
}

func client(t *testing.T, base string, mod func(*llamaparse.Options)) *llamaparse.Client {
	t.Helper()
	o := llamaparse.Options{BaseURL: base, APIKey: testKey, Timeout: 10 * time.Second}
	if mod != nil {
		mod(&o)
	}
	c, err := llamaparse.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitTerminal polls until the job leaves PENDING.
func waitTerminal(t *testing.T, c *llamaparse.Client, id string) llamaparse.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.Status(context.Background(), id)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.Terminal() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want *fault.Error %s, got %T: %v", code, err, err)
	}
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("want %v %s, got %v %s (%v)", kind, code, fe.Kind, fe.Code, err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("error leaks the API key: %v", err)
	}
	return fe
}

func TestSubmitPollMarkdownMatchesLocalParser(t *testing.T) {
	const delay = 300 * time.Millisecond
	srv, base := twin(t, mock.LlamaParseOptions{APIKey: testKey, Delay: delay, Seed: 1})
	files := []string{
		"../../samples/plan-summary.md",
		"../../samples/faq.html",
		"../../testdata/corpus/sample-policy.pdf",
	}
	for _, legacy := range []bool{false, true} {
		c := client(t, base, func(o *llamaparse.Options) {
			o.LegacyRoutes = legacy
			o.ParseOptions = map[string]string{"parse_mode": "parse_page_without_llm", "language": "en"}
		})
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(map[bool]string{false: "v1/", true: "legacy/"}[legacy]+name, func(t *testing.T) {
				data := readFile(t, f)
				want, err := sharedParser().Parse(context.Background(), data, name)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				id, err := c.Submit(context.Background(), data, name, "")
				if err != nil {
					t.Fatal(err)
				}
				st, err := c.Status(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if st.State != llamaparse.StatePending || st.JobID != id {
					t.Fatalf("right after upload: %+v", st)
				}
				if _, err := c.Markdown(context.Background(), id); err == nil {
					t.Fatal("result before the job finished: want an error")
				} else {
					requireFault(t, err, fault.Transient, llamaparse.CodeResultNotReady)
				}
				st = waitTerminal(t, c, id)
				if st.State != llamaparse.StateSuccess || !st.HasResult() || st.Err() != nil {
					t.Fatalf("final status %+v", st)
				}
				if el := time.Since(start); el < delay {
					t.Fatalf("SUCCESS after %s, before Delay %s", el, delay)
				}
				res, err := c.Markdown(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if res.Markdown != want.Markdown {
					t.Fatalf("markdown differs from the local parser\n--- got\n%q\n--- want\n%q", res.Markdown, want.Markdown)
				}
				if res.Pages != want.Pages {
					t.Fatalf("pages %d, local parser %d", res.Pages, want.Pages)
				}
				wantJobPages := max(want.Pages, 1)
				if res.JobPages != wantJobPages {
					t.Fatalf("job pages %d, want %d", res.JobPages, wantJobPages)
				}
				if legacy {
					// The same file with the same options was parsed on the v1 route: cache hit, free.
					if !res.CacheHit || res.Credits != 0 {
						t.Fatalf("second identical parse: cache hit %v credits %v", res.CacheHit, res.Credits)
					}
				} else if res.CacheHit || res.Credits != float64(wantJobPages) || res.CreditsSource != "api" {
					t.Fatalf("credits %v (%s) cache %v; want %d from the api (1 credit/page)", res.Credits, res.CreditsSource, res.CacheHit, wantJobPages)
				}
				if want := res.Credits / 1000; res.CostUSD != want {
					t.Fatalf("cost %v, want %v", res.CostUSD, want)
				}
			})
		}
	}
	if s := srv.Stats(); s.Uploads != 6 || s.JobsCreated != 6 || s.StatusCalls < 12 || s.ResultCalls < 6 {
		t.Fatalf("counters %+v", s)
	}
}

func TestPDFHasPageMarkers(t *testing.T) {
	_, base := twin(t, mock.LlamaParseOptions{})
	c := client(t, base, nil)
	id, err := c.Submit(context.Background(), readFile(t, "../../samples/sample-policy.pdf"), "policy.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	waitTerminal(t, c, id)
	res, err := c.Markdown(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages < 1 || !strings.HasPrefix(res.Markdown, "<!-- page 1 -->\n\n") {
		t.Fatalf("pages %d, markdown starts %q", res.Pages, res.Markdown[:min(40, len(res.Markdown))])
	}
	for n := 1; n <= res.Pages; n++ {
		if !strings.Contains(res.Markdown, "<!-- page "+strconv.Itoa(n)+" -->\n") {
			t.Fatalf("no marker for page %d", n)
		}
	}
	// No parse_mode: priced as the cost-effective default, reported by the API.
	if res.Credits != float64(3*res.JobPages) {
		t.Fatalf("credits %v for %d pages", res.Credits, res.JobPages)
	}
}

type hook struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
}

// receiver records webhook requests and answers with code.
type receiver struct {
	mu   sync.Mutex
	got  []hook
	code int
	ts   *httptest.Server
	ch   chan struct{}
}

func newReceiver(t *testing.T, code int) *receiver {
	r := &receiver{code: code, ch: make(chan struct{}, 100)}
	r.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, hook{at: time.Now(), path: req.URL.Path, header: req.Header.Clone(), body: b})
		r.mu.Unlock()
		w.WriteHeader(r.code)
		r.ch <- struct{}{}
	}))
	t.Cleanup(r.ts.Close)
	return r
}

func (r *receiver) wait(t *testing.T, n int) []hook {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := append([]hook(nil), r.got...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-timeout:
			t.Fatalf("received %d webhooks, want %d", len(r.got), n)
		}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestWebhookURLStyleWithToken(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK)
	srv, base := twin(t, mock.LlamaParseOptions{Delay: 50 * time.Millisecond})
	c := client(t, base, nil)
	secret := []byte("master-secret")
	docID := "doc-42"
	tok := llamaparse.WebhookToken(secret, docID)
	id, err := c.Submit(context.Background(), readFile(t, "../../samples/plan-summary.md"), "plan.md",
		rcv.ts.URL+"/webhooks/llamaparse/"+docID+"/"+tok)
	if err != nil {
		t.Fatal(err)
	}
	h := rcv.wait(t, 1)[0]
	parts := strings.Split(h.path, "/")
	if !llamaparse.VerifyWebhookToken(secret, parts[3], parts[4]) {
		t.Fatalf("token in %s does not verify", h.path)
	}
	if llamaparse.VerifyWebhookToken(secret, "doc-43", parts[4]) {
		t.Fatal("token verified for another job")
	}
	wh, err := llamaparse.ParseWebhook(h.body)
	if err != nil {
		t.Fatal(err)
	}
	if wh.Style != llamaparse.WebhookStyleResult || wh.Status != llamaparse.StateSuccess || wh.JobID != "" ||
		!strings.HasPrefix(wh.DeliveryKey, "sha256:") {
		t.Fatalf("webhook %+v", wh)
	}
	// The body carries the result ({txt, md, json, images}), but we re-read it from the API.
	if !strings.Contains(string(h.body), `"md":`) || !strings.Contains(string(h.body), `"images":`) {
		t.Fatalf("body %s", h.body)
	}
	if st, err := c.Status(context.Background(), id); err != nil || st.State != llamaparse.StateSuccess {
		t.Fatalf("status after webhook: %+v %v", st, err)
	}
	time.Sleep(50 * time.Millisecond)
	if s := srv.Stats(); s.WebhooksSent != 1 || s.WebhooksDelivered != 1 || rcv.count() != 1 {
		t.Fatalf("stats %+v, received %d", s, rcv.count())
	}
}

func TestWebhookConfigurationsStyle(t *testing.T) {
	rcv := newReceiver(t, http.StatusNoContent)
	_, base := twin(t, mock.LlamaParseOptions{Delay: 50 * time.Millisecond})
	c := client(t, base, func(o *llamaparse.Options) {
		o.WebhookMode = llamaparse.WebhookModeConfigurations
		o.WebhookHeaders = map[string]string{"Authorization": "Bearer hook-secret"}
	})
	id, err := c.Submit(context.Background(), readFile(t, "../../samples/faq.html"), "faq.html", rcv.ts.URL+"/hook")
	if err != nil {
		t.Fatal(err)
	}
	hooks := rcv.wait(t, 2) // parse.pending and parse.success (all events when none are listed)
	seen := map[string]llamaparse.Webhook{}
	for _, h := range hooks {
		wh, err := llamaparse.ParseWebhook(h.body)
		if err != nil {
			t.Fatal(err)
		}
		if wh.Style != llamaparse.WebhookStyleEvent || wh.JobID != id || wh.Timestamp.IsZero() {
			t.Fatalf("webhook %+v", wh)
		}
		if h.header.Get("Authorization") != "Bearer hook-secret" ||
			h.header.Get("User-Agent") != "llamaindex-webhook-service/1.0" ||
			h.header.Get("X-Webhook-Event-Type") != wh.EventType ||
			"event:"+h.header.Get("X-Webhook-Event-ID") != wh.DeliveryKey {
			t.Fatalf("headers %v for %+v", h.header, wh)
		}
		seen[wh.EventType] = wh
	}
	if seen["parse.pending"].Status != llamaparse.StatePending || seen["parse.success"].Status != llamaparse.StateSuccess {
		t.Fatalf("events %+v", seen)
	}

	// Only the subscribed events are sent.
	rcv2 := newReceiver(t, http.StatusOK)
	c2 := client(t, base, func(o *llamaparse.Options) {
		o.WebhookMode = llamaparse.WebhookModeConfigurations
		o.WebhookEvents = []string{"parse.success", "parse.error"}
	})
	if _, err := c2.Submit(context.Background(), []byte("# Title\n\nbody\n"), "x.md", rcv2.ts.URL+"/hook"); err != nil {
		t.Fatal(err)
	}
	h := rcv2.wait(t, 1)[0]
	if wh, _ := llamaparse.ParseWebhook(h.body); wh.EventType != "parse.success" {
		t.Fatalf("got %+v", wh)
	}
	time.Sleep(100 * time.Millisecond)
	if rcv2.count() != 1 {
		t.Fatalf("received %d webhooks, want only parse.success", rcv2.count())
	}
}

func TestWebhookRetriedAtConfiguredDelays(t *testing.T) {
	rcv := newReceiver(t, http.StatusInternalServerError)
	delays := []time.Duration{40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond}
	srv, base := twin(t, mock.LlamaParseOptions{WebhookRetryDelays: delays})
	c := client(t, base, nil)
	if _, err := c.Submit(context.Background(), []byte("hello"), "a.txt", rcv.ts.URL+"/h"); err != nil {
		t.Fatal(err)
	}
	hooks := rcv.wait(t, 3)
	for i := 1; i < 3; i++ {
		if gap := hooks[i].at.Sub(hooks[i-1].at); gap < delays[i-1] {
			t.Fatalf("retry %d after %s, configured %s", i, gap, delays[i-1])
		}
	}
	time.Sleep(delays[2] + 100*time.Millisecond)
	if n := rcv.count(); n != 3 {
		t.Fatalf("%d attempts, want 3 (documented default)", n)
	}
	if s := srv.Stats(); s.WebhooksSent != 3 || s.WebhooksFailed != 1 || s.WebhooksDelivered != 0 {
		t.Fatalf("stats %+v", s)
	}
	for _, h := range hooks {
		if string(h.body) != string(hooks[0].body) {
			t.Fatal("retries must resend the same payload")
		}
	}
}

func TestWebhookDuplicatedAndDropped(t *testing.T) {
	t.Run("duplicate", func(t *testing.T) {
		rcv := newReceiver(t, http.StatusOK)
		srv, base := twin(t, mock.LlamaParseOptions{WebhookDuplicate: true})
		c := client(t, base, func(o *llamaparse.Options) {
			o.WebhookMode = llamaparse.WebhookModeConfigurations
			o.WebhookEvents = []string{"parse.success"}
		})
		if _, err := c.Submit(context.Background(), []byte("hello"), "a.txt", rcv.ts.URL+"/h"); err != nil {
			t.Fatal(err)
		}
		hooks := rcv.wait(t, 3)
		keys := map[string]bool{}
		for _, h := range hooks {
			wh, err := llamaparse.ParseWebhook(h.body)
			if err != nil {
				t.Fatal(err)
			}
			keys[wh.DeliveryKey] = true
		}
		if len(keys) != 1 {
			t.Fatalf("duplicates must share a delivery key, got %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
		if s := srv.Stats(); s.WebhooksDelivered != 3 || rcv.count() != 3 {
			t.Fatalf("stats %+v received %d", s, rcv.count())
		}
	})
	t.Run("drop", func(t *testing.T) {
		rcv := newReceiver(t, http.StatusOK)
		srv, base := twin(t, mock.LlamaParseOptions{WebhookDrop: 1})
		c := client(t, base, nil)
		id, err := c.Submit(context.Background(), []byte("hello"), "a.txt", rcv.ts.URL+"/h")
		if err != nil {
			t.Fatal(err)
		}
		// Polling still finds the result: a lost webhook must not strand the job.
		if st := waitTerminal(t, c, id); st.State != llamaparse.StateSuccess {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
		if s := srv.Stats(); s.WebhooksDropped != 1 || s.WebhooksSent != 0 || rcv.count() != 0 {
			t.Fatalf("stats %+v received %d", s, rcv.count())
		}
	})
}

func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	data := []byte("hello")

	t.Run("401", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{APIKey: "llx-right"})
		c := client(t, base, nil) // sends testKey
		_, err := c.Submit(ctx, data, "a.txt", "")
		fe := requireFault(t, err, fault.Permanent, llamaparse.CodeUnauthorized)
		var ae *llamaparse.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Detail != "Invalid authentication token" {
			t.Fatalf("cause %#v", fe.Err)
		}
		_, err = c.Status(ctx, "anything")
		requireFault(t, err, fault.Permanent, llamaparse.CodeUnauthorized)
	})
	t.Run("422", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{})
		c := client(t, base, func(o *llamaparse.Options) { o.ParseOptions = map[string]string{"parse_mode": "bogus"} })
		_, err := c.Submit(ctx, data, "a.txt", "")
		requireFault(t, err, fault.Permanent, llamaparse.CodeRejected)
		if !strings.Contains(err.Error(), "body.parse_mode") {
			t.Fatalf("validation detail missing: %v", err)
		}
	})
	t.Run("429 Retry-After", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{ErrorRates: map[int]float64{429: 1}, RetryAfter: 2 * time.Second})
		c := client(t, base, nil)
		_, err := c.Submit(ctx, data, "a.txt", "")
		requireFault(t, err, fault.Transient, llamaparse.CodeRateLimited)
		if d, ok := llamaparse.RetryAfter(err); !ok || d != 2*time.Second {
			t.Fatalf("RetryAfter = %s, %v", d, ok)
		}
	})
	t.Run("429 without header", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{UploadRateLimit: 1})
		c := client(t, base, nil)
		if _, err := c.Submit(ctx, data, "a.txt", ""); err != nil {
			t.Fatal(err)
		}
		_, err := c.Submit(ctx, data, "a.txt", "")
		requireFault(t, err, fault.Transient, llamaparse.CodeRateLimited)
		if _, ok := llamaparse.RetryAfter(err); ok {
			t.Fatal("no Retry-After was sent")
		}
	})
	t.Run("500", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{ErrorRates: map[int]float64{500: 1}})
		c := client(t, base, nil)
		_, err := c.Status(ctx, "x")
		requireFault(t, err, fault.Transient, llamaparse.CodeUnavailable)
		if _, ok := llamaparse.RetryAfter(err); ok {
			t.Fatal("RetryAfter on a 500 without header")
		}
	})
	t.Run("404 job", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{})
		c := client(t, base, nil)
		_, err := c.Status(ctx, "00000000-0000-4000-8000-000000000000")
		requireFault(t, err, fault.Permanent, llamaparse.CodeJobNotFound)
		_, err = c.Status(ctx, "")
		requireFault(t, err, fault.Permanent, llamaparse.CodeJobNotFound)
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := client(t, "http://"+addr, nil)
		_, err = c.Status(ctx, "x")
		requireFault(t, err, fault.Transient, llamaparse.CodeNetwork)
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer ts.Close()
		defer close(block)
		c := client(t, ts.URL, func(o *llamaparse.Options) { o.Timeout = 50 * time.Millisecond })
		_, err := c.Status(ctx, "x")
		requireFault(t, err, fault.Transient, llamaparse.CodeTimeout)
	})
	t.Run("caller cancel", func(t *testing.T) {
		_, base := twin(t, mock.LlamaParseOptions{})
		c := client(t, base, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Status(cctx, "x")
		requireFault(t, err, fault.Transient, "CANCELED")
	})
}

func TestCorruptFileEndsInError(t *testing.T) {
	_, base := twin(t, mock.LlamaParseOptions{})
	c := client(t, base, nil)
	id, err := c.Submit(context.Background(), []byte("%PDF-1.7\n1 0 obj garbage that is not a pdf\n"), "broken.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitTerminal(t, c, id)
	if st.State != llamaparse.StateError || st.ErrorCode != "ERROR_DURING_PROCESSING" || len(st.ErrorMessage) < 15 {
		t.Fatalf("status %+v", st)
	}
	requireFault(t, st.Err(), fault.Permanent, llamaparse.CodeJobFailed)
	_, err = c.Markdown(context.Background(), id)
	requireFault(t, err, fault.Transient, llamaparse.CodeResultNotReady)

	id, err = c.Submit(context.Background(), []byte("   \n\n"), "blank.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	st = waitTerminal(t, c, id)
	if st.State != llamaparse.StateError || st.ErrorCode != "NO_DATA_FOUND_IN_FILE" {
		t.Fatalf("status %+v", st)
	}
	requireFault(t, st.Err(), fault.Permanent, llamaparse.CodeNoData)
}

func TestCanceledSpellingNormalized(t *testing.T) {
	for _, spelling := range []string{"CANCELED", "CANCELLED"} {
		_, base := twin(t, mock.LlamaParseOptions{FinalStatus: spelling})
		c := client(t, base, nil)
		id, err := c.Submit(context.Background(), []byte("hello"), "a.txt", "")
		if err != nil {
			t.Fatal(err)
		}
		st := waitTerminal(t, c, id)
		if st.State != llamaparse.StateCancelled || st.RawState != spelling {
			t.Fatalf("%s: %+v", spelling, st)
		}
		requireFault(t, st.Err(), fault.Permanent, llamaparse.CodeJobCancelled)
	}
}

func TestPartialSuccessHasResult(t *testing.T) {
	_, base := twin(t, mock.LlamaParseOptions{FinalStatus: "PARTIAL_SUCCESS"})
	c := client(t, base, nil)
	id, err := c.Submit(context.Background(), []byte("# T\n\nbody\n"), "a.md", "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitTerminal(t, c, id)
	if st.State != llamaparse.StatePartialSuccess || !st.HasResult() || st.Err() != nil {
		t.Fatalf("%+v", st)
	}
	res, err := c.Markdown(context.Background(), id)
	if err != nil || res.Markdown != "# T\n\nbody\n" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestNeverFinishStaysPending(t *testing.T) {
	srv, base := twin(t, mock.LlamaParseOptions{NeverFinish: true})
	c := client(t, base, nil)
	id, err := c.Submit(context.Background(), []byte("hello"), "a.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	st, err := c.Status(context.Background(), id)
	if err != nil || st.State != llamaparse.StatePending || st.Terminal() {
		t.Fatalf("%+v %v", st, err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the background job")
	}
}

func TestUnknownParseModeCreditsUnknown(t *testing.T) {
	_, base := twin(t, mock.LlamaParseOptions{})
	c := client(t, base, func(o *llamaparse.Options) {
		o.ParseOptions = map[string]string{"parse_mode": "parse_page_with_lvm"}
	})
	id, err := c.Submit(context.Background(), []byte("hello"), "a.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	waitTerminal(t, c, id)
	res, err := c.Markdown(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if res.CreditsSource != "" || res.Credits != 0 || res.JobPages != 1 {
		t.Fatalf("%+v", res)
	}
}

// A stub of the real API's shapes: lower-case "canceled", status with
// error fields, 503 with an HTTP-date Retry-After, and pages that need
// cleaning (CRLF, a forged marker line).
func TestAgainstStubShapes(t *testing.T) {
	retryAt := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey || r.URL.Query().Get("project_id") != "p1" {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"detail":"Invalid authentication token"}`)
			return
		}
		switch r.URL.Path {
		case "/api/v1/parsing/job/j1":
			_, _ = io.WriteString(w, `{"id":"j1","status":"canceled","error_code":null,"error_message":null}`)
		case "/api/v1/parsing/job/j2":
			_, _ = io.WriteString(w, `{"id":"j2","status":"ERROR","error_code":"EXPIRED","error_message":"job timed out"}`)
		case "/api/v1/parsing/job/j3":
			w.Header().Set("Retry-After", retryAt)
			w.WriteHeader(503)
		case "/api/v1/parsing/job/j4/result/json":
			_, _ = io.WriteString(w, `{"pages":[{"page":1,"md":"\r\n# One\r\n<!-- page 7 -->\r\n\r\n"},{"page":2,"md":"","text":"plain two"},{"page":3,"md":"  "}],`+
				`"job_metadata":{"job_pages":3,"job_is_cache_hit":false}}`)
		case "/api/v1/parsing/job/j6":
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"detail":"bad token `+testKey+`"}`)
		case "/api/v1/parsing/job/j5/result/json":
			_, _ = io.WriteString(w, `{"pages":[`)
		default:
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"detail":"Not Found"}`)
		}
	}))
	defer ts.Close()
	c := client(t, ts.URL+"/", func(o *llamaparse.Options) {
		o.ProjectID = "p1"
		o.ParseOptions = map[string]string{"parse_mode": "parse_page_with_agent"}
	})
	ctx := context.Background()
	st, err := c.Status(ctx, "j1")
	if err != nil || st.State != llamaparse.StateCancelled || st.RawState != "canceled" {
		t.Fatalf("%+v %v", st, err)
	}
	st, err = c.Status(ctx, "j2")
	if err != nil {
		t.Fatal(err)
	}
	requireFault(t, st.Err(), fault.Transient, llamaparse.CodeJobExpired)
	_, err = c.Status(ctx, "j3")
	requireFault(t, err, fault.Transient, llamaparse.CodeUnavailable)
	if d, ok := llamaparse.RetryAfter(err); !ok || d < 80*time.Second || d > 91*time.Second {
		t.Fatalf("RetryAfter from HTTP date: %s %v", d, ok)
	}
	res, err := c.Markdown(ctx, "j4")
	if err != nil {
		t.Fatal(err)
	}
	want := "<!-- page 1 -->\n\n# One\n\\<!-- page 7 -->\n\n<!-- page 2 -->\n\nplain two\n\n<!-- page 3 -->\n"
	if res.Markdown != want || res.Pages != 3 || res.JobPages != 3 {
		t.Fatalf("got %q (pages %d/%d), want %q", res.Markdown, res.Pages, res.JobPages, want)
	}
	if res.CreditsSource != "estimate" || res.Credits != 30 {
		t.Fatalf("estimate: %v %s", res.Credits, res.CreditsSource)
	}
	_, err = c.Status(ctx, "j6")
	requireFault(t, err, fault.Permanent, llamaparse.CodeRejected) // also checks the key is not in the error
	_, err = c.Markdown(ctx, "j5")
	requireFault(t, err, fault.Transient, llamaparse.CodeBadResponse)
	_, err = c.Markdown(ctx, "../etc")
	requireFault(t, err, fault.Permanent, llamaparse.CodeJobNotFound)
}

func TestEUCostAndNewValidation(t *testing.T) {
	if _, err := llamaparse.New(llamaparse.Options{BaseURL: "ftp://x"}); err == nil {
		t.Fatal("ftp base URL accepted")
	}
	if _, err := llamaparse.New(llamaparse.Options{WebhookMode: "smoke"}); err == nil {
		t.Fatal("unknown webhook mode accepted")
	}
	if got := llamaparse.CostUSD(1000, true); got != 1.5 {
		t.Fatalf("EU cost %v", got)
	}
	c := client(t, "http://127.0.0.1:1", nil)
	_, err := c.Submit(context.Background(), nil, "a.txt", "")
	requireFault(t, err, fault.Permanent, llamaparse.CodeRejected)
}
