package api_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// While the database cannot be reached, every request that needs it answers 503
// UNAVAILABLE problem+json with a Retry-After (a client should retry), never 500:
// with a JWT (checked without the database), the handlers' queries fail; with an
// API key, its lookup does. /readyz says not ready.
func TestDatabaseDownAnswers503(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	dbtest.Must(t, err, "listen")
	addr := l.Addr().String()
	l.Close() // nothing listens here now: every connection is refused
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/docpipe?sslmode=disable&connect_timeout=2")
	dbtest.Must(t, err, "pool")
	t.Cleanup(pool.Close)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{})
	dbtest.Must(t, err, "chunker")
	emb, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: sharedParser(), Chunker: ch, Embedder: emb}, pipeline.Options{})
	dbtest.Must(t, err, "pipeline")
	srv, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: emb},
		api.Options{JWT: auth.JWTOptions{HS256Secret: hsSecret, Audience: "authenticated"}, RatePerSecond: -1})
	dbtest.Must(t, err, "api")
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	h := &harness{t: t, srv: ts, client: &http.Client{Timeout: time.Minute}}

	jwt := token(t, userA)
	for _, c := range []struct {
		name string
		resp response
	}{
		{"list documents", h.do(http.MethodGet, "/v1/documents", jwt, nil)},
		{"a run", h.do(http.MethodGet, "/v1/jobs/01a23b8e-fa1a-7a00-a76c-5e9309d9a92b", jwt, nil)},
		{"search", h.postJSON("/v1/search", jwt, map[string]any{"query": "deductible", "mode": "hybrid"})},
		{"upload", h.upload(jwt, "plan.md", []byte("# Plan\n\nThe deductible is $250.\n"), "")},
		{"API key", h.do(http.MethodGet, "/v1/documents", "dpk_0123456789abcdef0123456789abcdef0123456789abcdef", nil)},
	} {
		p := c.resp.problem(t, http.StatusServiceUnavailable, apitypes.CodeUnavailable)
		if c.resp.header.Get("Retry-After") == "" || strings.Contains(p.Detail, addr) {
			t.Errorf("%s: Retry-After %q, detail %q (must not reveal the error)", c.name, c.resp.header.Get("Retry-After"), p.Detail)
		}
	}
	if r := h.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not_ready") {
		t.Errorf("/readyz: %d %s", r.status, r.body)
	}
}

// A blob store that keeps answering 503 makes an upload answer 503 UNAVAILABLE with
// a Retry-After, not 500.
func TestBlobStoreDownAnswers503(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	twin := httptest.NewServer(mock.NewStorageServer(mock.StorageOptions{Buckets: []string{"docpipe"},
		ErrorRates: map[int]float64{503: 1}}))
	t.Cleanup(twin.Close)
	store, err := storage.NewSupabase(storage.SupabaseOptions{URL: twin.URL, Key: "key", Bucket: "docpipe"})
	dbtest.Must(t, err, "store")
	ch, err := chunk.New(chunk.Options{})
	dbtest.Must(t, err, "chunker")
	emb, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: sharedParser(), Chunker: ch, Embedder: emb}, pipeline.Options{})
	dbtest.Must(t, err, "pipeline")
	srv, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: emb}, api.Options{JWT: auth.JWTOptions{HS256Secret: hsSecret, Audience: "authenticated"}, RatePerSecond: -1})
	dbtest.Must(t, err, "api")
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	h := &harness{t: t, srv: ts, client: &http.Client{Timeout: time.Minute}}
	r := h.upload(token(t, userA), "plan.md", []byte("# Plan\n\nThe deductible is $250.\n"), "")
	r.problem(t, http.StatusServiceUnavailable, apitypes.CodeUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("no Retry-After: %v", r.header)
	}
}
