package mock

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StorageOptions configure the Supabase Storage twin.
type StorageOptions struct {
	// APIKey, when set, is required as "Authorization: Bearer <key>" on every
	// authenticated route (anything else: HTTP 400 with statusCode "403"),
	// and under /storage/v1 (the gateway) also as the "apikey" header
	// (missing or wrong: 401). Signed-URL and public routes need neither.
	APIKey string
	// JWTSecret signs the HS256 tokens of signed URLs; "" = derived from Seed.
	JWTSecret string
	// Seed makes object ids, versions, injected errors, latency jitter and
	// the default JWT secret reproducible (for requests made in the same
	// order, with a fixed Now).
	Seed int64
	// ErrorRates injects errors: status → probability per API request (after
	// auth), e.g. {500: 0.1}. 500 answers HTTP 500, 429 a real HTTP 429
	// SlowDown, 544 HTTP 544 DatabaseTimeout; any other status is sent the
	// Supabase way, HTTP 400 with that status in the body's statusCode.
	ErrorRates map[int]float64
	// Latency is added to every request, plus a uniform random 0..LatencyJitter.
	Latency, LatencyJitter time.Duration
	// MaxObjectBytes is the global upload size limit (a bucket's
	// file_size_limit may lower it); 0 = 50 MB (the Free plan). Larger
	// uploads get statusCode "413" EntityTooLarge.
	MaxObjectBytes int64
	// UploadURLExpiry is the lifetime of signed upload URLs (server-wide, as
	// in the real service); 0 = 2 h (hosted Supabase).
	UploadURLExpiry time.Duration
	// Buckets are created (private) at start.
	Buckets []string
	// Now is the twin's clock (nil = time.Now).
	Now func() time.Time
}

// StorageStats are the twin's counters.
type StorageStats struct {
	Requests       int64         // HTTP requests, any path
	Status         map[int]int64 // responses by HTTP status
	InjectedErrors int64
	Uploads        int64 // objects stored (any route)
	Downloads      int64 // object bodies served (any route)
}

// StorageServer is an http.Handler twin of the Supabase Storage API
// (storage-api): buckets, object upload (binary and multipart, x-upsert),
// download (authenticated, public, signed), info, delete, list, signed
// download and upload URLs with expiring HS256 tokens. Every route is served
// both bare (self-hosted storage-api) and under /storage/v1 (the hosted
// gateway). Errors follow storage-api: HTTP 400 for every 4xx with the real
// status in the body, {"statusCode": "404", "error", "code", "message"}.
type StorageServer struct {
	opts   StorageOptions
	mux    *http.ServeMux
	secret []byte

	mu      sync.Mutex // guards rng and buckets; handlers may answer while holding it
	rng     *rand.Rand
	buckets map[string]*sbBucket

	statusMu sync.Mutex
	status   map[int]int64

	requests, injected, uploads, downloads atomic.Int64
}

type sbBucket struct {
	id, name      string
	public        bool
	fileSizeLimit int64 // 0 = none
	allowedMime   []string
	created       time.Time
	updated       time.Time
	objects       map[string]*sbObject
}

type sbObject struct {
	id, name, version string
	data              []byte
	mimetype, cache   string
	etag              string
	userMeta          json.RawMessage // nil = null
	owner             string
	created, updated  time.Time
	lastAccessed      time.Time
}

