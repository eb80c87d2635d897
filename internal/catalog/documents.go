package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Scope says whose objects a read or write may touch: one user's, or every user's
// (an operator's admin key). The zero Scope matches nobody. Every query below puts
// the scope into its SQL, so another tenant's id behaves exactly like an unknown id.
type Scope struct {
	user uuid.UUID
	all  bool
}

// UserScope limits queries to one user's documents and runs.
func UserScope(userID uuid.UUID) Scope { return Scope{user: userID} }

// AllUsers is the operators' scope: every tenant's objects.
func AllUsers() Scope { return Scope{all: true} }

// All reports whether the scope spans every user.
func (s Scope) All() bool { return s.all }

// arg is the value for a `($n::uuid IS NULL OR user_id = $n)` predicate.
func (s Scope) arg() *uuid.UUID {
	if s.all {
		return nil
	}
	u := s.user
	return &u
}

// ScopedJob reads one run if the scope may see it (ErrNotFound otherwise).
func ScopedJob(ctx context.Context, q Querier, s Scope, jobID uuid.UUID) (JobInfo, error) {
	ji, err := scanJobInfo(q.QueryRow(ctx, jobInfoSelect+` WHERE j.job_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)`, jobID, s.arg()))
	if errors.Is(err, pgx.ErrNoRows) {
		return ji, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	return ji, err
}

// Page is keyset pagination over (created_at, id), newest first.
type Page struct {
	Limit int // default 50, at most 500
	// Before continues a listing: only rows strictly older than (BeforeTime, BeforeID).
	BeforeTime time.Time
	BeforeID   uuid.UUID
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 50
	case p.Limit > 500:
		return 500
	}
	return p.Limit
}

// before returns the cursor arguments: nil time means "from the newest".
func (p Page) before() (*time.Time, uuid.UUID) {
	if p.BeforeTime.IsZero() {
		return nil, uuid.Nil
	}
	t := p.BeforeTime
	return &t, p.BeforeID
}

// ScopedJobs lists runs the scope may see, newest first. state filters by state or
// status ("" = any); documentID (non-nil) by document.
func ScopedJobs(ctx context.Context, q Querier, s Scope, state string, documentID *uuid.UUID, pg Page) ([]JobInfo, error) {
	bt, bid := pg.before()
	rows, err := q.Query(ctx, jobInfoSelect+`
		WHERE ($1::uuid IS NULL OR d.user_id = $1)
		  AND ($2 = '' OR j.state = $2 OR j.status = $2)
		  AND ($3::uuid IS NULL OR j.document_id = $3)
		  AND ($4::timestamptz IS NULL OR (j.created_at, j.job_id) < ($4, $5))
		ORDER BY j.created_at DESC, j.job_id DESC LIMIT $6`, s.arg(), state, documentID, bt, bid, pg.limit())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobInfo, error) { return scanJobInfo(r) })
}

// DocumentInfo is a document as people see it, with its latest run.
type DocumentInfo struct {
	DocumentID uuid.UUID
	UserID     uuid.UUID
	Filename   string
	MIME       string
	Bytes      int64
	SHA256     string
	Pages      int
	Chunks     int // searchable chunks (published by finalize)
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Job        *JobInfo // latest run; nil only while a document is being deleted
}

const documentSelect = `
SELECT d.document_id, d.user_id, d.filename, d.mime, d.bytes_len, d.file_sha256, coalesce(d.page_count, 0),
       d.created_at, d.updated_at,
       (SELECT count(DISTINCT c.chunk_ord) FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id),
       j.job_id, j.status, j.state, j.progress, j.retry_count, j.last_error, j.correlation_id, j.tokens,
       j.cost_usd::float8, j.created_at, j.updated_at, j.finished_at
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (SELECT * FROM upload_pipeline.upload_jobs x WHERE x.document_id = d.document_id
                   ORDER BY x.created_at DESC, x.job_id DESC LIMIT 1) j ON true`

func scanDocument(row pgx.Row) (DocumentInfo, error) {
	var d DocumentInfo
	var jobID, corrID *uuid.UUID
	var status, state *string
	var progress, le []byte
	var retries *int
	var tokens *int64
	var cost *float64
	var jc, ju *time.Time
	var jf *time.Time
	err := row.Scan(&d.DocumentID, &d.UserID, &d.Filename, &d.MIME, &d.Bytes, &d.SHA256, &d.Pages, &d.CreatedAt, &d.UpdatedAt,
		&d.Chunks, &jobID, &status, &state, &progress, &retries, &le, &corrID, &tokens, &cost, &jc, &ju, &jf)
	if err != nil || jobID == nil {
		return d, err
	}
	ji := JobInfo{JobID: *jobID, DocumentID: d.DocumentID, UserID: d.UserID, Filename: d.Filename, Status: *status, State: *state,
		RetryCount: *retries, CorrelationID: *corrID, Pages: d.Pages, Tokens: *tokens, CostUSD: *cost,
		CreatedAt: *jc, UpdatedAt: *ju, FinishedAt: jf}
	ji.setProgress(progress, le)
	d.Job = &ji
	return d, nil
}

