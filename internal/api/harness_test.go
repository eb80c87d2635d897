package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

const corpus = "../../testdata/corpus"

var (
	userA = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	userB = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
)

// hsSecret is the HS256 secret the test servers accept (Supabase's "JWT secret").
var hsSecret = []byte("test-secret-at-least-32-bytes-long-0123456789")

var (
	parserOnce sync.Once
	parser     *parse.Local
)

// sharedParser is one pdfium pool for the whole test binary (its first start is slow).
func sharedParser() *parse.Local {
	parserOnce.Do(func() {
		parser = parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-test-wazero"), Workers: 2})
	})
	return parser
}

// harness is one API server on loopback over a private database, a local blob store
// and (with workers) an in-process pipeline worker.
type harness struct {
	t       *testing.T
	pool    *pgxpool.Pool
	dbURL   string
	dataDir string
	store   storage.Store
	pipe    *pipeline.Pipeline
	api     *api.Server
	srv     *httptest.Server
	client  *http.Client
}

type harnessOpts struct {
	api     api.Options
	workers bool
	// signed: the local store signs URLs to this server (SignedLocal), with blobSecret.
	signed bool
	// signerNow is the clock of the store's signer (nil: time.Now).
	signerNow func() time.Time
	// webhookSecret keys the pipeline's LlamaParse webhook tokens.
	webhookSecret []byte
	// budgets are shown against today's cost in the overview.
	budgets pipeline.Budgets
}

// blobSecret signs the local store's URLs in tests.
const blobSecret = "blob-secret-0123456789abcdef"

func newHarness(t *testing.T, ho harnessOpts) *harness {
	t.Helper()
	pool, dbURL := dbtest.Pool(t)
	h := &harness{t: t, pool: pool, dbURL: dbURL, dataDir: t.TempDir(), client: &http.Client{Timeout: 2 * time.Minute}}
	// The server starts first so the store can sign URLs to its address.
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.api.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)
	local, err := storage.NewLocal(h.dataDir)
	dbtest.Must(t, err, "store")
	h.store = local
	if ho.signed {
		sg, err := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: h.srv.URL, Secret: blobSecret, Now: ho.signerNow})
		dbtest.Must(t, err, "signer")
		h.store = storage.SignedLocal{Local: local, LocalSigner: sg}
	}
	ch, err := chunk.New(chunk.Options{MaxTokens: 512, OverlapTokens: 64})
	dbtest.Must(t, err, "chunker")
	emb, err := embed.NewLocal(1536)
	dbtest.Must(t, err, "embedder")
	h.pipe, err = pipeline.New(pipeline.Deps{Pool: pool, Store: h.store, Parser: sharedParser(), Chunker: ch, Embedder: emb},
		pipeline.Options{RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
			WebhookSecret: ho.webhookSecret, WebhookBaseURL: h.srv.URL})
	dbtest.Must(t, err, "pipeline")
	if ho.workers {
		dbtest.Must(t, h.pipe.Start(context.Background()), "start workers")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = h.pipe.Stop(ctx)
		})
	}
	o := ho.api
	if ho.signed {
		o.BlobSignSecret = blobSecret
	}
	if o.JWT.HS256Secret == nil && o.JWT.JWKSURL == "" {
		o.JWT.HS256Secret = hsSecret
		o.JWT.Audience = "authenticated"
	}
	if o.RatePerSecond == 0 {
		o.RatePerSecond = -1 // tests poll; the rate limit has its own test
	}
	h.api, err = api.New(api.Deps{Pool: pool, Pipe: h.pipe, Store: h.store, Embedder: emb, Budgets: ho.budgets}, o)
	dbtest.Must(t, err, "api")
	return h
}

// token is an HS256 JWT as Supabase Auth issues it.
func token(t testing.TB, user uuid.UUID, mod ...func(*jwt.RegisteredClaims)) string {
	t.Helper()
	c := jwt.RegisteredClaims{Subject: user.String(), Audience: jwt.ClaimStrings{"authenticated"},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}
	for _, m := range mod {
		m(&c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(hsSecret)
	dbtest.Must(t, err, "sign token")
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.status, r.body, err)
	}
}

// problem decodes a problem+json response and checks status and code.
func (r response) problem(t testing.TB, status int, code string) api.Problem {
	t.Helper()
	var p api.Problem
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("content type %q, want application/problem+json: %s", ct, r.body)
	}
	r.json(t, &p)
	if p.Code != code || p.Status != status {
		t.Fatalf("problem code %q status %d, want %q %d: %s", p.Code, p.Status, code, status, r.body)
	}
	return p
}

func (h *harness) do(method, path, auth string, body io.Reader, hdr ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	dbtest.Must(h.t, err, "request")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	dbtest.Must(h.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	dbtest.Must(h.t, err, "read body")
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) getJSON(path, auth string, v any) response {
	h.t.Helper()
	r := h.do(http.MethodGet, path, auth, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	r.json(h.t, v)
	return r
}

func (h *harness) postJSON(path, auth string, v any, hdr ...string) response {
	h.t.Helper()
	b, err := json.Marshal(v)
	dbtest.Must(h.t, err, "marshal")
	return h.do(http.MethodPost, path, auth, bytes.NewReader(b), hdr...)
}

// multipartBody builds an upload form; sha is sent when not empty.
func multipartBody(t testing.TB, filename string, data []byte, sha string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if sha != "" {
		dbtest.Must(t, mw.WriteField("sha256", sha), "field")
	}
	fw, err := mw.CreateFormFile("file", filename)
	dbtest.Must(t, err, "form file")
	_, _ = fw.Write(data)
	dbtest.Must(t, mw.Close(), "close form")
	return &buf, mw.FormDataContentType()
}

func (h *harness) upload(auth, filename string, data []byte, sha string, hdr ...string) response {
	h.t.Helper()
	body, ct := multipartBody(h.t, filename, data, sha)
	return h.do(http.MethodPost, "/v1/documents", auth, body, append([]string{"Content-Type", ct}, hdr...)...)
}

// uploadOK uploads and expects a new run (202).
func (h *harness) uploadOK(auth, filename string, data []byte) apitypes.UploadResult {
	h.t.Helper()
	r := h.upload(auth, filename, data, sha256hex(data))
	if r.status != http.StatusAccepted {
		h.t.Fatalf("upload %s: %d %s", filename, r.status, r.body)
	}
	var res apitypes.UploadResult
	r.json(h.t, &res)
	return res
}

// waitDocument polls GET /v1/documents/{id} until the latest run ends.
func (h *harness) waitDocument(auth string, id uuid.UUID, d time.Duration) apitypes.Document {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var doc apitypes.Document
		h.getJSON("/v1/documents/"+id.String(), auth, &doc)
		if doc.Status.Terminal() {
			return doc
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("document %s still %s (%.0f%%) after %s", id, doc.Status, doc.Percent, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	dbtest.Must(h.t, h.pool.QueryRow(context.Background(), sql, args...).Scan(&n), "count %s", sql)
	return n
}

// objects lists the files in the local blob store.
func (h *harness) objects() []string {
	h.t.Helper()
	var out []string
	_ = filepath.WalkDir(h.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(h.dataDir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatalf("read corpus file %s: %v", name, err)
	}
	return b
}

func smallDoc(title, body string) []byte {
	return fmt.Appendf(nil, "# %s\n\n%s\n", title, body)
}