// NewStorageServer returns the twin.
func NewStorageServer(opts StorageOptions) *StorageServer {
	if opts.MaxObjectBytes <= 0 {
		opts.MaxObjectBytes = 50 << 20
	}
	if opts.UploadURLExpiry <= 0 {
		opts.UploadURLExpiry = 2 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seed := uint64(opts.Seed)
	s := &StorageServer{
		opts:    opts,
		rng:     rand.New(rand.NewPCG(seed, seed^0x73746f72616765)),
		buckets: map[string]*sbBucket{},
		status:  map[int]int64{},
	}
	if opts.JWTSecret != "" {
		s.secret = []byte(opts.JWTSecret)
	} else {
		sum := sha256.Sum256([]byte("docpipe storage twin " + strconv.FormatInt(opts.Seed, 10)))
		s.secret = sum[:]
	}
	now := opts.Now().UTC()
	for _, b := range opts.Buckets {
		s.buckets[b] = &sbBucket{id: b, name: b, created: now, updated: now, objects: map[string]*sbObject{}}
	}
	mux := http.NewServeMux()
	// Not a route of the real service: the twin's own health check for orchestrators.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	for _, p := range []string{"", "/storage/v1"} {
		mux.HandleFunc("POST "+p+"/bucket", s.authed(s.createBucket))
		mux.HandleFunc("GET "+p+"/bucket", s.authed(s.listBuckets))
		mux.HandleFunc("GET "+p+"/bucket/{id}", s.authed(s.getBucket))
		mux.HandleFunc("DELETE "+p+"/bucket/{id}", s.authed(s.deleteBucket))
		mux.HandleFunc("POST "+p+"/bucket/{id}/empty", s.authed(s.emptyBucket))

		mux.HandleFunc("POST "+p+"/object/{bucket}/{path...}", s.authed(s.uploadRoute(false)))
		mux.HandleFunc("PUT "+p+"/object/{bucket}/{path...}", s.authed(s.uploadRoute(true)))
		mux.HandleFunc("GET "+p+"/object/{bucket}/{path...}", s.authed(s.download))
		mux.HandleFunc("GET "+p+"/object/authenticated/{bucket}/{path...}", s.authed(s.download))
		mux.HandleFunc("GET "+p+"/object/public/{bucket}/{path...}", s.open(s.publicDownload))
		mux.HandleFunc("GET "+p+"/object/info/{bucket}/{path...}", s.authed(s.info))
		mux.HandleFunc("GET "+p+"/object/info/authenticated/{bucket}/{path...}", s.authed(s.info))
		mux.HandleFunc("GET "+p+"/object/info/public/{bucket}/{path...}", s.open(s.publicInfo))
		mux.HandleFunc("DELETE "+p+"/object/{bucket}/{path...}", s.authed(s.deleteObject))
		mux.HandleFunc("DELETE "+p+"/object/{bucket}", s.authed(s.deleteObjects))
		mux.HandleFunc("POST "+p+"/object/list/{bucket}", s.authed(s.list))
		mux.HandleFunc("POST "+p+"/object/sign/{bucket}/{path...}", s.authed(s.sign))
		mux.HandleFunc("POST "+p+"/object/sign/{bucket}", s.authed(s.signMany))
		mux.HandleFunc("GET "+p+"/object/sign/{bucket}/{path...}", s.open(s.signedDownload))
		mux.HandleFunc("POST "+p+"/object/upload/sign/{bucket}/{path...}", s.authed(s.signUpload))
		mux.HandleFunc("PUT "+p+"/object/upload/sign/{bucket}/{path...}", s.open(s.signedUpload))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Fastify's own not-found answer (a real 404, numeric statusCode).
		sbJSON(w, http.StatusNotFound, map[string]any{
			"message": fmt.Sprintf("Route %s:%s not found", r.Method, r.URL.Path), "error": "Not Found", "statusCode": 404,
		})
	})
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *StorageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	sw := &statusWriter{ResponseWriter: w, record: func(code int) {
		s.statusMu.Lock()
		s.status[code]++
		s.statusMu.Unlock()
	}}
	defer func() {
		if !sw.wrote {
			sw.count(http.StatusOK)
		}
	}()
	s.mux.ServeHTTP(sw, r)
}

// Close releases nothing (the twin has no background work); it exists so
// the twins share a shape.
func (s *StorageServer) Close() error { return nil }

// Stats returns a snapshot of the counters.
func (s *StorageServer) Stats() StorageStats {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	st := StorageStats{Requests: s.requests.Load(), Status: map[int]int64{}, InjectedErrors: s.injected.Load(),
		Uploads: s.uploads.Load(), Downloads: s.downloads.Load()}
	for k, v := range s.status {
		st.Status[k] = v
	}
	return st
}

// Object returns a copy of a stored object's bytes.
func (s *StorageServer) Object(bucket, name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[bucket]
	if !ok {
		return nil, false
	}
	o, ok := b.objects[name]
	if !ok {
		return nil, false
	}
	return bytes.Clone(o.data), true
}

// ---- errors ----

// sbError writes a storage-api error: HTTP 400 for 4xx (the real status
// only in the body), 500 for 500; 429 and 544 keep their own status.
func sbError(w http.ResponseWriter, status int, errText, code, msg string) {
	httpStatus := http.StatusBadRequest
	switch {
	case status == http.StatusTooManyRequests || status == 544:
		httpStatus = status
	case status >= 500 && status != http.StatusServiceUnavailable:
		httpStatus = http.StatusInternalServerError
	}
	if errText == "" {
		errText = code
	}
	sbJSON(w, httpStatus, map[string]any{"statusCode": strconv.Itoa(status), "error": errText, "code": code, "message": msg})
}

func sbNoSuchKey(w http.ResponseWriter) {
	sbError(w, http.StatusNotFound, "not_found", "NoSuchKey", "Object not found")
}

func sbNoSuchBucket(w http.ResponseWriter) {
	sbError(w, http.StatusNotFound, "Bucket not found", "NoSuchBucket", "Bucket not found")
}

func sbDuplicate(w http.ResponseWriter, code string) {
	sbError(w, http.StatusConflict, "Duplicate", code, "The resource already exists")
}

func sbTooLarge(w http.ResponseWriter) {
	sbError(w, http.StatusRequestEntityTooLarge, "Payload too large", "EntityTooLarge", "The object exceeded the maximum allowed size")
}

