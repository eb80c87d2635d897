package mock

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pdfgen"
)

// lpTestParser is a parser per test with a persistent wazero cache (no
// TestMain here: other files of this package own their own tests).
func lpTestParser(t *testing.T) *parse.Local {
	t.Helper()
	p := parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-mock-llamaparse-test-wazero-cache")})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func lpStart(t *testing.T, opts LlamaParseOptions) (*LlamaParseServer, string) {
	t.Helper()
	if opts.Parser == nil {
		opts.Parser = lpTestParser(t)
	}
	s := NewLlamaParseServer(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = s.Close() })
	return s, ts.URL
}

type lpResp struct {
	code   int
	header http.Header
	body   []byte
}

func (r lpResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func lpDo(t *testing.T, method, u, key, ctype string, body []byte) lpResp {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return lpResp{resp.StatusCode, resp.Header, b}
}

// lpForm builds a multipart body with an optional file and fields.
func lpForm(t *testing.T, filename string, data []byte, fields map[string]string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if filename != "" {
		fw, err := w.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	_ = w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func lpUpload(t *testing.T, base, prefix, key, filename string, data []byte, fields map[string]string) lpResp {
	t.Helper()
	ct, body := lpForm(t, filename, data, fields)
	return lpDo(t, http.MethodPost, base+prefix+"/upload", key, ct, body)
}

func lpWaitDone(t *testing.T, base, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/"+id, "", "", nil)
		if r.code != 200 {
			t.Fatalf("status %d %s", r.code, r.body)
		}
		m := r.json(t)
		if m["status"] != "PENDING" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still PENDING", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLlamaParseShapes(t *testing.T) {
	const delay = 200 * time.Millisecond
	s, base := lpStart(t, LlamaParseOptions{Delay: delay, Seed: 7})
	md := []byte("# Plan\n\nDeductible: $250.\n")
	start := time.Now()
	r := lpUpload(t, base, "/api/v1/parsing", "", "plan.md", md, map[string]string{"parse_mode": "parse_page_with_llm", "result_type": "markdown"})
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("upload %d %s", r.code, r.body)
	}
	up := r.json(t)
	id, _ := up["id"].(string)
	if len(id) != 36 || up["status"] != "PENDING" || len(up) != 4 || up["error_code"] != nil || up["error_message"] != nil {
		t.Fatalf("upload body %s", r.body)
	}
	if _, ok := up["error_code"]; !ok {
		t.Fatal("error_code must be present (null)")
	}

	st := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/"+id, "", "", nil).json(t)
	if st["status"] != "PENDING" || st["id"] != id {
		t.Fatalf("status %v", st)
	}
	if r := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/"+id+"/result/markdown", "", "", nil); r.code != 404 || r.json(t)["detail"] == nil {
		t.Fatalf("result before done: %d %s", r.code, r.body)
	}

	st = lpWaitDone(t, base, id)
	if st["status"] != "SUCCESS" || time.Since(start) < delay {
		t.Fatalf("final %v after %s", st, time.Since(start))
	}
	for _, prefix := range []string{"/api/v1/parsing", "/api/parsing"} {
		j := base + prefix + "/job/" + id
		m := lpDo(t, http.MethodGet, j+"/result/markdown", "", "", nil).json(t)
		meta, _ := m["job_metadata"].(map[string]any)
		if m["markdown"] != string(md) || meta["job_pages"] != 1.0 || meta["job_is_cache_hit"] != false || meta["credits_used"] != 3.0 {
			t.Fatalf("%s markdown result %v", prefix, m)
		}
		if m := lpDo(t, http.MethodGet, j+"/result/text", "", "", nil).json(t); m["text"] != string(md) || m["job_metadata"] == nil {
			t.Fatalf("text result %v", m)
		}
		m = lpDo(t, http.MethodGet, j+"/result/json", "", "", nil).json(t)
		if pages, ok := m["pages"].([]any); !ok || len(pages) != 0 || m["job_id"] != id || m["file_path"] != "plan.md" {
			t.Fatalf("json result %v", m)
		}
		if r := lpDo(t, http.MethodGet, j+"/result/raw/markdown", "", "", nil); r.code != 200 || string(r.body) != string(md) {
			t.Fatalf("raw markdown %d %q", r.code, r.body)
		}
		if r := lpDo(t, http.MethodGet, j+"/result/xlsx", "", "", nil); r.code != 404 {
			t.Fatalf("xlsx %d", r.code)
		}
	}
	if r := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/nope", "", "", nil); r.code != 404 || r.json(t)["detail"] != "Job not found" {
		t.Fatalf("unknown job %d %s", r.code, r.body)
	}
	if r := lpDo(t, http.MethodGet, base+"/api/v2/parse", "", "", nil); r.code != 404 || r.json(t)["detail"] != "Not Found" {
		t.Fatalf("unknown route %d %s", r.code, r.body)
	}
	if st := s.Stats(); st.Uploads != 1 || st.JobsCreated != 1 || st.StatusCalls < 3 || st.ResultCalls != 11 {
		t.Fatalf("stats %+v", st)
	}
	if got, ok := s.JobStatus(id); !ok || got != "SUCCESS" {
		t.Fatalf("JobStatus %q %v", got, ok)
	}
}

