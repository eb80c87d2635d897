// Package api is docpipe's HTTP API: uploads, documents, runs, search, health and
// the LlamaParse webhook, versioned under /v1, on the standard library's ServeMux
// with huma/v2 generating the OpenAPI 3.1 document (/v1/openapi.json; no docs page,
// it would need a CDN). Errors are RFC 9457 problem+json with a stable code.
//
// Every authenticated route runs behind the same chain: credentials (Bearer JWT or
// API key, internal/auth) → per-credential token-bucket rate limit → Idempotency-Key
// replay (POST) → handler. Handlers see only what the caller's scope allows: every
// query is scoped by user id in SQL, and another tenant's ids answer 404.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/semaphore"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/redact"
	"github.com/docpipe/docpipe/internal/storage"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// Deps are the parts the API uses.
type Deps struct {
	Pool     *pgxpool.Pool
	Pipe     *pipeline.Pipeline
	Store    storage.Store
	Embedder embed.Embedder // embeds search queries (the pipeline's embedder)
	Log      *slog.Logger
	// Alerts, when set, serves GET /v1/alerts.
	Alerts AlertSource
	// Budgets are the daily spending limits shown against today's cost in
	// GET /v1/overview (the pipeline's DOCPIPE_BUDGET_*_USD).
	Budgets pipeline.Budgets
}

