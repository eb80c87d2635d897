package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/dbtest"
)

var binary string

// TestMain builds the real binary once; the tests run it as separate processes.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docpipe-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "docpipe")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build docpipe: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli is a docpipe environment: one database, one data folder.
type cli struct {
	t   *testing.T
	env []string
	db  *pgxpool.Pool
}

func newCLI(t *testing.T, extra ...string) *cli {
	t.Helper()
	pool, url := dbtest.Pool(t)
	tmp := t.TempDir()
	env := append(os.Environ(),
		"DATABASE_URL="+url,
		"DOCPIPE_DATA_DIR="+filepath.Join(tmp, "data"),
		"DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache"),
		"DOCPIPE_RETRY_BASE=50ms", "DOCPIPE_RETRY_MAX=1s",
		"DOCPIPE_LOG_LEVEL=warn",
	)
	return &cli{t: t, env: append(env, extra...), db: pool}
}

func (c *cli) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = c.env
	return cmd
}

// run runs docpipe to completion and returns stdout, stderr and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := c.cmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run docpipe %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (c *cli) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("docpipe %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (c *cli) scalar(sql string, args ...any) int {
	c.t.Helper()
	var n int
	dbtest.Must(c.t, c.db.QueryRow(context.Background(), sql, args...).Scan(&n), "query %s", sql)
	return n
}

func TestConfigCheckReportsEveryProblemWithoutSecrets(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=postgres://u:hunter2-secret@h:notaport/db",
		"DOCPIPE_CHUNK_TOKENS=10",
		"DOCPIPE_JOB_TIMEOUT=abc",
		"DOCPIPE_LOG_FORMAT=xml",
	}}
	for _, args := range [][]string{{"validate", "config"}, {"config", "check"}} {
		out, _, code := c.run(args...)
		if code != 1 {
			t.Fatalf("%v exited %d on a broken environment, want 1:\n%s", args, code, out)
		}
		for _, want := range []string{"FAIL  config: DATABASE_URL", "FAIL  config: DOCPIPE_CHUNK_TOKENS", "FAIL  config: DOCPIPE_JOB_TIMEOUT", "FAIL  config: DOCPIPE_LOG_FORMAT", "4 failed", "fix: set DOCPIPE_LOG_FORMAT"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v output lacks %q:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("%v printed a secret:\n%s", args, out)
		}
	}
	out, _, code := c.run("validate", "config", "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK || len(rep.Checks) != 4 {
		t.Errorf("validate config --json: exit %d, %+v (%v):\n%s", code, rep, err, out)
	}
}

func TestCLIIngestJobsSearch(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "plan.md"), []byte("# Plan\n\n## Costs\n\nThe yearly deductible is $250. After the deductible you pay 20% coinsurance.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("Pharmacy notes: generic drugs cost less at preferred pharmacies.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.pdf"), []byte("%PDF-1.7\nthis is not really a pdf\n"), 0o644)

	out, errOut, code := c.run("ingest", dir)
	if code == 0 {
		t.Fatalf("ingest with a broken file exited 0:\n%s", out)
	}
	if !strings.Contains(out, "plan.md") || !strings.Contains(out, "complete") || !strings.Contains(out, "failed_parse") || !strings.Contains(errOut, "1 of 3") {
		t.Fatalf("ingest summary:\n%s\nstderr:\n%s", out, errOut)
	}
	// Same files again: nothing new.
	out2, _, _ := c.run("ingest", filepath.Join(dir, "plan.md"))
	if !strings.Contains(out2, "already uploaded") {
		t.Errorf("second ingest of the same file:\n%s", out2)
	}
	if n := c.scalar(`SELECT count(*) FROM upload_pipeline.documents`); n != 3 {
		t.Errorf("documents = %d, want 3", n)
	}

	search := c.mustRun("search", "deductible")
	if !strings.HasPrefix(search, "1. ") || !strings.Contains(search, "plan.md") {
		t.Errorf("search deductible:\n%s", search)
	}
	list := c.mustRun("jobs", "list", "--state", "deadletter")
	if !strings.Contains(list, "broken.pdf") || strings.Contains(list, "plan.md") {
		t.Errorf("jobs list --state deadletter:\n%s", list)
	}
	var jobID uuid.UUID
	dbtest.Must(t, c.db.QueryRow(context.Background(), `SELECT j.job_id FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id) WHERE d.filename = 'broken.pdf'`).Scan(&jobID), "job id")
	show := c.mustRun("jobs", "show", jobID.String())
	if !strings.Contains(show, "PDF_") || !strings.Contains(show, "deadletter") {
		t.Errorf("jobs show:\n%s", show)
	}
	// Re-driving a parse failure runs it again (and it fails again, loudly).
	c.mustRun("jobs", "retry", jobID.String())
	if n := c.scalar(`SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND type = 'redrive'`, jobID); n != 1 {
		t.Errorf("redrive events = %d", n)
	}
	st := c.mustRun("migrate", "status")
	if !strings.Contains(st, "0 pending") {
		t.Errorf("migrate status:\n%s", st)
	}
}

