// Package db owns the database: the pgx pool (with pgvector types) and the
// migrations — docpipe's own schema (goose, embedded SQL) and River's tables.
package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib" // also the database/sql driver "pgx" for goose
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Schema is the name of docpipe's schema.
const Schema = "upload_pipeline"

// gooseTable keeps goose's bookkeeping next to the schema it describes.
const gooseTable = "public.docpipe_goose_version"

// Open returns a pool whose connections understand pgvector types. The vector
// extension must exist (run Migrate first).
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", redact(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		return pgxvec.RegisterTypes(ctx, c)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// Unavailable reports whether err means the database could not be reached or is not
// taking work right now, so the same request may well succeed in a few seconds: a
// refused, lost or already closed connection (a pooled connection that a restart
// killed), the server shutting down, crashing or starting (SQLSTATE 57P01-57P03),
// too many connections (53300), any connection exception (class 08), or a network
// error.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// redact drops the connection string from pgx parse errors (it may hold a password).
func redact(err error) error {
	return errors.New("malformed connection string")
}

// gooseProvider opens the database and the embedded migrations; close the provider
// (it closes the database handle).
func gooseProvider(url string) (*goose.Provider, error) {
	sqlDB, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", redact(err))
	}
	p, err := newGooseProvider(sqlDB, true)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	return p, nil
}

// newGooseProvider reads the embedded migrations for sqlDB (closed with the
// provider). locked adds goose's session advisory lock (MigrationLockID) around
// migrations, so concurrent migrators take turns.
func newGooseProvider(sqlDB *sql.DB, locked bool) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithTableName(gooseTable)}
	if locked {
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(MigrationLockID))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// MigrationLockID is the session advisory lock goose holds while it migrates
// docpipe's schema (goose's default id). Whoever holds it sees no migration of
// docpipe's schema in flight.
const MigrationLockID = lock.DefaultLockID

// Migrate brings both the docpipe schema and River's tables to the newest version.
// Concurrent callers are safe: goose holds a session advisory lock, River migrates in a
// transaction.
func Migrate(ctx context.Context, url string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := gooseProvider(url)
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return explainMigrateError(err)
	}
	for _, r := range res {
		log.Info("migration applied", "schema", Schema, "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return riverMigrate(ctx, url, rivermigrate.DirectionUp, log)
}

// explainMigrateError says what to do about the failures people meet first.
func explainMigrateError(err error) error {
	if strings.Contains(err.Error(), `extension "vector" is not available`) {
		return fmt.Errorf("migrate %s: the pgvector extension is not installed in this PostgreSQL server "+
			"(run scripts/bootstrap, or install postgresql-<version>-pgvector; hosted Postgres: enable the vector extension): %w", Schema, err)
	}
	return fmt.Errorf("migrate %s: %w", Schema, err)
}

func riverMigrate(ctx context.Context, url string, dir rivermigrate.Direction, log *slog.Logger) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("open database: %w", redact(err))
	}
	defer pool.Close()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return err
	}
	opts := &rivermigrate.MigrateOpts{}
	if dir == rivermigrate.DirectionDown {
		opts.TargetVersion = -1
	}
	res, err := m.Migrate(ctx, dir, opts)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("migration applied", "schema", "river", "version", v.Version, "direction", string(dir))
	}
	return nil
}

// MigrateDown rolls docpipe's schema back by one version (River's tables are left alone
// unless all is set, which also removes River's tables and every queued job).
func MigrateDown(ctx context.Context, url string, all bool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := gooseProvider(url)
	if err != nil {
		return err
	}
	defer p.Close()
	if all {
		if _, err := p.DownTo(ctx, 0); err != nil {
			return fmt.Errorf("migrate %s down: %w", Schema, err)
		}
		return riverMigrate(ctx, url, rivermigrate.DirectionDown, log)
	}
	if _, err := p.Down(ctx); err != nil {
		return fmt.Errorf("migrate %s down: %w", Schema, err)
	}
	return nil
}

// MigrationState is one line of `docpipe migrate status`.
type MigrationState struct {
	Component string // "upload_pipeline" or "river"
	Version   int64
	Name      string
	Applied   bool
}

// Status lists every known migration and whether it is applied.
func Status(ctx context.Context, url string) ([]MigrationState, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", redact(err))
	}
	defer pool.Close()
	return StatusOf(ctx, pool)
}

// StatusOf is Status over an open pool.
func StatusOf(ctx context.Context, pool *pgxpool.Pool) ([]MigrationState, error) {
	p, err := newGooseProvider(stdlib.OpenDBFromPool(pool), false) // closing it leaves the pool open
	if err != nil {
		return nil, err
	}
	defer p.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s migration status: %w", Schema, err)
	}
	var out []MigrationState
	for _, s := range st {
		out = append(out, MigrationState{Component: Schema, Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read river migration status: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range existing {
		applied[v.Version] = true
	}
	for _, v := range m.AllVersions() {
		out = append(out, MigrationState{Component: "river", Version: int64(v.Version), Name: v.Name, Applied: applied[v.Version]})
	}
	return out, nil
}

// Pending keeps the migrations of states that are not applied.
func Pending(states []MigrationState) []MigrationState {
	var out []MigrationState
	for _, s := range states {
		if !s.Applied {
			out = append(out, s)
		}
	}
	return out
}

// String names a migration for people: "upload_pipeline 00005_dashboard.sql", "river 6 (…)".
func (s MigrationState) String() string {
	if s.Component == "river" {
		return fmt.Sprintf("river %d (%s)", s.Version, s.Name)
	}
	return s.Component + " " + s.Name
}

// AtHead reports whether every migration (docpipe's and River's) is applied.
func AtHead(ctx context.Context, url string) (bool, error) {
	st, err := Status(ctx, url)
	if err != nil {
		return false, err
	}
	return len(Pending(st)) == 0, nil
}

// HeadCheck answers "are the migrations at head?" for readiness probes, asking the
// database at most every TTL, whatever the last answer was: a database restored
// from an old backup, or migrated down, stops being ready within TTL.
type HeadCheck struct {
	Pool *pgxpool.Pool
	TTL  time.Duration // 0 = 10 s

	mu      sync.Mutex
	at      time.Time
	pending []MigrationState
	err     error
}

// Pending returns the migrations not applied (nil = at head), from the database
// when the last answer is older than TTL.
func (h *HeadCheck) Pending(ctx context.Context) ([]MigrationState, error) {
	ttl := h.TTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && time.Since(h.at) < ttl {
		return h.pending, h.err
	}
	st, err := StatusOf(ctx, h.Pool)
	h.at, h.pending, h.err = time.Now(), Pending(st), err
	return h.pending, h.err
}

// MigrationsHash identifies the schema the migrations produce (for test template databases).
func MigrationsHash() (string, error) {
	h := sha256.New()
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n))
		h.Write(b)
	}
	m, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return "", err
	}
	for _, v := range m.AllVersions() {
		fmt.Fprintf(h, "river:%d:%s\n", v.Version, v.SQLUp)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
