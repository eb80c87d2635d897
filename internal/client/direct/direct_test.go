package direct_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/client/direct"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// The client commands have one body and one JSON shape whichever backend serves them:
// on the same data, every body prints the same bytes through the API (*client.Client)
// and on the database (direct.Backend), for documents uploaded through either.
func TestBothBackendsPrintTheSame(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, _ := dbtest.Pool(t)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	chunker, err := chunk.New(chunk.Options{MaxTokens: 64, OverlapTokens: 8})
	dbtest.Must(t, err, "chunker")
	embedder, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parse.NewLocal(parse.Options{}), Chunker: chunker, Embedder: embedder},
		pipeline.Options{})
	dbtest.Must(t, err, "pipeline")
	dbtest.Must(t, pipe.Start(context.WithoutCancel(ctx)), "start")
	t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	server, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: embedder}, api.Options{})
	dbtest.Must(t, err, "api")
	srv := httptest.NewServer(server)
	t.Cleanup(srv.Close)
	user := uuid.New()
	key, _, err := auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "test", UserID: &user})
	dbtest.Must(t, err, "key")

	backends := map[string]client.Backend{
		"api":    client.New(srv.URL, key),
		"direct": &direct.Backend{Pool: pool, Pipe: pipe, Store: store, Embedder: embedder, Scope: catalog.UserScope(user), User: user},
	}
	dir := t.TempDir()
	files := map[string]string{"api": filepath.Join(dir, "plan.md"), "direct": filepath.Join(dir, "rider.md")}
	dbtest.Must(t, os.WriteFile(files["api"], []byte("# Plan\n\n## Costs\n\nThe yearly deductible is $250.\n"), 0o644), "write")
	dbtest.Must(t, os.WriteFile(files["direct"], []byte("# Rider\n\n## Dental\n\nTwo cleanings a year, no deductible.\n"), 0o644), "write")
	for name, b := range backends {
		if failed, err := (client.Uploader{Backend: b, Out: io.Discard}).Run(ctx, []string{files[name]}); err != nil || failed != 0 {
			t.Fatalf("upload through %s: %d failed, %v", name, failed, err)
		}
	}

	// What each body prints, with --json and without, through a backend.
	output := func(b client.Backend, asJSON bool, body func(client.CLI, context.Context) error) string {
		var out bytes.Buffer
		dbtest.Must(t, body(client.CLI{Backend: b, Out: &out, JSON: asJSON}, ctx), "body")
		return out.String()
	}
	jobs, _, err := backends["api"].JobsPage(ctx, client.JobsQuery{})
	dbtest.Must(t, err, "jobs page")
	var docs []string
	for _, j := range jobs {
		docs = append(docs, j.DocumentID.String())
	}
	job := jobs[0].ID.String()
	bodies := map[string]func(client.CLI, context.Context) error{
		"status":     func(c client.CLI, ctx context.Context) error { return c.Status(ctx, nil, false, 10) },
		"status ids": func(c client.CLI, ctx context.Context) error { return c.Status(ctx, docs, true, 0) },
		"jobs list":  func(c client.CLI, ctx context.Context) error { return c.Jobs(ctx, "complete", 10) },
		"jobs show":  func(c client.CLI, ctx context.Context) error { return c.ShowJob(ctx, job) },
		"search":     func(c client.CLI, ctx context.Context) error { return c.Search(ctx, "deductible", 5, "hybrid") },
		"ingest again": func(c client.CLI, ctx context.Context) error {
			_, err := client.Uploader{Backend: c.Backend, Out: c.Out, JSON: c.JSON, NoBars: true, Progress: io.Discard}.Run(ctx, []string{files["api"], files["direct"]})
			return err
		},
	}
	for what, body := range bodies {
		for _, asJSON := range []bool{true, false} {
			viaAPI, viaDB := output(backends["api"], asJSON, body), output(backends["direct"], asJSON, body)
			if viaAPI != viaDB || len(viaAPI) < 100 {
				t.Errorf("%s (json %v) differs between the backends:\napi:\n%s\ndirect:\n%s", what, asJSON, viaAPI, viaDB)
			}
		}
	}
}