// sbInvalid is a request validation failure (Fastify schema or a bad value).
func sbInvalid(w http.ResponseWriter, msg string) {
	sbError(w, http.StatusBadRequest, "Bad Request", "InvalidRequest", msg)
}

func sbJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"statusCode":"500","error":"internal","code":"InternalError","message":"mock: encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// ---- middleware ----

// authed wraps an authenticated route: latency, gateway apikey, Bearer key,
// injected errors.
func (s *StorageServer) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.delay(r) {
			return
		}
		if k := s.opts.APIKey; k != "" {
			if strings.HasPrefix(r.URL.Path, "/storage/v1/") {
				ak := r.Header.Get("apikey")
				if ak == "" {
					sbJSON(w, http.StatusUnauthorized, map[string]any{"message": "No API key found in request"})
					return
				}
				if subtle.ConstantTimeCompare([]byte(ak), []byte(k)) != 1 {
					sbJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid API key"})
					return
				}
			}
			const pre = "bearer "
			a := r.Header.Get("Authorization")
			if len(a) < len(pre) || !strings.EqualFold(a[:len(pre)], pre) {
				sbError(w, http.StatusForbidden, "Unauthorized", "AccessDenied", "jwt must be provided")
				return
			}
			if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(a[len(pre):])), []byte(k)) != 1 {
				sbError(w, http.StatusForbidden, "Unauthorized", "AccessDenied", "invalid signature")
				return
			}
		}
		if s.inject(w) {
			return
		}
		h(w, r)
	}
}

// open wraps a route that needs no auth (signed and public ones).
func (s *StorageServer) open(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.delay(r) || s.inject(w) {
			return
		}
		h(w, r)
	}
}

func (s *StorageServer) delay(r *http.Request) bool {
	d := s.opts.Latency
	if s.opts.LatencyJitter > 0 {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(s.opts.LatencyJitter) + 1))
		s.mu.Unlock()
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// inject answers with an injected error, if one is drawn.
func (s *StorageServer) inject(w http.ResponseWriter) bool {
	if len(s.opts.ErrorRates) == 0 {
		return false
	}
	codes := make([]int, 0, len(s.opts.ErrorRates))
	for c := range s.opts.ErrorRates {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	acc, code := 0.0, 0
	for _, c := range codes {
		acc += s.opts.ErrorRates[c]
		if x < acc {
			code = c
			break
		}
	}
	if code == 0 {
		return false
	}
	s.injected.Add(1)
	switch code {
	case http.StatusInternalServerError:
		sbError(w, code, "internal", "InternalError", "Internal server error")
	case http.StatusTooManyRequests:
		sbError(w, code, "too_many_connections", "SlowDown", "Too many connections issued to the database")
	case http.StatusServiceUnavailable:
		sbError(w, code, "acquiring_lock_timeout", "LockTimeout", "acquiring lock timeout")
	case 544:
		sbError(w, code, "DatabaseTimeout", "DatabaseTimeout", "The connection to the database timed out")
	case http.StatusForbidden:
		sbError(w, code, "Unauthorized", "AccessDenied", "new row violates row-level security policy")
	case http.StatusNotFound:
		sbNoSuchKey(w)
	case http.StatusConflict:
		sbDuplicate(w, "KeyAlreadyExists")
	case http.StatusRequestEntityTooLarge:
		sbTooLarge(w)
	default:
		if code >= 500 {
			sbError(w, code, "internal", "InternalError", http.StatusText(code))
		} else {
			sbError(w, code, "Bad Request", "InvalidRequest", http.StatusText(code))
		}
	}
	return true
}

// ---- helpers ----

func (s *StorageServer) now() time.Time { return s.opts.Now().UTC() }

// newID returns a random UUIDv4 from the seeded generator; caller holds s.mu.
func (s *StorageServer) newID() string {
	var b [16]byte
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func sbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// sbValidName checks an object name the way storage-api's key check does
// (no empty segments' escapes, no traversal, printable).
func sbValidName(name string) bool {
	if name == "" || len(name) > 1024 || strings.HasPrefix(name, "/") {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// sbEscape escapes each segment of a bucket/object path for a URL.
func sbEscape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// bucket finds a bucket; caller holds s.mu.
func (s *StorageServer) bucket(name string) *sbBucket { return s.buckets[name] }

// ---- buckets ----

func (s *StorageServer) bucketRow(b *sbBucket) map[string]any {
	var limit, mimes any
	if b.fileSizeLimit > 0 {
		limit = b.fileSizeLimit
	}
	if b.allowedMime != nil {
		mimes = b.allowedMime
	}
	return map[string]any{
		"id": b.id, "name": b.name, "owner": "", "public": b.public, "file_size_limit": limit,
		"allowed_mime_types": mimes, "created_at": sbTime(b.created), "updated_at": sbTime(b.updated), "type": "STANDARD",
	}
}

// sbParseSize reads a file_size_limit: a number of bytes or "20MB"-style.
func sbParseSize(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		if x < 0 {
			return 0, errors.New("negative")
		}
		return int64(x), nil
	case string:
		s := strings.ToUpper(strings.TrimSpace(x))
		mult := int64(1)
		for _, u := range []struct {
			suf string
			m   int64
		}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
			if strings.HasSuffix(s, u.suf) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suf)), u.m
				break
			}
		}
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n < 0 {
			return 0, errors.New("invalid")
		}
		return int64(n * float64(mult)), nil
	}
	return 0, errors.New("invalid")
}

