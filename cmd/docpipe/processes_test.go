package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/dbtest"
)

// The production shape: one `docpipe serve` process (no workers) and two
// `docpipe worker` processes on one database and one blob store. Documents uploaded
// through the API complete, and both workers did some of the work.
func TestAPIAndTwoWorkerProcesses(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DOCPIPE_WORKER_CONCURRENCY=2")
	out := c.mustRun("keys", "create", "--name", "procs", "--user", "00000000-0000-4000-8000-000000000001")
	key := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := func(args ...string) *exec.Cmd {
		cmd := c.cmd(ctx, args...)
		dbtest.Must(t, cmd.Start(), "start %v", args)
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		return cmd
	}
	base := startServe(t, ctx, c)
	start("worker")
	start("worker")

	const docs = 12
	for i := range docs {
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		fw, _ := mw.CreateFormFile("file", fmt.Sprintf("note-%02d.md", i))
		fmt.Fprintf(fw, "# Note %d\n\nMember services note number %d about copays and deductibles.\n", i, i)
		_ = mw.Close()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/documents", &form)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		dbtest.Must(t, err, "upload")
		var up struct {
			DocumentID string `json:"document_id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&up)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || up.DocumentID == "" {
			t.Fatalf("upload %d: HTTP %d", i, resp.StatusCode)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.scalar(`SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`) < docs {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d complete", c.scalar(`SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`), docs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := c.scalar(`SELECT count(DISTINCT worker_id) FROM upload_pipeline.events WHERE type = 'stage_started'`); n != 2 {
		t.Errorf("stages ran on %d worker processes, want both", n)
	}
}

// startServe runs `docpipe serve` (no workers) until the test ends and returns its URL.
func startServe(t *testing.T, ctx context.Context, c *cli, extra ...string) string {
	t.Helper()
	serve := c.cmd(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, extra...)...)
	stdout, err := serve.StdoutPipe()
	dbtest.Must(t, err, "pipe")
	dbtest.Must(t, serve.Start(), "start serve")
	t.Cleanup(func() { _ = serve.Process.Signal(syscall.SIGTERM); _ = serve.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	dbtest.Must(t, err, "serve's first line")
	return strings.Fields(line[strings.Index(line, "http://"):])[0]
}

// The earlier system's worst failure: no worker deployed, documents waiting forever,
// nobody told. With documents waiting and no worker running, GET /v1/alerts shows
// DocpipeNoLiveWorker firing within a minute; starting a worker resolves it and the
// document completes.
func TestNoLiveWorkerAlertFiresAndResolves(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.mustRun("keys", "create", "--name", "ops", "--admin")
	key := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := startServe(t, ctx, c)
	get := func(path string, v any) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		dbtest.Must(t, err, "GET %s", path)
		defer resp.Body.Close()
		dbtest.Must(t, json.NewDecoder(resp.Body).Decode(v), "decode %s", path)
	}
	noWorker := func() string {
		var body struct {
			Alerts []struct{ Name, State string } `json:"alerts"`
		}
		get("/v1/alerts", &body)
		for _, a := range body.Alerts {
			if a.Name == "DocpipeNoLiveWorker" {
				return a.State
			}
		}
		return ""
	}
	c.mustRun("ingest", "--no-work", "--no-wait", "../../samples/plan-summary.md") // queued; nobody works on it
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %s", what, within)
			}
			time.Sleep(500 * time.Millisecond)
		}
		return time.Since(start)
	}
	took := waitFor("DocpipeNoLiveWorker firing", 90*time.Second, func() bool { return noWorker() == "firing" })
	t.Logf("DocpipeNoLiveWorker fired after %s", took.Round(time.Second))
	worker := c.cmd(ctx, "worker")
	dbtest.Must(t, worker.Start(), "start worker")
	t.Cleanup(func() { _ = worker.Process.Signal(syscall.SIGTERM); _ = worker.Wait() })
	waitFor("document complete", time.Minute, func() bool {
		return c.scalar(`SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = 'complete'`) == 1
	})
	took = waitFor("DocpipeNoLiveWorker resolved", 90*time.Second, func() bool { return noWorker() == "resolved" })
	t.Logf("resolved %s after the worker started", took.Round(time.Second))
}
