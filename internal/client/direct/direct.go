// Package direct serves the CLI's client commands from the database, without the
// API: the client.Backend of `--direct`, and of every client command when no server
// is configured. It reads through internal/catalog, starts runs with the pipeline,
// and answers in the API's wire types (each catalog row's Wire()), so the CLI prints
// the same shapes whichever backend serves it.
package direct

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// Backend is client.Backend on the database. Operators use it: its Scope is usually
// catalog.AllUsers().
type Backend struct {
	Pool     *pgxpool.Pool
	Pipe     *pipeline.Pipeline // starts and re-drives runs
	Store    storage.Store      // holds the documents' objects (cancel)
	Embedder embed.Embedder     // embeds search queries (the pipeline's embedder)
	Log      *slog.Logger       // nil = discard
	// Scope is whose documents and runs reads, search, retry and cancel see.
	Scope catalog.Scope
	// User owns what Upload stores.
	User uuid.UUID
	// CorrelationID is given to the runs Upload starts (zero: one of their own each).
	CorrelationID uuid.UUID
}

var _ client.Backend = (*Backend)(nil)

// cancelReason is recorded for a cancel without a reason.
const cancelReason = "cancelled with docpipe jobs cancel"

// Upload reads the file at path and submits it to the pipeline as User's: its
// bytes are stored and its run queued in one step (progress hears once, when the
// file is read).
func (b *Backend) Upload(ctx context.Context, path string, progress func(sent, total int64)) (apitypes.UploadResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return apitypes.UploadResult{}, err
	}
	if progress != nil {
		progress(int64(len(data)), int64(len(data)))
	}
	name := filepath.Base(path)
	sub, err := b.Pipe.Submit(ctx, pipeline.Submission{UserID: b.User, Filename: name, Data: data, CorrelationID: b.CorrelationID})
	if err != nil {
		return apitypes.UploadResult{}, err
	}
	sum := sha256.Sum256(data)
	return apitypes.UploadResult{DocumentID: sub.DocumentID, JobID: sub.JobID, CorrelationID: sub.CorrelationID, Status: sub.Status,
		Duplicate: sub.Duplicate, Filename: pipeline.SanitizeFilename(name), Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// Document reads one document the scope may see.
func (b *Backend) Document(ctx context.Context, id string) (apitypes.Document, error) {
	docID, err := parseID(id, "document")
	if err != nil {
		return apitypes.Document{}, err
	}
	d, err := catalog.GetDocument(ctx, b.Pool, b.Scope, docID)
	return d.Wire(), err
}

// DocumentsPage lists documents, newest first.
func (b *Backend) DocumentsPage(ctx context.Context, q client.DocumentsQuery) ([]apitypes.Document, string, error) {
	pg, err := catalog.NextPage(q.Cursor, q.Limit)
	if err != nil {
		return nil, "", err
	}
	docs, err := catalog.ListDocuments(ctx, b.Pool, b.Scope, pg)
	return catalog.Wires(docs), catalog.NextCursor(pg, docs), err
}

// Events is a document's audit trail, oldest first.
func (b *Backend) Events(ctx context.Context, docID string) ([]apitypes.Event, error) {
	id, err := parseID(docID, "document")
	if err != nil {
		return nil, err
	}
	evs, err := catalog.DocumentEvents(ctx, b.Pool, b.Scope, id, 0)
	return catalog.Wires(evs), err
}

// Job reads one run.
func (b *Backend) Job(ctx context.Context, id string) (apitypes.Job, error) {
	jobID, err := parseID(id, "job")
	if err != nil {
		return apitypes.Job{}, err
	}
	ji, err := catalog.GetJob(ctx, b.Pool, b.Scope, jobID)
	return ji.Wire(), err
}

// JobsPage lists runs, newest first.
func (b *Backend) JobsPage(ctx context.Context, q client.JobsQuery) ([]apitypes.Job, string, error) {
	pg, err := catalog.NextPage(q.Cursor, q.Limit)
	if err != nil {
		return nil, "", err
	}
	var doc *uuid.UUID
	if q.DocumentID != "" {
		id, err := parseID(q.DocumentID, "document")
		if err != nil {
			return nil, "", err
		}
		doc = &id
	}
	jobs, err := catalog.ListJobs(ctx, b.Pool, b.Scope, q.State, doc, pg)
	return catalog.Wires(jobs), catalog.NextCursor(pg, jobs), err
}

// Retry re-drives a dead-lettered run the scope may see.
func (b *Backend) Retry(ctx context.Context, id string) (apitypes.Job, error) {
	jobID, err := parseID(id, "job")
	if err != nil {
		return apitypes.Job{}, err
	}
	// The engine's re-drive is not scoped: check the scope may see the run first.
	if _, err := catalog.GetJob(ctx, b.Pool, b.Scope, jobID); err != nil {
		return apitypes.Job{}, err
	}
	if _, err := b.Pipe.Retry(ctx, jobID); err != nil {
		return apitypes.Job{}, err
	}
	ji, err := catalog.GetJob(ctx, b.Pool, b.Scope, jobID)
	return ji.Wire(), err
}

// Cancel dead-letters a run the scope may see.
func (b *Backend) Cancel(ctx context.Context, id, reason string) (apitypes.Job, error) {
	jobID, err := parseID(id, "job")
	if err != nil {
		return apitypes.Job{}, err
	}
	if reason == "" {
		reason = cancelReason
	}
	m := catalog.Manager{Pool: b.Pool, Engine: b.Pipe, Store: b.Store, Log: b.Log}
	ji, err := m.Cancel(ctx, b.Scope, jobID, reason)
	return ji.Wire(), err
}

// Search searches the chunks the scope may see.
func (b *Backend) Search(ctx context.Context, query string, k int, mode string) ([]apitypes.SearchHit, error) {
	hits, err := catalog.Search(ctx, b.Pool, b.Embedder, b.Scope, catalog.SearchRequest{Query: query, K: k, Mode: mode})
	return catalog.Wires(hits), err
}

func parseID(raw, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return id, fmt.Errorf("%q is not a %s id", raw, what)
	}
	return id, nil
}
