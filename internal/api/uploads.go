package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// The signed-URL upload flow: POST /v1/uploads declares the file (name, size, sha256)
// and gets a URL to PUT the bytes to (docpipe's own /v1/blobs/ for the local store, a
// presigned S3 or Supabase URL otherwise), bound to one staging object and expiring;
// POST /v1/uploads/{document_id}/complete then checks the stored bytes against the
// declaration and only then starts the run.

type createUploadInput struct {
	Body apitypes.UploadDeclaration
}

type uploadTicketOutput struct {
	Status int `json:"-"`
	Body   apitypes.UploadTicket
}

type completeInput struct {
	DocumentID    string `path:"document_id" doc:"document_id from POST /v1/uploads."`
	CorrelationID string `header:"X-Correlation-Id" doc:"Optional correlation id (a UUID) for the run this request starts; every log line and event of the run carries it. Not a UUID: 422 INVALID_CORRELATION_ID. Default: the server makes one. A duplicate keeps the existing run's."`
}

type uploadResultOutput struct {
	Status        int    `json:"-"`
	Location      string `header:"Location"`
	CorrelationID string `header:"X-Correlation-Id" doc:"The run's correlation id (a duplicate's is the existing run's)."`
	Body          apitypes.UploadResult
}

func (s *Server) registerUploads() {
	if s.o.BlobSignSecret != "" {
		base := s.o.PublicURL
		if base == "" {
			base = "http://localhost" // the handler only verifies; it never builds URLs
		}
		sg, err := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: base, Secret: s.o.BlobSignSecret,
			MaxPutBytes: s.o.MaxUploadBytes, Now: s.o.Now})
		if err == nil {
			h := sg.Handler(s.d.Store)
			s.handle("GET "+storage.BlobPath+"{key...}", h)
			s.handle("PUT "+storage.BlobPath+"{key...}", h)
			s.documentBlobs()
		} else {
			s.log.Error("signed blob URLs disabled", "error", err)
		}
	}

	reg := s.api.OpenAPI().Components.Schemas
	ticketSchema := reg.Schema(reflect.TypeFor[apitypes.UploadTicket](), true, "UploadTicket")
	resultSchema := reg.Schema(reflect.TypeFor[apitypes.UploadResult](), true, "UploadResult")
	huma.Register(s.api, huma.Operation{
		OperationID: "create-upload", Method: http.MethodPost, Path: "/v1/uploads", Tags: []string{"uploads"},
		Summary: "Start a signed-URL upload",
		Description: "Declare the file; PUT its bytes to upload_url (no credentials, one object, until expires_at), then POST complete_url. " +
			"If the user already has these bytes the existing document and run come back (200, duplicate: true) and nothing needs uploading. Honours Idempotency-Key.",
		DefaultStatus: http.StatusCreated,
		Responses: map[string]*huma.Response{"200": {Description: "Duplicate: the user already has these bytes; nothing to upload.",
			Content: map[string]*huma.MediaType{"application/json": {Schema: ticketSchema}}}},
		Errors: []int{401, 403, 413, 422, 429, 501},
	}, func(ctx context.Context, in *createUploadInput) (*uploadTicketOutput, error) {
		_, pr := scopeOf(ctx)
		userID, perr := uploadUser(pr, in.Body.UserID)
		if perr != nil {
			return nil, perr
		}
		if in.Body.BytesLen > s.o.MaxUploadBytes {
			return nil, tooLarge(s.o.MaxUploadBytes)
		}
		sha := strings.ToLower(in.Body.SHA256)
		if dup, found, err := s.d.Pipe.Lookup(ctx, userID, sha); err != nil {
			return nil, s.internal(ctx, "look up document", err)
		} else if found {
			noteCorrelation(ctx, dup.CorrelationID)
			return &uploadTicketOutput{Status: http.StatusOK, Body: apitypes.UploadTicket{DocumentID: dup.DocumentID, Duplicate: true, JobID: &dup.JobID,
				Status: dup.Status, CorrelationID: &dup.CorrelationID}}, nil
		}
		signer, ok := s.d.Store.(storage.Signer)
		if !ok {
			return nil, problem(http.StatusNotImplemented, apitypes.CodeSignedUploadsOff,
				"this server's blob store cannot sign URLs (local store: set DOCPIPE_STORAGE_SIGN_SECRET and DOCPIPE_PUBLIC_URL); use multipart POST /v1/documents")
		}
		s.sweepUploads(ctx)
		docID := pipeline.DocumentID(userID, sha)
		key := stagingKey(userID, docID)
		expires := s.o.Now().Add(s.o.UploadURLTTL).UTC().Truncate(time.Second)
		url, err := signer.SignedPutURL(ctx, key, s.o.UploadURLTTL)
		if err != nil {
			return nil, s.internal(ctx, "sign upload URL", err)
		}
		// A repeated declaration keeps the job id promised the first time.
		var jobID uuid.UUID
		if err := s.d.Pool.QueryRow(ctx, `INSERT INTO upload_pipeline.api_uploads
			(document_id, user_id, filename, bytes_len, file_sha256, declared_mime, object_key, job_id, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (document_id) DO UPDATE SET filename = EXCLUDED.filename, declared_mime = EXCLUDED.declared_mime,
			    expires_at = EXCLUDED.expires_at
			RETURNING job_id`,
			docID, userID, pipeline.SanitizeFilename(in.Body.Filename), in.Body.BytesLen, sha, in.Body.MIME, key,
			uuid.Must(uuid.NewV7()), expires).Scan(&jobID); err != nil {
			return nil, s.internal(ctx, "record upload", err)
		}
		return &uploadTicketOutput{Status: http.StatusCreated, Body: apitypes.UploadTicket{
			DocumentID: docID, JobID: &jobID, UploadURL: url, Method: http.MethodPut, ExpiresAt: &expires,
			CompleteURL: baseFrom(ctx) + "/v1/uploads/" + docID.String() + "/complete",
		}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "complete-upload", Method: http.MethodPost, Path: "/v1/uploads/{document_id}/complete", Tags: []string{"uploads"},
		Summary: "Finish a signed-URL upload",
		Description: "Checks the stored bytes against the declared size (SIZE_MISMATCH) and sha256 (CHECKSUM_MISMATCH) and sniffs their type; " +
			"only then the document is created and its run starts (202). A rejected upload's bytes are deleted. Honours Idempotency-Key. " +
			"X-Correlation-Id (a UUID) on this request sets the run's correlation id.",
		DefaultStatus: http.StatusAccepted,
		Responses: map[string]*huma.Response{"200": {Description: "Duplicate (or already completed): the existing document and run.",
			Content: map[string]*huma.MediaType{"application/json": {Schema: resultSchema}}}},
		Errors: []int{401, 404, 409, 415, 422, 429},
	}, func(ctx context.Context, in *completeInput) (*uploadResultOutput, error) {
		scope, _ := scopeOf(ctx)
		docID, perr := parseID(in.DocumentID, "upload")
		if perr != nil {
			return nil, perr
		}
		corrID, perr := clientCorrelation(in.CorrelationID)
		if perr != nil {
			return nil, perr
		}
		res, status, perr := s.completeUpload(ctx, scope, docID, corrID)
		if perr != nil {
			return nil, perr
		}
		noteCorrelation(ctx, res.CorrelationID)
		res.Location = baseFrom(ctx) + uploadPath + "/" + res.DocumentID.String()
		return &uploadResultOutput{Status: status, Location: res.Location, CorrelationID: res.CorrelationID.String(), Body: res}, nil
	})
}