func (s *StorageServer) createBucket(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name             string   `json:"name"`
		ID               string   `json:"id"`
		Public           bool     `json:"public"`
		FileSizeLimit    any      `json:"file_size_limit"`
		AllowedMimeTypes []string `json:"allowed_mime_types"`
		Type             string   `json:"type"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		sbInvalid(w, "body must be object")
		return
	}
	if body.Name == "" {
		sbInvalid(w, "body must have required property 'name'")
		return
	}
	if body.ID == "" {
		body.ID = body.Name
	}
	if strings.ContainsAny(body.ID, "/\\") || len(body.ID) > 100 {
		sbError(w, http.StatusBadRequest, "Invalid Input", "InvalidBucketName", "Bucket name invalid")
		return
	}
	limit, err := sbParseSize(body.FileSizeLimit)
	if err != nil {
		sbInvalid(w, "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[body.ID] != nil {
		sbDuplicate(w, "ResourceAlreadyExists")
		return
	}
	now := s.now()
	s.buckets[body.ID] = &sbBucket{id: body.ID, name: body.Name, public: body.Public, fileSizeLimit: limit,
		allowedMime: body.AllowedMimeTypes, created: now, updated: now, objects: map[string]*sbObject{}}
	sbJSON(w, http.StatusOK, map[string]any{"name": body.Name})
}

func (s *StorageServer) listBuckets(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.buckets))
	for id := range s.buckets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rows := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		rows = append(rows, s.bucketRow(s.buckets[id]))
	}
	s.mu.Unlock()
	sbJSON(w, http.StatusOK, rows)
}

func (s *StorageServer) getBucket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r.PathValue("id"))
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	sbJSON(w, http.StatusOK, s.bucketRow(b))
}

func (s *StorageServer) deleteBucket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r.PathValue("id"))
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	if len(b.objects) > 0 {
		sbError(w, http.StatusConflict, "InvalidRequest", "InvalidRequest", "The bucket you tried to delete is not empty")
		return
	}
	delete(s.buckets, b.id)
	sbJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted"})
}

func (s *StorageServer) emptyBucket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r.PathValue("id"))
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	b.objects = map[string]*sbObject{}
	sbJSON(w, http.StatusOK, map[string]any{"message": "Successfully emptied"})
}

// ---- upload ----

// sbUpload is a parsed upload body.
type sbUpload struct {
	data            []byte
	mimetype, cache string
	userMeta        json.RawMessage
}

// readUpload parses a binary or multipart body, enforcing limit. It writes
// the error answer and returns false on failure.
func (s *StorageServer) readUpload(w http.ResponseWriter, r *http.Request, limit int64) (sbUpload, bool) {
	if r.ContentLength > limit {
		// Read (a bounded amount of) the body first, so that the client,
		// still sending, gets the answer rather than a reset connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 256<<20))
		sbTooLarge(w)
		return sbUpload{}, false
	}
	up := sbUpload{mimetype: "application/octet-stream", cache: "no-cache"}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	readLimited := func(rd io.Reader) bool {
		b, err := io.ReadAll(io.LimitReader(rd, limit+1))
		if err != nil {
			sbInvalid(w, "could not read the body: "+err.Error())
			return false
		}
		if int64(len(b)) > limit {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 256<<20))
			sbTooLarge(w)
			return false
		}
		up.data = b
		return true
	}
	if mt != "multipart/form-data" {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			up.mimetype = ct
		}
		if cc := r.Header.Get("Cache-Control"); cc != "" {
			up.cache = cc
		}
		if m := r.Header.Get("x-metadata"); m != "" {
			raw, err := base64.StdEncoding.DecodeString(m)
			if err != nil || !json.Valid(raw) {
				sbInvalid(w, "Invalid Parameter x-metadata")
				return sbUpload{}, false
			}
			up.userMeta = raw
		}
		return up, readLimited(r.Body)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		sbInvalid(w, "the request is not multipart")
		return sbUpload{}, false
	}
	fields, gotFile, ctField := 0, false, ""
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			sbInvalid(w, "malformed multipart body")
			return sbUpload{}, false
		}
		if p.FileName() != "" {
			if gotFile {
				sbInvalid(w, "reach files limit")
				return sbUpload{}, false
			}
			gotFile = true
			if ct := p.Header.Get("Content-Type"); ct != "" {
				up.mimetype = ct
			}
			if !readLimited(p) {
				return sbUpload{}, false
			}
			continue
		}
		if fields++; fields > 10 {
			sbInvalid(w, "reach fields limit")
			return sbUpload{}, false
		}
		v, _ := io.ReadAll(io.LimitReader(p, 64<<10))
		switch p.FormName() {
		case "cacheControl":
			up.cache = "max-age=" + strings.TrimSpace(string(v))
		case "contentType": // wins over the file part's own Content-Type
			ctField = string(v)
		case "metadata", "userMetadata":
			if !json.Valid(v) {
				sbInvalid(w, "Invalid Parameter metadata")
				return sbUpload{}, false
			}
			up.userMeta = v
		}
	}
	if !gotFile {
		sbError(w, http.StatusBadRequest, "InvalidRequest", "InvalidRequest", "No content provided")
		return sbUpload{}, false
	}
	if ctField != "" {
		up.mimetype = ctField
	}
	return up, true
}

// limitFor is the upload size cap for a bucket; caller holds s.mu.
func (s *StorageServer) limitFor(b *sbBucket) int64 {
	if b.fileSizeLimit > 0 && b.fileSizeLimit < s.opts.MaxObjectBytes {
		return b.fileSizeLimit
	}
	return s.opts.MaxObjectBytes
}

// store uploads into bucket/name; it writes the error answer and returns
// nil on failure.
func (s *StorageServer) store(w http.ResponseWriter, r *http.Request, bucket, name string, upsert bool, owner string) *sbObject {
	if !sbValidName(name) {
		sbError(w, http.StatusBadRequest, "InvalidKey", "InvalidKey", "Invalid key: "+name)
		return nil
	}
	s.mu.Lock()
	b := s.bucket(bucket)
	if b == nil {
		s.mu.Unlock()
		sbNoSuchBucket(w)
		return nil
	}
	limit, allowed := s.limitFor(b), b.allowedMime
	_, exists := b.objects[name]
	s.mu.Unlock()
	if exists && !upsert { // early answer, as the real server checks before streaming
		sbDuplicate(w, "KeyAlreadyExists")
		return nil
	}
	up, ok := s.readUpload(w, r, limit)
	if !ok {
		return nil
	}
	if len(allowed) > 0 && !sbMimeAllowed(up.mimetype, allowed) {
		sbError(w, http.StatusUnsupportedMediaType, "invalid_mime_type", "InvalidMimeType", fmt.Sprintf("mime type %s is not supported", up.mimetype))
		return nil
	}
	sum := md5.Sum(up.data)
	s.mu.Lock()
	defer s.mu.Unlock()
	b = s.bucket(bucket)
	if b == nil {
		sbNoSuchBucket(w)
		return nil
	}
	now := s.now()
	o := b.objects[name]
	if o != nil && !upsert {
		sbDuplicate(w, "KeyAlreadyExists")
		return nil
	}
	if o == nil {
		o = &sbObject{id: s.newID(), name: name, created: now, owner: owner}
		b.objects[name] = o
	}
	o.version = s.newID()
	o.data, o.mimetype, o.cache, o.userMeta = up.data, up.mimetype, up.cache, up.userMeta
	o.etag = `"` + hex.EncodeToString(sum[:]) + `"`
	o.updated, o.lastAccessed = now, now
	s.uploads.Add(1)
	cp := *o
	return &cp
}

func sbMimeAllowed(mt string, allowed []string) bool {
	base, _, err := mime.ParseMediaType(mt)
	if err != nil {
		base = mt
	}
	for _, a := range allowed {
		if a == base || a == "*/*" || (strings.HasSuffix(a, "/*") && strings.HasPrefix(base, strings.TrimSuffix(a, "*"))) {
			return true
		}
	}
	return false
}

// uploadRoute is POST (create; x-upsert: true overwrites) and PUT (update,
// always upsert) /object/{bucket}/{path}.
func (s *StorageServer) uploadRoute(put bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bucket, name := r.PathValue("bucket"), r.PathValue("path")
		upsert := put || r.Header.Get("x-upsert") == "true"
		o := s.store(w, r, bucket, name, upsert, "")
		if o == nil {
			return
		}
		sbJSON(w, http.StatusOK, map[string]any{"Id": o.id, "Key": bucket + "/" + name})
	}
}

// ---- download / info ----

// lookup returns a copy of an object, or writes the error; caller must not hold s.mu.
func (s *StorageServer) lookup(w http.ResponseWriter, bucket, name string, needPublic bool) *sbObject {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(bucket)
	if b == nil || (needPublic && !b.public) {
		sbNoSuchBucket(w)
		return nil
	}
	o := b.objects[name]
	if o == nil {
		sbNoSuchKey(w)
		return nil
	}
	o.lastAccessed = s.now()
	cp := *o
	return &cp
}

func (s *StorageServer) serve(w http.ResponseWriter, r *http.Request, o *sbObject, expires time.Time) {
	h := w.Header()
	h.Set("Content-Type", o.mimetype)
	h.Set("ETag", o.etag)
	h.Set("Accept-Ranges", "bytes")
	if expires.IsZero() {
		h.Set("Cache-Control", o.cache)
	} else {
		h.Set("Expires", expires.UTC().Format(http.TimeFormat))
	}
	if d, ok := r.URL.Query()["download"]; ok {
		if d[0] == "" {
			h.Set("Content-Disposition", "attachment;")
		} else {
			e := url.QueryEscape(d[0])
			h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%s; filename*=UTF-8''%s;", e, e))
		}
	}
	if r.Method != http.MethodHead {
		s.downloads.Add(1)
	}
	// ServeContent handles Range (206/416), If-None-Match (304) and HEAD.
	http.ServeContent(w, r, "", o.updated, bytes.NewReader(o.data))
}

func (s *StorageServer) download(w http.ResponseWriter, r *http.Request) {
	if o := s.lookup(w, r.PathValue("bucket"), r.PathValue("path"), false); o != nil {
		s.serve(w, r, o, time.Time{})
	}
}

func (s *StorageServer) publicDownload(w http.ResponseWriter, r *http.Request) {
	if o := s.lookup(w, r.PathValue("bucket"), r.PathValue("path"), true); o != nil {
		s.serve(w, r, o, time.Time{})
	}
}

func (s *StorageServer) infoBody(w http.ResponseWriter, bucket string, o *sbObject) {
	var meta any
	if o.userMeta != nil {
		meta = o.userMeta
	}
	w.Header().Set("ETag", o.etag)
	w.Header().Set("Last-Modified", o.updated.UTC().Format(http.TimeFormat))
	w.Header().Set("Cache-Control", o.cache)
	sbJSON(w, http.StatusOK, map[string]any{
		"id": o.id, "name": o.name, "version": o.version, "bucket_id": bucket, "size": len(o.data),
		"content_type": o.mimetype, "cache_control": o.cache, "etag": o.etag, "metadata": meta,
		"last_modified": sbTime(o.updated), "created_at": sbTime(o.created),
	})
}

func (s *StorageServer) info(w http.ResponseWriter, r *http.Request) {
	if o := s.lookup(w, r.PathValue("bucket"), r.PathValue("path"), false); o != nil {
		s.infoBody(w, r.PathValue("bucket"), o)
	}
}

func (s *StorageServer) publicInfo(w http.ResponseWriter, r *http.Request) {
	if o := s.lookup(w, r.PathValue("bucket"), r.PathValue("path"), true); o != nil {
		s.infoBody(w, r.PathValue("bucket"), o)
	}
}

// ---- delete ----

func (s *StorageServer) objectRow(bucket string, o *sbObject) map[string]any {
	var meta any
	if o.userMeta != nil {
		meta = o.userMeta
	}
	return map[string]any{
		"name": o.name, "id": o.id, "bucket_id": bucket, "owner": o.owner, "owner_id": o.owner, "version": o.version,
		"created_at": sbTime(o.created), "updated_at": sbTime(o.updated), "last_accessed_at": sbTime(o.lastAccessed),
		"metadata":      s.systemMeta(o),
		"user_metadata": meta,
	}
}

func (s *StorageServer) systemMeta(o *sbObject) map[string]any {
	return map[string]any{
		"eTag": o.etag, "size": len(o.data), "mimetype": o.mimetype, "cacheControl": o.cache,
		"lastModified": o.updated.UTC().Format(time.RFC3339Nano), "contentLength": len(o.data), "httpStatusCode": 200,
	}
}

func (s *StorageServer) deleteObject(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r.PathValue("bucket"))
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	name := r.PathValue("path")
	if b.objects[name] == nil {
		sbNoSuchKey(w)
		return
	}
	delete(b.objects, name)
	sbJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted"})
}

// sbMaxDelete is the tenant's limit on prefixes per bulk delete.
const sbMaxDelete = 1000

func (s *StorageServer) deleteObjects(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Prefixes []string `json:"prefixes"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&body); err != nil || body.Prefixes == nil {
		sbInvalid(w, "body must have required property 'prefixes'")
		return
	}
	if len(body.Prefixes) < 1 {
		sbInvalid(w, "body/prefixes must NOT have fewer than 1 items")
		return
	}
	if len(body.Prefixes) > sbMaxDelete {
		sbInvalid(w, fmt.Sprintf("body/prefixes must NOT have more than %d items", sbMaxDelete))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	bucket := r.PathValue("bucket")
	b := s.bucket(bucket)
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	rows := []map[string]any{}
	for _, p := range body.Prefixes {
		if o := b.objects[p]; o != nil {
			rows = append(rows, s.objectRow(bucket, o))
			delete(b.objects, p)
		}
	}
	sbJSON(w, http.StatusOK, rows)
}

