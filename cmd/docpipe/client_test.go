package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The CLI as a client of a `docpipe serve --with-worker` process on loopback, with an
// API key from `docpipe keys create`: ingest (progress lines, table, exit codes, a
// rejected and a failing file, a duplicate), status, search in each mode, jobs
// list/show/cancel/retry, --json everywhere, a clear 401, and --direct still working
// with DOCPIPE_API_URL set.
func TestCLIThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.mustRun("keys", "create", "--name", "cli", "--user", "00000000-0000-4000-8000-000000000001")
	key := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Embedding is slowed a little so the 232-page PDF is still running when it is cancelled.
	serve := *c
	serve.env = append(slices.Clone(c.env), "DOCPIPE_EMBED_BATCH=16", "DOCPIPE_EMBED_BATCH_DELAY=100ms")
	base := startServe(t, ctx, &serve, "--with-worker")
	c.env = append(c.env, "DOCPIPE_API_URL="+base, "DOCPIPE_API_TOKEN="+key)

	// Every sample completes: a line per change on stderr (no terminal), then the table.
	samples, _ := filepath.Glob("../../samples/*")
	stdout, stderr, code := c.run("ingest", "../../samples")
	if code != 0 {
		t.Fatalf("ingest samples: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "FILE") || !strings.Contains(stdout, "TOKENS") || !strings.Contains(stdout, "COST (USD)") {
		t.Errorf("no summary table:\n%s", stdout)
	}
	for _, s := range samples {
		row := lineWith(stdout, s)
		if !strings.Contains(row, " complete ") {
			t.Errorf("%s did not complete: %q\n%s", s, row, stdout)
		}
		if name := filepath.Base(s); !strings.Contains(stderr, name) {
			t.Errorf("no progress for %s:\n%s", name, stderr)
		}
	}
	if !strings.Contains(stderr, "uploaded") || !strings.Contains(stderr, "complete 100%") {
		t.Errorf("progress lines:\n%s", stderr)
	}

	// Rejected at upload (text named .pdf) and failing in the pipeline (a PDF header
	// on garbage): exit 1 and the reason in the table.
	broken := filepath.Join(t.TempDir(), "broken.pdf")
	if err := os.WriteFile(broken, []byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\ngarbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, reason := range map[string]string{
		"../../testdata/corpus/corrupt-truncated.pdf": "TYPE_MISMATCH",
		broken: "failed_parse",
	} {
		out, errOut, code := c.run("ingest", file)
		row := lineWith(out, file)
		if code != 1 || !strings.Contains(errOut, "did not complete") || !strings.Contains(row, reason) {
			t.Errorf("%s: exit %d, want 1 and %s in its row\n%s\n%s", file, code, reason, out, errOut)
		}
	}

	// --json; the same bytes again are the existing document.
	var docs []struct {
		File      string `json:"file"`
		Duplicate bool   `json:"duplicate"`
		Document  struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"document"`
	}
	out = c.mustRun("ingest", "--json", "../../samples/faq.html")
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 1 || docs[0].Document.Status != "complete" || !docs[0].Duplicate {
		t.Fatalf("ingest --json of an uploaded file: %v\n%s", err, out)
	}
	faq := docs[0].Document.ID
	if out := c.mustRun("ingest", "../../samples/faq.html"); !strings.Contains(out, "already uploaded") {
		t.Errorf("duplicate not reported:\n%s", out)
	}

	// status: one document, --json, and the table of all.
	if out := c.mustRun("status", faq); !strings.Contains(out, "complete") || !strings.Contains(out, "faq.html") || !strings.Contains(out, "100%") {
		t.Errorf("status:\n%s", out)
	}
	var doc struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Chunks int    `json:"chunks"`
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	out = c.mustRun("status", "--json", "--events", faq)
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.ID != faq || doc.Chunks == 0 || len(doc.Events) == 0 {
		t.Errorf("status --json --events: %v\n%s", err, out)
	}
	out = c.mustRun("status")
	if !strings.Contains(out, "DOCUMENT") || strings.Count(out, "complete") < len(samples) || !strings.Contains(out, "failed_parse") {
		t.Errorf("status table:\n%s", out)
	}
	if _, errOut, code := c.run("status", "0190d9c6-8c9a-7000-8000-000000000001"); code != 1 || !strings.Contains(errOut, "404 NOT_FOUND") {
		t.Errorf("status of an unknown document: exit %d, %s", code, errOut)
	}

	// search, each mode, table and JSON.
	for _, mode := range []string{"vector", "keyword", "hybrid"} {
		if out := c.mustRun("search", "--mode", mode, "deductible"); !strings.Contains(out, "1. ") {
			t.Errorf("search --mode %s:\n%s", mode, out)
		}
		var hits []struct {
			Filename string  `json:"filename"`
			Score    float64 `json:"score"`
		}
		out := c.mustRun("search", "--json", "-k", "3", "--mode", mode, "deductible")
		if err := json.Unmarshal([]byte(out), &hits); err != nil || len(hits) == 0 || len(hits) > 3 || hits[0].Filename == "" {
			t.Errorf("search --json --mode %s: %v\n%s", mode, err, out)
		}
	}
	if _, errOut, code := c.run("search", "--mode", "fuzzy", "x"); code != 1 || !strings.Contains(errOut, "vector, keyword or hybrid") {
		t.Errorf("search --mode fuzzy: exit %d, %s", code, errOut)
	}

	// A long document, cancelled while it runs, is dead-lettered; retry re-drives it.
	var big []struct {
		Document struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"document"`
	}
	out = c.mustRun("ingest", "--no-wait", "--json", "../../testdata/corpus/scan_classic_hmo.pdf")
	if err := json.Unmarshal([]byte(out), &big); err != nil || len(big) != 1 || big[0].Document.ID == "" {
		t.Fatalf("ingest --no-wait --json: %v\n%s", err, out)
	}
	var jobs []struct { // apitypes.Job, the API's shape
		JobID      string `json:"id"`
		DocumentID string `json:"document_id"`
		Status     string `json:"status"`
		State      string `json:"state"`
	}
	out = c.mustRun("jobs", "list", "--json")
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) < len(samples)+2 {
		t.Fatalf("jobs list --json: %v\n%s", err, out)
	}
	bigJob := ""
	for _, j := range jobs {
		if j.DocumentID == big[0].Document.ID {
			bigJob = j.JobID
		}
	}
	if bigJob == "" {
		t.Fatalf("the big document's run is not listed:\n%s", out)
	}
	if out := c.mustRun("jobs", "list"); !strings.Contains(out, "JOB") || !strings.Contains(out, bigJob) {
		t.Errorf("jobs list:\n%s", out)
	}
	if out := c.mustRun("jobs", "cancel", "--reason", "wrong file", bigJob); !strings.Contains(out, "cancelled") {
		t.Errorf("jobs cancel:\n%s", out)
	}
	if _, errOut, code := c.run("jobs", "cancel", bigJob); code != 1 || !strings.Contains(errOut, "JOB_NOT_ACTIVE") {
		t.Errorf("cancel twice: exit %d, %s", code, errOut)
	}
	out = c.mustRun("jobs", "list", "--state", "deadletter", "--json")
	mustUnmarshal(t, out, &jobs)
	var dead []string
	for _, j := range jobs {
		dead = append(dead, j.JobID)
	}
	if !slices.Contains(dead, bigJob) {
		t.Fatalf("jobs list --state deadletter lacks the cancelled run:\n%s", out)
	}
	if out := c.mustRun("jobs", "show", bigJob); !strings.Contains(out, "CANCELLED") || !strings.Contains(out, "wrong file") {
		t.Errorf("jobs show:\n%s", out)
	}
	var shown struct {
		Job struct {
			ID string `json:"id"`
		} `json:"job"`
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	out = c.mustRun("jobs", "show", "--json", bigJob)
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Job.ID != bigJob || len(shown.Events) == 0 {
		t.Errorf("jobs show --json: %v\n%s", err, out)
	}
	if out := c.mustRun("jobs", "retry", bigJob); !strings.Contains(out, "re-driven") {
		t.Errorf("jobs retry:\n%s", out)
	}
	if _, errOut, code := c.run("jobs", "retry", faqJob(t, c, faq)); code != 1 || !strings.Contains(errOut, "JOB_NOT_DEADLETTERED") {
		t.Errorf("retry of a completed run: exit %d, %s", code, errOut)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := c.mustRun("status", "--json", big[0].Document.ID)
		mustUnmarshal(t, out, &doc)
		if doc.Status == "complete" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the re-driven run did not complete:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// --direct ignores DOCPIPE_API_URL and works on the database.
	if out := c.mustRun("search", "--direct", "--all-users", "deductible"); !strings.Contains(out, "1. ") {
		t.Errorf("search --direct:\n%s", out)
	}

	// A wrong credential: a clear 401 and exit 1, for every command.
	bad := *c
	bad.env = append(slices.Clone(c.env), "DOCPIPE_API_TOKEN=dpk_wrong")
	for _, args := range [][]string{{"search", "deductible"}, {"status", faq}, {"jobs", "list"}, {"ingest", "../../samples/faq.html"}} {
		_, errOut, code := bad.run(args...)
		if code != 1 || !strings.Contains(errOut, "401 UNAUTHENTICATED") || !strings.Contains(errOut, "docpipe keys create") {
			t.Errorf("%v with a wrong token: exit %d, %s", args, code, errOut)
		}
	}
	noToken := *c
	noToken.env = append(slices.Clone(c.env), "DOCPIPE_API_TOKEN=")
	if _, errOut, code := noToken.run("jobs", "list"); code != 1 || !strings.Contains(errOut, "DOCPIPE_API_TOKEN") {
		t.Errorf("no token: exit %d, %s", code, errOut)
	}
	if _, errOut, code := c.run("search", "--server", "http://127.0.0.1:1", "x"); code != 1 || !strings.Contains(errOut, "is the docpipe API at http://127.0.0.1:1 running?") {
		t.Errorf("no server: exit %d, %s", code, errOut)
	}
}

// lineWith is the first line of out that contains s ("" if none).
func lineWith(out, s string) string {
	for l := range strings.Lines(out) {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func mustUnmarshal(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
}

// faqJob is the run of a completed document, through `status --json`.
func faqJob(t *testing.T, c *cli, docID string) string {
	t.Helper()
	var d struct {
		Job struct {
			ID string `json:"id"`
		} `json:"job"`
	}
	mustUnmarshal(t, c.mustRun("status", "--json", docID), &d)
	return d.Job.ID
}
