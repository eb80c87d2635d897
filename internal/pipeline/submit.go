package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// Submission is one uploaded file.
type Submission struct {
	UserID   uuid.UUID
	Filename string // shown to people only; never used in storage paths
	Data     []byte
	// JobID is the run's id when the caller promised one in advance (the signed-URL
	// upload flow returns it before the bytes arrive); zero = a new UUIDv7.
	JobID uuid.UUID
	// CorrelationID is the run's correlation id, carried by every log line and event
	// of the run, when the client chose one (the API's X-Correlation-Id header); zero =
	// a new random one. A duplicate upload keeps the existing run's correlation id.
	CorrelationID uuid.UUID
}

// Submitted says what happened to a submission.
type Submitted struct {
	DocumentID    uuid.UUID
	JobID         uuid.UUID
	CorrelationID uuid.UUID // the run's (for a duplicate: the existing run's, not the submission's)
	Duplicate     bool      // the same user already uploaded the same bytes: nothing new was created
	Status        runstate.Status
}

// Submit stores the bytes, then creates the document and its run and queues parsing,
// all in one transaction. The same user submitting the same bytes again gets the
// existing document and run back, never a second pipeline run.
func (p *Pipeline) Submit(ctx context.Context, s Submission) (Submitted, error) {
	// Empty and malformed files are accepted here on purpose: the parse stage fails
	// them with a readable reason, visible in the run's status and events.
	if int64(len(s.Data)) > p.opts.MaxUploadBytes {
		return Submitted{}, fmt.Errorf("file is %d bytes, over the %d-byte upload limit", len(s.Data), p.opts.MaxUploadBytes)
	}
	sum := sha256.Sum256(s.Data)
	fileSHA := hex.EncodeToString(sum[:])
	docID := DocumentID(s.UserID, fileSHA)
	if existing, err := p.existing(ctx, docID); err == nil {
		return existing, nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return Submitted{}, err
	}

	// Bytes first: a document enters `uploaded` only after its bytes are stored and verified.
	key := storage.RawKey(s.UserID, docID)
	obj, err := p.store.Put(ctx, key, bytes.NewReader(s.Data))
	if err != nil {
		return Submitted{}, fmt.Errorf("store upload: %w", err)
	}
	if obj.SHA256 != fileSHA || obj.Size != int64(len(s.Data)) {
		return Submitted{}, fmt.Errorf("stored object %s does not match the upload (sha256 %s, want %s)", key, obj.SHA256, fileSHA)
	}
	mime, sniffErr := parse.Sniff(s.Data, s.Filename)
	if sniffErr != nil {
		mime = "application/octet-stream"
	}
	name := SanitizeFilename(s.Filename)
	jobID := s.JobID
	if jobID == uuid.Nil {
		jobID = uuid.Must(uuid.NewV7())
	}
	corrID := s.CorrelationID
	if corrID == uuid.Nil {
		corrID = uuid.New()
	}

	var out Submitted
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.documents
			(document_id, user_id, filename, mime, bytes_len, file_sha256, raw_path)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, file_sha256) DO NOTHING`,
			docID, s.UserID, name, mime, len(s.Data), fileSHA, key)
		if err != nil {
			return fmt.Errorf("insert document: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errDuplicate // a concurrent submit won; report its run
		}
		if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, status, state, correlation_id)
			VALUES ($1, $2, $3, $4, $5)`, jobID, docID, runstate.Uploaded, runstate.Queued, corrID); err != nil {
			return fmt.Errorf("insert upload job: %w", err)
		}
		ev := eventRow{jobID: jobID, docID: docID, corrID: corrID, typ: "stage_done", stage: runstate.Upload, severity: "info",
			code: "UPLOAD_ACCEPTED", payload: map[string]any{"bytes": len(s.Data), "mime": mime, "file_sha256": fileSHA}}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		first := stages[0]
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET status = $2,
			progress = jsonb_build_object('percent', $3::float8, 'stage', $4::text) WHERE job_id = $1`,
			jobID, first.entry, runstate.Percent(first.entry, 0, 0), first.name); err != nil {
			return fmt.Errorf("queue %s: %w", first.name, err)
		}
		if err := p.enqueue(ctx, tx, first, jobID); err != nil {
			return err
		}
		out = Submitted{DocumentID: docID, JobID: jobID, CorrelationID: corrID, Status: first.entry}
		return nil
	})
	if errors.Is(err, errDuplicate) {
		return p.existing(ctx, docID)
	}
	if err != nil {
		return Submitted{}, err
	}
	p.log.Info("document submitted", "document_id", docID, "job_id", jobID, "correlation_id", corrID, "bytes", len(s.Data), "mime", mime)
	return out, nil
}

var errDuplicate = errors.New("duplicate upload")

func (p *Pipeline) existing(ctx context.Context, docID uuid.UUID) (Submitted, error) {
	out := Submitted{DocumentID: docID, Duplicate: true}
	err := p.pool.QueryRow(ctx, `SELECT job_id, correlation_id, status FROM upload_pipeline.upload_jobs
		WHERE document_id = $1 ORDER BY created_at DESC LIMIT 1`, docID).Scan(&out.JobID, &out.CorrelationID, &out.Status)
	return out, err
}

// Lookup returns the user's existing document and latest run for these bytes (by
// their sha256, hex), with Duplicate set; found is false when there is none.
func (p *Pipeline) Lookup(ctx context.Context, userID uuid.UUID, fileSHA256 string) (s Submitted, found bool, err error) {
	s, err = p.existing(ctx, DocumentID(userID, fileSHA256))
	if errors.Is(err, pgx.ErrNoRows) {
		return Submitted{}, false, nil
	}
	return s, err == nil, err
}

// SanitizeFilename keeps a file name fit for display: base name only, no control
// characters, at most 200 runes.
func SanitizeFilename(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if r := []rune(name); len(r) > 200 {
		name = string(r[:200])
	}
	if name == "" || name == "." || name == "/" {
		name = "unnamed"
	}
	return name
}

// ErrNotDeadLettered is returned by Retry for a run that is not dead-lettered.
var ErrNotDeadLettered = errors.New("the job is not dead-lettered")

// ErrNotFound is returned for an unknown run (Retry, the webhook, CancelRun).
var ErrNotFound = errors.New("not found")

// Retry re-drives a dead-lettered run: it goes back to the entry status of the stage
// that failed, and that stage's job is queued again, in one transaction.
func (p *Pipeline) Retry(ctx context.Context, jobID uuid.UUID) (runstate.Status, error) {
	var status runstate.Status
	var state runstate.State
	var docID, corrID uuid.UUID
	var le []byte
	var entry runstate.Status
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT status, state, document_id, correlation_id, last_error
			FROM upload_pipeline.upload_jobs WHERE job_id = $1 FOR UPDATE`, jobID).Scan(&status, &state, &docID, &corrID, &le)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return fmt.Errorf("read run: %w", err)
		}
		if state != runstate.Deadletter {
			return fmt.Errorf("%w (status %s, state %s)", ErrNotDeadLettered, status, state)
		}
		var last lastError
		_ = json.Unmarshal(le, &last)
		s := stageByName(last.Stage)
		if s == nil {
			// No stage recorded: restart at the first stage that fails into this status.
			i := slices.IndexFunc(stages, func(st *stage) bool { return st.failStatus == status })
			if i < 0 {
				return fmt.Errorf("no stage to re-drive a run in status %s", status)
			}
			s = stages[i]
		}
		entry = s.entry
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET status = $2, state = $5, finished_at = NULL,
			    progress = progress || jsonb_build_object('percent', $3::float8, 'stage', $4::text)
			WHERE job_id = $1`, jobID, entry, runstate.Percent(entry, 0, 0), s.name, runstate.Queued); err != nil {
			return fmt.Errorf("re-drive run: %w", err)
		}
		if err := insertEvent(ctx, tx, eventRow{jobID: jobID, docID: docID, corrID: corrID, typ: "redrive", stage: s.name,
			severity: "info", code: "REDRIVE", payload: map[string]any{"from": status, "to": entry, "last_error": last.Code}}); err != nil {
			return err
		}
		return p.enqueue(ctx, tx, s, jobID)
	})
	if err != nil {
		return "", err
	}
	p.log.Info("dead-lettered run re-driven", "job_id", jobID, "document_id", docID, "correlation_id", corrID, "from", status, "to", entry)
	return entry, nil
}
