package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

var (
	userA = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	userB = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
)

// env is a database with a pipeline on it: the engine produces what the catalog reads.
type env struct {
	pool  *pgxpool.Pool
	store storage.Store
	pipe  *pipeline.Pipeline
	emb   embed.Embedder
}

// newEnv builds a pipeline; with start, it also runs workers (markdown only, so no
// PDF engine starts). Without, submitted runs wait in parse_queued.
func newEnv(t *testing.T, emb embed.Embedder, start bool) *env {
	t.Helper()
	pool, _ := dbtest.Pool(t)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{MaxTokens: 64, OverlapTokens: 8})
	dbtest.Must(t, err, "chunker")
	if emb == nil {
		emb, err = embed.NewLocal(1536)
		dbtest.Must(t, err, "embedder")
	}
	p, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parse.NewLocal(parse.Options{}), Chunker: ch, Embedder: emb},
		pipeline.Options{RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	dbtest.Must(t, err, "pipeline")
	if start {
		dbtest.Must(t, p.Start(context.Background()), "start")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = p.Stop(ctx)
		})
	}
	return &env{pool: pool, store: store, pipe: p, emb: emb}
}

func (e *env) submit(t *testing.T, user uuid.UUID, name, text string) pipeline.Submitted {
	t.Helper()
	s, err := e.pipe.Submit(context.Background(), pipeline.Submission{UserID: user, Filename: name, Data: []byte(text)})
	dbtest.Must(t, err, "submit %s", name)
	return s
}

func (e *env) wait(t *testing.T, jobID uuid.UUID) catalog.JobInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ji, err := catalog.Wait(ctx, e.pool, catalog.AllUsers(), jobID, nil)
	dbtest.Must(t, err, "wait for %s (status %s)", jobID, ji.Status)
	if ji.Status != runstate.Complete {
		t.Fatalf("run %s ended %s: %s", jobID, ji.Status, ji.LastError)
	}
	return ji
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	dbtest.Must(t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n), "count %s", sql)
	return n
}

func (e *env) manager() catalog.Manager {
	return catalog.Manager{Pool: e.pool, Engine: e.pipe, Store: e.store}
}

func policy(title, body string) string {
	return "# " + title + "\n\n## Coverage\n\n" + body + "\n\n## Claims\n\nSend claims within 90 days of the visit.\n"
}

