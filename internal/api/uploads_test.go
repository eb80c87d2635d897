package api_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/runstate"
)

func (h *harness) put(rawURL string, data []byte) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPut, rawURL, bytes.NewReader(data))
	dbtest.Must(h.t, err, "request")
	resp, err := h.client.Do(req)
	dbtest.Must(h.t, err, "PUT")
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
}

func (h *harness) ticket(auth, filename string, data []byte, sha string) apitypes.UploadTicket {
	h.t.Helper()
	r := h.postJSON("/v1/uploads", auth, map[string]any{"filename": filename, "bytes_len": len(data), "sha256": sha, "mime": "application/pdf"})
	if r.status != http.StatusCreated {
		h.t.Fatalf("POST /v1/uploads: %d %s", r.status, r.body)
	}
	var tk apitypes.UploadTicket
	r.json(h.t, &tk)
	if tk.UploadURL == "" || tk.ExpiresAt == nil || tk.Method != http.MethodPut || tk.Duplicate {
		h.t.Fatalf("ticket %+v", tk)
	}
	return tk
}

func (h *harness) complete(auth string, tk apitypes.UploadTicket) response {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/uploads/"+tk.DocumentID.String()+"/complete", auth, nil)
}

// The signed-URL flow takes the 232-page PDF to complete: declare, PUT, complete.
func TestSignedUploadLargePDF(t *testing.T) {
	t.Parallel()
	data := readCorpus(t, "scan_classic_hmo.pdf")
	h := newHarness(t, harnessOpts{workers: true, signed: true})
	tok := token(t, userA)

	tk := h.ticket(tok, "scan_classic_hmo.pdf", data, sha256hex(data))
	if !strings.HasPrefix(tk.UploadURL, h.srv.URL+"/v1/blobs/uploads/") {
		t.Fatalf("upload URL %s", tk.UploadURL)
	}
	h.complete(tok, tk).problem(t, 409, apitypes.CodeUploadNotFound) // nothing PUT yet
	if r := h.put(tk.UploadURL, data); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`); n != 0 {
		t.Fatalf("%d runs before complete", n)
	}
	r := h.complete(tok, tk)
	if r.status != http.StatusAccepted {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	var res apitypes.UploadResult
	r.json(t, &res)
	if res.DocumentID != tk.DocumentID || res.MIME != "application/pdf" || res.Duplicate {
		t.Fatalf("complete result %+v", res)
	}
	if tk.JobID == nil || res.JobID != *tk.JobID {
		t.Fatalf("the run is %s, the ticket promised %v", res.JobID, tk.JobID)
	}
	doc := h.waitDocument(tok, res.DocumentID, 3*time.Minute)
	if doc.Status != runstate.Complete || doc.Pages != 232 {
		t.Fatalf("document %+v", doc)
	}
	// The staging object is gone; only the verified original and the parsed markdown remain.
	for _, o := range h.objects() {
		if strings.HasPrefix(o, "uploads/") {
			t.Errorf("staging object left: %s", o)
		}
	}
	// complete again: the same document, no second run. Declaring the same bytes again:
	// no upload needed.
	r = h.complete(tok, tk)
	r.json(t, &res)
	if r.status != http.StatusOK || !res.Duplicate || res.JobID != doc.Job.ID {
		t.Fatalf("second complete: %d %s", r.status, r.body)
	}
	r = h.postJSON("/v1/uploads", tok, map[string]any{"filename": "again.pdf", "bytes_len": len(data), "sha256": sha256hex(data)})
	var again apitypes.UploadTicket
	r.json(t, &again)
	if r.status != http.StatusOK || !again.Duplicate || again.UploadURL != "" || again.JobID == nil || *again.JobID != doc.Job.ID {
		t.Fatalf("declaring known bytes: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`); n != 1 {
		t.Fatalf("%d runs", n)
	}
}

