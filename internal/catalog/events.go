package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Event is one row of the audit trail.
type Event struct {
	Time     time.Time
	JobID    uuid.UUID // the run the event belongs to
	Type     string
	Stage    string
	Severity string
	Code     string
	Payload  json.RawMessage
	WorkerID string
	Attempt  int
}

// eventSelect reads events joined to their document, whose user_id the scope checks.
const eventSelect = `
SELECT e.ts, e.type, coalesce(e.stage, ''), e.severity, e.code, e.payload, coalesce(e.worker_id, ''),
       coalesce(e.attempt, 0), coalesce(e.job_id, '00000000-0000-0000-0000-000000000000'::uuid)
FROM upload_pipeline.events e JOIN upload_pipeline.documents d ON d.document_id = e.document_id`

// maxEvents is the most events one listing returns (and its default).
const maxEvents = 5000

// DocumentEvents lists a document's audit trail (every run), oldest first, at most
// limit rows (default and max 5000). A document the scope may not see has no events.
func DocumentEvents(ctx context.Context, q Querier, s Scope, docID uuid.UUID, limit int) ([]Event, error) {
	return events(ctx, q, eventSelect+`
		WHERE e.document_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)
		ORDER BY e.ts, e.event_id LIMIT $3`, docID, s, limit)
}

// JobEvents lists one run's events, oldest first, at most limit rows (default and
// max 5000). A run the scope may not see has no events.
func JobEvents(ctx context.Context, q Querier, s Scope, jobID uuid.UUID, limit int) ([]Event, error) {
	return events(ctx, q, eventSelect+`
		WHERE e.job_id = $1 AND ($2::uuid IS NULL OR d.user_id = $2)
		ORDER BY e.ts, e.event_id LIMIT $3`, jobID, s, limit)
}

func events(ctx context.Context, q Querier, sql string, id uuid.UUID, s Scope, limit int) ([]Event, error) {
	if limit <= 0 || limit > maxEvents {
		limit = maxEvents
	}
	rows, err := q.Query(ctx, sql, id, s.arg(), limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		return e, r.Scan(&e.Time, &e.Type, &e.Stage, &e.Severity, &e.Code, &e.Payload, &e.WorkerID, &e.Attempt, &e.JobID)
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return evs, nil
}
