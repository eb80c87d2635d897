package api_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

// The 232-page PDF through the multipart upload to complete, then readable through
// every document endpoint, searchable, and deletable without leftovers.
func TestUploadLargePDFToComplete(t *testing.T) {
	t.Parallel()
	data := readCorpus(t, "scan_classic_hmo.pdf")
	h := newHarness(t, harnessOpts{workers: true})
	tok := token(t, userA)

	// With an Idempotency-Key the 2.5 MB body is spooled to a temporary file first.
	up := h.upload(tok, "scan_classic_hmo.pdf", data, sha256hex(data), "Idempotency-Key", "big-pdf")
	if up.status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", up.status, up.body)
	}
	var res apitypes.UploadResult
	up.json(t, &res)
	if again := h.upload(tok, "scan_classic_hmo.pdf", data, sha256hex(data), "Idempotency-Key", "big-pdf"); again.status != http.StatusAccepted ||
		again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, up.body) {
		t.Fatalf("replay: %d %s", again.status, again.body)
	}
	if res.Duplicate || res.SHA256 != sha256hex(data) || res.MIME != "application/pdf" || res.Bytes != int64(len(data)) {
		t.Fatalf("upload result %+v", res)
	}
	if !strings.HasSuffix(res.Location, "/v1/documents/"+res.DocumentID.String()) {
		t.Errorf("location %q", res.Location)
	}
	doc := h.waitDocument(tok, res.DocumentID, 3*time.Minute)
	if doc.Status != runstate.Complete || doc.Percent != 100 || doc.Pages != 232 || doc.Job == nil {
		t.Fatalf("document %+v", doc)
	}
	if doc.Chunks < 100 || doc.Chunks != doc.Job.ChunksTotal || doc.Job.FinishedAt == nil || doc.Job.LastError != nil {
		t.Fatalf("document counts: chunks %d, job %+v", doc.Chunks, doc.Job)
	}

	var job apitypes.Job
	h.getJSON("/v1/jobs/"+res.JobID.String(), tok, &job)
	if job.ID != res.JobID || job.Status != runstate.Complete || job.State != runstate.Done {
		t.Fatalf("job %+v", job)
	}

	// Chunks page by ordinal until the last page.
	var all []apitypes.Chunk
	after := -1
	for {
		var page struct {
			Items     []apitypes.Chunk `json:"items"`
			NextAfter *int             `json:"next_after"`
		}
		h.getJSON(fmt.Sprintf("/v1/documents/%s/chunks?limit=40&after=%d", res.DocumentID, after), tok, &page)
		all = append(all, page.Items...)
		if page.NextAfter == nil {
			break
		}
		after = *page.NextAfter
	}
	if len(all) != doc.Chunks {
		t.Fatalf("paged %d chunks, document has %d", len(all), doc.Chunks)
	}
	for i, c := range all {
		if c.Ord != i || c.Text == "" {
			t.Fatalf("chunk %d: ord %d, %d bytes of text", i, c.Ord, len(c.Text))
		}
	}

	var events struct{ Items []apitypes.Event }
	h.getJSON("/v1/documents/"+res.DocumentID.String()+"/events", tok, &events)
	codes := map[string]bool{}
	for _, e := range events.Items {
		codes[e.Code] = true
		if e.JobID != res.JobID {
			t.Errorf("event %s of job %s", e.Code, e.JobID)
		}
	}
	if !codes["UPLOAD_ACCEPTED"] || !codes["DOCUMENT_COMPLETE"] {
		t.Errorf("event codes %v", codes)
	}

	var sr struct{ Results []apitypes.SearchHit }
	h.postJSON("/v1/search", tok, map[string]any{"query": "prior authorization", "k": 3}).json(t, &sr)
	if len(sr.Results) == 0 || !strings.Contains(strings.ToLower(sr.Results[0].Text), "prior authorization") {
		t.Fatalf("hybrid search: %+v", sr.Results)
	}

	// Delete: rows, vectors and objects go.
	if len(h.objects()) == 0 {
		t.Fatal("no stored objects before delete")
	}
	if r := h.do(http.MethodDelete, "/v1/documents/"+res.DocumentID.String(), tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	h.do(http.MethodGet, "/v1/documents/"+res.DocumentID.String(), tok, nil).problem(t, 404, apitypes.CodeNotFound)
	for _, table := range []string{"documents", "upload_jobs", "document_chunks", "document_chunk_buffer", "document_vector_buffer", "events"} {
		if n := h.count(`SELECT count(*) FROM upload_pipeline.` + table); n != 0 {
			t.Errorf("%s: %d rows left after delete", table, n)
		}
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("objects left after delete: %v", objs)
	}
	h.do(http.MethodDelete, "/v1/documents/"+res.DocumentID.String(), tok, nil).problem(t, 404, apitypes.CodeNotFound)
}