// stagingKey is where a signed upload's bytes wait for complete (never RawKey: only
// verified bytes are stored there).
func stagingKey(userID, docID uuid.UUID) string {
	return fmt.Sprintf("uploads/%s/%s", userID, docID)
}

type pendingUpload struct {
	userID   uuid.UUID
	filename string
	size     int64
	sha      string
	key      string
	jobID    uuid.UUID
}

func (s *Server) completeUpload(ctx context.Context, scope catalog.Scope, docID, corrID uuid.UUID) (apitypes.UploadResult, int, *Problem) {
	var u pendingUpload
	all := scope.All()
	userArg := scopeUser(ctx)
	err := s.d.Pool.QueryRow(ctx, `SELECT user_id, filename, bytes_len, file_sha256, object_key, job_id FROM upload_pipeline.api_uploads
		WHERE document_id = $1 AND ($2 OR user_id = $3)`, docID, all, userArg).Scan(&u.userID, &u.filename, &u.size, &u.sha, &u.key, &u.jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		// Already completed (a retry), or never started, or another tenant's.
		if d, derr := catalog.GetDocument(ctx, s.d.Pool, scope, docID); derr == nil && d.Job != nil {
			return apitypes.UploadResult{DocumentID: d.DocumentID, JobID: d.Job.JobID, CorrelationID: d.Job.CorrelationID, Status: d.Job.Status,
				Duplicate: true, Filename: d.Filename, MIME: d.MIME, Bytes: d.Bytes, SHA256: d.SHA256}, http.StatusOK, nil
		}
		return apitypes.UploadResult{}, 0, notFound("upload")
	} else if err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "read upload", err)
	}
	res := apitypes.UploadResult{Filename: u.filename, Bytes: u.size, SHA256: u.sha}
	if dup, found, err := s.d.Pipe.Lookup(ctx, u.userID, u.sha); err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "look up document", err)
	} else if found {
		s.dropUpload(ctx, docID, u.key)
		res.DocumentID, res.JobID, res.CorrelationID, res.Status, res.Duplicate = dup.DocumentID, dup.JobID, dup.CorrelationID, dup.Status, true
		return res, http.StatusOK, nil
	}

	st, err := s.d.Store.Stat(ctx, u.key)
	if errors.Is(err, storage.ErrNotFound) {
		return apitypes.UploadResult{}, 0, problem(http.StatusConflict, apitypes.CodeUploadNotFound, "no bytes were stored for this upload yet: PUT them to upload_url first")
	} else if err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "stat upload", err)
	}
	if st.Size != u.size {
		s.deleteObject(ctx, u.key)
		return apitypes.UploadResult{}, 0, problem(http.StatusUnprocessableEntity, apitypes.CodeSizeMismatch,
			"the stored object has %d bytes, the upload declared %d; it was deleted: PUT the right bytes again", st.Size, u.size)
	}
	data, err := storage.ReadAll(ctx, s.d.Store, u.key, u.size)
	if err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "read upload", err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != u.sha {
		s.deleteObject(ctx, u.key)
		return apitypes.UploadResult{}, 0, problem(http.StatusUnprocessableEntity, apitypes.CodeChecksumMismatch,
			"the stored bytes have sha256 %s, the upload declared %s; they were deleted and no run started", got, u.sha)
	}
	mimeType, perr := s.sniff(data, u.filename)
	if perr != nil {
		s.dropUpload(ctx, docID, u.key)
		return apitypes.UploadResult{}, 0, perr
	}
	res.MIME = mimeType
	release, perr := s.admit(ctx, u.userID)
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr // the bytes stay; complete can be called again later
	}
	sub, err := s.d.Pipe.Submit(ctx, pipeline.Submission{UserID: u.userID, Filename: u.filename, Data: data, JobID: u.jobID, CorrelationID: corrID})
	if err != nil || sub.Duplicate {
		release()
	}
	if err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "store upload", err)
	}
	s.dropUpload(ctx, docID, u.key)
	res.DocumentID, res.JobID, res.CorrelationID, res.Status, res.Duplicate = sub.DocumentID, sub.JobID, sub.CorrelationID, sub.Status, sub.Duplicate
	if sub.Duplicate {
		return res, http.StatusOK, nil
	}
	return res, http.StatusAccepted, nil
}

