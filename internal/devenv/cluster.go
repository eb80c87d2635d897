// Package devenv is docpipe's development environment. Cluster runs a private
// PostgreSQL cluster in a folder of its own (initdb + pg_ctl, its own port and unix
// socket), for tests, benchmarks and `docpipe dev`; PostgreSQL refuses to run as
// root, so when the caller is root the server programs run as the "postgres" OS user.
// Run is `docpipe dev`: that cluster, the external services' twins, the API and its
// workers, and the samples ingested through the API.
package devenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster describes a private Postgres cluster.
type Cluster struct {
	Dir   string // folder holding data/, the socket and the log; created if missing
	Port  int    // TCP port on 127.0.0.1
	Fsync bool   // false only for tests and benchmarks: faster, not crash-safe
	// MaxConnections defaults to 200 (parallel tests each open pools).
	MaxConnections int
	// BinDir is the PostgreSQL bin folder; default: the newest /usr/lib/postgresql/N/bin.
	BinDir string
}

// DataDir is where the cluster's files live.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// LogFile is the server log.
func (c *Cluster) LogFile() string { return filepath.Join(c.Dir, "postgres.log") }

// URL is a connection string for database db as the superuser "postgres".
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// FindBinDir returns the newest installed PostgreSQL server bin folder.
func FindBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(dirs) == 0 {
		if p, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/pg_ctl): run scripts/bootstrap")
	}
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) < pgMajor(dirs[j]) })
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

func (c *Cluster) bin(name string) (string, error) {
	if c.BinDir == "" {
		d, err := FindBinDir()
		if err != nil {
			return "", err
		}
		c.BinDir = d
	}
	return filepath.Join(c.BinDir, name), nil
}

// runAs runs a server program, as the postgres user when we are root.
func (c *Cluster) runAs(ctx context.Context, name string, args ...string) (string, error) {
	path, err := c.bin(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if cred, err := serverCredential(); err != nil {
		return "", err
	} else if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the server running with our pipes; don't wait on them.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// serverCredential is the postgres user's credential when running as root, else nil.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL refuses root: there is no 'postgres' OS user to run it as (apt-get install postgresql-common, or run scripts/bootstrap)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownTree gives the cluster folder to the postgres user when we are root.
func chownTree(dir string) error {
	cred, err := serverCredential()
	if err != nil || cred == nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// Initialized reports whether initdb already ran in Dir.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION"))
	return err == nil
}

// Running reports whether the cluster's server is up.
func (c *Cluster) Running(ctx context.Context) bool {
	if !c.Initialized() {
		return false
	}
	_, err := c.runAs(ctx, "pg_ctl", "status", "-D", c.DataDir())
	return err == nil
}

// Start initializes the cluster if needed and starts it; starting a running cluster is a no-op.
func (c *Cluster) Start(ctx context.Context) error {
	if c.Dir == "" || c.Port == 0 {
		return errors.New("devenv: Cluster needs Dir and Port")
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	c.Dir = abs
	if len(filepath.Join(c.Dir, ".s.PGSQL.")+strconv.Itoa(c.Port)) > 100 {
		return fmt.Errorf("devenv: folder %s is too long for a unix socket path (limit ~100 bytes): choose a shorter one", c.Dir)
	}
	// Parents must stay enterable by the postgres user; the cluster folder is its own.
	if err := os.MkdirAll(filepath.Dir(c.Dir), 0o755); err != nil {
		return fmt.Errorf("devenv: create %s: %w", filepath.Dir(c.Dir), err)
	}
	if err := os.Mkdir(c.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("devenv: create %s: %w", c.Dir, err)
	}
	if err := ensureTraversable(c.Dir); err != nil {
		return err
	}
	if !c.Initialized() {
		if err := chownTree(c.Dir); err != nil {
			return fmt.Errorf("devenv: give %s to the postgres user: %w", c.Dir, err)
		}
		out, err := c.runAs(ctx, "initdb", "-D", c.DataDir(), "-U", "postgres", "--auth=trust",
			"-E", "UTF8", "--locale=C", "--no-sync")
		if err != nil {
			return fmt.Errorf("devenv: initdb in %s failed: %w\n%s", c.DataDir(), err, out)
		}
	}
	if c.Running(ctx) {
		return nil
	}
	if err := c.checkPortFree(); err != nil {
		return err
	}
	if err := c.removeStalePID(); err != nil {
		return err
	}
	if err := c.writeConf(); err != nil {
		return err
	}
	out, err := c.runAs(ctx, "pg_ctl", "start", "-D", c.DataDir(), "-w", "-t", "60", "-l", c.LogFile())
	if err != nil {
		return fmt.Errorf("devenv: postgres did not start: %w\n%s\n--- %s (last lines) ---\n%s", err, out, c.LogFile(), tail(c.LogFile(), 15))
	}
	return nil
}

// Stop stops the server (fast shutdown); stopping a stopped cluster is a no-op.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.Running(ctx) {
		return nil
	}
	out, err := c.runAs(ctx, "pg_ctl", "stop", "-D", c.DataDir(), "-m", "fast", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("devenv: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Crash stops the server in immediate mode: every server process quits at once,
// without a checkpoint, as if the database host lost power; the next Start runs
// crash recovery. Fault-injection runs (docpipe chaos) use it; with Fsync off
// (synchronous_commit off) it loses recent commits.
func (c *Cluster) Crash(ctx context.Context) error {
	out, err := c.runAs(ctx, "pg_ctl", "stop", "-D", c.DataDir(), "-m", "immediate", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("devenv: pg_ctl stop -m immediate: %w\n%s", err, out)
	}
	return nil
}

// Remove stops the cluster and deletes its folder.
func (c *Cluster) Remove(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	return os.RemoveAll(c.Dir)
}

func (c *Cluster) writeConf() error {
	maxConn := c.MaxConnections
	if maxConn == 0 {
		maxConn = 200
	}
	fsync := "on"
	extra := ""
	if !c.Fsync {
		fsync = "off"
		extra = "synchronous_commit = off\nfull_page_writes = off\n"
	}
	conf := fmt.Sprintf(`# written by docpipe devenv; edits are overwritten at start
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = %d
shared_buffers = 128MB
fsync = %s
%slog_min_messages = warning
log_line_prefix = '%%m [%%p] '
`, c.Port, c.Dir, maxConn, fsync, extra)
	path := filepath.Join(c.DataDir(), "docpipe.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("devenv: write %s: %w", path, err)
	}
	main := filepath.Join(c.DataDir(), "postgresql.conf")
	b, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("devenv: read %s: %w", main, err)
	}
	if !bytes.Contains(b, []byte("include_if_exists = 'docpipe.conf'")) {
		b = append(b, []byte("\ninclude_if_exists = 'docpipe.conf'\n")...)
		if err := os.WriteFile(main, b, 0o600); err != nil {
			return err
		}
	}
	return chownTree(c.DataDir())
}

func (c *Cluster) checkPortFree() error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port))
	if err != nil {
		return fmt.Errorf("devenv: port %d on 127.0.0.1 is in use by another program; stop it or choose another port (%w)", c.Port, err)
	}
	return l.Close()
}