// A declared sha256 that does not match is rejected and nothing is stored or queued;
// the same bytes twice are one document and one run.
func TestChecksumAndDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	tok := token(t, userA)
	data := smallDoc("Plan", "The annual deductible is $500 per member.")

	wrong := sha256hex([]byte("something else"))
	p := h.upload(tok, "plan.md", data, wrong).problem(t, 422, apitypes.CodeChecksumMismatch)
	if !strings.Contains(p.Detail, wrong) {
		t.Errorf("detail %q does not name the declared digest", p.Detail)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`) + h.count(`SELECT count(*) FROM upload_pipeline.documents`) +
		h.count(`SELECT count(*) FROM river_job`); n != 0 {
		t.Fatalf("%d rows after a rejected upload", n)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Fatalf("objects after a rejected upload: %v", objs)
	}

	first := h.uploadOK(tok, "plan.md", data)
	r := h.upload(tok, "copy of plan.md", data, strings.ToUpper(sha256hex(data)))
	if r.status != http.StatusOK {
		t.Fatalf("second upload: %d %s", r.status, r.body)
	}
	var second apitypes.UploadResult
	r.json(t, &second)
	if !second.Duplicate || second.DocumentID != first.DocumentID || second.JobID != first.JobID {
		t.Fatalf("second upload %+v, first %+v", second, first)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`); n != 1 {
		t.Fatalf("%d runs for the same bytes", n)
	}
	// Another user uploading the same bytes gets their own document.
	other := h.uploadOK(token(t, userB), "plan.md", data)
	if other.DocumentID == first.DocumentID {
		t.Fatal("two users share a document id")
	}
}

// Oversized, wrong-type and malformed uploads get their status and code and leave no
// rows or objects behind.
func TestUploadRejections(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{api: api.Options{MaxUploadBytes: 4096, AllowedMIME: []string{"application/pdf", "text/markdown", "text/plain"}}})
	tok := token(t, userA)

	big := bytes.Repeat([]byte("All work and no play. "), 400)
	h.upload(tok, "big.txt", big, "").problem(t, 413, apitypes.CodeTooLarge)
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
	h.upload(tok, "picture.png", png, "").problem(t, 415, apitypes.CodeUnsupportedType)
	h.upload(tok, "policy.pdf", []byte("just some text, not a PDF"), "").problem(t, 415, apitypes.CodeTypeMismatch)
	h.upload(tok, "page.html", []byte("<!doctype html><html><body><p>Hi</p></body></html>"), "").problem(t, 415, apitypes.CodeUnsupportedType)
	h.upload(tok, "empty.txt", nil, "").problem(t, 422, apitypes.CodeEmptyFile)
	h.upload(tok, "x.txt", []byte("hello"), "not-a-digest").problem(t, 422, apitypes.CodeValidation)
	h.do(http.MethodPost, "/v1/documents", tok, strings.NewReader(`{"file":"x"}`)).problem(t, 415, apitypes.CodeUnsupportedType)
	h.do(http.MethodPost, "/v1/documents", tok, strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhi"),
		"Content-Type", "multipart/form-data; boundary=b").problem(t, 400, apitypes.CodeMalformed)
	var nofile bytes.Buffer
	mw := multipart.NewWriter(&nofile)
	dbtest.Must(t, mw.WriteField("filename", "x.txt"), "field")
	dbtest.Must(t, mw.Close(), "close")
	h.do(http.MethodPost, "/v1/documents", tok, &nofile, "Content-Type", mw.FormDataContentType()).problem(t, 422, apitypes.CodeValidation)

	h.postJSON("/v1/search", tok, map[string]any{"query": "", "k": 5}).problem(t, 422, apitypes.CodeValidation)
	h.postJSON("/v1/search", tok, map[string]any{"query": "x", "mode": "psychic"}).problem(t, 422, apitypes.CodeValidation)
	h.do(http.MethodPost, "/v1/search", tok, strings.NewReader("{not json")).problem(t, 400, apitypes.CodeMalformed)
	h.do(http.MethodGet, "/v1/documents?cursor=bm9wZQ", tok, nil).problem(t, 400, apitypes.CodeMalformed)
	h.do(http.MethodGet, "/v1/nothing-here", tok, nil).problem(t, 404, apitypes.CodeRouteNotFound)
	r := h.do(http.MethodPut, "/v1/search", tok, nil)
	r.problem(t, 405, apitypes.CodeMethodNotAllowed)
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}

	for _, table := range []string{"documents", "upload_jobs", "events", "api_upload_quota"} {
		if n := h.count(`SELECT count(*) FROM upload_pipeline.` + table); n != 0 {
			t.Errorf("%s: %d rows after rejected requests", table, n)
		}
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("objects after rejected uploads: %v", objs)
	}
}

