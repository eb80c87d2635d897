package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signer issues URLs that let a client without credentials download or
// upload one object, with one HTTP method, for a limited time. S3, Supabase
// and SignedLocal implement it; Open returns a Store that implements it
// whenever the backend can sign (type-assert to Signer or SignedStore).
type Signer interface {
	// SignedGetURL returns a URL that serves the object's bytes to a plain
	// HTTP GET (no auth headers) until ttl has passed.
	SignedGetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// SignedPutURL returns a URL that stores the body of a plain HTTP PUT as
	// the object, replacing any previous one, until ttl has passed. The
	// object's SHA256 may then be unknown to Stat (nobody hashed it).
	SignedPutURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// SignedStore is a Store that also signs URLs.
type SignedStore interface {
	Store
	Signer
}

// MaxSignedURLTTL is the longest ttl accepted (the SigV4 presign limit).
const MaxSignedURLTTL = 7 * 24 * time.Hour

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxSignedURLTTL {
		return fmt.Errorf("signed URL ttl %s out of range (0, %s]", ttl, MaxSignedURLTTL)
	}
	return nil
}

// BlobPath is where docpipe's API server mounts the handler that serves
// signed URLs for the local store (LocalSigner.Handler / BlobHandler).
const BlobPath = "/v1/blobs/"

// minSecretLen is the shortest HMAC secret accepted for signing.
const minSecretLen = 16

// LocalSignerOptions configure a LocalSigner.
type LocalSignerOptions struct {
	// BaseURL is docpipe's public base URL, e.g. https://docpipe.example.com;
	// signed URLs are BaseURL + BlobPath + key + "?expires=…&signature=…".
	BaseURL string
	// Secret is the HMAC-SHA256 key (at least 16 bytes; use 32 random ones).
	// The server that mounts the handler must use the same secret.
	Secret string
	// Now is the clock for expiry (nil = time.Now).
	Now func() time.Time
	// MaxPutBytes caps the body of a signed PUT (0 = no cap); larger → 413.
	MaxPutBytes int64
}

// LocalSigner signs URLs to docpipe's own server for the local store: an
// HMAC over (method, key, expiry), checked by its Handler. A URL is bound to
// one object and one method (HEAD is allowed with a GET URL).
type LocalSigner struct {
	base   string
	secret []byte
	now    func() time.Time
	maxPut int64
}

// NewLocalSigner checks the options and returns the signer.
func NewLocalSigner(o LocalSignerOptions) (*LocalSigner, error) {
	if len(o.Secret) < minSecretLen {
		return nil, fmt.Errorf("storage signing secret must be at least %d bytes", minSecretLen)
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("storage public base URL %q must be an absolute http(s) URL", o.BaseURL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &LocalSigner{base: strings.TrimRight(o.BaseURL, "/"), secret: []byte(o.Secret), now: o.Now, maxPut: o.MaxPutBytes}, nil
}

// SignedGetURL implements Signer.
func (s *LocalSigner) SignedGetURL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return s.sign(http.MethodGet, key, ttl)
}

// SignedPutURL implements Signer.
func (s *LocalSigner) SignedPutURL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return s.sign(http.MethodPut, key, ttl)
}

func (s *LocalSigner) sign(method, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(s.now().Add(ttl).Unix(), 10)
	q := url.Values{"expires": {exp}, "signature": {s.mac(method, key, exp)}}
	return s.base + BlobPath + key + "?" + q.Encode(), nil
}

func (s *LocalSigner) mac(method, key, exp string) string {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "docpipe-blob-v1\n%s\n%s\n%s", method, key, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// BlobHandler serves signed GET/PUT URLs made by a LocalSigner with the same
// secret, for store. Mount it at BlobPath (with or without
// http.StripPrefix("/v1/blobs", …)). Tampered, expired or wrong-method
// requests get 403.
func BlobHandler(store Store, secret string) http.Handler {
	return (&LocalSigner{secret: []byte(secret), now: time.Now}).Handler(store)
}

// Handler serves this signer's URLs for store (see BlobHandler).
func (s *LocalSigner) Handler(store Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(BlobPath, "/"))
		key = strings.TrimPrefix(key, "/")
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodHead:
			method = http.MethodGet
		case http.MethodPut:
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if err := s.verify(method, key, r.URL.Query()); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if method == http.MethodPut {
			s.put(w, r, store, key)
			return
		}
		serveObject(w, r, store, key)
	})
}

func (s *LocalSigner) verify(method, key string, q url.Values) error {
	if len(s.secret) < minSecretLen {
		return errors.New("signed URLs are not configured")
	}
	exp, sig := q.Get("expires"), q.Get("signature")
	if ValidKey(key) != nil || exp == "" || !hmac.Equal([]byte(sig), []byte(s.mac(method, key, exp))) {
		return errors.New("invalid signature")
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.now().Unix() > e {
		return errors.New("signed URL has expired")
	}
	return nil
}

func (s *LocalSigner) put(w http.ResponseWriter, r *http.Request, store Store, key string) {
	body := io.Reader(r.Body)
	if s.maxPut > 0 {
		body = http.MaxBytesReader(w, r.Body, s.maxPut)
	}
	obj, err := store.Put(r.Context(), key, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("object larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "store failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"key": obj.Key, "size": obj.Size, "sha256": obj.SHA256})
}

func serveObject(w http.ResponseWriter, r *http.Request, store Store, key string) {
	st, err := store.Stat(r.Context(), key)
	if err == nil {
		var rc io.ReadCloser
		if rc, err = store.Get(r.Context(), key); err == nil {
			defer rc.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			if st.SHA256 != "" {
				w.Header().Set("ETag", `"`+st.SHA256+`"`)
			}
			if rs, ok := rc.(io.ReadSeeker); ok { // Range and conditional requests for files
				http.ServeContent(w, r, "", time.Time{}, rs)
				return
			}
			w.Header().Set("Content-Length", strconv.FormatInt(st.Size, 10))
			if r.Method != http.MethodHead {
				_, _ = io.Copy(w, rc)
			}
			return
		}
	}
	if errors.Is(err, ErrNotFound) {
		http.Error(w, "object not found", http.StatusNotFound)
		return
	}
	http.Error(w, "read failed", http.StatusInternalServerError)
}

// SignedLocal is the local store with a LocalSigner: a SignedStore whose URLs
// are served by BlobHandler(local, secret) on docpipe's API server.
type SignedLocal struct {
	*Local
	*LocalSigner
}