// Every read answers within its scope: another tenant's ids behave like unknown ids,
// listings and search leave them out, and AllUsers sees everyone.
func TestReadsStayInTheirScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, true)
	ctx := context.Background()
	a := e.submit(t, userA, "a.md", policy("Plan A", "The annual deductible is $500 per member."))
	b := e.submit(t, userB, "b.md", policy("Plan B", "The annual deductible is $900 per family."))
	e.wait(t, a.JobID)
	e.wait(t, b.JobID)
	scopeA, all, nobody := catalog.UserScope(userA), catalog.AllUsers(), catalog.Scope{}

	if ji, err := catalog.GetJob(ctx, e.pool, scopeA, a.JobID); err != nil || ji.DocumentID != a.DocumentID || ji.Percent != 100 || ji.ChunksTotal == 0 {
		t.Fatalf("own run: %+v, %v", ji, err)
	}
	for _, s := range []catalog.Scope{scopeA, nobody} {
		if _, err := catalog.GetJob(ctx, e.pool, s, b.JobID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("another tenant's run: %v, want ErrNotFound", err)
		}
		if _, err := catalog.GetDocument(ctx, e.pool, s, b.DocumentID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("another tenant's document: %v, want ErrNotFound", err)
		}
	}
	if d, err := catalog.GetDocument(ctx, e.pool, all, b.DocumentID); err != nil || d.Job == nil || d.Job.JobID != b.JobID || d.Chunks == 0 {
		t.Fatalf("AllUsers reads any document: %+v, %v", d, err)
	}

	jobIDs := func(s catalog.Scope) []uuid.UUID {
		jobs, err := catalog.ListJobs(ctx, e.pool, s, "", nil, catalog.Page{})
		dbtest.Must(t, err, "list jobs")
		var ids []uuid.UUID
		for _, j := range jobs {
			ids = append(ids, j.JobID)
		}
		return ids
	}
	docIDs := func(s catalog.Scope) []uuid.UUID {
		docs, err := catalog.ListDocuments(ctx, e.pool, s, catalog.Page{})
		dbtest.Must(t, err, "list documents")
		var ids []uuid.UUID
		for _, d := range docs {
			ids = append(ids, d.DocumentID)
		}
		return ids
	}
	if got := jobIDs(scopeA); !slices.Equal(got, []uuid.UUID{a.JobID}) {
		t.Errorf("user A's runs: %v", got)
	}
	if got := jobIDs(all); len(got) != 2 {
		t.Errorf("every run: %v", got)
	}
	if got := jobIDs(nobody); len(got) != 0 {
		t.Errorf("the zero scope sees runs: %v", got)
	}
	if got := docIDs(scopeA); !slices.Equal(got, []uuid.UUID{a.DocumentID}) {
		t.Errorf("user A's documents: %v", got)
	}
	if got := docIDs(all); len(got) != 2 {
		t.Errorf("every document: %v", got)
	}

	if chunks, err := catalog.ListChunks(ctx, e.pool, scopeA, b.DocumentID, -1, 0); err != nil || len(chunks) != 0 {
		t.Errorf("another tenant's chunks: %d, %v", len(chunks), err)
	}
	if chunks, err := catalog.ListChunks(ctx, e.pool, scopeA, a.DocumentID, -1, 0); err != nil || len(chunks) == 0 || chunks[0].Ord != 0 {
		t.Errorf("own chunks: %+v, %v", chunks, err)
	}
	if evs, err := catalog.DocumentEvents(ctx, e.pool, scopeA, b.DocumentID, 0); err != nil || len(evs) != 0 {
		t.Errorf("another tenant's document events: %d, %v", len(evs), err)
	}
	if evs, err := catalog.JobEvents(ctx, e.pool, scopeA, b.JobID, 0); err != nil || len(evs) != 0 {
		t.Errorf("another tenant's run events: %d, %v", len(evs), err)
	}

	for _, mode := range []string{catalog.ModeVector, catalog.ModeKeyword, catalog.ModeHybrid} {
		hits, err := catalog.Search(ctx, e.pool, e.emb, scopeA, catalog.SearchRequest{Query: "annual deductible", K: 10, Mode: mode})
		dbtest.Must(t, err, "search %s", mode)
		if len(hits) == 0 {
			t.Fatalf("%s search: no hits", mode)
		}
		for _, h := range hits {
			if h.DocumentID != a.DocumentID {
				t.Fatalf("%s search in user A's scope returned %s (%s)", mode, h.DocumentID, h.Filename)
			}
		}
		hits, err = catalog.Search(ctx, e.pool, e.emb, all, catalog.SearchRequest{Query: "annual deductible", K: 10, Mode: mode, DocumentIDs: []uuid.UUID{b.DocumentID}})
		dbtest.Must(t, err, "search %s", mode)
		if len(hits) == 0 || slices.ContainsFunc(hits, func(h catalog.Hit) bool { return h.DocumentID != b.DocumentID }) {
			t.Fatalf("%s search restricted to user B's document: %+v", mode, hits)
		}
	}

	if n, err := catalog.ActiveRuns(ctx, e.pool, scopeA); err != nil || n != 0 {
		t.Errorf("active runs after completion: %d, %v", n, err)
	}
}

// A run's events are the same rows as its document's trail (a document has one run),
// each carrying the run's id.
func TestJobEventsAreTheRunsTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, true)
	ctx := context.Background()
	s := e.submit(t, userA, "a.md", policy("Plan A", "Dental cleanings twice a year."))
	e.wait(t, s.JobID)
	byJob, err := catalog.JobEvents(ctx, e.pool, catalog.AllUsers(), s.JobID, 0)
	dbtest.Must(t, err, "job events")
	byDoc, err := catalog.DocumentEvents(ctx, e.pool, catalog.UserScope(userA), s.DocumentID, 0)
	dbtest.Must(t, err, "document events")
	if len(byJob) < 6 || !slices.EqualFunc(byJob, byDoc, func(x, y catalog.Event) bool {
		return x.Time.Equal(y.Time) && x.Code == y.Code && x.JobID == s.JobID && y.JobID == s.JobID
	}) {
		t.Fatalf("run events %d, document events %d, differ or lack the job id", len(byJob), len(byDoc))
	}
	if first, last := byJob[0].Code, byJob[len(byJob)-1].Code; first != "UPLOAD_ACCEPTED" || last != "DOCUMENT_COMPLETE" {
		t.Errorf("trail runs from %s to %s", first, last)
	}
	if evs, err := catalog.JobEvents(ctx, e.pool, catalog.AllUsers(), s.JobID, 2); err != nil || len(evs) != 2 {
		t.Errorf("limit 2: %d events, %v", len(evs), err)
	}
}

