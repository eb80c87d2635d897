package db

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// DriftOptions tune a DriftChecker.
type DriftOptions struct {
	// ScratchURL is a PostgreSQL server (with pgvector) where the expected schema
	// is built in a scratch database that is dropped afterwards. "" = the live
	// server, as the live connection's role.
	ScratchURL string
	// LockWait bounds the wait for goose's migration lock (default 30 s).
	LockWait time.Duration
}

// DriftReport is what a drift check found.
type DriftReport struct {
	// Version and Head are docpipe's schema version in the database and the
	// newest this binary knows; RiverVersion and RiverHead the same for River.
	Version, Head           int64
	RiverVersion, RiverHead int
	// RiverSchema is the schema holding River's tables.
	RiverSchema string
	// Pending are the migrations not applied yet. They are not drift: the
	// expected schema is built at the database's own versions.
	Pending []MigrationState
	// Ahead, when set, says the database is newer than this binary, so nothing
	// was compared.
	Ahead string
	// Differences are the drift, each with the SQL that restores the expected object.
	Differences []Difference
	// Objects counts the expected objects compared (tables, columns, constraints,
	// indexes, triggers, functions, types, extensions).
	Objects int
}

// ErrMigrationInFlight means a migration ran while the schema was read; nothing
// was compared (a half-applied migration is not drift).
var ErrMigrationInFlight = errors.New("a migration is running (goose's migration lock is held, or River's version changed while reading)")

// ScratchError means the expected schema could not be built: no scratch database.
type ScratchError struct{ Err error }

// ScratchFix says what to do about a ScratchError.
const ScratchFix = "grant the role CREATEDB (and pgvector must be creatable in a new database), or point the check at any PostgreSQL " +
	"with pgvector where a scratch database may be created: `docpipe validate db --scratch-url URL` or DOCPIPE_SCRATCH_DATABASE_URL"

func (e *ScratchError) Error() string {
	return "cannot build the expected schema in a scratch database: " + e.Err.Error() + " (" + ScratchFix + ")"
}

func (e *ScratchError) Unwrap() error { return e.Err }

// DriftChecker compares the live schema with the one the embedded migrations
// produce at the same versions. The expected schema is built once per pair of
// versions (in a scratch database, dropped at once) and kept, so a periodic check
// costs one read of the live catalog.
type DriftChecker struct {
	pool *pgxpool.Pool
	opts DriftOptions

	mu       sync.Mutex
	expected map[expectedKey]*catalog
}

type expectedKey struct {
	version      int64
	riverVersion int
	riverSchema  string
}

// NewDriftChecker returns a checker of the database behind pool.
func NewDriftChecker(pool *pgxpool.Pool, opts DriftOptions) *DriftChecker {
	if opts.LockWait <= 0 {
		opts.LockWait = 30 * time.Second
	}
	return &DriftChecker{pool: pool, opts: opts, expected: map[expectedKey]*catalog{}}
}

// Check reads the live catalog under goose's migration lock and compares it with
// the expected one. It returns ErrMigrationInFlight when a migration kept running,
// and a *ScratchError when no scratch database could be made.
func (d *DriftChecker) Check(ctx context.Context) (*DriftReport, error) {
	var rep *DriftReport
	var live *catalog
	var err error
	for range 2 { // River migrates without goose's lock: read again if its version moved
		rep, live, err = d.readLive(ctx)
		if !errors.Is(err, errRiverMoved) {
			break
		}
	}
	if errors.Is(err, errRiverMoved) {
		return nil, ErrMigrationInFlight
	}
	if err != nil || rep.Ahead != "" {
		return rep, err
	}
	want, err := d.expectedCatalog(ctx, expectedKey{rep.Version, rep.RiverVersion, rep.RiverSchema})
	if err != nil {
		return nil, err
	}
	rep.Differences = compare(live, want)
	rep.Objects = len(want.tables) + len(want.columns) + len(want.constraints) + len(want.indexes) +
		len(want.triggers) + len(want.functions) + len(want.enums) + len(want.extensions)
	return rep, nil
}

// Drifted is Check for the alert engine: the differences in words (none = no
// drift). A database newer than this binary (a rolling deploy) is an error: this
// binary cannot judge it.
func (d *DriftChecker) Drifted(ctx context.Context) ([]string, error) {
	rep, err := d.Check(ctx)
	if err != nil {
		return nil, err
	}
	if rep.Ahead != "" {
		return nil, errors.New(rep.Ahead)
	}
	out := make([]string, len(rep.Differences))
	for i, diff := range rep.Differences {
		out[i] = diff.String()
	}
	return out, nil
}