// Idempotency-Key: a retry replays the first response, a different request under the
// same key is refused.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	tok := token(t, userA)
	data := smallDoc("Rider", "Dental cleanings are covered twice a year.")

	first := h.upload(tok, "rider.md", data, "", "Idempotency-Key", "upload-1")
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := h.upload(tok, "rider.md", data, "", "Idempotency-Key", "upload-1") // new multipart boundary, same form
	if again.status != http.StatusAccepted || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %q %s (first %s)", again.status, again.header.Get("Idempotent-Replayed"), again.body, first.body)
	}
	if again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("replayed Location %q, first %q", again.header.Get("Location"), first.header.Get("Location"))
	}
	h.upload(tok, "other.md", smallDoc("Other", "Different bytes."), "", "Idempotency-Key", "upload-1").
		problem(t, 422, apitypes.CodeIdempotencyReuse)
	// Keys are per credential: another user's identical key is independent.
	if r := h.upload(token(t, userB), "rider.md", data, "", "Idempotency-Key", "upload-1"); r.status != http.StatusAccepted {
		t.Fatalf("user B, same key: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.upload_jobs`); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
	// JSON POSTs too.
	s1 := h.postJSON("/v1/search", tok, map[string]any{"query": "dental", "mode": "keyword"}, "Idempotency-Key", "s")
	s2 := h.postJSON("/v1/search", tok, map[string]any{"query": "dental", "mode": "keyword"}, "Idempotency-Key", "s")
	if s1.status != 200 || s2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("search replay: %d, replayed %q", s1.status, s2.header.Get("Idempotent-Replayed"))
	}
}

// Limits: per-credential token bucket (429 + Retry-After), uploads per day, active runs.
func TestLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{api: api.Options{RatePerSecond: 0.01, RateBurst: 2, UploadsPerDay: 2, MaxActiveJobs: 50}})
	tok := token(t, userA)
	for i := range 2 {
		if r := h.do(http.MethodGet, "/v1/documents", tok, nil); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	r := h.do(http.MethodGet, "/v1/documents", tok, nil)
	r.problem(t, 429, apitypes.CodeRateLimited)
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	// Another credential has its own bucket; health checks are not limited.
	if r := h.do(http.MethodGet, "/v1/documents", token(t, userB), nil); r.status != 200 {
		t.Fatalf("user B: %d", r.status)
	}
	if r := h.do(http.MethodGet, "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}

	h2 := newHarness(t, harnessOpts{api: api.Options{UploadsPerDay: 2, MaxActiveJobs: 50}})
	h2.uploadOK(tok, "a.md", smallDoc("A", "one"))
	h2.uploadOK(tok, "b.md", smallDoc("B", "two"))
	if r := h2.upload(tok, "a.md", smallDoc("A", "one"), ""); r.status != 200 { // duplicates do not count
		t.Fatalf("duplicate over the daily limit: %d %s", r.status, r.body)
	}
	r = h2.upload(tok, "c.md", smallDoc("C", "three"), "")
	r.problem(t, 429, apitypes.CodeDailyUploadLimit)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("daily limit without Retry-After")
	}

	h3 := newHarness(t, harnessOpts{api: api.Options{MaxActiveJobs: 1}}) // no workers: runs stay queued
	h3.uploadOK(tok, "a.md", smallDoc("A", "one"))
	r = h3.upload(tok, "b.md", smallDoc("B", "two"), "")
	r.problem(t, 429, apitypes.CodeActiveJobsLimit)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("active-jobs limit without Retry-After")
	}
	h3.uploadOK(token(t, userB), "b.md", smallDoc("B", "two")) // per user
}