func TestLlamaParsePDFPagesSeparatorAndCache(t *testing.T) {
	p := lpTestParser(t)
	_, base := lpStart(t, LlamaParseOptions{Parser: p})
	pdf := pdfgen.Build([][]string{{"First page text."}, {}, {"Third page, line one.", "Line two."}})
	want, err := p.Parse(context.Background(), pdf, "three.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if want.Pages != 3 {
		t.Fatalf("local parser: %d pages", want.Pages)
	}
	fields := map[string]string{"page_separator": "\n=== {page_number} ===\n", "page_prefix": "[p{pageNumber}]", "parse_mode": "parse_page_without_llm"}
	id := lpUpload(t, base, "/api/parsing", "", "three.pdf", pdf, fields).json(t)["id"].(string)
	if st := lpWaitDone(t, base, id); st["status"] != "SUCCESS" {
		t.Fatalf("%v", st)
	}
	j := base + "/api/v1/parsing/job/" + id
	js := lpDo(t, http.MethodGet, j+"/result/json", "", "", nil).json(t)
	pages := js["pages"].([]any)
	nums, bodies := lpSplitLocal(want.Markdown)
	if len(pages) != 3 {
		t.Fatalf("%d json pages", len(pages))
	}
	for i, pg := range pages {
		m := pg.(map[string]any)
		if m["page"] != float64(i+1) || m["md"] != bodies[i] || m["text"] != bodies[i] || m["noTextContent"] != (bodies[i] == "") {
			t.Fatalf("page %d: %v", i+1, m)
		}
	}
	if lpJoinLocal(nums, bodies) != want.Markdown {
		t.Fatal("split/join does not round-trip the local parser's layout")
	}
	md := lpDo(t, http.MethodGet, j+"/result/markdown", "", "", nil).json(t)
	wantMD := "[p1]" + bodies[0] + "\n=== 2 ===\n[p2]" + bodies[1] + "\n=== 3 ===\n[p3]" + bodies[2]
	if md["markdown"] != wantMD {
		t.Fatalf("markdown %q, want %q", md["markdown"], wantMD)
	}
	meta := md["job_metadata"].(map[string]any)
	if meta["job_pages"] != 3.0 || meta["credits_used"] != 3.0 || meta["job_is_cache_hit"] != false {
		t.Fatalf("meta %v", meta)
	}

	// The same file and options again: cache hit, free. invalidate_cache and
	// do_not_cache bypass the cache.
	for _, tc := range []struct {
		extra string
		hit   bool
	}{{"", true}, {"invalidate_cache", false}, {"do_not_cache", false}} {
		f := map[string]string{}
		for k, v := range fields {
			f[k] = v
		}
		if tc.extra != "" {
			f[tc.extra] = "true"
		}
		id := lpUpload(t, base, "/api/v1/parsing", "", "three.pdf", pdf, f).json(t)["id"].(string)
		lpWaitDone(t, base, id)
		m := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/"+id+"/result/json", "", "", nil).json(t)
		meta := m["job_metadata"].(map[string]any)
		if meta["job_is_cache_hit"] != tc.hit || (tc.hit && meta["credits_used"] != 0.0) || len(m["pages"].([]any)) != 3 {
			t.Fatalf("%q: meta %v", tc.extra, meta)
		}
	}
}

