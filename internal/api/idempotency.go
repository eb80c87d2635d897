package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
)

// Idempotency-Key handling (draft-ietf-httpapi-idempotency-key-header): the first
// POST with a key runs and its response is stored; a retry with the same key and the
// same request gets that response again (header Idempotent-Replayed: true) without
// running twice; the same key with a different request is 422; while the first is
// still running, 409. Keys are per credential and kept 24 hours. Responses 5xx and
// 429 are not stored (the request may be retried for real).
const (
	idemTTL        = 24 * time.Hour
	idemStale      = 5 * time.Minute // an unfinished first request older than this is taken over
	idemMaxKeyLen  = 255
	multipartSlack = 1 << 20 // multipart headers and small fields around the file
	spoolInMemory  = 1 << 20
)

const (
	idemClaimSQL = `INSERT INTO upload_pipeline.api_idempotency (principal, idem_key, method, path, request_sha256)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`
	idemTakeOverSQL = `UPDATE upload_pipeline.api_idempotency
		SET method = $3, path = $4, request_sha256 = $5, created_at = now(),
		    status = NULL, content_type = NULL, headers = '{}', body = NULL, completed_at = NULL
		WHERE principal = $1 AND idem_key = $2 AND ((status IS NULL AND created_at < now() - $6::bigint * interval '1 second') OR created_at < now() - $7::bigint * interval '1 second')`
	idemLoadSQL = `SELECT method, path, request_sha256, status, coalesce(content_type, ''), headers, coalesce(body, ''::bytea)
		FROM upload_pipeline.api_idempotency WHERE principal = $1 AND idem_key = $2`
	idemStoreSQL = `UPDATE upload_pipeline.api_idempotency
		SET status = $3, content_type = $4, headers = $5, body = $6, completed_at = now()
		WHERE principal = $1 AND idem_key = $2`
	idemReleaseSQL = `DELETE FROM upload_pipeline.api_idempotency WHERE principal = $1 AND idem_key = $2 AND status IS NULL`
	idemExpireSQL  = `DELETE FROM upload_pipeline.api_idempotency WHERE created_at < now() - $1::bigint * interval '1 second'`
)

type idempotency struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	maxBody int64
	swept   atomic.Int64 // unix seconds of the last expiry sweep
}

// replayHeaders are the response headers kept with a stored response.
var replayHeaders = []string{"Location", "Content-Location"}

func (i *idempotency) serve(w http.ResponseWriter, r *http.Request, p auth.Principal, next http.Handler) {
	ctx := r.Context()
	key := r.Header.Get("Idempotency-Key")
	if len(key) > idemMaxKeyLen || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		problem(http.StatusBadRequest, apitypes.CodeMalformed, "Idempotency-Key must be 1 to %d printable ASCII characters", idemMaxKeyLen).write(w, r)
		return
	}
	i.sweep(ctx)

	// The request's fingerprint needs the whole body; it is spooled (memory, then a
	// temporary file) and handed to the handler from there.
	body, fp, tooLarge, err := spoolAndFingerprint(r, i.maxBody)
	if body != nil {
		defer body.Close()
	}
	if tooLarge {
		problem(http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge, "request body is larger than %d bytes", i.maxBody).write(w, r)
		return
	}
	if err != nil {
		problem(http.StatusBadRequest, apitypes.CodeMalformed, "could not read the request body: %v", err).write(w, r)
		return
	}

	tag, err := i.pool.Exec(ctx, idemClaimSQL, p.ID, key, r.Method, r.URL.Path, fp)
	if err == nil && tag.RowsAffected() == 0 {
		tag, err = i.pool.Exec(ctx, idemTakeOverSQL, p.ID, key, r.Method, r.URL.Path, fp, int64(idemStale.Seconds()), int64(idemTTL.Seconds()))
		if err == nil && tag.RowsAffected() == 0 {
			i.replay(w, r, p, key, fp)
			return
		}
	}
	if err != nil {
		i.log.Error("idempotency: claim key", "error", err)
		problem(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "idempotency store unavailable; try again").withRetryAfter(2*time.Second).write(w, r)
		return
	}

	// First request with this key: run it and keep the response.
	r.Body = body
	rec := &responseRecorder{ResponseWriter: w, header: w.Header()}
	done := false
	defer func() {
		// Also on panic: free the key so a retry can run.
		if !done {
			_, _ = i.pool.Exec(context.WithoutCancel(ctx), idemReleaseSQL, p.ID, key)
		}
	}()
	next.ServeHTTP(rec, r)
	done = true
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	status := rec.statusCode()
	if status >= 500 || status == http.StatusTooManyRequests {
		if _, err := i.pool.Exec(wctx, idemReleaseSQL, p.ID, key); err != nil {
			i.log.Warn("idempotency: release key", "error", err)
		}
		return
	}
	hdr := map[string]string{}
	for _, h := range replayHeaders {
		if v := rec.header.Get(h); v != "" {
			hdr[h] = v
		}
	}
	hb, _ := json.Marshal(hdr)
	if _, err := i.pool.Exec(wctx, idemStoreSQL, p.ID, key, status, rec.header.Get("Content-Type"), hb, rec.body.Bytes()); err != nil {
		i.log.Warn("idempotency: store response", "error", err)
	}
}

