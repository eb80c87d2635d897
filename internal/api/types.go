package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/runstate"
)

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

// Job is one pipeline run of a document.
type Job struct {
	ID            uuid.UUID       `json:"id" doc:"Run id (UUIDv7)."`
	DocumentID    uuid.UUID       `json:"document_id"`
	UserID        uuid.UUID       `json:"user_id"`
	Filename      string          `json:"filename" doc:"Sanitized file name, for display."`
	Status        runstate.Status `json:"status"` // documented in TransformSchema
	State         runstate.State  `json:"state"`  // enum in TransformSchema
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

// TransformSchema documents status and sets the enum of state from the run
// vocabulary (internal/runstate), so a new status or state appears in the OpenAPI
// document without an edit here.
func (Job) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	s.Properties["status"].Description = "Pipeline status: " + runstate.Join(runstate.Statuses(), ", ") + "."
	s.Properties["state"].Enum = enumOf(runstate.States())
	return s
}

// enumOf is values as a schema enum.
func enumOf[T ~string](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

func jobView(ji catalog.JobInfo) Job {
	j := Job{ID: ji.JobID, DocumentID: ji.DocumentID, UserID: ji.UserID, Filename: ji.Filename, Status: ji.Status, State: ji.State,
		Stage: ji.Stage, Percent: ji.Percent, ChunksTotal: ji.ChunksTotal, EmbedsDone: ji.EmbedsDone, EmbedsTotal: ji.EmbedsTotal,
		RetryCount: ji.RetryCount, CorrelationID: ji.CorrelationID, Pages: ji.Pages, Tokens: ji.Tokens, CostUSD: ji.CostUSD,
		CreatedAt: ji.CreatedAt, UpdatedAt: ji.UpdatedAt, FinishedAt: ji.FinishedAt}
	if len(ji.LastError) > 0 {
		var le LastError
		if json.Unmarshal(ji.LastError, &le) == nil && le.Code != "" {
			if le.RetryAt != nil && le.RetryAt.IsZero() {
				le.RetryAt = nil
			}
			j.LastError = &le
		}
	}
	return j
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

func documentView(d catalog.DocumentInfo) Document {
	out := Document{ID: d.DocumentID, UserID: d.UserID, Filename: d.Filename, MIME: d.MIME, Bytes: d.Bytes, SHA256: d.SHA256,
		Pages: d.Pages, Chunks: d.Chunks, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Job != nil {
		j := jobView(*d.Job)
		out.Job = &j
		out.Status, out.State, out.Stage, out.Percent = j.Status, j.State, j.Stage, j.Percent
	}
	return out
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

// SearchHit is one search result.
type SearchHit struct {
	DocumentID  uuid.UUID `json:"document_id"`
	Filename    string    `json:"filename"`
	ChunkID     uuid.UUID `json:"chunk_id"`
	Ord         int       `json:"chunk_ord"`
	HeadingPath []string  `json:"heading_path"`
	PageStart   int       `json:"page_start,omitempty"`
	PageEnd     int       `json:"page_end,omitempty"`
	Score       float64   `json:"score" doc:"vector: cosine similarity; keyword: ts_rank_cd; hybrid: reciprocal-rank-fusion score."`
	VectorRank  int       `json:"vector_rank,omitempty" doc:"Place in the vector list (hybrid and vector modes)."`
	KeywordRank int       `json:"keyword_rank,omitempty" doc:"Place in the keyword list (hybrid and keyword modes)."`
	Text        string    `json:"text"`
}

// cursor encodes keyset pagination: the (created_at, id) of the last item.
func encodeCursor(t time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + "|" + id.String()))
}

func decodeCursor(c string) (catalog.Page, error) {
	if c == "" {
		return catalog.Page{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return catalog.Page{}, err
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return catalog.Page{}, fmt.Errorf("bad cursor")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return catalog.Page{}, err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return catalog.Page{}, err
	}
	return catalog.Page{BeforeTime: time.Unix(0, n), BeforeID: u}, nil
}

func badCursor() *Problem {
	return problem(http.StatusBadRequest, CodeMalformed, "cursor is not a value this API returned")
}