func TestLlamaParseRejections(t *testing.T) {
	_, base := lpStart(t, LlamaParseOptions{APIKey: "llx-key", StrictWebhookURL: true, MaxFileBytes: 1 << 10, WebhookDrop: 1})
	up := base + "/api/v1/parsing/upload"
	ct, body := lpForm(t, "a.txt", []byte("hello"), nil)

	for _, key := range []string{"", "llx-wrong"} {
		r := lpDo(t, http.MethodPost, up, key, ct, body)
		if r.code != 401 || r.json(t)["detail"] != "Invalid authentication token" {
			t.Fatalf("key %q: %d %s", key, r.code, r.body)
		}
	}
	if r := lpDo(t, http.MethodGet, base+"/api/parsing/job/x", "llx-wrong", "", nil); r.code != 401 {
		t.Fatalf("legacy status with wrong key: %d", r.code)
	}
	req, _ := http.NewRequest(http.MethodPost, up, bytes.NewReader(body))
	req.Header.Set("Authorization", "bearer llx-key")
	req.Header.Set("Content-Type", ct)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("lower-case bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	validation := func(r lpResp, field string) {
		t.Helper()
		var v struct {
			Detail []struct {
				Loc []string `json:"loc"`
				Msg string   `json:"msg"`
			} `json:"detail"`
		}
		if r.code != 422 || json.Unmarshal(r.body, &v) != nil || len(v.Detail) != 1 || v.Detail[0].Loc[1] != field || v.Detail[0].Msg == "" {
			t.Fatalf("want 422 on %s, got %d %s", field, r.code, r.body)
		}
	}
	validation(lpDo(t, http.MethodPost, up, "llx-key", "application/json", []byte(`{}`)), "file")
	validation(lpUpload(t, base, "/api/v1/parsing", "llx-key", "a.txt", []byte("x"), map[string]string{"parse_mode": "turbo"}), "parse_mode")
	validation(lpUpload(t, base, "/api/v1/parsing", "llx-key", "a.txt", []byte("x"), map[string]string{"webhook_configurations": "{oops"}), "webhook_configurations")
	validation(lpUpload(t, base, "/api/v1/parsing", "llx-key", "a.txt", []byte("x"), map[string]string{"webhook_url": "http://hooks.example.com/x"}), "webhook_url")
	validation(lpUpload(t, base, "/api/v1/parsing", "llx-key", "a.txt", []byte("x"), map[string]string{"webhook_url": "https://127.0.0.1/x"}), "webhook_url")
	if r := lpUpload(t, base, "/api/v1/parsing", "llx-key", "a.txt", []byte("x"), map[string]string{"webhook_url": "https://hooks.example.com/x"}); r.code != 200 {
		t.Fatalf("valid webhook_url: %d %s", r.code, r.body)
	}
	if r := lpUpload(t, base, "/api/v1/parsing", "llx-key", "", nil, map[string]string{"language": "en"}); r.code != 400 {
		t.Fatalf("no file: %d %s", r.code, r.body)
	}
	if r := lpUpload(t, base, "/api/v1/parsing", "llx-key", "big.txt", bytes.Repeat([]byte("a"), 2<<10), nil); r.code != 413 {
		t.Fatalf("too large: %d %s", r.code, r.body)
	}
}

func TestLlamaParseInjectedErrorsDeterministic(t *testing.T) {
	seq := func(seed int64) (codes []int, ids []string) {
		_, base := lpStart(t, LlamaParseOptions{Seed: seed, ErrorRates: map[int]float64{500: 0.3, 429: 0.2}, RetryAfter: 1500 * time.Millisecond})
		for range 30 {
			r := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/x", "", "", nil)
			codes = append(codes, r.code)
			if r.code == 429 && r.header.Get("Retry-After") != "2" {
				t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
			}
		}
		_, base = lpStart(t, LlamaParseOptions{Seed: seed})
		for range 3 {
			ids = append(ids, lpUpload(t, base, "/api/v1/parsing", "", "a.txt", []byte("hi"), nil).json(t)["id"].(string))
		}
		return codes, ids
	}
	c1, i1 := seq(42)
	c2, i2 := seq(42)
	c3, i3 := seq(43)
	if !reflect.DeepEqual(c1, c2) || !reflect.DeepEqual(i1, i2) {
		t.Fatalf("same seed, different behaviour:\n%v\n%v\n%v\n%v", c1, c2, i1, i2)
	}
	if reflect.DeepEqual(c1, c3) || reflect.DeepEqual(i1, i3) {
		t.Fatal("different seeds, same behaviour")
	}
	n := map[int]int{}
	for _, c := range c1 {
		n[c]++
	}
	if n[500] == 0 || n[429] == 0 || n[404] == 0 {
		t.Fatalf("mix %v", n)
	}
}

