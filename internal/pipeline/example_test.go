package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// Submit a document to a running pipeline and wait until it is searchable. Submit
// stores the bytes, creates the document and its run and queues the parse stage in
// one transaction; the workers (River jobs on the same Postgres) take it through
// parse → validate → chunk → embed → finalize. Submitting the same bytes again
// returns the same document and run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, cleanup, err := dbtest.ExamplePool(ctx) // a fresh, migrated database
	if err != nil {
		panic(err)
	}
	defer cleanup()
	dir, _ := os.MkdirTemp("", "blobs")
	defer os.RemoveAll(dir)
	store, _ := storage.NewLocal(dir)
	chunker, _ := chunk.New(chunk.Options{})
	embedder, _ := embed.NewLocal(1536)
	parser := parse.NewLocal(parse.Options{})

	p, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parser, Chunker: chunker, Embedder: embedder}, pipeline.Options{})
	if err != nil {
		panic(err)
	}
	if err := p.Start(ctx); err != nil {
		panic(err)
	}
	defer p.Stop(context.WithoutCancel(ctx))

	user := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	doc := []byte("# Plan summary\n\nYour deductible is $500 a year.\n")
	s, err := p.Submit(ctx, pipeline.Submission{UserID: user, Filename: "plan.md", Data: doc})
	if err != nil {
		panic(err)
	}
	fmt.Println("submitted:", s.Status)

	run, err := catalog.Wait(ctx, pool, catalog.UserScope(user), s.JobID, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("finished:", run.Status, run.Percent, "chunks:", run.ChunksTotal)

	again, _ := p.Submit(ctx, pipeline.Submission{UserID: user, Filename: "plan-copy.md", Data: doc})
	fmt.Println("same bytes again:", again.Duplicate, again.JobID == s.JobID)
	// Output:
	// submitted: parse_queued
	// finished: complete 100 chunks: 1
	// same bytes again: true true
}
