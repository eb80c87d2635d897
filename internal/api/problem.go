package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

// Problem is an error answer: the wire Problem (apitypes.Problem, RFC 9457 with a
// stable code) plus the headers it is sent with. Handlers return it as an error.
type Problem struct {
	apitypes.Problem

	headers http.Header
}

// defaultCodes name the problems huma itself raises (validation, body limits).
var defaultCodes = map[int]string{
	http.StatusBadRequest:            apitypes.CodeMalformed,
	http.StatusUnauthorized:          apitypes.CodeUnauthenticated,
	http.StatusForbidden:             apitypes.CodeForbidden,
	http.StatusNotFound:              apitypes.CodeNotFound,
	http.StatusMethodNotAllowed:      apitypes.CodeMethodNotAllowed,
	http.StatusConflict:              apitypes.CodeConflict,
	http.StatusRequestEntityTooLarge: apitypes.CodeTooLarge,
	http.StatusUnsupportedMediaType:  apitypes.CodeUnsupportedType,
	http.StatusUnprocessableEntity:   apitypes.CodeValidation,
	http.StatusTooManyRequests:       apitypes.CodeRateLimited,
	http.StatusServiceUnavailable:    apitypes.CodeUnavailable,
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
	return &Problem{Problem: apitypes.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}}
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
	return problem(http.StatusNotFound, apitypes.CodeNotFound, "%s not found", what)
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
			code = apitypes.CodeInternal
			if status < 500 {
				code = "HTTP_" + strconv.Itoa(status)
			}
		}
		p := &Problem{Problem: apitypes.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: msg}}
		if status >= 500 {
			return p
		}
		for _, e := range errs {
			if e == nil {
				continue
			}
			if d, ok := e.(huma.ErrorDetailer); ok {
				ed := d.ErrorDetail()
				p.Errors = append(p.Errors, apitypes.ErrorDetail{Message: ed.Message, Location: ed.Location, Value: ed.Value})
			} else {
				p.Errors = append(p.Errors, apitypes.ErrorDetail{Message: e.Error()})
			}
		}
		return p
	}
}