// 3. Crash safety: SIGKILL a worker in the middle of embedding, start another, and the
// document completes with exactly the expected chunks and vectors.
func TestWorkerKilledMidEmbedRecovers(t *testing.T) {
	t.Parallel()
	c := newCLI(t,
		"DOCPIPE_EMBED_BATCH=4", "DOCPIPE_EMBED_BATCH_DELAY=30ms",
		"DOCPIPE_JOB_TIMEOUT=4s", "DOCPIPE_RESCUE_AFTER=5s", "DOCPIPE_CHUNK_TOKENS=64", "DOCPIPE_CHUNK_OVERLAP=8")
	var doc strings.Builder
	for i := range 120 {
		fmt.Fprintf(&doc, "## Section %d\n\nBenefit %d covers service category %d with a copay of $%d per visit. ", i, i, i%11, 10+i)
		doc.WriteString(strings.Repeat("Members must use network providers except in emergencies. ", 3) + "\n\n")
	}
	path := filepath.Join(t.TempDir(), "long.md")
	dbtest.Must(t, os.WriteFile(path, []byte(doc.String()), 0o644), "write")
	c.mustRun("ingest", "--no-wait", "--no-work", path)
	var jobID uuid.UUID
	dbtest.Must(t, c.db.QueryRow(context.Background(), `SELECT job_id FROM upload_pipeline.upload_jobs`).Scan(&jobID), "job")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w1 := c.cmd(ctx, "worker")
	var w1err bytes.Buffer
	w1.Stderr = &w1err
	dbtest.Must(t, w1.Start(), "start worker 1")
	// Wait until some, not all, vectors are committed, then kill -9.
	var done, total int
	for {
		var status string
		err := c.db.QueryRow(ctx, `SELECT status, coalesce((progress->>'embeds_done')::int, 0), coalesce((progress->>'embeds_total')::int, 0)
			FROM upload_pipeline.upload_jobs WHERE job_id = $1`, jobID).Scan(&status, &done, &total)
		dbtest.Must(t, err, "progress")
		if status == "embedding_in_progress" && done >= 8 {
			break
		}
		if status == "complete" || strings.HasPrefix(status, "failed") {
			t.Fatalf("run reached %s before the kill; make the embed stage slower\n%s", status, w1err.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	dbtest.Must(t, w1.Process.Signal(syscall.SIGKILL), "kill")
	_ = w1.Wait()
	vecsAtKill := c.scalar(`SELECT count(*) FROM upload_pipeline.document_vector_buffer`)
	if vecsAtKill == 0 || vecsAtKill >= total {
		t.Fatalf("killed with %d of %d vectors committed; want a partial stage", vecsAtKill, total)
	}
	t.Logf("killed worker with %d/%d vectors committed", vecsAtKill, total)

	w2 := c.cmd(ctx, "worker")
	var w2err bytes.Buffer
	w2.Stderr = &w2err
	dbtest.Must(t, w2.Start(), "start worker 2")
	defer func() {
		_ = w2.Process.Signal(syscall.SIGTERM)
		_ = w2.Wait()
	}()
	for {
		var status string
		dbtest.Must(t, c.db.QueryRow(ctx, `SELECT status FROM upload_pipeline.upload_jobs WHERE job_id = $1`, jobID).Scan(&status), "status")
		if status == "complete" {
			break
		}
		if strings.HasPrefix(status, "failed") || ctx.Err() != nil {
			t.Fatalf("after restart: status %s\n%s", status, w2err.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var chunksTotal int
	dbtest.Must(t, c.db.QueryRow(ctx, `SELECT (progress->>'chunks_total')::int FROM upload_pipeline.upload_jobs WHERE job_id = $1`, jobID).Scan(&chunksTotal), "chunks_total")
	if got := c.scalar(`SELECT count(*) FROM upload_pipeline.document_chunks`); got != chunksTotal || got != total {
		t.Errorf("document_chunks = %d, chunks_total = %d, embeds_total = %d", got, chunksTotal, total)
	}
	if got := c.scalar(`SELECT count(DISTINCT chunk_id) FROM upload_pipeline.document_chunks`); got != chunksTotal {
		t.Errorf("distinct chunk ids = %d, want %d", got, chunksTotal)
	}
	if got := c.scalar(`SELECT count(DISTINCT chunk_ord) FROM upload_pipeline.document_chunks`); got != chunksTotal {
		t.Errorf("distinct ordinals = %d, want %d", got, chunksTotal)
	}
	if got := c.scalar(`SELECT count(*) FROM upload_pipeline.document_chunk_buffer`) + c.scalar(`SELECT count(*) FROM upload_pipeline.document_vector_buffer`); got != 0 {
		t.Errorf("%d rows left in the buffers", got)
	}
	// The second worker embedded only what was missing.
	var batchesAfter int
	dbtest.Must(t, c.db.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND type = 'stage_started' AND stage = 'embed'`, jobID).Scan(&batchesAfter), "events")
	if batchesAfter < 2 {
		t.Errorf("embed stage started %d times, want >= 2 (killed attempt + recovery)", batchesAfter)
	}
}

func TestWorkerStopsGracefullyOnSIGTERM(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := c.cmd(ctx, "worker")
	var errb bytes.Buffer
	w.Stderr = &errb
	dbtest.Must(t, w.Start(), "start")
	time.Sleep(1500 * time.Millisecond)
	dbtest.Must(t, w.Process.Signal(syscall.SIGTERM), "sigterm")
	if err := w.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v\n%s", err, errb.String())
	}
}

// DOCPIPE_PARSER=llamaparse sends documents through the LlamaParse client to the twin
// run as `docpipe mock llamaparse`, and they complete with the same chunks as locally.
// startTwin runs `docpipe mock ARGS…` on a free port until the test ends and
// returns its base URL.
func startTwin(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	return startTwinWith(t, ctx, nil, nil, args...)
}

// startTwinWith is startTwin with extra environment and the twin's stderr (nil =
// discarded).
func startTwinWith(t *testing.T, ctx context.Context, env []string, stderr io.Writer, args ...string) string {
	t.Helper()
	twin := exec.CommandContext(ctx, binary, append(append([]string{"mock"}, args...), "--addr", "127.0.0.1:0")...)
	twin.Env = append(append(os.Environ(), "DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache")), env...)
	twin.Stderr = stderr
	stdout, err := twin.StdoutPipe()
	dbtest.Must(t, err, "pipe")
	dbtest.Must(t, twin.Start(), "start twin")
	t.Cleanup(func() { _ = twin.Process.Signal(syscall.SIGTERM); _ = twin.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	dbtest.Must(t, err, "twin address")
	return strings.TrimSpace(line[strings.Index(line, "http://"):])
}

// multipartFile is a multipart form body with the file at path as field "file".
func multipartFile(t *testing.T, path string) (*bytes.Buffer, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	dbtest.Must(t, err, "read %s", path)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", filepath.Base(path))
	dbtest.Must(t, err, "form file")
	_, _ = fw.Write(data)
	dbtest.Must(t, mw.Close(), "close form")
	return &form, mw.FormDataContentType()
}

// The CLI with DOCPIPE_PARSER=llamaparse, DOCPIPE_EMBED_PROVIDER=openai and
// DOCPIPE_STORAGE=supabase against the three twins (as processes) gives the same
// chunks and vectors as the local path.
func TestCLIIngestWithTwins(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := startTwin(t, ctx, "llamaparse", "--api-key", "llx-cli", "--delay", "200ms", "--drop-webhooks", "1")
	oai := startTwin(t, ctx, "openai", "--api-key", "sk-cli", "--error-rates", "500=0.2", "--seed", "7")
	blobs := startTwin(t, ctx, "storage", "--api-key", "service-key-cli")
	remote := newCLI(t, "DOCPIPE_PARSER=llamaparse", "LLAMAPARSE_BASE_URL="+base, "LLAMA_CLOUD_API_KEY=llx-cli",
		"DOCPIPE_EMBED_PROVIDER=openai", "OPENAI_BASE_URL="+oai+"/v1", "OPENAI_API_KEY=sk-cli",
		"DOCPIPE_STORAGE=supabase", "SUPABASE_URL="+blobs+"/storage/v1", "SUPABASE_SERVICE_ROLE_KEY=service-key-cli")
	local := newCLI(t)
	sample := filepath.Join("..", "..", "samples", "plan-summary.md")
	for _, c := range []*cli{remote, local} {
		c.mustRun("ingest", sample)
	}
	shas := `SELECT coalesce(string_agg(chunk_sha || vector_sha, ',' ORDER BY chunk_ord), '') FROM upload_pipeline.document_chunks`
	var r, l string
	dbtest.Must(t, remote.db.QueryRow(ctx, shas).Scan(&r), "remote chunks")
	dbtest.Must(t, local.db.QueryRow(ctx, shas).Scan(&l), "local chunks")
	if r == "" || r != l {
		t.Errorf("chunks via the twins differ from the local path's:\n%s\n%s", r, l)
	}
	if n := remote.scalar(`SELECT count(*) FROM upload_pipeline.upload_jobs WHERE tokens > 0 AND cost_usd > 0`); n != 1 {
		t.Errorf("%d jobs billed for their embeddings, want 1", n)
	}
	if n := remote.scalar(`SELECT count(*) FROM upload_pipeline.events WHERE code = 'PARSE_REQUESTED'`); n != 1 {
		t.Errorf("remote parse requests = %d, want 1", n)
	}
	// Without the key, every problem is reported before anything runs.
	bad := newCLI(t, "DOCPIPE_PARSER=llamaparse")
	if _, errOut, code := bad.run("ingest", sample); code == 0 || !strings.Contains(errOut, "LLAMA_CLOUD_API_KEY") {
		t.Errorf("llamaparse without a key: exit %d, stderr %s", code, errOut)
	}
}