// Options tune the API. Zero values take the defaults; a negative limit disables it.
type Options struct {
	// JWT configures Bearer JWT verification (Supabase-compatible). With neither an
	// HS256 secret nor a JWKS URL, only API keys are accepted.
	JWT auth.JWTOptions
	// MaxUploadBytes is the largest accepted file (default 50 MiB).
	MaxUploadBytes int64
	// UploadMemory bounds the bytes of uploads held in memory at once across requests
	// (default 4 × MaxUploadBytes, at least 256 MiB); uploads beyond it wait.
	UploadMemory int64
	// AllowedMIME lists the accepted types, as sniffed from content (default: every
	// type the parser reads: PDF, DOCX, HTML, Markdown, plain text).
	AllowedMIME []string
	// RatePerSecond and RateBurst are the token bucket per credential (default 20/s,
	// burst 40).
	RatePerSecond float64
	RateBurst     int
	// UploadsPerDay is the number of new uploads per user per UTC day (default 1000).
	UploadsPerDay int
	// MaxActiveJobs is the number of queued or running runs per user (default 100).
	MaxActiveJobs int
	// PublicURL is the API's external base URL, for links in responses (default: the
	// request's scheme and host).
	PublicURL string
	// BlobSignSecret, when set, mounts the handler of the local store's signed URLs
	// at /v1/blobs/ (the same secret the store signs with: DOCPIPE_STORAGE_SIGN_SECRET).
	BlobSignSecret string
	// UploadURLTTL is how long a signed upload URL stays valid (default 15 minutes).
	UploadURLTTL time.Duration
	// ReadyRecheck is how often /readyz asks the database again whether its
	// migrations are at head (default 10 s); the database ping runs on every call.
	ReadyRecheck time.Duration
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 50 << 20
	}
	if o.UploadMemory <= 0 {
		o.UploadMemory = max(4*o.MaxUploadBytes, 256<<20)
	}
	if o.UploadMemory < o.MaxUploadBytes {
		o.UploadMemory = o.MaxUploadBytes
	}
	if len(o.AllowedMIME) == 0 {
		o.AllowedMIME = []string{parse.MIMEPDF, parse.MIMEDOCX, parse.MIMEHTML, parse.MIMEMarkdown, parse.MIMEText}
	}
	if o.RatePerSecond == 0 {
		o.RatePerSecond = 20
	}
	if o.RateBurst <= 0 {
		o.RateBurst = max(1, int(2*o.RatePerSecond))
	}
	if o.UploadsPerDay == 0 {
		o.UploadsPerDay = 1000
	}
	if o.MaxActiveJobs == 0 {
		o.MaxActiveJobs = 100
	}
	if o.UploadURLTTL <= 0 {
		o.UploadURLTTL = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server is the API as an http.Handler.
type Server struct {
	d       Deps
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	api     huma.API
	auth    *auth.Authenticator
	limiter *limiter
	uploads *semaphore.Weighted
	idem    *idempotency
	manage  catalog.Manager // cancel and delete

	routesMu sync.Mutex
	routes   []string // every pattern registered on the mux

	head *db.HeadCheck // /readyz: migrations at head, re-read every ReadyRecheck
}

// publicPatterns need no credentials.
var publicPatterns = map[string]bool{
	"GET /healthz":                         true,
	"GET /readyz":                          true,
	"GET /v1/openapi.json":                 true,
	"DELETE /v1/session":                   true, // only clears the River UI cookie
	"GET /v1/openapi.yaml":                 true,
	"GET /v1/openapi-3.0.json":             true,
	"GET /v1/openapi-3.0.yaml":             true,
	"POST " + webhookPath:                  true,
	"GET " + storage.BlobPath + "{key...}": true,
	"PUT " + storage.BlobPath + "{key...}": true,
}

// New builds the API.
func New(d Deps, o Options) (*Server, error) {
	o.defaults()
	if d.Pool == nil || d.Pipe == nil || d.Store == nil || d.Embedder == nil {
		return nil, errors.New("api: Pool, Pipe, Store and Embedder are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		d: d, o: o, log: d.Log.With("component", "api"), mux: http.NewServeMux(),
		limiter: newLimiter(o.RatePerSecond, o.RateBurst, o.Now),
		uploads: semaphore.NewWeighted(o.UploadMemory),
		head:    &db.HeadCheck{Pool: d.Pool, TTL: o.ReadyRecheck},
	}
	s.manage = catalog.Manager{Pool: d.Pool, Engine: d.Pipe, Store: d.Store, Log: d.Log}
	s.auth = &auth.Authenticator{Keys: auth.NewKeys(d.Pool)}
	if len(o.JWT.HS256Secret) > 0 || o.JWT.JWKSURL != "" {
		v, err := auth.NewVerifier(o.JWT)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		s.auth.JWT = v
	}
	s.idem = &idempotency{pool: d.Pool, log: s.log, maxBody: o.MaxUploadBytes + multipartSlack}

	cfg := huma.DefaultConfig("docpipe API", Version)
	cfg.OpenAPIPath = "/v1/openapi"
	cfg.DocsPath = ""    // the docs page loads its script from a CDN
	cfg.SchemasPath = "" // no $schema links in responses
	cfg.CreateHooks = nil
	cfg.Info.Description = "Upload documents, follow their pipeline runs, and search their chunks. " +
		"Errors are RFC 9457 problem+json with a stable `code`. See docs/API.md."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", BearerFormat: "JWT or dpk_ API key",
			Description: "A Supabase-compatible JWT (sub = user id) or a docpipe API key (dpk_…)."},
		"apiKey": {Type: "apiKey", In: "header", Name: "X-API-Key", Description: "A docpipe API key (dpk_…)."},
	}
	cfg.Security = []map[string][]string{{"bearer": {}}, {"apiKey": {}}}
	cfg.Transformers = append(cfg.Transformers, func(ctx huma.Context, _ string, v any) (any, error) {
		if p, ok := v.(*Problem); ok && p.Instance == "" {
			p.Instance = ctx.URL().Path
		}
		return v, nil
	})
	s.api = humago.New(&routeMux{s: s}, cfg)
	describeRuns(s.api.OpenAPI().Components.Schemas)

	s.registerHealth()
	s.registerDocuments()
	s.registerJobs()
	s.registerSearch()
	s.registerWebhooks()
	s.registerUploads()
	s.registerAlerts()
	s.registerOverview()
	s.registerSession()
	return s, nil
}

// OpenAPI is the API description (also served at /v1/openapi.json).
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

// Routes lists every pattern registered on the mux ("METHOD /path").
func (s *Server) Routes() []string {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	return slices.Clone(s.routes)
}

// routeMux is the mux huma registers on: it records patterns and puts every route
// that is not public behind the authentication chain.
type routeMux struct{ s *Server }

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.s.handle(pattern, http.HandlerFunc(h))
}

func (m *routeMux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.s.ServeHTTP(w, r) }

func (s *Server) handle(pattern string, h http.Handler) {
	s.routesMu.Lock()
	s.routes = append(s.routes, pattern)
	s.routesMu.Unlock()
	if !publicPatterns[pattern] {
		h = s.protect(h)
	}
	s.mux.Handle(pattern, h)
}

