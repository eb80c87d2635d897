package apitypes

// Problem is an RFC 9457 problem details object with a stable machine-readable code.
// Every error answer of the API has this shape (Content-Type application/problem+json).
type Problem struct {
	Type     string        `json:"type,omitempty" doc:"A URI reference identifying the problem type (about:blank when none)."`
	Title    string        `json:"title" doc:"Short summary of the HTTP status."`
	Status   int           `json:"status" doc:"HTTP status code."`
	Code     string        `json:"code" doc:"Stable machine-readable error code (see docs/API.md); clients branch on this, not on detail."`
	Detail   string        `json:"detail,omitempty" doc:"Human-readable explanation of this occurrence."`
	Instance string        `json:"instance,omitempty" doc:"The request path this problem occurred on."`
	Errors   []ErrorDetail `json:"errors,omitempty" doc:"Individual validation problems, if any."`
}

// ErrorDetail is one invalid field of a VALIDATION_FAILED answer.
type ErrorDetail struct {
	Message  string `json:"message,omitempty" doc:"Error message text"`
	Location string `json:"location,omitempty" doc:"Where the error occurred, e.g. 'body.items[3].tags' or 'path.thing-id'"`
	Value    any    `json:"value,omitempty" doc:"The value at the given location"`
}

// Error codes. They are part of the API contract: never renamed, only added.
const (
	CodeMalformed        = "MALFORMED_REQUEST"          // 400: unparsable body, bad multipart, bad cursor
	CodeUnauthenticated  = "UNAUTHENTICATED"            // 401: missing or invalid credentials
	CodeForbidden        = "FORBIDDEN"                  // 403: authenticated but not allowed (e.g. acting for another user)
	CodeNotFound         = "NOT_FOUND"                  // 404: unknown id, or another tenant's
	CodeRouteNotFound    = "ROUTE_NOT_FOUND"            // 404: no such endpoint
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"         // 405
	CodeConflict         = "CONFLICT"                   // 409: generic state conflict
	CodeNotDeadLettered  = "JOB_NOT_DEADLETTERED"       // 409: retry of a run that did not fail
	CodeJobNotActive     = "JOB_NOT_ACTIVE"             // 409: cancel of a run that has ended
	CodeIdempotencyBusy  = "IDEMPOTENCY_IN_PROGRESS"    // 409: the first request with this key is still running
	CodeUploadNotFound   = "UPLOAD_NOT_RECEIVED"        // 409: signed-URL upload completed before the PUT
	CodeTooLarge         = "PAYLOAD_TOO_LARGE"          // 413
	CodeUnsupportedType  = "UNSUPPORTED_MEDIA_TYPE"     // 415: content type not accepted
	CodeTypeMismatch     = "TYPE_MISMATCH"              // 415: the file's name says one type, its content another
	CodeValidation       = "VALIDATION_FAILED"          // 422: well-formed but invalid input
	CodeChecksumMismatch = "CHECKSUM_MISMATCH"          // 422: declared sha256 does not match the bytes
	CodeSizeMismatch     = "SIZE_MISMATCH"              // 422: signed-URL upload: stored size differs from bytes_len
	CodeEmptyFile        = "EMPTY_FILE"                 // 422
	CodeCorruptFile      = "CORRUPT_FILE"               // 422: e.g. a damaged DOCX container
	CodeIdempotencyReuse = "IDEMPOTENCY_KEY_REUSED"     // 422: same key, different request
	CodeCorrelationIDBad = "INVALID_CORRELATION_ID"     // 422: X-Correlation-Id is not a UUID
	CodeRateLimited      = "RATE_LIMITED"               // 429: per-credential request rate
	CodeDailyUploadLimit = "DAILY_UPLOAD_LIMIT"         // 429: uploads per user per UTC day
	CodeActiveJobsLimit  = "ACTIVE_JOBS_LIMIT"          // 429: concurrent active runs per user
	CodeInternal         = "INTERNAL"                   // 500
	CodeSignedUploadsOff = "SIGNED_UPLOADS_UNAVAILABLE" // 501: the blob store cannot sign URLs
	CodeUnavailable      = "UNAVAILABLE"                // 503: a dependency is down
	CodeWebhookTokenBad  = "WEBHOOK_TOKEN_INVALID"      // 401 on the LlamaParse webhook
)

// CorrelationHeader carries a run's correlation id: a client may choose it on the
// request that starts a run (uploads), and the upload responses echo the run's.
const CorrelationHeader = "X-Correlation-Id"