var errRiverMoved = errors.New("river migrated while reading")

// readLive reads versions and catalog on a dedicated connection holding goose's
// migration lock (closing the connection releases it).
func (d *DriftChecker) readLive(ctx context.Context) (*DriftReport, *catalog, error) {
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := lockMigrations(ctx, conn, d.opts.LockWait); err != nil {
		return nil, nil, err
	}
	rep := &DriftReport{}
	if rep.RiverSchema, err = riverSchema(ctx, conn); err != nil {
		return nil, nil, err
	}
	if rep.Version, rep.Head, err = gooseVersions(ctx, d.pool); err != nil {
		return nil, nil, err
	}
	if rep.RiverVersion, err = riverVersion(ctx, conn, rep.RiverSchema); err != nil {
		return nil, nil, err
	}
	rep.RiverHead = riverHead()
	switch {
	case rep.Version > rep.Head:
		rep.Ahead = fmt.Sprintf("the database's %s schema is at version %d, newer than this binary's %d: check it with the newer docpipe", Schema, rep.Version, rep.Head)
		return rep, nil, nil
	case rep.RiverVersion > rep.RiverHead:
		rep.Ahead = fmt.Sprintf("River's tables are at version %d, newer than this binary's %d: check them with the newer docpipe", rep.RiverVersion, rep.RiverHead)
		return rep, nil, nil
	}
	states, err := StatusOf(ctx, d.pool)
	if err != nil {
		return nil, nil, err
	}
	rep.Pending = Pending(states)
	if err := setInspectionPath(ctx, conn, rep.RiverSchema); err != nil {
		return nil, nil, err
	}
	live, err := inspect(ctx, conn, scopes(rep.RiverSchema))
	if err != nil {
		return nil, nil, err
	}
	again, err := riverVersion(ctx, conn, rep.RiverSchema)
	if err != nil {
		return nil, nil, err
	}
	if again != rep.RiverVersion {
		return nil, nil, errRiverMoved
	}
	return rep, live, nil
}

// lockMigrations takes goose's session advisory lock on conn, waiting up to wait
// for a running migration to finish.
func lockMigrations(ctx context.Context, conn *pgx.Conn, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, MigrationLockID).Scan(&ok); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: still held after %s; check again when `docpipe migrate up` has finished", ErrMigrationInFlight, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// scopes are docpipe's whole schema and River's river_* objects.
func scopes(riverSchema string) []scope {
	return []scope{{schema: Schema, like: "%"}, {schema: riverSchema, like: `river\_%`}}
}

// riverSchema is where River's tables are (the schema River migrates into: the
// first of the search_path, unless river_migration is found elsewhere on it).
func riverSchema(ctx context.Context, conn *pgx.Conn) (string, error) {
	var s string
	err := conn.QueryRow(ctx, `SELECT coalesce(
		(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('river_migration')),
		current_schema(), 'public')`).Scan(&s)
	if err != nil {
		return "", fmt.Errorf("find River's schema: %w", err)
	}
	return s, nil
}

// setInspectionPath makes both sides deparse names alike: River's schema and the
// extensions' schemas on the path (so "vector" reads the same whether pgvector
// lives in public or, as on Supabase, in extensions), docpipe's schema qualified.
func setInspectionPath(ctx context.Context, conn *pgx.Conn, riverSchema string) error {
	var path string
	err := conn.QueryRow(ctx, `SELECT string_agg(quote_ident(s), ', ') FROM (
		SELECT $1::text AS s UNION SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE n.nspname NOT IN ('pg_catalog', $2)) x`, riverSchema, Schema).Scan(&path)
	if err == nil {
		_, err = conn.Exec(ctx, "SET search_path = "+path)
	}
	if err != nil {
		return fmt.Errorf("set the search path for reading the catalog: %w", err)
	}
	return nil
}

// gooseVersions are the database's docpipe schema version and this binary's newest.
func gooseVersions(ctx context.Context, pool *pgxpool.Pool) (version, head int64, err error) {
	p, err := newGooseProvider(stdlib.OpenDBFromPool(pool), false)
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	if version, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("read %s's migration version: %w", Schema, err)
	}
	src := p.ListSources()
	return version, src[len(src)-1].Version, nil
}

