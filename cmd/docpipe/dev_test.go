package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/devenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// `docpipe dev --once` from nothing: a new cluster, the twins, the API, two workers,
// every sample (and the policy PDF) ingested through the API to complete, exit 0,
// the cluster stopped afterwards. A second run reuses the cluster.
func TestDevOnce(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "docpipe-dev-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // the postgres user must reach the cluster folder
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := freePort(t)
	run := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "dev", "--once", "--dir", dir, "--pg-port", strconv.Itoa(port), "--addr", "127.0.0.1:0",
			"--samples", "../../samples", "--policy", "../../testdata/corpus/sample-policy.pdf")
		cmd.Env = append(os.Environ(), "DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache"), "DOCPIPE_LOG_LEVEL=warn")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docpipe dev --once: %v\n%s", err, out)
		}
		return string(out)
	}
	first := run()
	samples, _ := filepath.Glob("../../samples/*")
	if n := strings.Count(first, "complete"); n < len(samples)+1 {
		t.Errorf("%d documents reported complete, want %d:\n%s", n, len(samples)+1, first)
	}
	for _, want := range []string{"new cluster", "llamaparse", "openai", "storage", "/v1/openapi.json", "postgres stopped"} {
		if !strings.Contains(first, want) {
			t.Errorf("output lacks %q:\n%s", want, first)
		}
	}
	cl := &devenv.Cluster{Dir: filepath.Join(dir, "pg"), Port: port}
	if cl.Running(context.Background()) {
		t.Error("the cluster still runs after dev --once")
	}
	second := run()
	if !strings.Contains(second, "reusing the cluster") {
		t.Errorf("second run did not reuse the cluster:\n%s", second)
	}
}

// Ctrl-C in the middle of the ingest stops everything (the dev process and the
// cluster; nothing left running), and the next run finishes the interrupted
// documents.
func TestDevInterruptedThenResumed(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "docpipe-dev-int-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	samples := filepath.Join(dir, "in")
	if err := os.MkdirAll(samples, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../../testdata/corpus/scan_classic_hmo.pdf", "../../samples/plan-summary.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(samples, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	args := []string{"dev", "--dir", dir, "--pg-port", strconv.Itoa(port), "--addr", "127.0.0.1:0", "--samples", samples, "--policy", ""}
	env := append(os.Environ(), "DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache"), "DOCPIPE_LOG_LEVEL=warn")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var out strings.Builder
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// Interrupt as soon as the big PDF is uploaded (it is still being parsed then).
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), "scan_classic_hmo.pdf") || !strings.Contains(out.String(), "uploaded") {
		n, err := pr.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("dev ended before uploading:\n%s", out.String())
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	go func() { _, _ = io.Copy(&out, pr) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev after Ctrl-C: %v\n%s", err, out.String())
	}
	if (&devenv.Cluster{Dir: filepath.Join(dir, "pg"), Port: port}).Running(context.Background()) {
		t.Fatalf("the cluster still runs after Ctrl-C:\n%s", out.String())
	}

	again := exec.CommandContext(ctx, binary, append(args, "--once")...)
	again.Env = env
	b, err := again.CombinedOutput()
	if err != nil {
		t.Fatalf("the next run: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "already uploaded") || strings.Count(string(b), "complete") < 2 {
		t.Errorf("the next run did not finish the interrupted documents:\n%s", b)
	}
}

// `make run` from a clone inside a home folder the postgres user cannot enter (mode
// 0700, like /root): scripts/run (bootstrap --run, then `docpipe dev --once` with
// private ports) completes every sample. As root the cluster lives in a folder of
// its own under /var/tmp, and the home folder keeps its mode. The clone is a copy
// of the working tree's tracked files; DOCPIPE_BIN reuses the binary built for the
// tests instead of compiling the copy.
func TestRunFromCloneInClosedHome(t *testing.T) {
	t.Parallel()
	home, err := os.MkdirTemp("", "docpipe-home-") // mode 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	clone := filepath.Join(home, "src", "docpipe")
	files, err := exec.Command("git", "-C", "../..", "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		src := filepath.Join("../..", f)
		st, err := os.Stat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(clone, f)), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(clone, f), b, st.Mode().Perm())
		}
		if err != nil {
			t.Fatalf("copy %s: %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(clone, "scripts", "run"), "--once", "--pg-port", strconv.Itoa(freePort(t)), "--addr", "127.0.0.1:0")
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "DOCPIPE_BIN="+binary, "DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache"), "DOCPIPE_LOG_LEVEL=warn")
	b, err := cmd.CombinedOutput()
	out := string(b)
	// The cluster folder, wherever it went, is removed afterwards.
	if _, rest, ok := strings.Cut(out, "data kept in "); ok {
		kept, _, _ := strings.Cut(rest, ";")
		t.Cleanup(func() { os.RemoveAll(kept) })
	}
	if err != nil {
		t.Fatalf("scripts/run --once from %s: %v\n%s", clone, err, out)
	}
	samples, _ := filepath.Glob("../../samples/*")
	if n := strings.Count(out, "complete"); n < len(samples)+1 {
		t.Errorf("%d documents reported complete, want %d:\n%s", n, len(samples)+1, out)
	}
	if os.Geteuid() == 0 && !strings.Contains(out, "postgres data in /var/tmp/docpipe-pg-") {
		t.Errorf("as root, the cluster did not move out of the closed home folder:\n%s", out)
	}
	if st, err := os.Stat(home); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the home folder's mode changed: %v %v", st.Mode(), err)
	}
}
