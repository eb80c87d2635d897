package devenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// clusterDir is under /tmp: the postgres user must be able to enter every parent.
func clusterDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "docpipe-devenv-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "pg")
}

func TestClusterLifecycle(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &Cluster{Dir: clusterDir(t), Port: freePort(t)}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	// Starting a running cluster is a no-op.
	if err := c.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Errorf("fsync = %q (%v), want off for a test cluster", fsync, err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		t.Errorf("pgvector not available: %v (run scripts/bootstrap)", err)
	}
	conn.Close(ctx)

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A stale postmaster.pid (a crash or reboot) does not block the next start.
	pid := filepath.Join(c.DataDir(), "postmaster.pid")
	if err := os.WriteFile(pid, []byte("999999\n"+c.DataDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start over a stale postmaster.pid: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClusterPortInUse(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c := &Cluster{Dir: clusterDir(t), Port: port}
	err = c.Start(context.Background())
	if err == nil {
		c.Stop(context.Background())
		t.Fatal("started on a port in use")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("port %d", port)) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("unclear error: %v", err)
	}
}

// A cluster folder inside a folder the postgres user cannot enter moves (as root)
// to a folder of its own that is the same on every run and differs per clone; a
// reachable folder stays where it is.
func TestReachableDir(t *testing.T) {
	open := clusterDir(t)
	if got, closed, err := ReachableDir(filepath.Join(open, "pg")); err != nil || got != filepath.Join(open, "pg") || closed != "" {
		t.Fatalf("reachable folder: %s %q %v", got, closed, err)
	}
	home, err := os.MkdirTemp("", "docpipe-home-") // 0700
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	a, closed, err := ReachableDir(filepath.Join(home, "one", ".docpipe", "pg"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if closed != "" {
			t.Fatalf("not root, yet moved to %s", a)
		}
		return
	}
	again, _, _ := ReachableDir(filepath.Join(home, "one", ".docpipe", "pg"))
	other, _, _ := ReachableDir(filepath.Join(home, "two", ".docpipe", "pg"))
	if closed != home || a != again || a == other || strings.HasPrefix(a, home) || closedParent(a) != "" {
		t.Fatalf("moved to %s (again %s, other clone %s), closed %s", a, again, other, closed)
	}
}
