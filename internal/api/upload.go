package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
)

const uploadPath = "/v1/documents"

func (s *Server) registerUpload() {
	// The upload streams a multipart body with its own size limit and checks, so it is
	// a plain handler; its operation is added to the OpenAPI document by hand.
	s.handle("POST "+uploadPath, http.HandlerFunc(s.upload))

	reg := s.api.OpenAPI().Components.Schemas
	result := reg.Schema(reflect.TypeFor[apitypes.UploadResult](), true, "UploadResult")
	errSchema := reg.Schema(reflect.TypeFor[Problem](), true, "Problem")
	op := &huma.Operation{
		OperationID: "upload-document", Method: http.MethodPost, Path: uploadPath, Tags: []string{"documents"},
		Summary: "Upload a document",
		Description: "multipart/form-data with a `file` part (and optionally `sha256`, the hex digest the client computed: " +
			"when it does not match the bytes the upload is rejected with CHECKSUM_MISMATCH and nothing is stored). " +
			"The type is sniffed from the content (PDF, DOCX, HTML, Markdown, plain text). New bytes start a pipeline run (202); " +
			"the same user uploading the same bytes again gets the existing document and run (200, duplicate: true). " +
			"Admin keys upload for a user with ?user_id=. Honours Idempotency-Key. " +
			"X-Correlation-Id (a UUID) sets the run's correlation id (every log line and event of the run carries it); " +
			"a duplicate keeps the existing run's, which the response returns.",
		Parameters: []*huma.Param{
			correlationParam(),
			{Name: "user_id", In: "query", Description: "Admin keys only: the user to upload for (default: the key's user).",
				Schema: &huma.Schema{Type: "string", Format: "uuid"}},
			{Name: "Idempotency-Key", In: "header", Description: "Replays the first response for retries with the same key.",
				Schema: &huma.Schema{Type: "string", MaxLength: ptr(idemMaxKeyLen)}},
		},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"multipart/form-data": {Schema: &huma.Schema{
				Type: "object", Required: []string{"file"},
				Properties: map[string]*huma.Schema{
					"file":     {Type: "string", Format: "binary", Description: "The document."},
					"sha256":   {Type: "string", Pattern: "^[0-9a-fA-F]{64}$", Description: "Optional sha256 (hex) of the file, checked by the server."},
					"filename": {Type: "string", MaxLength: ptr(1000), Description: "Optional display name (default: the file part's filename)."},
				},
			}},
		}},
		Responses: map[string]*huma.Response{
			"200": {Description: "Duplicate: the existing document and run.", Content: map[string]*huma.MediaType{"application/json": {Schema: result}}},
			"202": {Description: "Accepted: stored, and the pipeline run is queued.", Content: map[string]*huma.MediaType{"application/json": {Schema: result}},
				Headers: map[string]*huma.Param{"Location": {Schema: &huma.Schema{Type: "string"}, Description: "URL of the document."}}},
		},
	}
	op.Responses["200"].Headers = map[string]*huma.Param{}
	for _, code := range []string{"200", "202"} {
		op.Responses[code].Headers[apitypes.CorrelationHeader] = correlationResponseHeader()
	}
	for _, code := range []int{400, 401, 403, 409, 413, 415, 422, 429, 500, 503} {
		op.Responses[fmt.Sprint(code)] = &huma.Response{Description: http.StatusText(code),
			Content: map[string]*huma.MediaType{"application/problem+json": {Schema: errSchema}}}
	}
	s.api.OpenAPI().AddOperation(op)
}

func ptr[T any](v T) *T { return &v }

// correlationParam documents the optional X-Correlation-Id request header.
func correlationParam() *huma.Param {
	return &huma.Param{Name: apitypes.CorrelationHeader, In: "header",
		Description: "Optional correlation id (a UUID) for the run this request starts; every log line and event of the run carries it. " +
			"Not a UUID: 422 INVALID_CORRELATION_ID. Default: the server makes one.",
		Schema: &huma.Schema{Type: "string", Format: "uuid"}}
}

func correlationResponseHeader() *huma.Param {
	return &huma.Param{Description: "The run's correlation id (a duplicate's is the existing run's).",
		Schema: &huma.Schema{Type: "string", Format: "uuid"}}
}

