package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Problem is an RFC 9457 problem details object with a stable machine-readable code.
// Every error response of the API has this shape (Content-Type application/problem+json).
type Problem struct {
	Type     string              `json:"type,omitempty" doc:"A URI reference identifying the problem type (about:blank when none)."`
	Title    string              `json:"title" doc:"Short summary of the HTTP status."`
	Status   int                 `json:"status" doc:"HTTP status code."`
	Code     string              `json:"code" doc:"Stable machine-readable error code (see docs/API.md); clients branch on this, not on detail."`
	Detail   string              `json:"detail,omitempty" doc:"Human-readable explanation of this occurrence."`
	Instance string              `json:"instance,omitempty" doc:"The request path this problem occurred on."`
	Errors   []*huma.ErrorDetail `json:"errors,omitempty" doc:"Individual validation problems, if any."`

	headers http.Header
}

// Error codes. They are part of the API contract: never renamed, only added.
const (
	CodeMalformed        = "MALFORMED_REQUEST"       // 400: unparsable body, bad multipart, bad cursor
	CodeUnauthenticated  = "UNAUTHENTICATED"         // 401: missing or invalid credentials
	CodeForbidden        = "FORBIDDEN"               // 403: authenticated but not allowed (e.g. acting for another user)
	CodeNotFound         = "NOT_FOUND"               // 404: unknown id, or another tenant's
	CodeRouteNotFound    = "ROUTE_NOT_FOUND"         // 404: no such endpoint
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"      // 405
	CodeConflict         = "CONFLICT"                // 409: generic state conflict
	CodeNotDeadLettered  = "JOB_NOT_DEADLETTERED"    // 409: retry of a run that did not fail
	CodeJobNotActive     = "JOB_NOT_ACTIVE"          // 409: cancel of a run that has ended
	CodeIdempotencyBusy  = "IDEMPOTENCY_IN_PROGRESS" // 409: the first request with this key is still running
	CodeTooLarge         = "PAYLOAD_TOO_LARGE"       // 413
	CodeUnsupportedType  = "UNSUPPORTED_MEDIA_TYPE"  // 415: content type not accepted
	CodeTypeMismatch     = "TYPE_MISMATCH"           // 415: the file's name says one type, its content another
	CodeValidation       = "VALIDATION_FAILED"       // 422: well-formed but invalid input
	CodeChecksumMismatch = "CHECKSUM_MISMATCH"       // 422: declared sha256 does not match the bytes
	CodeEmptyFile        = "EMPTY_FILE"              // 422
	CodeCorruptFile      = "CORRUPT_FILE"            // 422: e.g. a damaged DOCX container
	CodeIdempotencyReuse = "IDEMPOTENCY_KEY_REUSED"  // 422: same key, different request
	CodeRateLimited      = "RATE_LIMITED"            // 429: per-credential request rate
	CodeDailyUploadLimit = "DAILY_UPLOAD_LIMIT"      // 429: uploads per user per UTC day
	CodeActiveJobsLimit  = "ACTIVE_JOBS_LIMIT"       // 429: concurrent active runs per user
	CodeInternal         = "INTERNAL"                // 500
	CodeUnavailable      = "UNAVAILABLE"             // 503: a dependency is down
	CodeWebhookTokenBad  = "WEBHOOK_TOKEN_INVALID"   // 401 on the LlamaParse webhook
	CodeCorrelationIDBad = "INVALID_CORRELATION_ID"  // 422: X-Correlation-Id is not a UUID
)

// defaultCodes name the problems huma itself raises (validation, body limits).
var defaultCodes = map[int]string{
	http.StatusBadRequest:            CodeMalformed,
	http.StatusUnauthorized:          CodeUnauthenticated,
	http.StatusForbidden:             CodeForbidden,
	http.StatusNotFound:              CodeNotFound,
	http.StatusMethodNotAllowed:      CodeMethodNotAllowed,
	http.StatusConflict:              CodeConflict,
	http.StatusRequestEntityTooLarge: CodeTooLarge,
	http.StatusUnsupportedMediaType:  CodeUnsupportedType,
	http.StatusUnprocessableEntity:   CodeValidation,
	http.StatusTooManyRequests:       CodeRateLimited,
	http.StatusServiceUnavailable:    CodeUnavailable,
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders implements huma.HeadersError (Retry-After on 429).
func (p *Problem) GetHeaders() http.Header { return p.headers }

// ContentType implements huma.ContentTypeFilter: problems are application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

func problem(status int, code, format string, args ...any) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// withRetryAfter sets Retry-After (whole seconds, at least 1).
func (p *Problem) withRetryAfter(d time.Duration) *Problem {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	if p.headers == nil {
		p.headers = http.Header{}
	}
	p.headers.Set("Retry-After", strconv.FormatInt(secs, 10))
	return p
}

func notFound(what string) *Problem {
	return problem(http.StatusNotFound, CodeNotFound, "%s not found", what)
}

// write sends the problem outside huma (middleware, raw handlers).
func (p *Problem) write(w http.ResponseWriter, r *http.Request) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	for k, vs := range p.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func init() {
	// Every error huma produces (validation, body too large, bad JSON) becomes a
	// Problem with a code; 5xx details never carry internal error text.
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		code := defaultCodes[status]
		if code == "" {
			code = CodeInternal
			if status < 500 {
				code = "HTTP_" + strconv.Itoa(status)
			}
		}
		p := &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: msg}
		if status >= 500 {
			return p
		}
		for _, e := range errs {
			if e == nil {
				continue
			}
			if d, ok := e.(huma.ErrorDetailer); ok {
				p.Errors = append(p.Errors, d.ErrorDetail())
			} else {
				p.Errors = append(p.Errors, &huma.ErrorDetail{Message: e.Error()})
			}
		}
		return p
	}
}
