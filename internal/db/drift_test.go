package db_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/dbtest"
)

func checkDrift(t *testing.T, d *db.DriftChecker) *db.DriftReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := d.Check(ctx)
	dbtest.Must(t, err, "drift check")
	return rep
}

// A freshly migrated database has no drift, and both schemas were compared. A
// scratch database left by a check killed hours ago is dropped on the way.
func TestDriftNoneOnFreshDatabase(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	stale := fmt.Sprintf("docpipe_scratch_%d_%08x", time.Now().Add(-2*time.Hour).Unix(), time.Now().UnixNano()&0xffffffff)
	_, err := pool.Exec(context.Background(), "CREATE DATABASE "+stale+" TEMPLATE template0")
	dbtest.Must(t, err, "create a stale scratch database")
	rep := checkDrift(t, db.NewDriftChecker(pool, db.DriftOptions{}))
	var left int
	dbtest.Must(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, stale).Scan(&left), "count")
	if left != 0 {
		t.Errorf("the stale scratch database %s is still there", stale)
	}
	if len(rep.Differences) != 0 || len(rep.Pending) != 0 || rep.Ahead != "" {
		t.Fatalf("fresh database: %d differences (%s), pending %v, ahead %q", len(rep.Differences), rep.Summary(10), rep.Pending, rep.Ahead)
	}
	if rep.Version != rep.Head || rep.RiverVersion != rep.RiverHead || rep.RiverVersion == 0 || rep.Objects < 100 {
		t.Fatalf("report %+v", rep)
	}
}

