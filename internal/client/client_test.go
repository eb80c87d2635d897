package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

func writeProblem(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Request-Id", "req-123")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestProblemDecoding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer dpk_good" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeProblem(w, 401, `{"type":"about:blank","title":"Unauthorized","status":401,"code":"UNAUTHENTICATED","detail":"invalid or revoked API key"}`)
			return
		}
		switch r.URL.Path {
		case "/v1/jobs/nope":
			writeProblem(w, 404, `{"title":"Not Found","status":404,"code":"NOT_FOUND","detail":"job not found","instance":"/v1/jobs/nope"}`)
		case "/v1/search":
			writeProblem(w, 422, `{"title":"Unprocessable Entity","status":422,"code":"VALIDATION_FAILED","detail":"validation failed",
				"errors":[{"message":"expected value to be one of \"vector, keyword, hybrid\"","location":"body.mode"}]}`)
		case "/v1/jobs/proxy":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		default:
			writeProblem(w, 500, `{"status":500,"code":"INTERNAL","title":"Internal Server Error"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	_, err := New(srv.URL, "dpk_bad").Job(ctx, "x")
	var p *Problem
	if !errors.As(err, &p) || p.Status != 401 || p.Code != "UNAUTHENTICATED" || p.Title != "Unauthorized" || p.RequestID != "req-123" {
		t.Fatalf("401: %#v", err)
	}
	if got, want := err.Error(), "GET /v1/jobs/x: 401 UNAUTHENTICATED: invalid or revoked API key"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if StatusOf(err) != 401 || !IsCode(err, "UNAUTHENTICATED") || IsCode(errors.New("x"), "UNAUTHENTICATED") {
		t.Error("StatusOf/IsCode")
	}

	c := New(srv.URL+"/", "dpk_good") // a trailing slash is fine
	_, err = c.Job(ctx, "nope")
	if !errors.As(err, &p) || p.Code != "NOT_FOUND" || p.Detail != "job not found" || p.Instance != "/v1/jobs/nope" {
		t.Fatalf("404: %#v", err)
	}
	_, err = c.Search(ctx, "q", 5, "fuzzy")
	if !errors.As(err, &p) || p.Code != "VALIDATION_FAILED" || len(p.Errors) != 1 || !strings.Contains(err.Error(), "body.mode") {
		t.Fatalf("422 with field errors: %v", err)
	}
	_, err = c.Job(ctx, "proxy") // not a problem document: the status still comes through
	if !errors.As(err, &p) || p.Status != 502 || p.Code != "" || !strings.Contains(err.Error(), "502: Bad Gateway") {
		t.Fatalf("502 html: %v", err)
	}
	_, err = c.Job(ctx, "boom")
	if !errors.As(err, &p) || !strings.Contains(err.Error(), "500 INTERNAL: Internal Server Error") {
		t.Fatalf("500 without detail: %v", err)
	}

	_, err = New("http://127.0.0.1:1", "t").Job(ctx, "x")
	if err == nil || errors.As(err, &p) || !strings.Contains(err.Error(), "is the docpipe API at http://127.0.0.1:1 running?") {
		t.Fatalf("no server: %v", err)
	}
}

func TestRetriesTooManyRequests(t *testing.T) {
	var calls atomic.Int32
	mode := atomic.Value{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch mode.Load().(string) {
		case "twice":
			if n <= 2 {
				if n == 1 {
					w.Header().Set("Retry-After", "0")
				} else {
					w.Header().Set("Retry-After", time.Now().Add(-time.Second).UTC().Format(http.TimeFormat)) // a date in the past: now
				}
				writeProblem(w, 429, `{"status":429,"code":"RATE_LIMITED","detail":"slow down"}`)
				return
			}
			_, _ = io.WriteString(w, `{"id":"0190d9c6-8c9a-7000-8000-000000000001","status":"complete"}`)
		case "always":
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 429, `{"status":429,"code":"RATE_LIMITED","detail":"slow down"}`)
		case "minute":
			w.Header().Set("Retry-After", "60")
			writeProblem(w, 429, `{"status":429,"code":"RATE_LIMITED"}`)
		case "tomorrow":
			w.Header().Set("Retry-After", "36000")
			writeProblem(w, 429, `{"status":429,"code":"DAILY_UPLOAD_LIMIT","detail":"1000 uploads today"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "t")

	mode.Store("twice")
	j, err := c.Job(ctx, "busy")
	if err != nil || j.Status != "complete" || calls.Load() != 3 {
		t.Fatalf("429, 429, 200: %+v, %v, %d calls", j, err, calls.Load())
	}

	mode.Store("always")
	calls.Store(0)
	_, err = c.Job(ctx, "busy")
	var p *Problem
	if !errors.As(err, &p) || p.Code != "RATE_LIMITED" || calls.Load() != int32(c.MaxRetries)+1 {
		t.Fatalf("429 every time: %v after %d calls", err, calls.Load())
	}

	mode.Store("tomorrow")
	calls.Store(0)
	start := time.Now()
	_, err = c.Job(ctx, "busy")
	if !errors.As(err, &p) || p.Code != "DAILY_UPLOAD_LIMIT" || p.RetryAfter != 10*time.Hour || calls.Load() != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("a Retry-After beyond MaxRetryWait is reported, not waited for: %v, %d calls", err, calls.Load())
	}
	if !strings.Contains(err.Error(), "retry after 10h0m0s") {
		t.Errorf("Error() lacks the wait: %v", err)
	}

	// Waiting for a retry ends with the context.
	mode.Store("minute")
	c.MaxRetryWait = time.Hour
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.Job(cctx, "busy")
	if !errors.Is(err, context.DeadlineExceeded) || !IsCode(err, "RATE_LIMITED") {
		t.Fatalf("cancelled while waiting: %v", err)
	}
}

