package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/runstate"
)

// ValidateArgs is the job of the validate stage.
type ValidateArgs StageArgs

// Kind is the River job kind.
func (ValidateArgs) Kind() string { return runstate.Validate.Kind() }

// stageValidate checks and normalizes the parsed markdown and ends duplicates.
var stageValidate = bind[ValidateArgs](&stage{
	name:     runstate.Validate,
	accepts:  []runstate.Status{runstate.Parsed},
	entry:    runstate.Parsed,
	priority: 3,
}, (*run).validate)

// notOriginals are the statuses of runs whose document does not count as the original
// of a duplicate: failed ones and duplicates themselves.
var notOriginals = append(runstate.FailedStatuses(), runstate.Duplicate)

// validate: non-empty, normalized, hashed, and not a duplicate of another document of the same user.
func (r *run) validate(ctx context.Context) (applyFunc, error) {
	if r.parsed == "" {
		return nil, fault.Permanentf("PARSED_MISSING", "the run has no parsed document to validate")
	}
	raw, err := r.readObject(ctx, r.parsed)
	if err != nil {
		return nil, err
	}
	norm := NormalizeMarkdown(string(raw))
	if norm == "" {
		return nil, fault.Permanentf("EMPTY_CONTENT", "the document contains no text after parsing")
	}
	sum := sha256.Sum256([]byte(norm))
	sha := hex.EncodeToString(sum[:])
	if norm != string(raw) {
		if _, err := r.p.store.Put(ctx, r.parsed, bytes.NewReader([]byte(norm))); err != nil {
			return nil, fault.Wrap(fault.Transient, "STORAGE_WRITE", err, "could not store the normalized document")
		}
	}
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, error) {
		// Serialize validations of the same content for the same user.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 1))`, r.userID, sha); err != nil {
			return "", fmt.Errorf("lock duplicate check: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.documents SET parsed_sha256 = $2 WHERE document_id = $1`, r.docID, sha); err != nil {
			return "", fmt.Errorf("record parsed sha256: %w", err)
		}
		var dupOf uuid.UUID
		err := tx.QueryRow(ctx, `SELECT d.document_id FROM upload_pipeline.documents d
			WHERE d.user_id = $1 AND d.parsed_sha256 = $2 AND d.document_id <> $3
			  AND EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
			              AND j.status <> ALL($4))
			ORDER BY d.created_at, d.document_id LIMIT 1`, r.userID, sha, r.docID, notOriginals).Scan(&dupOf)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return advance, nil
		case err != nil:
			return "", fmt.Errorf("find duplicate: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET duplicate_of = $2 WHERE job_id = $1`, r.jobID, dupOf); err != nil {
			return "", fmt.Errorf("record duplicate_of: %w", err)
		}
		r.log.Info("parsed content duplicates another document of this user", "duplicate_of", dupOf)
		return runstate.Duplicate, r.event(ctx, tx, "duplicate", "info", "PARSED_DUPLICATE", map[string]any{"duplicate_of": dupOf})
	}, nil
}