// Keyset pages walk every run once, newest first, however the rows tie on created_at.
func TestListJobsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, false)
	ctx := context.Background()
	var want []uuid.UUID
	for i := range 7 {
		want = append(want, e.submit(t, userA, fmt.Sprintf("%d.md", i), fmt.Sprintf("# Note %d\n\ntext %d\n", i, i)).JobID)
	}
	// Two runs with the same created_at: the id breaks the tie.
	_, err := e.pool.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET created_at = (SELECT created_at FROM upload_pipeline.upload_jobs WHERE job_id = $1)
		WHERE job_id = $2`, want[3], want[4])
	dbtest.Must(t, err, "tie")
	all, err := catalog.ListJobs(ctx, e.pool, catalog.AllUsers(), "", nil, catalog.Page{Limit: 100})
	dbtest.Must(t, err, "list")
	var got []uuid.UUID
	pg := catalog.Page{Limit: 2}
	for {
		page, err := catalog.ListJobs(ctx, e.pool, catalog.UserScope(userA), string(runstate.ParseQueued), nil, pg)
		dbtest.Must(t, err, "page")
		for _, j := range page {
			got = append(got, j.JobID)
		}
		if len(page) < pg.Limit {
			break
		}
		last := page[len(page)-1]
		pg.BeforeTime, pg.BeforeID = last.CreatedAt, last.JobID
	}
	if len(got) != len(want) || len(all) != len(want) {
		t.Fatalf("pages returned %d runs, one listing %d, want %d", len(got), len(all), len(want))
	}
	for i := range all {
		if got[i] != all[i].JobID {
			t.Fatalf("page order differs from one listing at %d: %v vs %v", i, got, all)
		}
	}
	if n, err := catalog.ActiveRuns(ctx, e.pool, catalog.UserScope(userA)); err != nil || n != len(want) {
		t.Errorf("active runs: %d, %v", n, err)
	}
	doc := e.submit(t, userA, "0.md", "# Note 0\n\ntext 0\n").DocumentID // the same bytes: the first run
	if jobs, err := catalog.ListJobs(ctx, e.pool, catalog.AllUsers(), "", &doc, catalog.Page{}); err != nil || len(jobs) != 1 || jobs[0].JobID != want[0] {
		t.Errorf("runs of one document: %+v, %v", jobs, err)
	}
}

// Cancel dead-letters a run in the stage it was in, drops its queued River job, is
// scoped, refuses a run that ended, and the engine's Retry re-drives what it cancelled.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, false) // no workers: the run waits in parse_queued
	ctx := context.Background()
	s := e.submit(t, userA, "a.md", policy("Plan A", "Vision exams once a year."))
	m := e.manager()

	if _, err := m.Cancel(ctx, catalog.UserScope(userB), s.JobID, ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("cancel another tenant's run: %v, want ErrNotFound", err)
	}
	ji, err := m.Cancel(ctx, catalog.UserScope(userA), s.JobID, "")
	dbtest.Must(t, err, "cancel")
	if le := lastError(t, ji); ji.Status != runstate.FailedParse || ji.State != runstate.Deadletter || ji.Percent != -1 ||
		le.Code != pipeline.CodeCancelled || le.Stage != "parse" || le.Message != "cancelled through the API" {
		t.Fatalf("cancelled run: %s %s %v%%, last error %s", ji.Status, ji.State, ji.Percent, ji.LastError)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE args->>'upload_job_id' = $1 AND state <> 'cancelled'`, s.JobID.String()); n != 0 {
		t.Errorf("%d stage jobs of the cancelled run are still live", n)
	}
	if n := e.count(t, `SELECT count(*) FROM upload_pipeline.events WHERE job_id = $1 AND type = 'deadletter' AND code = $2`, s.JobID, pipeline.CodeCancelled); n != 1 {
		t.Errorf("%d CANCELLED dead-letter events", n)
	}
	if _, err := m.Cancel(ctx, catalog.AllUsers(), s.JobID, "again"); !errors.Is(err, catalog.ErrNotActive) {
		t.Fatalf("cancel a dead-lettered run: %v, want ErrNotActive", err)
	}
	status, err := e.pipe.Retry(ctx, s.JobID)
	dbtest.Must(t, err, "retry")
	if status != runstate.ParseQueued {
		t.Fatalf("re-driven to %s", status)
	}
	ji, err = m.Cancel(ctx, catalog.AllUsers(), s.JobID, "second thoughts")
	dbtest.Must(t, err, "cancel the re-driven run")
	if le := lastError(t, ji); le.Message != "second thoughts" {
		t.Fatalf("cancel the re-driven run: last error %s", ji.LastError)
	}
}