func TestUploadStreamsWithChecksumAndProgress(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notes.md")
	content := strings.Repeat("# Notes\n\nsome text about deductibles\n", 20000) // ~700 KB
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/documents" || r.Header.Get("Authorization") != "Bearer dpk_x" {
			writeProblem(w, 400, `{"status":400,"code":"MALFORMED_REQUEST"}`)
			return
		}
		if r.ContentLength <= int64(len(content)) {
			t.Errorf("content length %d: the body length should be known", r.ContentLength)
		}
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			t.Errorf("multipart: %v", err)
		}
		f, hdr, err := r.FormFile("file")
		if err != nil {
			t.Fatalf("file part: %v", err)
		}
		got, _ := io.ReadAll(f)
		if string(got) != content || hdr.Filename != "notes.md" {
			t.Errorf("file part: %d bytes named %q", len(got), hdr.Filename)
		}
		if r.FormValue("sha256") != hex.EncodeToString(sum[:]) {
			t.Errorf("sha256 field %q", r.FormValue("sha256"))
		}
		if calls.Add(1) == 1 { // the first attempt is rate limited: the retry must send everything again
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 429, `{"status":429,"code":"RATE_LIMITED"}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(apitypes.UploadResult{DocumentID: uuid.New(), JobID: uuid.New(), Status: "parse_queued",
			Bytes: int64(len(got)), SHA256: r.FormValue("sha256"), Filename: hdr.Filename})
	}))
	defer srv.Close()

	var last, total, reports int64
	res, err := New(srv.URL, "dpk_x").Upload(context.Background(), path, func(sent, tot int64) {
		if sent < 0 || sent > tot {
			t.Errorf("progress %d/%d", sent, tot)
		}
		last, total = sent, tot
		reports++
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "parse_queued" || res.Bytes != int64(len(content)) || calls.Load() != 2 {
		t.Fatalf("upload: %+v after %d calls", res, calls.Load())
	}
	if last != int64(len(content)) || total != int64(len(content)) || reports < 3 {
		t.Errorf("progress ended at %d/%d after %d reports", last, total, reports)
	}

	if _, err := New(srv.URL, "dpk_x").Upload(context.Background(), filepath.Join(dir, "missing.pdf"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New(srv.URL, "dpk_x").Upload(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: %v", err)
	}
}

func TestRequestsAndQueries(t *testing.T) {
	type seen struct{ method, uri, body string }
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs = append(reqs, seen{r.Method, r.URL.RequestURI(), string(b)})
		switch {
		case r.URL.Path == "/v1/documents" && r.URL.Query().Get("cursor") == "":
			_, _ = io.WriteString(w, `{"items":[{"filename":"a.md","status":"complete"}],"next_cursor":"c2"}`)
		case r.URL.Path == "/v1/documents":
			_, _ = io.WriteString(w, `{"items":[{"filename":"b.md","status":"complete"}]}`)
		case r.URL.Path == "/v1/jobs":
			_, _ = io.WriteString(w, `{"items":[{"status":"failed_parse","state":"deadletter"}],"next_cursor":"n"}`)
		case r.URL.Path == "/v1/search":
			_, _ = io.WriteString(w, `{"mode":"keyword","results":[{"filename":"a.md","chunk_ord":3,"score":0.5,"keyword_rank":1}]}`)
		case strings.HasSuffix(r.URL.Path, "/events"):
			_, _ = io.WriteString(w, `{"items":[{"type":"stage_started","severity":"info","code":""}]}`)
		default:
			_, _ = io.WriteString(w, `{"status":"parse_queued","state":"queued"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "t")

	docs, err := c.Documents(ctx)
	if err != nil || len(docs) != 2 || docs[1].Filename != "b.md" {
		t.Fatalf("documents over two pages: %+v %v", docs, err)
	}
	jobs, next, err := c.JobsPage(ctx, JobsQuery{State: "deadletter", Limit: 7})
	if err != nil || len(jobs) != 1 || next != "n" {
		t.Fatalf("jobs page: %+v %q %v", jobs, next, err)
	}
	if _, err := c.Jobs(ctx, ""); err != nil {
		t.Fatal(err)
	}
	hits, err := c.Search(ctx, "QX-44721-ZB", 3, "keyword")
	if err != nil || len(hits) != 1 || hits[0].Ord != 3 || hits[0].KeywordRank != 1 {
		t.Fatalf("search: %+v %v", hits, err)
	}
	if evs, err := c.Events(ctx, "d/1"); err != nil || len(evs) != 1 {
		t.Fatalf("events: %+v %v", evs, err)
	}
	if _, err := c.Retry(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, "j1", "wrong file"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, "j2", ""); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"GET", "/v1/documents?limit=500", ""},
		{"GET", "/v1/documents?cursor=c2&limit=500", ""},
		{"GET", "/v1/jobs?limit=7&state=deadletter", ""},
		{"GET", "/v1/jobs", ""},
		{"POST", "/v1/search", `{"query":"QX-44721-ZB","k":3,"mode":"keyword"}`}, // apitypes.SearchRequest, in its field order
		{"GET", "/v1/documents/d%2F1/events", ""},
		{"POST", "/v1/jobs/j1/retry", ""},
		{"POST", "/v1/jobs/j1/cancel", `{"reason":"wrong file"}`},
		{"POST", "/v1/jobs/j2/cancel", ""},
	}
	if len(reqs) != len(want) {
		t.Fatalf("requests:\n%+v", reqs)
	}
	for i := range want {
		if reqs[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, reqs[i], want[i])
		}
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Sun, 29 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 29 Nov 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