// scopeUser is the caller's user id (uuid.Nil for an admin key without one).
func scopeUser(ctx context.Context) uuid.UUID {
	p, _ := principalFrom(ctx)
	return p.UserID
}

func (s *Server) deleteObject(ctx context.Context, key string) {
	if err := s.d.Store.Delete(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn("delete staging object", "key", key, "error", err)
	}
}

// dropUpload forgets a pending upload and its staging object.
func (s *Server) dropUpload(ctx context.Context, docID uuid.UUID, key string) {
	s.deleteObject(ctx, key)
	if _, err := s.d.Pool.Exec(context.WithoutCancel(ctx), `DELETE FROM upload_pipeline.api_uploads WHERE document_id = $1`, docID); err != nil {
		s.log.Warn("forget upload", "document_id", docID, "error", err)
	}
}

var uploadSweep atomic.Int64

// sweepUploads removes uploads abandoned an hour past their URL's expiry (at most
// every 10 minutes per process, 100 at a time).
func (s *Server) sweepUploads(ctx context.Context) {
	now := time.Now().Unix()
	last := uploadSweep.Load()
	if now-last < 600 || !uploadSweep.CompareAndSwap(last, now) {
		return
	}
	rows, err := s.d.Pool.Query(ctx, `SELECT document_id, object_key FROM upload_pipeline.api_uploads
		WHERE expires_at < now() - interval '1 hour' LIMIT 100`)
	if err != nil {
		s.log.Warn("sweep uploads", "error", err)
		return
	}
	type stale struct {
		id  uuid.UUID
		key string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stale, error) {
		var x stale
		return x, r.Scan(&x.id, &x.key)
	})
	if err != nil {
		s.log.Warn("sweep uploads", "error", err)
		return
	}
	for _, x := range list {
		s.dropUpload(ctx, x.id, x.key)
	}
}

