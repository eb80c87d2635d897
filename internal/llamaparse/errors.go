package llamaparse

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
)

// Error codes (fault.Error.Code) returned by this package.
const (
	CodeUnauthorized   = "LLAMAPARSE_UNAUTHORIZED"     // 401: bad key or wrong region (permanent)
	CodeForbidden      = "LLAMAPARSE_FORBIDDEN"        // 403: other organization/project or role (permanent)
	CodeRejected       = "LLAMAPARSE_REJECTED"         // 400/422/other 4xx: the request was invalid (permanent)
	CodeFileTooLarge   = "LLAMAPARSE_FILE_TOO_LARGE"   // 413 or > 300 MB (permanent)
	CodeJobNotFound    = "LLAMAPARSE_JOB_NOT_FOUND"    // 404 on a job (permanent)
	CodeResultNotReady = "LLAMAPARSE_RESULT_NOT_READY" // 404 on a result: not finished yet (transient)
	CodeRateLimited    = "LLAMAPARSE_RATE_LIMITED"     // 429 (transient; see RetryAfter)
	CodeUnavailable    = "LLAMAPARSE_UNAVAILABLE"      // 5xx, 408 (transient)
	CodeTimeout        = "LLAMAPARSE_TIMEOUT"          // the call timed out (transient)
	CodeNetwork        = "LLAMAPARSE_NETWORK"          // connection refused/reset (transient)
	CodeBadResponse    = "LLAMAPARSE_BAD_RESPONSE"     // a 2xx body we could not read (transient)
	CodeJobFailed      = "LLAMAPARSE_JOB_FAILED"       // Status.Err: ERROR (permanent)
	CodeJobExpired     = "LLAMAPARSE_JOB_EXPIRED"      // Status.Err: ERROR EXPIRED/TIMEOUT (transient)
	CodeNoData         = "LLAMAPARSE_NO_DATA"          // Status.Err: ERROR NO_DATA_FOUND_IN_FILE (permanent)
	CodeJobCancelled   = "LLAMAPARSE_JOB_CANCELLED"    // Status.Err: CANCELLED (permanent)
	CodeWebhookInvalid = "LLAMAPARSE_WEBHOOK_INVALID"  // ParseWebhook: unrecognized body (permanent)
)

// APIError is the cause inside the *fault.Error for a non-2xx answer.
type APIError struct {
	StatusCode int
	Detail     string        // the FastAPI "detail" (or body excerpt), key redacted
	RetryAfter time.Duration // from the Retry-After header, 0 if absent
}

func (e *APIError) Error() string {
	if e.Detail == "" {
		return "HTTP " + strconv.Itoa(e.StatusCode)
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Detail)
}

// RetryAfter returns the wait the server asked for (Retry-After on a 429 or
// 503), if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// statusError classifies a non-2xx response.
func (c *Client) statusError(resp *http.Response, body []byte, o op) error {
	ae := &APIError{StatusCode: resp.StatusCode, Detail: redact(detail(body), c.opts.APIKey)}
	ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	what := describeOp(o)
	wrap := func(k fault.Kind, code, format string, args ...any) error {
		return fault.Wrap(k, code, ae, format, args...)
	}
	sc := resp.StatusCode
	switch {
	case sc == http.StatusUnauthorized:
		return wrap(fault.Permanent, CodeUnauthorized,
			"LlamaParse rejected the API key (HTTP 401): check LLAMA_CLOUD_API_KEY and that it belongs to the region of the base URL")
	case sc == http.StatusForbidden:
		return wrap(fault.Permanent, CodeForbidden,
			"LlamaParse refused access (HTTP 403): the key's organization, project or role does not allow this")
	case sc == http.StatusNotFound && o == opStatus:
		return wrap(fault.Permanent, CodeJobNotFound, "LlamaParse does not know this job (HTTP 404)")
	case sc == http.StatusNotFound && o == opResult:
		return wrap(fault.Transient, CodeResultNotReady, "the LlamaParse result is not available yet (HTTP 404)")
	case sc == http.StatusRequestEntityTooLarge:
		return wrap(fault.Permanent, CodeFileTooLarge, "LlamaParse refused the file as too large (HTTP 413)")
	case sc == http.StatusTooManyRequests:
		if ae.RetryAfter > 0 {
			return wrap(fault.Transient, CodeRateLimited,
				"LlamaParse rate limit reached (HTTP 429); retry after %s", ae.RetryAfter)
		}
		return wrap(fault.Transient, CodeRateLimited, "LlamaParse rate limit reached (HTTP 429)")
	case sc == http.StatusRequestTimeout || sc >= 500:
		return wrap(fault.Transient, CodeUnavailable, "LlamaParse failed the %s (HTTP %d)", what, sc)
	case sc >= 400:
		return wrap(fault.Permanent, CodeRejected, "LlamaParse rejected the %s (HTTP %d)", what, sc)
	}
	// 1xx/3xx that the HTTP client did not follow.
	return wrap(fault.Transient, CodeBadResponse, "LlamaParse answered the %s with unexpected HTTP %d", what, sc)
}

// detail extracts FastAPI's "detail" (a string or a list of validation
// errors) or falls back to a short excerpt of the body.
func detail(body []byte) string {
	var d struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &d) == nil && len(d.Detail) > 0 {
		var s string
		if json.Unmarshal(d.Detail, &s) == nil {
			return truncate(s, 300)
		}
		var list []struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(d.Detail, &list) == nil && len(list) > 0 {
			parts := make([]string, 0, len(list))
			for _, it := range list {
				loc := make([]string, 0, len(it.Loc))
				for _, l := range it.Loc {
					loc = append(loc, fmt.Sprint(l))
				}
				parts = append(parts, strings.TrimSpace(strings.Join(loc, ".")+": "+it.Msg))
			}
			return truncate(strings.Join(parts, "; "), 300)
		}
		return truncate(string(d.Detail), 300)
	}
	return truncate(strings.TrimSpace(string(body)), 200)
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// redact removes the API key from s.
func redact(s, key string) string {
	if key == "" || !strings.Contains(s, key) {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}
