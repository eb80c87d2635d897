package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/storage"
)

func TestOpenSettings(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(storage.Settings{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*storage.Local); !ok {
		t.Fatalf("default backend: %T", s)
	}
	if _, ok := s.(storage.Signer); ok {
		t.Fatal("local store without a secret claims to sign")
	}
	s, err = storage.Open(storage.Settings{Backend: "local", Dir: dir, SignSecret: testSecret, PublicBaseURL: "http://localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	sg, ok := s.(storage.SignedStore)
	if !ok {
		t.Fatalf("local store with a secret does not sign: %T", s)
	}
	u, err := sg.SignedGetURL(context.Background(), "raw/a/b", time.Minute)
	if err != nil || !strings.HasPrefix(u, "http://localhost:8080/v1/blobs/raw/a/b?") {
		t.Fatalf("signed local URL %q %v", u, err)
	}
	s, err = storage.Open(storage.Settings{Backend: "S3", S3Endpoint: "http://127.0.0.1:9", S3Bucket: "b", S3AccessKey: "k", S3SecretKey: "s"})
	if _, ok := s.(storage.SignedStore); err != nil || !ok {
		t.Fatalf("s3: %T %v", s, err)
	}
	s, err = storage.Open(storage.Settings{Backend: "supabase", SupabaseURL: "https://ref.supabase.co", SupabaseKey: "k", SupabaseBucket: "b"})
	if _, ok := s.(storage.SignedStore); err != nil || !ok {
		t.Fatalf("supabase: %T %v", s, err)
	}
	for name, bad := range map[string]storage.Settings{
		"unknown backend":      {Backend: "gcs", Dir: dir},
		"local without dir":    {Backend: "local"},
		"secret without base":  {Dir: dir, SignSecret: testSecret},
		"short secret":         {Dir: dir, SignSecret: "short", PublicBaseURL: "http://x"},
		"s3 without bucket":    {Backend: "s3", S3AccessKey: "k", S3SecretKey: "s"},
		"s3 without keys":      {Backend: "s3", S3Bucket: "b"},
		"supabase without key": {Backend: "supabase", SupabaseURL: "https://ref.supabase.co", SupabaseBucket: "b"},
		"supabase bad url":     {Backend: "supabase", SupabaseURL: "ref.supabase.co", SupabaseKey: "k", SupabaseBucket: "b"},
	} {
		if _, err := storage.Open(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A hosted project URL without a path gets /storage/v1; signed URLs are
// joined to that base.
func TestSupabaseProjectURL(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer k" || r.Header.Get("apikey") != "k" {
			t.Errorf("auth headers: %v", r.Header)
		}
		_, _ = w.Write([]byte(`{"signedURL":"/object/sign/b/raw/a/b?token=t"}`))
	}))
	defer srv.Close()
	hc := &http.Client{Transport: rewriteTo(srv.URL)}
	s, err := storage.NewSupabase(storage.SupabaseOptions{URL: "https://ref.supabase.co/", Key: "k", Bucket: "b", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.SignedGetURL(context.Background(), "raw/a/b", time.Minute)
	if err != nil || u != "https://ref.supabase.co/storage/v1/object/sign/b/raw/a/b?token=t" {
		t.Fatalf("signed URL %q %v", u, err)
	}
	if len(paths) != 1 || paths[0] != "/storage/v1/object/sign/b/raw/a/b" {
		t.Fatalf("paths: %v", paths)
	}
}

// rewriteTo sends every request to base (keeping the path).
type rewriteTo string

func (b rewriteTo) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(string(b), "http://")
	return http.DefaultTransport.RoundTrip(r)
}

func TestSupabaseErrors(t *testing.T) {
	ctx := context.Background()
	twin := mock.NewStorageServer(mock.StorageOptions{APIKey: "key", MaxObjectBytes: 16, Buckets: []string{"docpipe"}})
	srv := httptest.NewServer(twin)
	defer srv.Close()
	key := storage.RawKey(uuid.New(), uuid.New())

	s, err := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL + "/storage/v1", Key: "key", Bucket: "docpipe"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, key, strings.NewReader("more than sixteen bytes"))
	var se *storage.SupabaseError
	if !errors.As(err, &se) || se.Status != 413 || se.HTTPStatus != 400 || se.Code != "EntityTooLarge" || se.Temporary() {
		t.Fatalf("too large: %#v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "413 EntityTooLarge: The object exceeded the maximum allowed size (HTTP 400)") || !strings.Contains(msg, key) {
		t.Fatalf("message: %s", msg)
	}

	// A big body over the limit still gets the 413 answer, not a reset connection.
	if _, err := s.Put(ctx, key, bytes.NewReader(make([]byte, 3<<20))); !errors.As(err, &se) || se.Status != 413 {
		t.Fatalf("big and too large: %v", err)
	}

	bad, _ := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL, Key: "wrong", Bucket: "docpipe"})
	if _, err := bad.Stat(ctx, key); !errors.As(err, &se) || se.Status != 403 || se.Code != "AccessDenied" || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("wrong key: %v", err)
	}

	nob, _ := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL, Key: "key", Bucket: "nope"})
	if _, err := nob.Get(ctx, key); errors.Is(err, storage.ErrNotFound) || !errors.As(err, &se) || se.Code != "NoSuchBucket" {
		t.Fatalf("missing bucket must not look like a missing object: %v", err)
	}
	if err := nob.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nob.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := nob.Put(ctx, key, strings.NewReader("now it exists")); err != nil {
		t.Fatal(err)
	}

	flaky := mock.NewStorageServer(mock.StorageOptions{ErrorRates: map[int]float64{500: 1}, Buckets: []string{"docpipe"}})
	fsrv := httptest.NewServer(flaky)
	defer fsrv.Close()
	fs, _ := storage.NewSupabase(storage.SupabaseOptions{URL: fsrv.URL, Key: "key", Bucket: "docpipe"})
	if _, err := fs.Stat(ctx, key); !errors.As(err, &se) || se.Status != 500 || !se.Temporary() {
		t.Fatalf("injected 500: %v", err)
	}
}

