package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/dbtest"
)

// The CLI as a client of `docpipe serve`: ingest (table, exit codes), status,
// search in each mode, jobs list/show/cancel/retry, --json, and a clear 401.
func TestCLIThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.mustRun("keys", "create", "--name", "cli", "--user", "00000000-0000-4000-8000-000000000001")
	key := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := startServe(t, ctx, c, "--with-worker")
	c.env = append(c.env, "DOCPIPE_API_URL="+base, "DOCPIPE_API_TOKEN="+key)

	out = c.mustRun("ingest", "../../samples")
	if strings.Count(out, "complete") < 5 || !strings.Contains(out, "TOKENS") {
		t.Fatalf("ingest through the API:\n%s", out)
	}
	if out, _, code := c.run("ingest", "../../../shared/corpus/corrupt-truncated.pdf"); code != 1 || !strings.Contains(out, "TYPE_MISMATCH") {
		t.Errorf("corrupt file: exit %d\n%s", code, out)
	}
	var docs []struct {
		Document struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"document"`
	}
	out = c.mustRun("ingest", "--json", "../../samples/faq.html")
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 1 || docs[0].Document.Status != "complete" {
		t.Fatalf("ingest --json: %v\n%s", err, out)
	}
	if out := c.mustRun("status", docs[0].Document.ID); !strings.Contains(out, "complete") || !strings.Contains(out, "faq.html") {
		t.Errorf("status:\n%s", out)
	}
	for _, mode := range []string{"vector", "keyword", "hybrid"} {
		if out := c.mustRun("search", "--mode", mode, "deductible"); !strings.Contains(out, "1. ") {
			t.Errorf("search --mode %s:\n%s", mode, out)
		}
	}
	// A long document, cancelled while it runs, is dead-lettered; retry re-drives it.
	var big []struct {
		Document struct {
			ID  string `json:"id"`
			Job *struct {
				ID string `json:"id"`
			} `json:"job"`
		} `json:"document"`
	}
	out = c.mustRun("ingest", "--no-wait", "--json", "../../../shared/corpus/scan_classic_hmo.pdf")
	if err := json.Unmarshal([]byte(out), &big); err != nil || len(big) != 1 {
		t.Fatalf("ingest --no-wait --json: %v\n%s", err, out)
	}
	var jobs []struct {
		JobID  string `json:"job_id"`
		Status string `json:"status"`
	}
	out = c.mustRun("jobs", "list", "--json")
	dbtest.Must(t, json.Unmarshal([]byte(out), &jobs), "jobs list --json")
	var bigJob string
	for _, j := range jobs {
		if !strings.HasPrefix(j.Status, "complete") {
			bigJob = j.JobID
		}
	}
	if bigJob == "" {
		t.Fatalf("no running job in:\n%s", out)
	}
	if out := c.mustRun("jobs", "cancel", bigJob); !strings.Contains(out, "cancelled") {
		t.Errorf("jobs cancel:\n%s", out)
	}
	out = c.mustRun("jobs", "list", "--state", "deadletter", "--json")
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 1 || jobs[0].JobID != bigJob {
		t.Fatalf("jobs list --state deadletter: %v\n%s", err, out)
	}
	if out := c.mustRun("jobs", "show", bigJob); !strings.Contains(out, "CANCELLED") {
		t.Errorf("jobs show:\n%s", out)
	}
	if out := c.mustRun("jobs", "retry", bigJob); !strings.Contains(out, "re-driven") {
		t.Errorf("jobs retry:\n%s", out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.scalar(`SELECT count(*) FROM upload_pipeline.upload_jobs WHERE job_id = $1 AND status = 'complete'`, bigJob) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the re-driven run did not complete")
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.env = append(c.env, "DOCPIPE_API_TOKEN=dpk_wrong")
	if _, errOut, code := c.run("search", "deductible"); code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "docpipe keys create") {
		t.Errorf("wrong token: exit %d, %s", code, errOut)
	}
}