func (i *idempotency) replay(w http.ResponseWriter, r *http.Request, p auth.Principal, key, fp string) {
	var method, path, storedFP, ct string
	var status *int
	var hb, body []byte
	err := i.pool.QueryRow(r.Context(), idemLoadSQL, p.ID, key).Scan(&method, &path, &storedFP, &status, &ct, &hb, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		// Released between our claim and this read (the first request failed).
		problem(http.StatusConflict, apitypes.CodeIdempotencyBusy, "a request with this Idempotency-Key just failed; retry").withRetryAfter(time.Second).write(w, r)
		return
	} else if err != nil {
		i.log.Error("idempotency: load", "error", err)
		problem(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "idempotency store unavailable; try again").withRetryAfter(2*time.Second).write(w, r)
		return
	}
	if method != r.Method || path != r.URL.Path || storedFP != fp {
		problem(http.StatusUnprocessableEntity, apitypes.CodeIdempotencyReuse,
			"this Idempotency-Key was used for a different request (%s %s); use a new key", method, path).write(w, r)
		return
	}
	if status == nil {
		problem(http.StatusConflict, apitypes.CodeIdempotencyBusy, "the first request with this Idempotency-Key is still running").withRetryAfter(time.Second).write(w, r)
		return
	}
	var hdr map[string]string
	_ = json.Unmarshal(hb, &hdr)
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(*status)
	_, _ = w.Write(body)
}

func (i *idempotency) sweep(ctx context.Context) {
	now := time.Now().Unix()
	last := i.swept.Load()
	if now-last < 600 || !i.swept.CompareAndSwap(last, now) {
		return
	}
	if _, err := i.pool.Exec(ctx, idemExpireSQL, int64(idemTTL.Seconds())); err != nil {
		i.log.Warn("idempotency: expire old keys", "error", err)
	}
}

// responseRecorder passes the response through and keeps a copy of its body.
type responseRecorder struct {
	http.ResponseWriter
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *responseRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() < 1<<20 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func (r *responseRecorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// spooledBody is a request body read once: in memory when small, else in a
// temporary file (removed on Close).
type spooledBody struct {
	io.ReadSeeker
	file *os.File
}

func (s *spooledBody) Close() error {
	if s.file != nil {
		err := s.file.Close()
		_ = os.Remove(s.file.Name())
		s.file = nil
		return err
	}
	return nil
}

// spoolAndFingerprint reads the body (at most limit bytes) and returns it rewound,
// with the request's fingerprint: method, path, query and the body — for multipart
// bodies the parts (name, file name, content hash), so a client that re-encodes the
// same form with a new boundary still matches.
func spoolAndFingerprint(r *http.Request, limit int64) (body *spooledBody, fp string, tooLarge bool, err error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", r.Method, r.URL.Path, r.URL.RawQuery)
	src := io.LimitReader(r.Body, limit+1)
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, src, spoolInMemory+1)
	if err != nil && err != io.EOF {
		return nil, "", false, err
	}
	body = &spooledBody{ReadSeeker: bytes.NewReader(buf.Bytes())}
	if n > spoolInMemory {
		f, ferr := os.CreateTemp("", "docpipe-request-*")
		if ferr != nil {
			return nil, "", false, ferr
		}
		body = &spooledBody{ReadSeeker: f, file: f}
		if _, err := f.Write(buf.Bytes()); err != nil {
			return body, "", false, err
		}
		m, err := io.Copy(f, src)
		if err != nil {
			return body, "", false, err
		}
		n += m
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return body, "", false, err
		}
	}
	if n > limit {
		return body, "", true, nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" && params["boundary"] != "" {
		if err := fingerprintMultipart(h, body, params["boundary"]); err != nil {
			// Not a readable form: fall back to the raw bytes (the handler will say 400).
			h = rawFingerprint(r)
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				return body, "", false, err
			}
			if _, err := io.Copy(h, body); err != nil {
				return body, "", false, err
			}
		}
	} else {
		fmt.Fprintf(h, "%s\n", mt)
		if _, err := io.Copy(h, body); err != nil {
			return body, "", false, err
		}
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return body, "", false, err
	}
	return body, hex.EncodeToString(h.Sum(nil)), false, nil
}

func rawFingerprint(r *http.Request) hash.Hash {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\nraw\n", r.Method, r.URL.Path, r.URL.RawQuery)
	return h
}

func fingerprintMultipart(h hash.Hash, body io.ReadSeeker, boundary string) error {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ph := sha256.New()
		if _, err := io.Copy(ph, part); err != nil {
			return err
		}
		fmt.Fprintf(h, "part %q %q %x\n", part.FormName(), part.FileName(), ph.Sum(nil))
	}
}