// upload handles POST /v1/documents.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxUploadBytes+multipartSlack)
	res, status, p := s.doUpload(r)
	if p != nil {
		p.write(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", res.Location)
	w.Header().Set(apitypes.CorrelationHeader, res.CorrelationID.String())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

func (s *Server) doUpload(r *http.Request) (apitypes.UploadResult, int, *Problem) {
	ctx := r.Context()
	_, pr := scopeOf(ctx)
	userID, perr := uploadUser(pr, r.URL.Query().Get("user_id"))
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr
	}
	corrID, perr := clientCorrelation(r.Header.Get(apitypes.CorrelationHeader))
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return apitypes.UploadResult{}, 0, problem(http.StatusUnsupportedMediaType, apitypes.CodeUnsupportedType,
			"send the file as multipart/form-data with a part named \"file\"")
	}
	limit := s.o.MaxUploadBytes
	if r.ContentLength > limit+multipartSlack {
		return apitypes.UploadResult{}, 0, tooLarge(limit)
	}
	// Bound the memory all uploads in flight may hold.
	weight := limit
	if r.ContentLength > 0 {
		weight = min(limit, r.ContentLength)
	}
	if err := s.uploads.Acquire(ctx, weight); err != nil {
		return apitypes.UploadResult{}, 0, problem(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "request cancelled while waiting for upload capacity")
	}
	defer s.uploads.Release(weight)

	form, perr := readUploadForm(r, limit)
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr
	}
	sum := sha256.Sum256(form.data)
	fileSHA := hex.EncodeToString(sum[:])
	if form.sha256 != "" && !strings.EqualFold(form.sha256, fileSHA) {
		return apitypes.UploadResult{}, 0, problem(http.StatusUnprocessableEntity, apitypes.CodeChecksumMismatch,
			"the declared sha256 %s does not match the uploaded bytes (sha256 %s, %d bytes); nothing was stored",
			strings.ToLower(form.sha256), fileSHA, len(form.data))
	}
	mimeType, perr := s.sniff(form.data, form.filename)
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr
	}
	res := apitypes.UploadResult{Bytes: int64(len(form.data)), SHA256: fileSHA, MIME: mimeType, Filename: pipeline.SanitizeFilename(form.filename)}

	// The same bytes again: the existing document, no quota used.
	if dup, found, err := s.d.Pipe.Lookup(ctx, userID, fileSHA); err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "look up document", err)
	} else if found {
		return s.uploaded(r, res, dup), http.StatusOK, nil
	}

	release, perr := s.admit(ctx, userID)
	if perr != nil {
		return apitypes.UploadResult{}, 0, perr
	}
	sub, err := s.d.Pipe.Submit(ctx, pipeline.Submission{UserID: userID, Filename: form.filename, Data: form.data, CorrelationID: corrID})
	if err != nil || sub.Duplicate {
		release() // nothing new was started
	}
	if err != nil {
		return apitypes.UploadResult{}, 0, s.internal(ctx, "store upload", err)
	}
	status := http.StatusAccepted
	if sub.Duplicate {
		status = http.StatusOK
	}
	return s.uploaded(r, res, sub), status, nil
}

func (s *Server) uploaded(r *http.Request, res apitypes.UploadResult, sub pipeline.Submitted) apitypes.UploadResult {
	res.DocumentID, res.JobID, res.Status, res.Duplicate = sub.DocumentID, sub.JobID, sub.Status, sub.Duplicate
	res.CorrelationID = sub.CorrelationID
	res.Location = baseFrom(r.Context()) + uploadPath + "/" + sub.DocumentID.String()
	noteCorrelation(r.Context(), sub.CorrelationID)
	return res
}

// uploadUser is the user an upload belongs to: the caller's, or for an admin key the
// ?user_id= given (default the key's own user).
func uploadUser(p auth.Principal, requested string) (uuid.UUID, *Problem) {
	if requested == "" {
		if p.UserID == uuid.Nil {
			return uuid.Nil, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation,
				"this admin key acts for no user: pass ?user_id= to upload for one")
		}
		return p.UserID, nil
	}
	u, err := uuid.Parse(requested)
	if err != nil || u == uuid.Nil {
		return uuid.Nil, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "user_id must be a UUID")
	}
	if u != p.UserID && !p.Admin {
		return uuid.Nil, problem(http.StatusForbidden, apitypes.CodeForbidden, "only admin keys may upload for another user")
	}
	return u, nil
}

func tooLarge(limit int64) *Problem {
	return problem(http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge, "the file is larger than the %d-byte upload limit", limit)
}

type uploadForm struct {
	data     []byte
	filename string
	sha256   string
}

// readUploadForm streams the multipart body: the file part is read up to limit+1
// bytes (more is 413), small fields up to 1 KiB; unknown parts are skipped.
func readUploadForm(r *http.Request, limit int64) (uploadForm, *Problem) {
	mr, err := r.MultipartReader()
	if err != nil {
		return uploadForm{}, problem(http.StatusBadRequest, apitypes.CodeMalformed, "unreadable multipart body: %v", err)
	}
	var f uploadForm
	haveFile := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return uploadForm{}, multipartProblem(err, limit)
		}
		switch part.FormName() {
		case "file":
			if haveFile {
				return uploadForm{}, problem(http.StatusBadRequest, apitypes.CodeMalformed, "send exactly one part named \"file\"")
			}
			haveFile = true
			var buf bytes.Buffer
			if r.ContentLength > 0 {
				buf.Grow(int(min(r.ContentLength, limit+1)))
			}
			n, err := io.Copy(&buf, io.LimitReader(part, limit+1))
			if err != nil {
				return uploadForm{}, multipartProblem(err, limit)
			}
			if n > limit {
				return uploadForm{}, tooLarge(limit)
			}
			f.data = buf.Bytes()
			if f.filename == "" {
				f.filename = part.FileName()
			}
		case "sha256", "filename":
			b, err := io.ReadAll(io.LimitReader(part, 1025))
			if err != nil {
				return uploadForm{}, multipartProblem(err, limit)
			}
			if len(b) > 1024 {
				return uploadForm{}, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "form field %q is too long", part.FormName())
			}
			v := strings.TrimSpace(string(b))
			if part.FormName() == "sha256" {
				if !isHex64(v) {
					return uploadForm{}, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "sha256 must be 64 hex digits")
				}
				f.sha256 = v
			} else if v != "" {
				f.filename = v
			}
		default:
			if _, err := io.Copy(io.Discard, io.LimitReader(part, limit)); err != nil {
				return uploadForm{}, multipartProblem(err, limit)
			}
		}
	}
	if !haveFile {
		return uploadForm{}, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "the form has no part named \"file\"")
	}
	return f, nil
}