// removeStalePID deletes postmaster.pid when the process it names is gone (a crash or
// a reboot left it behind); pg_ctl would otherwise refuse to start.
func (c *Cluster) removeStalePID() error {
	path := filepath.Join(c.DataDir(), "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("devenv: %s names process %d, which is still running: another docpipe or postgres uses this folder (stop it first)", path, pid)
	}
	return os.Remove(path)
}

// ensureTraversable makes sure the postgres user can reach dir (every parent needs x).
func ensureTraversable(dir string) error {
	if d := closedParent(dir); d != "" {
		return fmt.Errorf("devenv: the postgres user cannot enter %s; choose a cluster folder it can reach", d)
	}
	return nil
}

// closedParent is the first existing parent of dir that the postgres user cannot
// enter (no search permission for others), or "" when it can reach dir or we are
// not root (then the server runs as us).
func closedParent(dir string) string {
	if os.Geteuid() != 0 {
		return ""
	}
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			continue // created later with mode 0755
		}
		if st.Mode().Perm()&0o001 == 0 {
			return d
		}
	}
	return ""
}

// ReachableDir returns dir when the server's OS user can reach it. Otherwise (root
// running from a home folder such as /root, mode 0700) it returns a folder of its
// own under /var/tmp, named by a hash of dir: the same clone finds the same cluster
// on every run (and /var/tmp survives reboots), different clones never share one,
// and the home folder's permissions stay as they are. closed names the parent the
// postgres user cannot enter ("" when dir is returned).
func ReachableDir(dir string) (reachable, closed string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	closed = closedParent(abs)
	if closed == "" {
		return abs, "", nil
	}
	base := "/var/tmp"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "docpipe-pg-"+hex.EncodeToString(sum[:6])), closed, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
