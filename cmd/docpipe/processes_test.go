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
	serve := c.cmd(ctx, "serve", "--addr", "127.0.0.1:0")
	stdout, err := serve.StdoutPipe()
	dbtest.Must(t, err, "pipe")
	dbtest.Must(t, serve.Start(), "start serve")
	t.Cleanup(func() { _ = serve.Process.Signal(syscall.SIGTERM); _ = serve.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	dbtest.Must(t, err, "serve's first line")
	base := strings.Fields(line[strings.Index(line, "http://"):])[0]
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
