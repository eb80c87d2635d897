package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// Upload a document to a docpipe API, wait until the pipeline has made it searchable,
// and search it. The API is a real `docpipe serve --with-worker` stack started in this
// process (startDocpipe, below); against a deployed one only the URL and the API key
// differ.
func Example_uploadWaitSearch() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	baseURL, apiKey, stop := startDocpipe(ctx)
	defer stop()
	c := client.New(baseURL, apiKey)

	dir, err := os.MkdirTemp("", "docpipe-example-")
	check(err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "plan.md")
	check(os.WriteFile(path, []byte("# Plan\n\n## Costs\n\nThe yearly deductible is $250. After it you pay 20% coinsurance.\n\n"+
		"## Pharmacy\n\nGeneric drugs cost less at preferred pharmacies.\n"), 0o644))

	// Upload streams the file and declares its sha256: the server refuses bytes that
	// differ. The run starts queued; uploading the same bytes again would answer the
	// same document with Duplicate set.
	up, err := c.Upload(ctx, path, nil)
	check(err)
	fmt.Println("uploaded:", up.Filename, up.Status)

	// Wait: the document's status moves through the stages until it is terminal
	// (complete, duplicate, or a failed_* status with the reason in Job.LastError).
	doc, err := c.Document(ctx, up.DocumentID.String())
	for err == nil && !doc.Status.Terminal() {
		time.Sleep(100 * time.Millisecond)
		doc, err = c.Document(ctx, up.DocumentID.String())
	}
	check(err)
	fmt.Println("document:", doc.Filename, doc.Status, doc.Chunks, "chunks")

	// Search what the key's user may see; hybrid fuses the vector and keyword ranks.
	hits, err := c.Search(ctx, "what is the deductible", 1, "hybrid")
	check(err)
	for _, h := range hits {
		fmt.Printf("hit: %s, chunk %d under %q\n", h.Filename, h.Ord, strings.Join(h.HeadingPath, " > "))
	}
	// Output:
	// uploaded: plan.md parse_queued
	// document: plan.md complete 2 chunks
	// hit: plan.md, chunk 0 under "Plan > Costs"
}

// startDocpipe runs in this process what `docpipe serve --with-worker` runs: the
// pipeline with its workers (the local parser, chunker and embedder; blobs in a
// temporary folder) and the API on a loopback port, on a new database. It returns the
// API's URL, an API key for a new user, and what stops it all.
func startDocpipe(ctx context.Context) (baseURL, apiKey string, stop func()) {
	pool, dropDB, err := dbtest.ExamplePool(ctx)
	check(err)
	blobs, err := os.MkdirTemp("", "docpipe-example-blobs-")
	check(err)
	store, err := storage.NewLocal(blobs)
	check(err)
	chunker, err := chunk.New(chunk.Options{MaxTokens: 64, OverlapTokens: 8})
	check(err)
	embedder, err := embed.NewLocal(1536)
	check(err)
	parser := parse.NewLocal(parse.Options{})
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parser, Chunker: chunker, Embedder: embedder}, pipeline.Options{})
	check(err)
	check(pipe.Start(context.WithoutCancel(ctx)))
	server, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: embedder}, api.Options{})
	check(err)
	srv := httptest.NewServer(server)
	user := uuid.New()
	apiKey, _, err = auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "example", UserID: &user})
	check(err)
	return srv.URL, apiKey, func() {
		srv.Close()
		_ = pipe.Stop(context.Background())
		parser.Close()
		dropDB()
		os.RemoveAll(blobs)
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