// ServeHTTP implements http.Handler: request id, access log, panic recovery, and
// problem+json for unknown routes and wrong methods.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := r.Header.Get("X-Request-Id")
	if reqID == "" || len(reqID) > 128 {
		reqID = uuid.NewString()
	}
	w.Header().Set("X-Request-Id", reqID)
	sw := &statusWriter{ResponseWriter: w}
	note := &requestNote{}
	if id, err := uuid.Parse(r.Header.Get(apitypes.CorrelationHeader)); err == nil && id != uuid.Nil {
		note.setCorrelation(id) // the client's; a handler that knows the run's replaces it
	}
	ctx := context.WithValue(r.Context(), requestIDKey{}, reqID)
	ctx = context.WithValue(ctx, requestNoteKey{}, note)
	ctx = context.WithValue(ctx, remoteAddrKey{}, r.RemoteAddr)
	ctx = context.WithValue(ctx, baseURLKey{}, s.baseURL(r))
	r = r.WithContext(ctx)
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("panic in handler", "panic", rec, "path", redact.Path(r.URL.Path), "request_id", reqID, "stack", string(debug.Stack()))
			if sw.status == 0 {
				problem(http.StatusInternalServerError, apitypes.CodeInternal, "internal error (request %s)", reqID).write(sw, r)
			}
		}
		lvl := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			lvl = slog.LevelDebug
		}
		if sw.status >= 500 {
			lvl = slog.LevelError
		}
		// The path only (a signed URL's query holds its signature), webhook token masked.
		attrs := []any{"method", r.Method, "path", redact.Path(r.URL.Path), "status", sw.status, "bytes", sw.bytes,
			"duration", time.Since(start).Round(time.Microsecond), "request_id", reqID}
		if id := note.correlation(); id != uuid.Nil {
			attrs = append(attrs, "correlation_id", id)
		}
		if p, ok := principalFrom(r.Context()); ok {
			attrs = append(attrs, "principal", p.ID)
		} else if p := sw.principal; p != "" {
			attrs = append(attrs, "principal", p)
		}
		s.log.Log(r.Context(), lvl, "http request", attrs...)
	}()

	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		// No route: the mux answers 404, or 405 with Allow; say it as a problem.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			sw.Header().Set("Allow", rec.header.Get("Allow"))
			problem(http.StatusMethodNotAllowed, apitypes.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)",
				r.Method, r.URL.Path, rec.header.Get("Allow")).write(sw, r)
			return
		}
		if rec.status >= 300 && rec.status < 400 { // path cleaning redirect
			for k, v := range rec.header {
				sw.Header()[k] = v
			}
			sw.WriteHeader(rec.status)
			return
		}
		problem(http.StatusNotFound, apitypes.CodeRouteNotFound, "no endpoint %s %s (see /v1/openapi.json)", r.Method, r.URL.Path).write(sw, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

type (
	requestIDKey   struct{}
	baseURLKey     struct{}
	requestNoteKey struct{}
)

// requestNote collects what handlers learn for the request's log line.
type requestNote struct {
	mu     sync.Mutex
	corrID uuid.UUID
}

func (n *requestNote) setCorrelation(id uuid.UUID) {
	n.mu.Lock()
	n.corrID = id
	n.mu.Unlock()
}

func (n *requestNote) correlation() uuid.UUID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.corrID
}

// noteCorrelation puts the correlation id of the run a request is about on the
// request's log line.
func noteCorrelation(ctx context.Context, id uuid.UUID) {
	if n, ok := ctx.Value(requestNoteKey{}).(*requestNote); ok && id != uuid.Nil {
		n.setCorrelation(id)
	}
}

func correlationFrom(ctx context.Context) uuid.UUID {
	if n, ok := ctx.Value(requestNoteKey{}).(*requestNote); ok {
		return n.correlation()
	}
	return uuid.Nil
}