// A storage service that answers 503 and then 429 before it takes a request does not
// fail the store's calls: temporary answers are retried (Put with its body rewound).
func TestSupabaseRetriesTemporaryAnswers(t *testing.T) {
	ctx := context.Background()
	twin := mock.NewStorageServer(mock.StorageOptions{APIKey: "key", Buckets: []string{"docpipe"}})
	var mu sync.Mutex
	tries := map[string]int{}
	flaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tries[r.Method+" "+r.URL.Path]++
		n := tries[r.Method+" "+r.URL.Path]
		mu.Unlock()
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"statusCode":"503","error":"acquiring_lock_timeout","message":"acquiring lock timeout"}`)
		case 2:
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"statusCode":"429","error":"too_many_connections","message":"Too many connections"}`)
		default:
			twin.ServeHTTP(w, r)
		}
	})
	srv := httptest.NewServer(flaky)
	defer srv.Close()
	s, err := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL + "/storage/v1", Key: "key", Bucket: "docpipe"})
	if err != nil {
		t.Fatal(err)
	}
	key := storage.RawKey(uuid.New(), uuid.New())
	const body = "stored through a flaky service"
	if _, err := s.Put(ctx, key, strings.NewReader(body)); err != nil {
		t.Fatalf("put: %v", err)
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != body {
		t.Fatalf("get: %q, %v", got, err)
	}
	if st := twin.Stats(); st.Uploads != 1 {
		t.Fatalf("twin stored %d objects, want 1", st.Uploads)
	}
}

func TestS3Specifics(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	s, err := storage.NewS3(storage.S3Options{Endpoint: srv.URL, Bucket: "docpipe", AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	key := storage.RawKey(uuid.New(), uuid.New())
	// Missing bucket: an error that says so, not ErrNotFound.
	if _, err := s.Get(ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "docpipe") {
		t.Fatalf("missing bucket: %v", err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Put(ctx, key, bytes.NewReader([]byte("checksummed")))
	if err != nil {
		t.Fatal(err)
	}
	// The checksum is plain object metadata, visible to any S3 client.
	resp, err := http.Head(srv.URL + "/docpipe/" + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Amz-Meta-Sha256"); got != obj.SHA256 {
		t.Fatalf("x-amz-meta-sha256 = %q, want %s", got, obj.SHA256)
	}
	// Presigned PUT URLs carry no SDK checksum of an empty body.
	u, err := s.SignedPutURL(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.ToLower(u); strings.Contains(l, "checksum") || !strings.Contains(l, "x-amz-signedheaders=host&") {
		t.Fatalf("presigned PUT URL: %s", u)
	}
}

func TestBlobHandler(t *testing.T) {
	l, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := storage.RawKey(uuid.New(), uuid.New())
	if _, err := l.Put(context.Background(), key, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	for _, mount := range []string{"full", "stripped"} {
		mux := http.NewServeMux()
		if mount == "full" {
			mux.Handle(storage.BlobPath, storage.BlobHandler(l, testSecret))
		} else {
			mux.Handle(storage.BlobPath, http.StripPrefix("/v1/blobs", storage.BlobHandler(l, testSecret)))
		}
		srv := httptest.NewServer(mux)
		sg, err := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: srv.URL, Secret: testSecret, MaxPutBytes: 4})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := sg.SignedGetURL(context.Background(), key, time.Minute)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Range", "bytes=2-4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(b) != "234" {
			t.Fatalf("%s: range GET: %d %q", mount, resp.StatusCode, b)
		}
		if resp, err := http.Head(u); err != nil || resp.StatusCode != 200 || resp.ContentLength != 10 {
			t.Fatalf("%s: HEAD: %v %v", mount, resp, err)
		}
		req, _ = http.NewRequest(http.MethodPost, u, nil)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s: POST: %v %v", mount, resp, err)
		}
		// A handler with another secret refuses the URL.
		other := httptest.NewServer(storage.BlobHandler(l, "another-secret-of-enough-length"))
		if resp, err := http.Get(other.URL + u[len(srv.URL):]); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: other secret: %v %v", mount, resp, err)
		}
		other.Close()
		srv.Close()
	}
	// MaxPutBytes is enforced by the signer's own handler.
	sg, _ := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: "http://x", Secret: testSecret, MaxPutBytes: 4})
	srv := httptest.NewServer(sg.Handler(l))
	defer srv.Close()
	u, _ := sg.SignedPutURL(context.Background(), key, time.Minute)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+strings.TrimPrefix(u, "http://x"), strings.NewReader("too long"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized PUT: %v %v", resp, err)
	}
	if b, _ := storage.ReadAll(context.Background(), l, key, 0); string(b) != "0123456789" {
		t.Fatalf("object after a refused PUT: %q", b)
	}
	// An empty secret never verifies anything.
	empty := httptest.NewServer(storage.BlobHandler(l, ""))
	defer empty.Close()
	if resp, err := http.Get(empty.URL + "/v1/blobs/" + key + "?expires=9999999999&signature=00"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("empty secret: %v %v", resp, err)
	}
}