// Bytes that do not match the declaration never start a run and are deleted;
// tampered, expired, wrong-method and other-object URLs get 403.
func TestSignedUploadRejections(t *testing.T) {
	t.Parallel()
	clock := time.Now()
	h := newHarness(t, harnessOpts{signed: true, api: api.Options{MaxUploadBytes: 1 << 20, Now: func() time.Time { return clock }}})
	tok := token(t, userA)
	data := smallDoc("Plan", "The annual deductible is $500 per member.")

	// Wrong bytes of the right size, then a different size.
	tk := h.ticket(tok, "plan.md", data, sha256hex(data))
	wrong := bytes.ToUpper(data)
	if r := h.put(tk.UploadURL, wrong); r.status != 200 {
		t.Fatalf("PUT: %d", r.status)
	}
	h.complete(tok, tk).problem(t, 422, apitypes.CodeChecksumMismatch)
	if r := h.put(tk.UploadURL, append(data, '!')); r.status != 200 {
		t.Fatalf("PUT: %d", r.status)
	}
	h.complete(tok, tk).problem(t, 422, apitypes.CodeSizeMismatch)
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`) + h.count(`SELECT count(*) FROM upload_pipeline.documents`); n != 0 {
		t.Fatalf("%d rows after mismatched uploads", n)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Fatalf("objects left after mismatched uploads: %v", objs)
	}

	// Tampering: another object, another signature, another method, a later expiry.
	u, err := url.Parse(tk.UploadURL)
	dbtest.Must(t, err, "parse URL")
	q := u.Query()
	other := *u
	other.Path = strings.Replace(u.Path, userA.String(), userB.String(), 1)
	if r := h.put(other.String(), data); r.status != http.StatusForbidden {
		t.Errorf("PUT to another object: %d", r.status)
	}
	bad := *u
	q2 := url.Values{"expires": q["expires"], "signature": {strings.Repeat("0", 64)}}
	bad.RawQuery = q2.Encode()
	if r := h.put(bad.String(), data); r.status != http.StatusForbidden {
		t.Errorf("PUT with a forged signature: %d", r.status)
	}
	later := *u
	later.RawQuery = url.Values{"expires": {"99999999999"}, "signature": q["signature"]}.Encode()
	if r := h.put(later.String(), data); r.status != http.StatusForbidden {
		t.Errorf("PUT with a moved expiry: %d", r.status)
	}
	if r := h.do(http.MethodGet, strings.TrimPrefix(tk.UploadURL, h.srv.URL), "", nil); r.status != http.StatusForbidden {
		t.Errorf("GET with a PUT URL: %d", r.status)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Fatalf("objects after rejected PUTs: %v", objs)
	}

	// Too large to declare; another tenant cannot complete A's upload.
	h.postJSON("/v1/uploads", tok, map[string]any{"filename": "big.pdf", "bytes_len": 2 << 20, "sha256": sha256hex(data)}).problem(t, 413, apitypes.CodeTooLarge)
	h.postJSON("/v1/uploads", tok, map[string]any{"filename": "x", "bytes_len": 10, "sha256": "nope"}).problem(t, 422, apitypes.CodeValidation)
	if r := h.put(tk.UploadURL, data); r.status != 200 {
		t.Fatalf("PUT: %d", r.status)
	}
	h.complete(token(t, userB), tk).problem(t, 404, apitypes.CodeNotFound)

	// The URL expires: the server's clock moves past expires_at.
	clock = clock.Add(time.Hour)
	if r := h.put(tk.UploadURL, data); r.status != http.StatusForbidden {
		t.Errorf("PUT after expiry: %d", r.status)
	}
	// Bytes PUT before the expiry can still be completed.
	if r := h.complete(tok, tk); r.status != http.StatusAccepted {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
}

// Without a signing store the flow says so.
func TestSignedUploadUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	data := []byte("hello")
	h.postJSON("/v1/uploads", token(t, userA), map[string]any{"filename": "x.txt", "bytes_len": len(data), "sha256": sha256hex(data)}).
		problem(t, 501, apitypes.CodeSignedUploadsOff)
}
