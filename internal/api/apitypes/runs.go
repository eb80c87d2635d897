package apitypes

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/runstate"
)

// Job is one pipeline run of a document.
type Job struct {
	ID         uuid.UUID `json:"id" doc:"Run id (UUIDv7)."`
	DocumentID uuid.UUID `json:"document_id"`
	UserID     uuid.UUID `json:"user_id"`
	Filename   string    `json:"filename" doc:"Sanitized file name, for display."`
	// Status and State get their description and enum from internal/runstate when the
	// server builds the OpenAPI document, so a new status needs no edit here.
	Status        runstate.Status `json:"status"`
	State         runstate.State  `json:"state"`
	Stage         string          `json:"stage,omitempty" doc:"Stage the run is in or last ran."`
	Percent       float64         `json:"percent" doc:"Progress 0-100; -1 for failed and duplicate runs."`
	ChunksTotal   int             `json:"chunks_total"`
	EmbedsDone    int             `json:"embeds_done"`
	EmbedsTotal   int             `json:"embeds_total"`
	RetryCount    int             `json:"retry_count"`
	LastError     *LastError      `json:"last_error,omitempty"`
	CorrelationID uuid.UUID       `json:"correlation_id" doc:"Carried by every log line and event of the run."`
	Pages         int             `json:"pages,omitempty"`
	Tokens        int64           `json:"tokens" doc:"Embedding tokens billed."`
	CostUSD       float64         `json:"cost_usd" doc:"External service cost of the run in US dollars."`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
}

// LastError is why a run's last attempt failed.
type LastError struct {
	Code      string     `json:"code" doc:"Stable error code, e.g. PDF_ENCRYPTED, RATE_LIMITED, CANCELLED."`
	Message   string     `json:"message" doc:"What went wrong, for people."`
	Retryable bool       `json:"retryable" doc:"Whether the pipeline will retry by itself."`
	Stage     string     `json:"stage,omitempty" doc:"Stage that failed: parse, validate, chunk, embed, finalize."`
	Attempt   int        `json:"attempt,omitempty"`
	At        time.Time  `json:"at"`
	RetryAt   *time.Time `json:"retry_at,omitempty" doc:"When the next attempt runs (retryable errors)."`
}

// JobList is one page of runs, newest first (GET /v1/jobs).
type JobList struct {
	Items      []Job  `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page."`
}

// CancelRequest is the optional body of POST /v1/jobs/{id}/cancel.
type CancelRequest struct {
	Reason string `json:"reason,omitempty" maxLength:"500" doc:"Recorded in last_error.message and the event trail."`
}

// Document is an uploaded document and its latest run.
type Document struct {
	ID        uuid.UUID       `json:"id" doc:"Document id: uuid5 of the user id and the file's sha256."`
	UserID    uuid.UUID       `json:"user_id"`
	Filename  string          `json:"filename" doc:"Sanitized file name, for display."`
	MIME      string          `json:"mime" doc:"Type sniffed from the content."`
	Bytes     int64           `json:"bytes"`
	SHA256    string          `json:"sha256"`
	Pages     int             `json:"pages,omitempty"`
	Chunks    int             `json:"chunks" doc:"Searchable chunks."`
	Status    runstate.Status `json:"status" doc:"Status of the latest run."`
	State     runstate.State  `json:"state,omitempty"`
	Stage     string          `json:"stage,omitempty"`
	Percent   float64         `json:"percent"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Job       *Job            `json:"job,omitempty" doc:"The latest run: counts, cost, last error, timestamps."`
}

// DocumentList is one page of documents, newest first (GET /v1/documents).
type DocumentList struct {
	Items      []Document `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page."`
}

// Chunk is one searchable chunk.
type Chunk struct {
	ID          uuid.UUID `json:"id"`
	Ord         int       `json:"ord" doc:"Position in the document, from 0."`
	Text        string    `json:"text"`
	Tokens      int       `json:"tokens"`
	HeadingPath []string  `json:"heading_path" doc:"Headings above the chunk, outermost first."`
	PageStart   int       `json:"page_start,omitempty"`
	PageEnd     int       `json:"page_end,omitempty"`
	EmbedModel  string    `json:"embed_model"`
}

// ChunkList is one page of a document's chunks, in order (GET /v1/documents/{id}/chunks).
type ChunkList struct {
	DocumentID string  `json:"document_id"`
	Items      []Chunk `json:"items"`
	NextAfter  *int    `json:"next_after,omitempty" doc:"Pass as after for the next page; absent on the last page."`
}

// Event is one row of a document's audit trail.
type Event struct {
	At       time.Time       `json:"at"`
	JobID    uuid.UUID       `json:"job_id"`
	Type     string          `json:"type" doc:"stage_started, stage_done, retry, error, deadletter, finalized, webhook, redrive, duplicate, warning, budget."`
	Stage    string          `json:"stage,omitempty"`
	Severity string          `json:"severity" enum:"info,warn,error"`
	Code     string          `json:"code"`
	Payload  json.RawMessage `json:"payload"`
	WorkerID string          `json:"worker_id,omitempty"`
	Attempt  int             `json:"attempt,omitempty"`
}

// EventList is a document's audit trail, oldest first (GET /v1/documents/{id}/events).
type EventList struct {
	DocumentID string  `json:"document_id"`
	Items      []Event `json:"items"`
}
