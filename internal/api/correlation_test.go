package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/llamaparse"
)

// A client chooses a run's correlation id with X-Correlation-Id on the request that
// starts it (multipart upload, or complete of a signed upload); the response echoes
// it in the body and the header; a duplicate keeps the existing run's; a value that
// is not a UUID is 422 INVALID_CORRELATION_ID and nothing is stored.
func TestClientCorrelationID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{signed: true})
	tok := token(t, userA)
	corr := uuid.New()
	data := smallDoc("Correlated", "a document with a correlation id chosen by the client")

	r := h.upload(tok, "c.md", data, "", apitypes.CorrelationHeader, corr.String())
	if r.status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var res apitypes.UploadResult
	r.json(t, &res)
	if res.CorrelationID != corr || r.header.Get(apitypes.CorrelationHeader) != corr.String() {
		t.Fatalf("correlation id %s, header %q, want %s", res.CorrelationID, r.header.Get(apitypes.CorrelationHeader), corr)
	}
	var job apitypes.Job
	h.getJSON("/v1/jobs/"+res.JobID.String(), tok, &job)
	if job.CorrelationID != corr {
		t.Fatalf("run's correlation id %s, want %s", job.CorrelationID, corr)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.events WHERE correlation_id = $1`, corr); n == 0 {
		t.Fatal("no event carries the client's correlation id")
	}

	// The same bytes again with another id: the existing run, and its id.
	r = h.upload(tok, "c.md", data, "", apitypes.CorrelationHeader, uuid.NewString())
	var dup apitypes.UploadResult
	r.json(t, &dup)
	if r.status != http.StatusOK || !dup.Duplicate || dup.CorrelationID != corr || r.header.Get(apitypes.CorrelationHeader) != corr.String() {
		t.Fatalf("duplicate: %d %+v (header %q), want the original run's correlation id %s", r.status, dup, r.header.Get(apitypes.CorrelationHeader), corr)
	}

	// Without the header the server makes one.
	r = h.upload(tok, "d.md", smallDoc("Plain", "no correlation id sent"), "")
	var plain apitypes.UploadResult
	r.json(t, &plain)
	if r.status != http.StatusAccepted || plain.CorrelationID == uuid.Nil || plain.CorrelationID == corr {
		t.Fatalf("upload without the header: %d %+v", r.status, plain)
	}

	for _, bad := range []string{"not-a-uuid", uuid.Nil.String(), strings.Repeat("a", 300)} {
		h.upload(tok, "e.md", smallDoc("Bad", bad), "", apitypes.CorrelationHeader, bad).problem(t, 422, apitypes.CodeCorrelationIDBad)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.documents`); n != 2 {
		t.Fatalf("%d documents, want 2 (rejected uploads store nothing)", n)
	}

	// Signed-URL flow: the header goes on complete, the request that starts the run.
	signed := smallDoc("Signed", "uploaded through a signed URL with a correlation id")
	tk := h.ticket(tok, "s.md", signed, sha256hex(signed))
	if r := h.put(tk.UploadURL, signed); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	completePath := "/v1/uploads/" + tk.DocumentID.String() + "/complete"
	h.do(http.MethodPost, completePath, tok, nil, apitypes.CorrelationHeader, "nope").problem(t, 422, apitypes.CodeCorrelationIDBad)
	corr2 := uuid.New()
	r = h.do(http.MethodPost, completePath, tok, nil, apitypes.CorrelationHeader, corr2.String())
	var done apitypes.UploadResult
	r.json(t, &done)
	if r.status != http.StatusAccepted || done.CorrelationID != corr2 || r.header.Get(apitypes.CorrelationHeader) != corr2.String() {
		t.Fatalf("complete: %d %+v (header %q), want correlation id %s", r.status, done, r.header.Get(apitypes.CorrelationHeader), corr2)
	}
	h.getJSON("/v1/jobs/"+done.JobID.String(), tok, &job)
	if job.CorrelationID != corr2 {
		t.Fatalf("signed run's correlation id %s, want %s", job.CorrelationID, corr2)
	}
	// Declaring the same bytes again: a duplicate ticket with the run's correlation id.
	r = h.postJSON("/v1/uploads", tok, map[string]any{"filename": "s.md", "bytes_len": len(signed), "sha256": sha256hex(signed)})
	var again apitypes.UploadTicket
	r.json(t, &again)
	if !again.Duplicate || again.CorrelationID == nil || *again.CorrelationID != corr2 {
		t.Fatalf("duplicate ticket %+v", again)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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

// The request log line carries the run's correlation id (the upload's, and a
// request about the run's document or job), and logs the webhook path with its
// token masked.
func TestRequestLogCorrelationAndRedaction(t *testing.T) {
	t.Parallel()
	secret := []byte("webhook-secret-0123456789")
	h := newHarness(t, harnessOpts{webhookSecret: secret})
	var logs syncBuffer
	emb, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	srv, err := api.New(api.Deps{Pool: h.pool, Pipe: h.pipe, Store: h.store, Embedder: emb,
		Log: slog.New(slog.NewJSONHandler(&logs, nil))}, api.Options{JWT: auth.JWTOptions{HS256Secret: hsSecret, Audience: "authenticated"}, RatePerSecond: -1})
	dbtest.Must(t, err, "api")
	ts := httptest.NewServer(srv)
	defer ts.Close()
	h2 := *h
	h2.srv = ts

	tok := token(t, userA)
	corr := uuid.New()
	r := h2.upload(tok, "l.md", smallDoc("Logged", "request log"), "", apitypes.CorrelationHeader, corr.String())
	var res apitypes.UploadResult
	r.json(t, &res)
	var doc apitypes.Document
	h2.getJSON("/v1/documents/"+res.DocumentID.String(), tok, &doc)
	job := res.JobID.String()
	hook := llamaparse.WebhookToken(secret, job)
	body := `{"event_id":"ev-1","event_type":"parse.success","data":{"job_id":"remote-1"}}`
	if r := h2.do(http.MethodPost, "/v1/webhooks/llamaparse/"+job+"/"+hook, "", strings.NewReader(body)); r.status != 200 {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}

	out := logs.String()
	if strings.Contains(out, hook) {
		t.Fatalf("the webhook token is in the request log:\n%s", out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		dbtest.Must(t, json.Unmarshal([]byte(line), &rec), "log line %s", line)
		if rec["msg"] != "http request" {
			continue
		}
		key := rec["method"].(string) + " " + rec["path"].(string)
		seen[key] = true
		if rec["correlation_id"] != corr.String() {
			t.Errorf("%s: correlation_id %v, want %s", key, rec["correlation_id"], corr)
		}
	}
	for _, want := range []string{"POST /v1/documents", "GET /v1/documents/" + res.DocumentID.String(),
		"POST /v1/webhooks/llamaparse/" + job + "/REDACTED"} {
		if !seen[want] {
			t.Errorf("no request log line %q in:\n%s", want, out)
		}
	}
}