func multipartProblem(err error, limit int64) *Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	return problem(http.StatusBadRequest, apitypes.CodeMalformed, "unreadable multipart body: %v", err)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// sniff detects the type from the content; unsupported or mislabelled content is 415,
// empty or damaged files 422.
func (s *Server) sniff(data []byte, filename string) (string, *Problem) {
	mt, err := parse.Sniff(data, filename)
	if err != nil {
		var fe *fault.Error
		msg := err.Error()
		code := ""
		if errors.As(err, &fe) {
			msg, code = fe.Message, fe.Code
		}
		switch code {
		case parse.CodeEmptyFile:
			return "", problem(http.StatusUnprocessableEntity, apitypes.CodeEmptyFile, "%s", msg)
		case parse.CodeTypeMismatch:
			return "", problem(http.StatusUnsupportedMediaType, apitypes.CodeTypeMismatch, "%s", msg)
		case parse.CodeDOCXCorrupt:
			return "", problem(http.StatusUnprocessableEntity, apitypes.CodeCorruptFile, "%s", msg)
		}
		return "", problem(http.StatusUnsupportedMediaType, apitypes.CodeUnsupportedType, "%s", msg)
	}
	if !slices.Contains(s.o.AllowedMIME, mt) {
		return "", problem(http.StatusUnsupportedMediaType, apitypes.CodeUnsupportedType, "%s files are not accepted here (accepted: %s)",
			mt, strings.Join(s.o.AllowedMIME, ", "))
	}
	return mt, nil
}

// admit applies the per-user limits to a new upload: concurrent active runs, then
// the daily count (reserved now; release gives it back if nothing was started).
func (s *Server) admit(ctx context.Context, userID uuid.UUID) (release func(), _ *Problem) {
	if s.o.MaxActiveJobs > 0 {
		n, err := catalog.ActiveRuns(ctx, s.d.Pool, catalog.UserScope(userID))
		if err != nil {
			return nil, s.internal(ctx, "count active runs", err)
		}
		if n >= s.o.MaxActiveJobs {
			return nil, problem(http.StatusTooManyRequests, apitypes.CodeActiveJobsLimit,
				"%d runs are still queued or working (limit %d); upload again when some have finished", n, s.o.MaxActiveJobs).
				withRetryAfter(15 * time.Second)
		}
	}
	if s.o.UploadsPerDay <= 0 {
		return func() {}, nil
	}
	now := s.o.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var n int
	err := s.d.Pool.QueryRow(ctx, `INSERT INTO upload_pipeline.api_upload_quota AS q (user_id, day, uploads) VALUES ($1, $2, 1)
		ON CONFLICT (user_id, day) DO UPDATE SET uploads = q.uploads + 1 WHERE q.uploads < $3
		RETURNING uploads`, userID, day, s.o.UploadsPerDay).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, problem(http.StatusTooManyRequests, apitypes.CodeDailyUploadLimit,
			"the daily limit of %d uploads is reached; it resets at 00:00 UTC", s.o.UploadsPerDay).
			withRetryAfter(day.Add(24 * time.Hour).Sub(now))
	} else if err != nil {
		return nil, s.internal(ctx, "count uploads", err)
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.d.Pool.Exec(rctx, `UPDATE upload_pipeline.api_upload_quota SET uploads = uploads - 1
			WHERE user_id = $1 AND day = $2 AND uploads > 0`, userID, day); err != nil {
			s.log.Warn("upload quota: give back", "error", err)
		}
	}, nil
}

// typeNames are the short names of the accepted types (DOCPIPE_ALLOWED_TYPES).
var typeNames = map[string]string{
	"pdf": parse.MIMEPDF, "docx": parse.MIMEDOCX, "html": parse.MIMEHTML, "markdown": parse.MIMEMarkdown, "md": parse.MIMEMarkdown,
	"text": parse.MIMEText, "txt": parse.MIMEText,
}

// ParseAllowedTypes reads a comma-separated list of type names (pdf, docx, html,
// markdown, text) or MIME types into Options.AllowedMIME; "" means all.
func ParseAllowedTypes(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		mt, ok := typeNames[f]
		if !ok {
			for _, m := range typeNames {
				if m == f {
					mt, ok = m, true
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown document type %q (want pdf, docx, html, markdown, text)", f)
		}
		if !slices.Contains(out, mt) {
			out = append(out, mt)
		}
	}
	return out, nil
}