type lastErr struct{ Code, Message, Stage string }

func lastError(t *testing.T, ji catalog.JobInfo) lastErr {
	t.Helper()
	var le lastErr
	dbtest.Must(t, json.Unmarshal(ji.LastError, &le), "last_error %s", ji.LastError)
	return le
}

// gate is an embedder whose first call holds until released, whatever its context
// says: an embed stage attempt that keeps the run's lock for as long as the test wants.
type gate struct {
	embed.Embedder
	once      sync.Once
	started   chan struct{}
	release   chan struct{}
	closeOnce sync.Once
}

func (g *gate) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	first := false
	g.once.Do(func() { first = true; close(g.started) })
	if first {
		<-g.release
	}
	return g.Embedder.Embed(ctx, texts)
}

func (g *gate) open() { g.closeOnce.Do(func() { close(g.release) }) }

// DeleteDocument waits for the stage attempt working on the document (it holds the
// run's lock): while one works the delete gives up with ErrBusy and deletes nothing;
// once it lets go, every row and stored object of the document goes.
func TestDeleteWaitsForTheWorkingStage(t *testing.T) {
	t.Parallel()
	local, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	g := &gate{Embedder: local, started: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, g, true)
	t.Cleanup(g.open) // before the pipeline stops (cleanups run last first)
	ctx := context.Background()
	s := e.submit(t, userA, "a.md", policy("Plan A", "Hearing aids every three years."))
	select {
	case <-g.started:
	case <-time.After(time.Minute):
		t.Fatal("the embed stage never started")
	}

	m := e.manager()
	if err := m.DeleteDocument(ctx, catalog.UserScope(userB), s.DocumentID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("delete another tenant's document: %v, want ErrNotFound", err)
	}
	m.LockWait = 300 * time.Millisecond
	if err := m.DeleteDocument(ctx, catalog.UserScope(userA), s.DocumentID); !errors.Is(err, catalog.ErrBusy) {
		t.Fatalf("delete while the embed stage works: %v, want ErrBusy", err)
	}
	if _, err := catalog.GetDocument(ctx, e.pool, catalog.AllUsers(), s.DocumentID); err != nil {
		t.Fatalf("the busy delete removed the document: %v", err)
	}

	g.open()
	m.LockWait = time.Minute
	dbtest.Must(t, m.DeleteDocument(ctx, catalog.UserScope(userA), s.DocumentID), "delete")
	for _, table := range []string{"documents", "upload_jobs", "events", "document_chunks", "document_chunk_buffer", "document_vector_buffer"} {
		if n := e.count(t, `SELECT count(*) FROM upload_pipeline.`+table+` WHERE document_id = $1`, s.DocumentID); n != 0 {
			t.Errorf("%s: %d rows left", table, n)
		}
	}
	for _, key := range []string{storage.RawKey(userA, s.DocumentID), storage.ParsedKey(userA, s.DocumentID)} {
		if _, err := e.store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("object %s after delete: %v", key, err)
		}
	}
	if err := m.DeleteDocument(ctx, catalog.AllUsers(), s.DocumentID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}
