package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SupabaseOptions configure a Supabase Storage store.
type SupabaseOptions struct {
	// URL is the Storage API base: https://<ref>.supabase.co/storage/v1, a
	// self-hosted gateway's http://host:8000/storage/v1, or a bare
	// storage-api server (http://host:5000). A hosted project URL with no
	// path (https://<ref>.supabase.co) gets /storage/v1 appended.
	URL string
	// Key is sent as "Authorization: Bearer <key>" and as "apikey"; use the
	// service_role key (it bypasses RLS) or a JWT allowed to use the bucket.
	Key string
	// Bucket holds the objects; it must exist (see EnsureBucket).
	Bucket string
	// HTTPClient sends the requests (nil = a client with no overall timeout;
	// contexts bound each call).
	HTTPClient *http.Client
}

// Supabase is a Store on the Supabase Storage REST API. Put spools the body
// (memory up to 8 MiB, then a temporary file) while hashing it and uploads
// it with x-upsert: true and the SHA256 as user metadata (x-metadata, base64
// JSON {"sha256": "<hex>"}); Stat reads it back from the object info. Errors
// are decoded from the body's statusCode (the API answers HTTP 400 for
// every 4xx) into *SupabaseError; a missing object is ErrNotFound.
//
// SignedPutURL cannot choose the expiry: the server fixes it for upload URLs
// (2 hours on hosted Supabase, UPLOAD_SIGNED_URL_EXPIRATION_TIME = 60 s by
// default on a self-hosted storage-api); ttl is only range-checked.
type Supabase struct {
	base   string
	key    string
	bucket string
	hc     *http.Client
}

// NewSupabase returns the store; it makes no request.
func NewSupabase(o SupabaseOptions) (*Supabase, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("supabase storage: URL %q must be an absolute http(s) URL", o.URL)
	}
	if u.Path == "" && (strings.HasSuffix(u.Hostname(), ".supabase.co") || strings.HasSuffix(u.Hostname(), ".supabase.in")) {
		u.Path = "/storage/v1"
	}
	if o.Key == "" {
		return nil, errors.New("supabase storage: key is required")
	}
	if o.Bucket == "" || strings.Contains(o.Bucket, "/") {
		return nil, fmt.Errorf("supabase storage: invalid bucket %q", o.Bucket)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Supabase{base: u.String(), key: o.Key, bucket: o.Bucket, hc: hc}, nil
}

// SupabaseError is an error answer from Supabase Storage.
type SupabaseError struct {
	Op, Key    string
	HTTPStatus int    // status of the HTTP response (400 for most 4xx)
	Status     int    // the real status: the body's statusCode when numeric, else HTTPStatus
	Code       string // e.g. NoSuchKey, KeyAlreadyExists, EntityTooLarge, AccessDenied
	ErrorText  string // the body's "error"
	Message    string // the body's "message"
}

func (e *SupabaseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "supabase storage %s", e.Op)
	if e.Key != "" {
		b.WriteString(" " + e.Key)
	}
	fmt.Fprintf(&b, ": %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else if e.ErrorText != "" {
		b.WriteString(" " + e.ErrorText)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.HTTPStatus != e.Status {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	return b.String()
}

// Is reports ErrNotFound for a missing object (not for a missing bucket).
func (e *SupabaseError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound && !e.bucketMissing()
}

func (e *SupabaseError) bucketMissing() bool {
	return e.Code == "NoSuchBucket" || strings.EqualFold(e.ErrorText, "Bucket not found")
}

// Temporary reports whether retrying may help (5xx, 429, timeouts, locks).
func (e *SupabaseError) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusLocked:
		return true
	}
	return e.Status >= 500 || e.HTTPStatus >= 500
}

// EnsureBucket creates the bucket (private) if it does not exist.
func (s *Supabase) EnsureBucket(ctx context.Context) error {
	resp, err := s.do(ctx, "get bucket", "", http.MethodGet, "/bucket/"+url.PathEscape(s.bucket), nil, nil)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	var se *SupabaseError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		return err
	}
	body, _ := json.Marshal(map[string]any{"name": s.bucket, "id": s.bucket, "public": false})
	resp, err = s.do(ctx, "create bucket", "", http.MethodPost, "/bucket", bytes.NewReader(body),
		http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			return nil
		}
		return err
	}
	resp.Body.Close()
	return nil
}