// Cancel dead-letters a queued run with CANCELLED; retry re-drives it to complete.
func TestCancelAndRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{}) // no workers yet: the run waits in parse_queued
	tok := token(t, userA)
	res := h.uploadOK(tok, "notes.md", smallDoc("Notes", "Claims must be filed within 90 days."))

	h.do(http.MethodPost, "/v1/jobs/"+res.JobID.String()+"/retry", tok, nil).problem(t, 409, apitypes.CodeNotDeadLettered)
	r := h.postJSON("/v1/jobs/"+res.JobID.String()+"/cancel", tok, map[string]string{"reason": "uploaded the wrong file"})
	if r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	var job apitypes.Job
	r.json(t, &job)
	if job.Status != runstate.FailedParse || job.State != runstate.Deadletter || job.LastError == nil ||
		job.LastError.Code != pipeline.CodeCancelled || job.LastError.Message != "uploaded the wrong file" {
		t.Fatalf("cancelled job %+v (last error %+v)", job, job.LastError)
	}
	if n := h.count(`SELECT count(*) FROM river_job WHERE state NOT IN ('cancelled', 'completed', 'discarded')`); n != 0 {
		t.Fatalf("%d live River jobs after cancel", n)
	}
	h.do(http.MethodPost, "/v1/jobs/"+res.JobID.String()+"/cancel", tok, nil).problem(t, 409, apitypes.CodeJobNotActive)

	var list struct{ Items []apitypes.Job }
	h.getJSON("/v1/jobs?state=deadletter", tok, &list)
	if len(list.Items) != 1 || list.Items[0].ID != res.JobID {
		t.Fatalf("deadletter list %+v", list.Items)
	}

	dbtest.Must(t, h.pipe.Start(context.Background()), "start workers")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = h.pipe.Stop(ctx)
	})
	if r := h.do(http.MethodPost, "/v1/jobs/"+res.JobID.String()+"/retry", tok, nil); r.status != 200 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	doc := h.waitDocument(tok, res.DocumentID, time.Minute)
	if doc.Status != runstate.Complete || doc.Job.LastError != nil {
		t.Fatalf("after retry: %+v", doc)
	}
	h.getJSON("/v1/jobs?state=deadletter", tok, &list)
	if len(list.Items) != 0 {
		t.Fatalf("deadletter list after retry: %+v", list.Items)
	}
	var events struct{ Items []apitypes.Event }
	h.getJSON("/v1/documents/"+res.DocumentID.String()+"/events", tok, &events)
	var codes []string
	for _, e := range events.Items {
		codes = append(codes, e.Code)
	}
	if !slices.Contains(codes, pipeline.CodeCancelled) || !slices.Contains(codes, "REDRIVE") {
		t.Fatalf("events %v", codes)
	}
}

// Lists page with cursors.
func TestListPaging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	tok := token(t, userA)
	want := map[uuid.UUID]bool{}
	for i := range 5 {
		res := h.uploadOK(tok, "d.md", smallDoc("Doc", strings.Repeat("word ", i+1)))
		want[res.DocumentID] = true
	}
	seen := map[uuid.UUID]bool{}
	cursor := ""
	pages := 0
	for {
		var page struct {
			Items      []apitypes.Document `json:"items"`
			NextCursor string              `json:"next_cursor"`
		}
		h.getJSON("/v1/documents?limit=2&cursor="+cursor, tok, &page)
		pages++
		for _, d := range page.Items {
			if seen[d.ID] {
				t.Fatalf("document %s on two pages", d.ID)
			}
			seen[d.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("%d documents over %d pages", len(seen), pages)
	}
	var jobs struct {
		Items      []apitypes.Job `json:"items"`
		NextCursor string         `json:"next_cursor"`
	}
	h.getJSON("/v1/jobs?limit=3", tok, &jobs)
	if len(jobs.Items) != 3 || jobs.NextCursor == "" {
		t.Fatalf("jobs page: %d items, cursor %q", len(jobs.Items), jobs.NextCursor)
	}
	cursor = jobs.NextCursor
	jobs.Items, jobs.NextCursor = nil, ""
	h.getJSON("/v1/jobs?limit=3&cursor="+cursor, tok, &jobs)
	if len(jobs.Items) != 2 || jobs.NextCursor != "" {
		t.Fatalf("jobs page 2: %d items, cursor %q", len(jobs.Items), jobs.NextCursor)
	}
}

// Health and readiness.
func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{api: api.Options{ReadyRecheck: time.Nanosecond}})
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	h.getJSON("/readyz", "", &ready)
	if ready.Status != "ready" || ready.Checks["database"] != "ok" || ready.Checks["migrations"] != "ok" || ready.Checks["storage"] != "ok" {
		t.Fatalf("readyz %+v", ready)
	}
	// A "ready" is not kept for the life of the process: the database migrated down
	// (or restored from an old backup) makes /readyz fail, and up again ready.
	ctx := context.Background()
	dbtest.Must(t, db.MigrateDown(ctx, h.dbURL, false, nil), "migrate down")
	r := h.do(http.MethodGet, "/readyz", "", nil)
	r.json(t, &ready)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(ready.Checks["migrations"], "pending") {
		t.Fatalf("readyz after migrating down: %d %+v", r.status, ready)
	}
	dbtest.Must(t, db.Migrate(ctx, h.dbURL, nil), "migrate up")
	h.getJSON("/readyz", "", &ready)
	if ready.Status != "ready" {
		t.Fatalf("readyz after migrating up again: %+v", ready)
	}
	var health struct{ Status string }
	h.getJSON("/healthz", "", &health)
	if health.Status != "ok" {
		t.Fatalf("healthz %+v", health)
	}
	h.pool.Close() // the database goes away
	r = h.do(http.MethodGet, "/readyz", "", nil)
	r.json(t, &ready)
	if r.status != http.StatusServiceUnavailable || ready.Status != "not_ready" || ready.Checks["database"] == "ok" {
		t.Fatalf("readyz without a database: %d %+v", r.status, ready)
	}
}
