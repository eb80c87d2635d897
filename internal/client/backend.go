package client

import (
	"context"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

// Backend is what the CLI's client commands (ingest, status, jobs, search) need of
// docpipe. *Client serves it through the HTTP API; internal/client/direct serves it
// from the database (the CLI's --direct). Both answer in the API's wire types, so each
// command has one body (Uploader, CLI) and one JSON shape whichever backend serves it.
// Ids are passed as the user typed them; a backend rejects malformed ones.
type Backend interface {
	// Upload stores the file at path and starts its run, or answers the document the
	// same user's same bytes already made (Duplicate). progress, when not nil, follows
	// the file's bytes (sent so far, size).
	Upload(ctx context.Context, path string, progress func(sent, total int64)) (apitypes.UploadResult, error)
	// Document is one document with its latest run.
	Document(ctx context.Context, id string) (apitypes.Document, error)
	// DocumentsPage is one page of documents, newest first, and the next page's
	// cursor ("" on the last).
	DocumentsPage(ctx context.Context, q DocumentsQuery) ([]apitypes.Document, string, error)
	// Events is a document's audit trail (every run), oldest first.
	Events(ctx context.Context, docID string) ([]apitypes.Event, error)
	// Job is one run.
	Job(ctx context.Context, id string) (apitypes.Job, error)
	// JobsPage is one page of runs, newest first, and the next page's cursor.
	JobsPage(ctx context.Context, q JobsQuery) ([]apitypes.Job, string, error)
	// Retry re-drives a dead-lettered run from the stage that failed.
	Retry(ctx context.Context, id string) (apitypes.Job, error)
	// Cancel dead-letters a run that has not ended; reason (may be empty) is recorded.
	Cancel(ctx context.Context, id, reason string) (apitypes.Job, error)
	// Search is the top k chunks for query in mode (vector, keyword or hybrid).
	Search(ctx context.Context, query string, k int, mode string) ([]apitypes.SearchHit, error)
}

var _ Backend = (*Client)(nil)

// collect reads pages until it has limit items or the listing ends.
func collect[T any](limit int, page func(cursor string, n int) ([]T, string, error)) ([]T, error) {
	var all []T
	cursor := ""
	for len(all) < limit {
		items, next, err := page(cursor, min(limit-len(all), 500))
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" || len(items) == 0 {
			break
		}
		cursor = next
	}
	return all, nil
}