// ---- list ----

func (s *StorageServer) list(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Prefix *string `json:"prefix"`
		Limit  *int    `json:"limit"`
		Offset int     `json:"offset"`
		SortBy *struct {
			Column string `json:"column"`
			Order  string `json:"order"`
		} `json:"sortBy"`
		Search string `json:"search"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		sbInvalid(w, "body must be object")
		return
	}
	if body.Prefix == nil {
		sbInvalid(w, "body must have required property 'prefix'")
		return
	}
	limit := 100
	if body.Limit != nil {
		limit = *body.Limit
	}
	if limit < 1 || body.Offset < 0 {
		sbInvalid(w, "body/limit must be >= 1")
		return
	}
	column, order := "name", "asc"
	if body.SortBy != nil {
		if body.SortBy.Column != "" {
			column = body.SortBy.Column
		}
		if body.SortBy.Order != "" {
			order = strings.ToLower(body.SortBy.Order)
		}
	}
	switch column {
	case "name", "updated_at", "created_at", "last_accessed_at":
	default:
		sbInvalid(w, "body/sortBy/column must be equal to one of the allowed values")
		return
	}
	if order != "asc" && order != "desc" {
		sbInvalid(w, "body/sortBy/order must be equal to one of the allowed values")
		return
	}
	prefix := strings.TrimPrefix(*body.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	type entry struct {
		name string
		o    *sbObject // nil = folder
	}
	s.mu.Lock()
	bucket := r.PathValue("bucket")
	b := s.bucket(bucket)
	if b == nil {
		s.mu.Unlock()
		sbNoSuchBucket(w)
		return
	}
	var entries []entry
	folders := map[string]bool{}
	for name, o := range b.objects {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		rest := name[len(prefix):]
		if i := strings.Index(rest, "/"); i >= 0 {
			if f := rest[:i]; !folders[f] {
				folders[f] = true
				entries = append(entries, entry{name: f})
			}
			continue
		}
		cp := *o
		entries = append(entries, entry{name: rest, o: &cp})
	}
	s.mu.Unlock()
	if body.Search != "" {
		kept := entries[:0]
		for _, e := range entries {
			if strings.HasPrefix(strings.ToLower(e.name), strings.ToLower(body.Search)) {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	key := func(e entry) time.Time {
		if e.o == nil {
			return time.Time{}
		}
		switch column {
		case "updated_at":
			return e.o.updated
		case "created_at":
			return e.o.created
		default:
			return e.o.lastAccessed
		}
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if order == "desc" {
			a, b = b, a
		}
		if column != "name" {
			if ka, kb := key(a), key(b); !ka.Equal(kb) {
				return ka.Before(kb)
			}
		}
		return a.name < b.name
	})
	if body.Offset >= len(entries) {
		entries = nil
	} else {
		entries = entries[body.Offset:]
	}
	if len(entries) > limit {
		entries = entries[:limit]
	}
	out := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		if e.o == nil {
			out = append(out, map[string]any{"name": e.name, "id": nil, "updated_at": nil, "created_at": nil,
				"last_accessed_at": nil, "metadata": nil})
			continue
		}
		out = append(out, map[string]any{"name": e.name, "id": e.o.id, "updated_at": sbTime(e.o.updated),
			"created_at": sbTime(e.o.created), "last_accessed_at": sbTime(e.o.lastAccessed), "metadata": s.systemMeta(e.o)})
	}
	sbJSON(w, http.StatusOK, out)
}

// ---- signed URLs ----

// sbClaims are the signed-URL token claims (storage-api's SignedToken and
// SignedUploadToken).
type sbClaims struct {
	URL    string `json:"url"`
	Owner  string `json:"owner,omitempty"`
	Upsert *bool  `json:"upsert,omitempty"`
	Iat    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

var sbJWTHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *StorageServer) token(c sbClaims) string {
	p, _ := json.Marshal(c)
	msg := sbJWTHeader + "." + base64.RawURLEncoding.EncodeToString(p)
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifyToken checks an HS256 token's signature (not its expiry); the
// messages are jsonwebtoken's.
func (s *StorageServer) verifyToken(tok string) (sbClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return sbClaims{}, errors.New("jwt malformed")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return sbClaims{}, errors.New("invalid signature")
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return sbClaims{}, errors.New("invalid signature")
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c sbClaims
	if err != nil || json.Unmarshal(p, &c) != nil {
		return sbClaims{}, errors.New("jwt malformed")
	}
	return c, nil
}

// checkToken verifies ?token= for bucket/name, writing the error answer.
func (s *StorageServer) checkToken(w http.ResponseWriter, r *http.Request) (sbClaims, bool) {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		sbInvalid(w, "querystring must have required property 'token'")
		return sbClaims{}, false
	}
	c, err := s.verifyToken(tok)
	if err != nil {
		sbError(w, http.StatusBadRequest, "InvalidJWT", "InvalidJWT", err.Error())
		return sbClaims{}, false
	}
	if c.URL != r.PathValue("bucket")+"/"+r.PathValue("path") {
		sbError(w, http.StatusBadRequest, "InvalidSignature", "InvalidSignature", "The url do not match the signature")
		return sbClaims{}, false
	}
	if c.Exp <= s.now().Unix() {
		sbError(w, http.StatusBadRequest, "ExpiredToken", "ExpiredToken", "The provided token has expired.")
		return sbClaims{}, false
	}
	return c, true
}

// expiresIn reads {"expiresIn": n ≥ 1}.
func sbExpiresIn(w http.ResponseWriter, v *int64) bool {
	if v == nil {
		sbInvalid(w, "body must have required property 'expiresIn'")
		return false
	}
	if *v < 1 {
		sbInvalid(w, "body/expiresIn must be >= 1")
		return false
	}
	return true
}

func (s *StorageServer) sign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ExpiresIn *int64 `json:"expiresIn"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		sbInvalid(w, "body must be object")
		return
	}
	if !sbExpiresIn(w, body.ExpiresIn) {
		return
	}
	bucket, name := r.PathValue("bucket"), r.PathValue("path")
	if s.lookup(w, bucket, name, false) == nil {
		return
	}
	now := s.now().Unix()
	tok := s.token(sbClaims{URL: bucket + "/" + name, Iat: now, Exp: now + *body.ExpiresIn})
	sbJSON(w, http.StatusOK, map[string]any{"signedURL": "/object/sign/" + bucket + "/" + name + "?token=" + tok}) // raw name, like storage-api (clients encodeURI it)
}