// documentBlobs adds the signed blob routes to the OpenAPI document.
func (s *Server) documentBlobs() {
	reg := s.api.OpenAPI().Components.Schemas
	_ = reg.Schema(reflect.TypeFor[Problem](), true, "Problem")
	keyParam := &huma.Param{Name: "key", In: "path", Required: true, Description: "Object key (from a signed URL).", Schema: &huma.Schema{Type: "string"}}
	sigParams := []*huma.Param{keyParam,
		{Name: "expires", In: "query", Required: true, Schema: &huma.Schema{Type: "integer"}, Description: "Unix time the URL expires."},
		{Name: "signature", In: "query", Required: true, Schema: &huma.Schema{Type: "string"}, Description: "HMAC of method, key and expiry."},
	}
	text := map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}
	for _, op := range []*huma.Operation{
		{OperationID: "put-blob", Method: http.MethodPut, Path: storage.BlobPath + "{key}", Tags: []string{"uploads"},
			Summary: "PUT bytes to a signed upload URL", Description: "The upload_url of POST /v1/uploads (local store). 403 for a tampered, expired or wrong-method URL.",
			Security: []map[string][]string{}, Parameters: sigParams,
			RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
			Responses: map[string]*huma.Response{"200": {Description: "Stored.", Content: map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Type: "object"}}}},
				"403": {Description: "Invalid or expired signature.", Content: text}, "413": {Description: "Larger than the upload limit.", Content: text}}},
		{OperationID: "get-blob", Method: http.MethodGet, Path: storage.BlobPath + "{key}", Tags: []string{"uploads"},
			Summary: "GET bytes from a signed download URL", Security: []map[string][]string{}, Parameters: sigParams,
			Responses: map[string]*huma.Response{"200": {Description: "The object.", Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
				"403": {Description: "Invalid or expired signature.", Content: text}, "404": {Description: "No such object.", Content: text}}},
	} {
		s.api.OpenAPI().AddOperation(op)
	}
}