// clientCorrelation reads the optional X-Correlation-Id header of a request that
// starts a run: absent = uuid.Nil (the pipeline makes one); anything but a non-nil
// UUID is 422 INVALID_CORRELATION_ID.
func clientCorrelation(raw string) (uuid.UUID, *Problem) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil || len(raw) > 45 {
		return uuid.Nil, problem(http.StatusUnprocessableEntity, apitypes.CodeCorrelationIDBad,
			"the %s header must be a UUID (e.g. %s), not %q", apitypes.CorrelationHeader, uuid.NewString(), truncate(raw, 64))
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// baseFrom is the API's external base URL for the request in ctx.
func baseFrom(ctx context.Context) string {
	b, _ := ctx.Value(baseURLKey{}).(string)
	return b
}

// statusWriter remembers the status and size for the access log.
type statusWriter struct {
	http.ResponseWriter
	status    int
	bytes     int64
	principal string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerRecorder captures what the mux's own 404/405 handlers would send.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.status = code }

type principalKey struct{}

func principalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// protect is the chain in front of every authenticated route.
func (s *Server) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r)
		if err != nil {
			if auth.Unauthenticated(err) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="docpipe"`)
				problem(http.StatusUnauthorized, apitypes.CodeUnauthenticated, "%s", err.Error()).write(w, r)
				return
			}
			s.log.Error("authentication could not run", "error", err)
			problem(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "authentication is unavailable; try again").withRetryAfter(5*time.Second).write(w, r)
			return
		}
		if ok, wait := s.limiter.allow(p.ID); !ok {
			problem(http.StatusTooManyRequests, apitypes.CodeRateLimited, "rate limit of %g requests/s (burst %d) exceeded for this credential; retry after %s",
				s.o.RatePerSecond, s.o.RateBurst, wait.Round(time.Millisecond)).withRetryAfter(wait).write(w, r)
			return
		}
		if sw, ok := w.(*statusWriter); ok {
			sw.principal = p.ID
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if r.Method == http.MethodPost && r.Header.Get("Idempotency-Key") != "" {
			s.idem.serve(w, r, p, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// scopeOf is what a caller may see: its own user's objects, or all of them (admin).
func scopeOf(ctx context.Context) (catalog.Scope, auth.Principal) {
	p, ok := principalFrom(ctx)
	if !ok {
		return catalog.UserScope(uuid.Nil), p // unreachable behind protect; matches nothing
	}
	if p.Admin {
		return catalog.AllUsers(), p
	}
	return catalog.UserScope(p.UserID), p
}

// internal logs err and returns a problem that does not reveal it: 503 UNAVAILABLE
// with Retry-After when a dependency is down or overloaded (the database restarting,
// the blob store answering 5xx or 429), so clients retry; else 500.
func (s *Server) internal(ctx context.Context, what string, err error) *Problem {
	reqID, _ := ctx.Value(requestIDKey{}).(string)
	attrs := []any{"error", err, "request_id", reqID}
	if id := correlationFrom(ctx); id != uuid.Nil {
		attrs = append(attrs, "correlation_id", id)
	}
	if unavailable(err) {
		s.log.Warn(what+": a dependency is unavailable", attrs...)
		return problem(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "%s failed: the database or blob store is unavailable; try again (request %s)",
			what, reqID).withRetryAfter(unavailableRetry)
	}
	s.log.Error(what, attrs...)
	return problem(http.StatusInternalServerError, apitypes.CodeInternal, "%s failed (request %s)", what, reqID)
}

// unavailableRetry is the Retry-After of 503s caused by an unavailable dependency:
// a Postgres restart takes a few seconds.
const unavailableRetry = 5 * time.Second

// unavailable reports whether err means a dependency could not be reached or asked
// to be retried, as opposed to a bug: the database unavailable (db.Unavailable), or
// an error that says it is temporary (a blob store's 5xx or 429).
func unavailable(err error) bool {
	var temporary interface{ Temporary() bool }
	return db.Unavailable(err) || (errors.As(err, &temporary) && temporary.Temporary())
}

// parseID reads a path id; a malformed id is a 404 (nothing has that id).
func parseID(raw, what string) (uuid.UUID, *Problem) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, notFound(what)
	}
	return id, nil
}

// isNotFound reports an unknown id, or one outside the caller's scope: the catalog
// says so for reads, cancel and delete, the engine for a run gone before a re-drive.
func isNotFound(err error) bool {
	return errors.Is(err, catalog.ErrNotFound) || errors.Is(err, pipeline.ErrNotFound)
}

// baseURL is the API's external base URL for links in responses.
func (s *Server) baseURL(r *http.Request) string {
	if s.o.PublicURL != "" {
		return strings.TrimRight(s.o.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