func (s *StorageServer) signMany(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ExpiresIn *int64   `json:"expiresIn"`
		Paths     []string `json:"paths"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&body); err != nil {
		sbInvalid(w, "body must be object")
		return
	}
	if !sbExpiresIn(w, body.ExpiresIn) {
		return
	}
	if len(body.Paths) < 1 {
		sbInvalid(w, "body/paths must NOT have fewer than 1 items")
		return
	}
	bucket := r.PathValue("bucket")
	s.mu.Lock()
	b := s.bucket(bucket)
	if b == nil {
		s.mu.Unlock()
		sbNoSuchBucket(w)
		return
	}
	now := s.now().Unix()
	out := make([]map[string]any, 0, len(body.Paths))
	for _, p := range body.Paths {
		if b.objects[p] == nil {
			out = append(out, map[string]any{"error": "Either the object does not exist or you do not have access to it", "path": p, "signedURL": nil})
			continue
		}
		tok := s.token(sbClaims{URL: bucket + "/" + p, Iat: now, Exp: now + *body.ExpiresIn})
		out = append(out, map[string]any{"error": nil, "path": p, "signedURL": "/object/sign/" + bucket + "/" + p + "?token=" + tok})
	}
	s.mu.Unlock()
	sbJSON(w, http.StatusOK, out)
}

func (s *StorageServer) signedDownload(w http.ResponseWriter, r *http.Request) {
	c, ok := s.checkToken(w, r)
	if !ok {
		return
	}
	if o := s.lookup(w, r.PathValue("bucket"), r.PathValue("path"), false); o != nil {
		s.serve(w, r, o, time.Unix(c.Exp, 0))
	}
}

// signUpload is POST /object/upload/sign/{bucket}/{path}: upsert (from
// x-upsert) is baked into the token; the expiry is UploadURLExpiry.
func (s *StorageServer) signUpload(w http.ResponseWriter, r *http.Request) {
	bucket, name := r.PathValue("bucket"), r.PathValue("path")
	if !sbValidName(name) {
		sbError(w, http.StatusBadRequest, "InvalidKey", "InvalidKey", "Invalid key: "+name)
		return
	}
	upsert := r.Header.Get("x-upsert") == "true"
	s.mu.Lock()
	b := s.bucket(bucket)
	exists := b != nil && b.objects[name] != nil
	s.mu.Unlock()
	if b == nil {
		sbNoSuchBucket(w)
		return
	}
	if exists && !upsert {
		sbDuplicate(w, "KeyAlreadyExists")
		return
	}
	now := s.now()
	tok := s.token(sbClaims{URL: bucket + "/" + name, Upsert: &upsert, Iat: now.Unix(), Exp: now.Add(s.opts.UploadURLExpiry).Unix()})
	sbJSON(w, http.StatusOK, map[string]any{"url": "/object/upload/sign/" + sbEscape(bucket+"/"+name) + "?token=" + tok, "token": tok})
}

// signedUpload is PUT /object/upload/sign/{bucket}/{path}?token=…
func (s *StorageServer) signedUpload(w http.ResponseWriter, r *http.Request) {
	c, ok := s.checkToken(w, r)
	if !ok {
		return
	}
	bucket, name := r.PathValue("bucket"), r.PathValue("path")
	if o := s.store(w, r, bucket, name, c.Upsert != nil && *c.Upsert, c.Owner); o != nil {
		sbJSON(w, http.StatusOK, map[string]any{"Key": bucket + "/" + name})
	}
}
