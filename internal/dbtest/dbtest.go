// Package dbtest gives each integration test its own freshly migrated database on a
// private Postgres cluster: a template database is migrated once (per schema hash),
// then cloned per test (pgtestdb), so tests run in parallel.
//
// The cluster comes from DOCPIPE_TEST_DATABASE_URL (set by `make test`, which starts
// one private cluster for the whole run). Without it, the first test starts a private
// cluster under $TMPDIR/docpipe-test-pg (shared by test binaries through a file lock)
// and leaves it running for the next run.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/peterldowns/pgtestdb"

	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/devenv"
)

// EnvURL names the variable holding the admin URL of the test cluster.
const EnvURL = "DOCPIPE_TEST_DATABASE_URL"

// DefaultPort is the port of the fallback private cluster.
const DefaultPort = 54329

var (
	clusterOnce sync.Once
	clusterURL  string
	clusterErr  error
)

// AdminURL returns the superuser URL of the test cluster, starting one if needed.
func AdminURL(t testing.TB) string {
	t.Helper()
	u, err := adminURL()
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	return u
}

func adminURL() (string, error) {
	clusterOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			clusterURL = u
			return
		}
		clusterURL, clusterErr = startShared()
	})
	return clusterURL, clusterErr
}

// ExamplePool is Pool for runnable examples, which have no testing.TB: a new,
// migrated database on the test cluster and a func that closes the pool and drops
// the database.
func ExamplePool(ctx context.Context) (*pgxpool.Pool, func(), error) {
	admin, err := adminURL()
	if err != nil {
		return nil, nil, err
	}
	name := "docpipe_example_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	adm, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the test cluster: %w", err)
	}
	defer adm.Close(ctx)
	if _, err := adm.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, nil, fmt.Errorf("create example database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(dctx, admin); err == nil {
			_, _ = c.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(dctx)
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		drop()
		return nil, nil, err
	}
	u.Path = "/" + name
	if err := db.Migrate(ctx, u.String(), nil); err != nil {
		drop()
		return nil, nil, fmt.Errorf("migrate example database: %w", err)
	}
	pool, err := db.Open(ctx, u.String(), 10)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); drop() }, nil
}

func startShared() (string, error) {
	dir := filepath.Join(os.TempDir(), "docpipe-test-pg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lockPath := filepath.Join(os.TempDir(), "docpipe-test-pg.lock")
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	c := &devenv.Cluster{Dir: filepath.Join(dir, "cluster"), Port: DefaultPort}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return "", err
	}
	return c.URL("postgres"), nil
}

type migrator struct{}

func (migrator) Hash() (string, error) { return db.MigrationsHash() }

func (migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	return db.Migrate(ctx, conf.URL(), nil)
}

// URL returns the URL of a new, migrated database that is dropped when the test passes.
func URL(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(AdminURL(t))
	if err != nil {
		t.Fatalf("test database URL: %v", err)
	}
	pw, _ := u.User.Password()
	conf := pgtestdb.Config{
		DriverName: "pgx",
		Host:       u.Hostname(),
		Port:       u.Port(),
		User:       u.User.Username(),
		Password:   pw,
		Database:   "postgres",
		Options:    "sslmode=disable",
		// The vector extension needs a superuser to create.
		TestRole:                  &pgtestdb.Role{Username: "docpipe_test", Password: "docpipe_test", Capabilities: "SUPERUSER"},
		ForceTerminateConnections: true,
	}
	return pgtestdb.Custom(t, conf, migrator{}).URL()
}

// Pool returns a pool on a new, migrated database, closed at the end of the test.
func Pool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	u := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, u, 20)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, u
}

// Must fails the test on err.
func Must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