// Each kind of change is reported by name, in words, with SQL that restores the
// expected object: running that SQL leaves no drift.
func TestDriftReportsChangesWithRestoringSQL(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	ctx := context.Background()
	for _, sql := range []string{
		`DROP INDEX upload_pipeline.ix_events_ts`,
		`ALTER TABLE upload_pipeline.upload_jobs ALTER COLUMN correlation_id TYPE text`,
		`DROP TRIGGER trg_upload_jobs_status ON upload_pipeline.upload_jobs`,
		`ALTER TABLE upload_pipeline.upload_jobs DROP CONSTRAINT ck_upload_jobs_state,
		   ADD CONSTRAINT ck_upload_jobs_state CHECK (state IN ('queued', 'working'))`,
		`DROP INDEX upload_pipeline.ix_document_chunks_hnsw_1536`,
		`CREATE INDEX ix_document_chunks_hnsw_1536 ON upload_pipeline.document_chunks
		   USING hnsw ((embedding::vector(1536)) vector_l2_ops) WHERE dims = 1536`,
		`ALTER TABLE upload_pipeline.documents ALTER COLUMN page_count SET NOT NULL`,
		`ALTER TABLE upload_pipeline.usage_daily ALTER COLUMN requests DROP DEFAULT`,
		`CREATE OR REPLACE FUNCTION upload_pipeline.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`CREATE INDEX ix_by_hand ON upload_pipeline.events (code)`,
		`ALTER TABLE upload_pipeline.webhook_log DROP COLUMN remote_addr`,
		`DROP INDEX river_job_kind`,
		`DROP TABLE upload_pipeline.api_upload_quota`,
		`CREATE TABLE upload_pipeline.scratchpad (note text)`,
		`ALTER TABLE upload_pipeline.document_chunks RESET (fillfactor)`,
	} {
		_, err := pool.Exec(ctx, sql)
		dbtest.Must(t, err, "%s", sql)
	}
	d := db.NewDriftChecker(pool, db.DriftOptions{})
	rep := checkDrift(t, d)
	want := []string{
		"index upload_pipeline.ix_events_ts missing",
		"column upload_pipeline.upload_jobs.correlation_id is text, expected uuid",
		"trigger trg_upload_jobs_status on upload_pipeline.upload_jobs missing",
		"constraint ck_upload_jobs_state on upload_pipeline.upload_jobs is CHECK",
		"index upload_pipeline.ix_document_chunks_hnsw_1536 differs",
		"column upload_pipeline.documents.page_count is NOT NULL, expected nullable",
		"column upload_pipeline.usage_daily.requests has no default, expected 0",
		"function upload_pipeline.touch_updated_at() differs",
		"index upload_pipeline.ix_by_hand not in the migrations",
		"column upload_pipeline.webhook_log.remote_addr missing",
		"index public.river_job_kind missing",
		"table upload_pipeline.api_upload_quota missing",
		"table upload_pipeline.scratchpad not in the migrations",
		"table upload_pipeline.document_chunks has storage options (), expected (fillfactor=90)",
	}
	var got []string
	for _, d := range rep.Differences {
		got = append(got, d.String())
		t.Logf("%s\n    %s", d, d.SQL)
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no difference %q in:\n%s", w, all)
		}
	}
	if len(rep.Differences) != len(want) {
		t.Errorf("%d differences, want %d:\n%s", len(rep.Differences), len(want), all)
	}
	for _, d := range rep.Differences {
		switch {
		case strings.HasPrefix(d.String(), "index upload_pipeline.ix_events_ts"):
			if d.SQL != "CREATE INDEX ix_events_ts ON upload_pipeline.events USING btree (ts DESC);" {
				t.Errorf("restoring SQL of %s: %s", d, d.SQL)
			}
		case strings.HasPrefix(d.String(), "trigger"):
			if !strings.Contains(d.SQL, "CREATE TRIGGER trg_upload_jobs_status BEFORE UPDATE OF status ON upload_pipeline.upload_jobs") {
				t.Errorf("restoring SQL of %s: %s", d, d.SQL)
			}
		case strings.HasPrefix(d.String(), "index upload_pipeline.ix_document_chunks_hnsw_1536"):
			if !strings.Contains(d.SQL, "vector_cosine_ops") || !strings.Contains(d.SQL, "WHERE (dims = 1536)") {
				t.Errorf("restoring SQL of %s: %s", d, d.SQL)
			}
		}
	}
	// The restoring SQL, run in order, brings the schema back.
	for _, d := range rep.Differences {
		_, err := pool.Exec(ctx, d.SQL)
		dbtest.Must(t, err, "restore %s with %s", d, d.SQL)
	}
	if rep := checkDrift(t, d); len(rep.Differences) != 0 {
		t.Fatalf("after running the restoring SQL: %s", rep.Summary(20))
	}
}

// A database one migration behind has that migration pending, and no drift: the
// expected schema is built at the database's own version.
func TestDriftPendingMigrationIsNotDrift(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.Pool(t)
	dbtest.Must(t, db.MigrateDown(context.Background(), u, false, nil), "migrate down")
	rep := checkDrift(t, db.NewDriftChecker(pool, db.DriftOptions{}))
	if len(rep.Differences) != 0 {
		t.Fatalf("pending migration reported as drift: %s", rep.Summary(10))
	}
	if rep.Version != rep.Head-1 || len(rep.Pending) != 1 || !strings.Contains(rep.Pending[0].String(), fmt.Sprintf("%05d_", rep.Head)) {
		t.Fatalf("version %d of %d, pending %v", rep.Version, rep.Head, rep.Pending)
	}
}

// While goose's migration lock is held (a migration half-applied), nothing is
// compared: the check waits, then says a migration is running.
func TestDriftWaitsForMigrationLock(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	dbtest.Must(t, err, "acquire")
	defer conn.Release()
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, db.MigrationLockID)
	dbtest.Must(t, err, "lock")
	_, err = conn.Exec(ctx, `DROP INDEX upload_pipeline.ix_events_ts`) // the migration's first step
	dbtest.Must(t, err, "drop index")
	d := db.NewDriftChecker(pool, db.DriftOptions{LockWait: 500 * time.Millisecond})
	if rep, err := d.Check(ctx); !errors.Is(err, db.ErrMigrationInFlight) {
		t.Fatalf("check under the migration lock: %v, %+v", err, rep)
	}
	_, err = conn.Exec(ctx, `CREATE INDEX ix_events_ts ON upload_pipeline.events (ts DESC)`)
	dbtest.Must(t, err, "finish the migration")
	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, db.MigrationLockID)
	dbtest.Must(t, err, "unlock")
	if rep := checkDrift(t, d); len(rep.Differences) != 0 {
		t.Fatalf("after the migration: %s", rep.Summary(10))
	}
}

// A role that may not create databases gets a clear error naming the fix; with a
// scratch server given, the check works.
func TestDriftScratchNeedsCreateDB(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.Pool(t)
	ctx := context.Background()
	role := fmt.Sprintf("drift_reader_%d", time.Now().UnixNano())
	for _, sql := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD 'pw' NOCREATEDB`,
		`GRANT USAGE ON SCHEMA upload_pipeline TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ` + role,
	} {
		_, err := pool.Exec(ctx, sql)
		dbtest.Must(t, err, "%s", sql)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	ru, err := url.Parse(u)
	dbtest.Must(t, err, "parse url")
	ru.User = url.UserPassword(role, "pw")
	rpool, err := db.Open(ctx, ru.String(), 4)
	dbtest.Must(t, err, "connect as %s", role)
	defer rpool.Close()
	_, err = db.NewDriftChecker(rpool, db.DriftOptions{}).Check(ctx)
	var se *db.ScratchError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "--scratch-url") || !strings.Contains(err.Error(), "CREATEDB") {
		t.Fatalf("check without CREATEDB: %v", err)
	}
	rep := checkDrift(t, db.NewDriftChecker(rpool, db.DriftOptions{ScratchURL: dbtest.AdminURL(t)}))
	if len(rep.Differences) != 0 {
		t.Fatalf("with a scratch server: %s", rep.Summary(10))
	}
}