func (s *Supabase) objectPath(kind, key string) string {
	p := "/object/"
	if kind != "" {
		p += kind + "/"
	}
	return p + url.PathEscape(s.bucket) + "/" + key // keys are URL-safe (ValidKey)
}

// Put implements Store.
func (s *Supabase) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := ValidKey(key); err != nil {
		return Object{}, err
	}
	sp, err := spool(ctx, r)
	if err != nil {
		return Object{}, fmt.Errorf("supabase storage put %s: read body: %w", key, err)
	}
	defer sp.Close()
	meta, _ := json.Marshal(map[string]string{"sha256": sp.sha256})
	h := http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Cache-Control": {"no-cache"},
		"X-Upsert":      {"true"},
		"X-Metadata":    {base64.StdEncoding.EncodeToString(meta)},
	}
	resp, err := s.doBody(ctx, "put", key, http.MethodPost, s.objectPath("", key), sp.body(), sp.size, h)
	if err != nil {
		return Object{}, err
	}
	drain(resp)
	return Object{Key: key, Size: sp.size, SHA256: sp.sha256}, nil
}

// Get implements Store.
func (s *Supabase) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	resp, err := s.do(ctx, "get", key, http.MethodGet, s.objectPath("authenticated", key), nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// supabaseInfo is the body of GET /object/info/…
type supabaseInfo struct {
	Size     *int64         `json:"size"`
	Metadata map[string]any `json:"metadata"` // user metadata
}

// Stat implements Store (GET /object/info/authenticated/…); SHA256 is
// empty for objects not written by Put.
func (s *Supabase) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidKey(key); err != nil {
		return Object{}, err
	}
	resp, err := s.do(ctx, "stat", key, http.MethodGet, s.objectPath("info/authenticated", key), nil, nil)
	if err != nil {
		return Object{}, err
	}
	defer resp.Body.Close()
	obj := Object{Key: key, Size: resp.ContentLength}
	var info supabaseInfo
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	// Old servers answer info with the HEAD renderer (no body, Content-Length
	// = object size); newer ones send JSON (and may still send the object's
	// Content-Length, hence a read error is ignored once the JSON parsed).
	if json.Unmarshal(b, &info) == nil {
		obj.Size = -1
		if info.Size != nil {
			obj.Size = *info.Size
		}
		if sum, ok := info.Metadata["sha256"].(string); ok {
			obj.SHA256 = sum
		}
	} else if rerr != nil {
		return Object{}, fmt.Errorf("supabase storage stat %s: %w", key, rerr)
	} else if len(b) > 0 {
		obj.Size = -1 // some other body: the length is not the object's
	}
	if obj.Size < 0 {
		return Object{}, fmt.Errorf("supabase storage stat %s: no size in the answer", key)
	}
	return obj, nil
}

// Delete implements Store; a missing object is not an error.
func (s *Supabase) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	resp, err := s.do(ctx, "delete", key, http.MethodDelete, s.objectPath("", key), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// SignedGetURL implements Signer (POST /object/sign/…).
func (s *Supabase) SignedGetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]int64{"expiresIn": int64(math.Ceil(ttl.Seconds()))})
	var out struct {
		SignedURL string `json:"signedURL"`
	}
	if err := s.doJSON(ctx, "sign get", key, s.objectPath("sign", key), body, nil, &out); err != nil {
		return "", err
	}
	return s.join("sign get", key, out.SignedURL)
}

// SignedPutURL implements Signer (POST /object/upload/sign/… with
// x-upsert: true baked into the token). The expiry is the server's, not ttl.
func (s *Supabase) SignedPutURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	var out struct {
		URL string `json:"url"`
	}
	if err := s.doJSON(ctx, "sign put", key, s.objectPath("upload/sign", key), nil, http.Header{"X-Upsert": {"true"}}, &out); err != nil {
		return "", err
	}
	return s.join("sign put", key, out.URL)
}