// riverVersion reads River's newest applied migration (0 = River not installed).
func riverVersion(ctx context.Context, conn *pgx.Conn, schema string) (int, error) {
	table := ident(schema) + ".river_migration"
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+table).Scan(&v); err != nil {
		return 0, fmt.Errorf("read River's migration version: %w", err)
	}
	return v, nil
}

func riverHead() int {
	m, _ := rivermigrate.New(riverpgxv5.New(nil), nil)
	all := m.AllVersions()
	return all[len(all)-1].Version
}

// expectedCatalog returns the catalog the migrations produce at key's versions,
// building it in a scratch database the first time.
func (d *DriftChecker) expectedCatalog(ctx context.Context, key expectedKey) (*catalog, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.expected[key]; ok {
		return c, nil
	}
	c, err := d.buildExpected(ctx, key)
	if err != nil {
		return nil, err
	}
	d.expected[key] = c
	return c, nil
}

func (d *DriftChecker) buildExpected(ctx context.Context, key expectedKey) (_ *catalog, err error) {
	admin := d.pool.Config().ConnConfig.Copy()
	if d.opts.ScratchURL != "" {
		if admin, err = pgx.ParseConfig(d.opts.ScratchURL); err != nil {
			return nil, errors.New("--scratch-url: malformed connection string")
		}
	}
	ac, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return nil, &ScratchError{fmt.Errorf("connect to %s: %w", admin.Host, err)}
	}
	defer ac.Close(context.WithoutCancel(ctx))
	dropStaleScratch(ctx, ac)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("%s%d_%s", scratchPrefix, time.Now().Unix(), hex.EncodeToString(b))
	if _, err := ac.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return nil, &ScratchError{err}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, derr := ac.Exec(cctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); derr != nil && err == nil {
			err = fmt.Errorf("drop the scratch database %s: %w", name, derr)
		}
	}()
	sc := admin.Copy()
	sc.Database = name
	sc.RuntimeParams["search_path"] = key.riverSchema // River migrates into the first schema of the path, as on the live side
	if err := migrateScratch(ctx, sc, key); err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, sc)
	if err != nil {
		return nil, &ScratchError{err}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := setInspectionPath(ctx, conn, key.riverSchema); err != nil {
		return nil, err
	}
	return inspect(ctx, conn, scopes(key.riverSchema))
}

// scratchPrefix starts the name of every scratch database, followed by its
// creation time (unix seconds) and a random suffix.
const scratchPrefix = "docpipe_scratch_"

// dropStaleScratch drops scratch databases left by a check that was killed
// midway: any older than an hour (a check takes seconds). Best effort.
func dropStaleScratch(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, strings.ReplaceAll(scratchPrefix, "_", `\_`)+"%")
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		var created int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(n, scratchPrefix), "%d_", &created); err == nil && time.Since(time.Unix(created, 0)) > time.Hour {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(n)+" WITH (FORCE)")
		}
	}
}

// migrateScratch brings the scratch database to the live versions exactly.
func migrateScratch(ctx context.Context, sc *pgx.ConnConfig, key expectedKey) error {
	c, err := pgx.ConnectConfig(ctx, sc)
	if err != nil {
		return &ScratchError{err}
	}
	_, err = c.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident(key.riverSchema))
	c.Close(ctx)
	if err != nil {
		return &ScratchError{err}
	}
	if key.version > 0 {
		p, err := newGooseProvider(stdlib.OpenDB(*sc), false)
		if err != nil {
			return err
		}
		defer p.Close()
		if _, err := p.UpTo(ctx, key.version); err != nil {
			return &ScratchError{explainMigrateError(err)}
		}
	}
	if key.riverVersion == 0 {
		return nil
	}
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return err
	}
	pcfg.ConnConfig = sc
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return &ScratchError{err}
	}
	defer pool.Close()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{TargetVersion: key.riverVersion}); err != nil {
		return &ScratchError{fmt.Errorf("migrate river to version %d: %w", key.riverVersion, err)}
	}
	return nil
}

// Summary says in one line what the differences are ("index x missing; …"), at
// most n of them.
func (r *DriftReport) Summary(n int) string {
	var parts []string
	for i, d := range r.Differences {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(r.Differences)-n))
			break
		}
		parts = append(parts, d.String())
	}
	return strings.Join(parts, "; ")
}
