package apitypes

import (
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/runstate"
)

// UploadResult is the answer to an upload (POST /v1/documents, and completing a
// signed-URL upload): the document and the run processing it.
type UploadResult struct {
	DocumentID uuid.UUID `json:"document_id"`
	JobID      uuid.UUID `json:"job_id"`
	// CorrelationID is the run's: the X-Correlation-Id the upload sent, or one the
	// server made; for a duplicate, the existing run's.
	CorrelationID uuid.UUID       `json:"correlation_id" doc:"The run's correlation id, carried by every log line and event of the run: the X-Correlation-Id header of the request that started it, or one the server made. A duplicate upload gets the existing run's."`
	Status        runstate.Status `json:"status" doc:"Status of the run."`
	Duplicate     bool            `json:"duplicate" doc:"The same user already uploaded these bytes: this is the existing document and run, nothing new was started."`
	Filename      string          `json:"filename,omitempty"`
	MIME          string          `json:"mime,omitempty" doc:"Type sniffed from the content."`
	Bytes         int64           `json:"bytes"`
	SHA256        string          `json:"sha256" doc:"sha256 of the bytes, computed by the server."`
	Location      string          `json:"location" doc:"URL of the document."`
}

// UploadDeclaration starts a signed-URL upload (POST /v1/uploads): the file to come.
type UploadDeclaration struct {
	Filename string `json:"filename" minLength:"1" maxLength:"1000" doc:"Display name of the file."`
	BytesLen int64  `json:"bytes_len" minimum:"1" doc:"Exact size of the file in bytes."`
	SHA256   string `json:"sha256" pattern:"^[0-9a-fA-F]{64}$" doc:"sha256 (hex) of the file; the run starts only if the stored bytes match."`
	MIME     string `json:"mime,omitempty" maxLength:"200" doc:"Declared type (informational: the type is sniffed from the content at complete)."`
	UserID   string `json:"user_id,omitempty" doc:"Admin keys only: the user to upload for."`
}

// UploadTicket says where to PUT the bytes of a declared upload.
type UploadTicket struct {
	DocumentID  uuid.UUID       `json:"document_id" doc:"The document the bytes will become (uuid5 of user and sha256)."`
	UploadURL   string          `json:"upload_url,omitempty" doc:"PUT the raw bytes here (no auth header) before expires_at."`
	Method      string          `json:"method,omitempty" example:"PUT"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	CompleteURL string          `json:"complete_url,omitempty" doc:"POST here after the PUT to start processing."`
	Duplicate   bool            `json:"duplicate" doc:"The user already has these bytes: no upload needed; job_id and status are the existing run's."`
	JobID       *uuid.UUID      `json:"job_id,omitempty" doc:"The run's id: the existing run for a duplicate, else the id the run will have once complete is called."`
	Status      runstate.Status `json:"status,omitempty"`
	// CorrelationID is set for a duplicate only: the run's id is chosen at complete.
	CorrelationID *uuid.UUID `json:"correlation_id,omitempty" doc:"Duplicate only: the existing run's correlation id. (A new run's is set by X-Correlation-Id on the complete request.)"`
}