// ScopedDocument reads one document if the scope may see it (ErrNotFound otherwise).
func ScopedDocument(ctx context.Context, q Querier, s Scope, docID uuid.UUID) (DocumentInfo, error) {
	d, err := scanDocument(q.QueryRow(ctx, documentSelect+` WHERE d.document_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)`, docID, s.arg()))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("document %s: %w", docID, ErrNotFound)
	}
	return d, err
}

// ScopedDocuments lists the documents the scope may see, newest first.
func ScopedDocuments(ctx context.Context, q Querier, s Scope, pg Page) ([]DocumentInfo, error) {
	bt, bid := pg.before()
	rows, err := q.Query(ctx, documentSelect+`
		WHERE ($1::uuid IS NULL OR d.user_id = $1)
		  AND ($2::timestamptz IS NULL OR (d.created_at, d.document_id) < ($2, $3))
		ORDER BY d.created_at DESC, d.document_id DESC LIMIT $4`, s.arg(), bt, bid, pg.limit())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DocumentInfo, error) { return scanDocument(r) })
}

// Chunk is one searchable chunk of a document.
type Chunk struct {
	ChunkID     uuid.UUID
	Ord         int
	Text        string
	Tokens      int
	HeadingPath []string
	PageStart   int
	PageEnd     int
	EmbedModel  string
}

type chunkMeta struct {
	HeadingPath []string `json:"heading_path"`
	PageStart   int      `json:"page_start"`
	PageEnd     int      `json:"page_end"`
}

// ScopedChunks pages through a document's searchable chunks in order: those with an
// ordinal above afterOrd (-1 = from the start), at most limit (default 100, max 1000).
// A document the scope may not see has no chunks; callers check the document first.
func ScopedChunks(ctx context.Context, q Querier, s Scope, docID uuid.UUID, afterOrd, limit int) ([]Chunk, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	// One row per ordinal: the newest embedding model's copy.
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (c.chunk_ord) c.chunk_id, c.chunk_ord, c.text, c.token_count, c.meta, c.embed_model
		FROM upload_pipeline.document_chunks c
		WHERE c.document_id = $1 AND ($2::uuid IS NULL OR c.user_id = $2) AND c.chunk_ord > $3
		ORDER BY c.chunk_ord, c.created_at DESC LIMIT $4`, docID, s.arg(), afterOrd, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Chunk, error) {
		var c Chunk
		var meta []byte
		if err := r.Scan(&c.ChunkID, &c.Ord, &c.Text, &c.Tokens, &meta, &c.EmbedModel); err != nil {
			return c, err
		}
		var m chunkMeta
		_ = json.Unmarshal(meta, &m)
		c.HeadingPath, c.PageStart, c.PageEnd = m.HeadingPath, m.PageStart, m.PageEnd
		return c, nil
	})
}

// DocumentEvent is one audit-trail row of a document, with the run it belongs to.
type DocumentEvent struct {
	Event
	JobID uuid.UUID
}

// ScopedDocumentEvents lists a document's audit trail (every run), oldest first, at
// most limit rows (default and max 5000).
func ScopedDocumentEvents(ctx context.Context, q Querier, s Scope, docID uuid.UUID, limit int) ([]DocumentEvent, error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	rows, err := q.Query(ctx, `SELECT e.ts, e.type, coalesce(e.stage, ''), e.severity, e.code, e.payload, coalesce(e.worker_id, ''),
		       coalesce(e.attempt, 0), coalesce(e.job_id, '00000000-0000-0000-0000-000000000000'::uuid)
		FROM upload_pipeline.events e JOIN upload_pipeline.documents d ON d.document_id = e.document_id
		WHERE e.document_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)
		ORDER BY e.ts, e.event_id LIMIT $3`, docID, s.arg(), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DocumentEvent, error) {
		var e DocumentEvent
		return e, r.Scan(&e.Time, &e.Type, &e.Stage, &e.Severity, &e.Code, &e.Payload, &e.WorkerID, &e.Attempt, &e.JobID)
	})
}

// ActiveRuns counts a user's runs that are queued, working or waiting to retry.
func ActiveRuns(ctx context.Context, q Querier, userID uuid.UUID) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
		WHERE d.user_id = $1 AND j.state IN ('queued', 'working', 'retryable')`, userID).Scan(&n)
	return n, err
}
