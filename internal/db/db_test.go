package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/dbtest"
)

func TestMigrateStatusAtHead(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	ctx := context.Background()
	ok, err := db.AtHead(ctx, u)
	dbtest.Must(t, err, "AtHead")
	if !ok {
		t.Fatal("freshly migrated database is not at head")
	}
	// Running Migrate again is a no-op.
	dbtest.Must(t, db.Migrate(ctx, u, nil), "second Migrate")
	// Down one version then up again.
	dbtest.Must(t, db.MigrateDown(ctx, u, false, nil), "MigrateDown")
	ok, err = db.AtHead(ctx, u)
	dbtest.Must(t, err, "AtHead after down")
	if ok {
		t.Fatal("AtHead true after migrating down")
	}
	dbtest.Must(t, db.Migrate(ctx, u, nil), "Migrate after down")
}

func TestStatusTrigger(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	ctx := context.Background()
	docID, jobID := uuid.New(), uuid.Must(uuid.NewV7())
	_, err := pool.Exec(ctx, `INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len, file_sha256, raw_path)
		VALUES ($1, $2, 'a.txt', 'text/plain', 1, repeat('a', 64), 'raw/x')`, docID, uuid.New())
	dbtest.Must(t, err, "insert document")
	_, err = pool.Exec(ctx, `INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, status, correlation_id) VALUES ($1, $2, 'uploaded', $3)`, jobID, docID, uuid.New())
	dbtest.Must(t, err, "insert job")

	set := func(status string) error {
		_, err := pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = $2 WHERE job_id = $1`, jobID, status)
		return err
	}
	dbtest.Must(t, set("parse_queued"), "forward move")
	dbtest.Must(t, set("chunking"), "forward skip")
	if err := set("parsed"); err == nil || !strings.Contains(err.Error(), "only move forward") {
		t.Fatalf("backward move chunking -> parsed: got %v, want rejection", err)
	}
	if err := set("teleported"); err == nil || !strings.Contains(err.Error(), "23514") {
		t.Fatalf("unknown status: got %v, want a check violation (23514)", err)
	}
	// Bypassing the trigger's ordering, the CHECK constraint still rejects unknown statuses.
	if _, err := pool.Exec(ctx, `INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, status, correlation_id) VALUES ($1, $2, 'teleported', $3)`,
		uuid.Must(uuid.NewV7()), docID, uuid.New()); err == nil || !strings.Contains(err.Error(), "ck_upload_jobs_status") {
		t.Fatalf("insert with unknown status: got %v, want ck_upload_jobs_status violation", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET state = 'sleeping' WHERE job_id = $1`, jobID); err == nil {
		t.Fatal("unknown state accepted")
	}
	// Into a failure from anywhere, then re-drive, then forward to complete.
	_, err = pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = 'failed_chunking', state = 'deadletter' WHERE job_id = $1`, jobID)
	dbtest.Must(t, err, "into failure")
	if _, err := pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = 'complete', state = 'done' WHERE job_id = $1`, jobID); err == nil {
		t.Fatal("failed_chunking -> complete accepted")
	}
	_, err = pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = 'parse_validated', state = 'queued' WHERE job_id = $1`, jobID)
	dbtest.Must(t, err, "re-drive")
	_, err = pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = 'complete', state = 'done' WHERE job_id = $1`, jobID)
	dbtest.Must(t, err, "to complete")
	if err := set("embedding_queued"); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Fatalf("move out of complete: got %v, want rejection", err)
	}
	// state must agree with status.
	if _, err := pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET state = 'queued' WHERE job_id = $1`, jobID); err == nil {
		t.Fatal("complete with state queued accepted")
	}
}
