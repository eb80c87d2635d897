package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/runstate"
)

// event appends to the audit trail of the run, as its stage attempt.
func (r *run) event(ctx context.Context, tx pgx.Tx, typ, severity, code string, payload map[string]any) error {
	return insertEvent(ctx, tx, eventRow{
		jobID: r.jobID, docID: r.docID, typ: typ, stage: r.st.name, severity: severity, code: code,
		payload: payload, corrID: r.corrID, workerID: r.p.workerID, attempt: r.job.Attempt,
	})
}

// eventRow is one row of upload_pipeline.events.
type eventRow struct {
	jobID, docID, corrID uuid.UUID
	stage                runstate.Stage
	typ, severity        string
	code, workerID       string
	payload              map[string]any
	attempt              int
}

// insertEvent appends e to the audit trail inside tx.
func insertEvent(ctx context.Context, tx pgx.Tx, e eventRow) error {
	if e.payload == nil {
		e.payload = map[string]any{}
	}
	b, err := json.Marshal(e.payload)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO upload_pipeline.events
		(event_id, job_id, document_id, type, stage, severity, code, payload, correlation_id, worker_id, attempt)
		VALUES ($1, $2, $3, $4, nullif($5, ''), $6, $7, $8, $9, nullif($10, ''), nullif($11, 0))`,
		uuid.Must(uuid.NewV7()), e.jobID, e.docID, e.typ, e.stage, e.severity, e.code, b, e.corrID, e.workerID, e.attempt)
	if err != nil {
		return fmt.Errorf("write event %s: %w", e.code, err)
	}
	return nil
}