// join makes a signed URL absolute: the API returns it relative to the
// storage base ("/object/sign/…?token=…").
func (s *Supabase) join(op, key, rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("supabase storage %s %s: no URL in the answer", op, key)
	}
	if strings.HasPrefix(rel, "http://") || strings.HasPrefix(rel, "https://") {
		return rel, nil
	}
	// storage-api returns the object name unescaped; escape the path like storage-js
	// (encodeURI) does, keep the query (the token) as it is.
	path, query, _ := strings.Cut(strings.TrimPrefix(rel, "/"), "?")
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	out := s.base + "/" + strings.Join(segs, "/")
	if query != "" {
		out += "?" + query
	}
	return out, nil
}

func (s *Supabase) doJSON(ctx context.Context, op, key, path string, body []byte, h http.Header, out any) error {
	if h == nil {
		h = http.Header{}
	}
	var rd io.Reader
	if body != nil {
		h.Set("Content-Type", "application/json")
		rd = bytes.NewReader(body)
	}
	resp, err := s.do(ctx, op, key, http.MethodPost, path, rd, h)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("supabase storage %s %s: decode answer: %w", op, key, err)
	}
	return nil
}

func (s *Supabase) do(ctx context.Context, op, key, method, path string, body io.Reader, h http.Header) (*http.Response, error) {
	var n int64 = -1
	if br, ok := body.(*bytes.Reader); ok {
		n = int64(br.Len())
	} else if body == nil {
		n = 0
	}
	return s.doBody(ctx, op, key, method, path, body, n, h)
}

// supabaseTries is how often a request is sent when the answer says a retry may
// help (5xx, 429, a network error): three, as the AWS SDK does for S3. Every
// request the store makes is idempotent (uploads are upserts of the same bytes).
const supabaseTries = 3

// doBody sends the request, again after a short backoff (200 ms, 400 ms, ±25%) while
// the answer is temporary and the body can be rewound.
func (s *Supabase) doBody(ctx context.Context, op, key, method, path string, body io.Reader, n int64, h http.Header) (*http.Response, error) {
	for try := 1; ; try++ {
		resp, err := s.send(ctx, op, key, method, path, body, n, h)
		if err == nil || try == supabaseTries || ctx.Err() != nil || !temporary(err) {
			return resp, err
		}
		if seeker, ok := body.(io.Seeker); ok {
			if _, serr := seeker.Seek(0, io.SeekStart); serr != nil {
				return resp, err
			}
		} else if body != nil {
			return resp, err
		}
		wait := time.Duration(float64(100*time.Millisecond<<try) * (0.75 + 0.5*rand.Float64()))
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(wait):
		}
	}
}

// temporary reports an error a retry may fix: an answer that says so, or a
// network error.
func temporary(err error) bool {
	var se *SupabaseError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func (s *Supabase) send(ctx context.Context, op, key, method, path string, body io.Reader, n int64, h http.Header) (*http.Response, error) {
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("supabase storage %s %s: %w", op, key, err)
	}
	if n >= 0 {
		req.ContentLength = n
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("apikey", s.key)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("supabase storage %s %s: %w", op, key, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeSupabaseError(op, key, resp)
}

// decodeSupabaseError reads {"statusCode": "404", "error", "code", "message"}.
// statusCode is a string in storage-api but read as a number too.
func decodeSupabaseError(op, key string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &SupabaseError{Op: op, Key: key, HTTPStatus: resp.StatusCode, Status: resp.StatusCode}
	var body struct {
		StatusCode json.RawMessage `json:"statusCode"`
		Error      string          `json:"error"`
		Code       string          `json:"code"`
		Message    string          `json:"message"`
	}
	if json.Unmarshal(b, &body) != nil {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
		return e
	}
	e.ErrorText, e.Code, e.Message = body.Error, body.Code, body.Message
	sc := strings.Trim(string(body.StatusCode), `"`)
	if n, err := strconv.Atoi(sc); err == nil && n >= 100 && n <= 999 {
		e.Status = n
	}
	return e
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