func TestLlamaParseUploadRateLimit(t *testing.T) {
	s, base := lpStart(t, LlamaParseOptions{UploadRateLimit: 2})
	var codes []int
	for range 3 {
		codes = append(codes, lpUpload(t, base, "/api/v1/parsing", "", "a.txt", []byte("hi"), nil).code)
	}
	if !reflect.DeepEqual(codes, []int{200, 200, 429}) {
		t.Fatalf("codes %v", codes)
	}
	if st := s.Stats(); st.Uploads != 3 || st.JobsCreated != 2 || st.InjectedErrors != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLlamaParseInputURL(t *testing.T) {
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "# Remote\n\nfetched\n")
	}))
	defer src.Close()
	_, base := lpStart(t, LlamaParseOptions{})
	id := lpUpload(t, base, "/api/v1/parsing", "", "", nil, map[string]string{"input_url": src.URL + "/doc.md"}).json(t)["id"].(string)
	if st := lpWaitDone(t, base, id); st["status"] != "SUCCESS" {
		t.Fatalf("%v", st)
	}
	m := lpDo(t, http.MethodGet, base+"/api/v1/parsing/job/"+id+"/result/markdown", "", "", nil).json(t)
	if m["markdown"] != "# Remote\n\nfetched\n" {
		t.Fatalf("%v", m)
	}
}

// lpReceiver records webhook bodies and event headers.
type lpReceiver struct {
	mu     sync.Mutex
	events []string
	bodies [][]byte
	ts     *httptest.Server
}

func lpNewReceiver(t *testing.T) *lpReceiver {
	r := &lpReceiver{}
	r.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.events = append(r.events, req.URL.Path+" "+req.Header.Get("X-Webhook-Event-Type"))
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.ts.Close)
	return r
}

func (r *lpReceiver) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func TestLlamaParseErrorJobWebhooks(t *testing.T) {
	rcv := lpNewReceiver(t)
	s, base := lpStart(t, LlamaParseOptions{})
	cfg := `[{"webhook_url":"` + rcv.ts.URL + `/events","webhook_events":["parse.success","parse.error"]}]`
	id := lpUpload(t, base, "/api/v1/parsing", "", "broken.pdf", []byte("%PDF-1.4\nnot really\n"),
		map[string]string{"webhook_url": rcv.ts.URL + "/result", "webhook_configurations": cfg}).json(t)["id"].(string)
	st := lpWaitDone(t, base, id)
	if st["status"] != "ERROR" || st["error_code"] != "ERROR_DURING_PROCESSING" || st["error_message"] == nil {
		t.Fatalf("%v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rcv.snapshot()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	// The result-style webhook is sent only with a result; the event goes out.
	if got := rcv.snapshot(); !reflect.DeepEqual(got, []string{"/events parse.error"}) {
		t.Fatalf("webhooks %v", got)
	}
	var ev map[string]any
	if err := json.Unmarshal(rcv.bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	data := ev["data"].(map[string]any)
	if ev["event_type"] != "parse.error" || data["job_id"] != id || data["id"] != id || ev["event_id"] == nil {
		t.Fatalf("event %v", ev)
	}
	if ts, ok := ev["timestamp"].(float64); !ok || ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("timestamp %v", ev["timestamp"])
	}
	if st := s.Stats(); st.WebhooksSent != 1 || st.WebhooksDelivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLlamaParseCloseStopsBackgroundWork(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does net/http notice the client
		// hanging up and cancel r.Context().
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	s := NewLlamaParseServer(LlamaParseOptions{Parser: lpTestParser(t), WebhookRetryDelays: []time.Duration{time.Hour}})
	ts := httptest.NewServer(s)
	defer ts.Close()
	// A job whose webhook receiver never answers, and one that never finishes.
	lpUpload(t, ts.URL, "/api/v1/parsing", "", "a.txt", []byte("hi"), map[string]string{"webhook_url": hang.URL})
	never := NewLlamaParseServer(LlamaParseOptions{NeverFinish: true})
	nts := httptest.NewServer(never)
	defer nts.Close()
	lpUpload(t, nts.URL, "/api/v1/parsing", "", "a.txt", []byte("hi"), nil)

	deadline := time.Now().Add(10 * time.Second)
	for s.WebhooksSent() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		_ = s.Close()
		_ = never.Close() // owns its parser: closes it too
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if r := lpUpload(t, ts.URL, "/api/v1/parsing", "", "a.txt", []byte("hi"), nil); r.code != 503 {
		t.Fatalf("upload after Close: %d", r.code)
	}
	if s.Uploads() != 2 || s.StatusCalls() != 0 {
		t.Fatalf("counters %d %d", s.Uploads(), s.StatusCalls())
	}
}
