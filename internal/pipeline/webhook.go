package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/runstate"
)

// ErrWebhookToken is returned for a webhook whose token does not match its job id.
var ErrWebhookToken = errors.New("webhook token does not match")

// webhookURL is the URL given to LlamaParse for one run, or "" when no public
// base URL or secret is configured (then the run relies on polling alone).
func (p *Pipeline) webhookURL(jobID uuid.UUID) string {
	if p.opts.WebhookBaseURL == "" || len(p.opts.WebhookSecret) == 0 {
		return ""
	}
	return llamaparse.WebhookURL(p.opts.WebhookBaseURL, p.opts.WebhookSecret, jobID.String())
}

// LlamaParseWebhook handles POST /v1/webhooks/llamaparse/{job_id}/{token}. The token
// (an HMAC of the job id) is the only authentication; the body is only a hint that
// the remote job moved: a first delivery makes the waiting parse stage run now
// (it re-reads status and markdown from the API), a repeated delivery is
// acknowledged and ignored. Errors: ErrWebhookToken (401), ErrNotFound (404), a
// permanent fault for an unreadable body (400).
func (p *Pipeline) LlamaParseWebhook(ctx context.Context, jobID uuid.UUID, token, remoteAddr string, body []byte) (res WebhookResult, err error) {
	if len(p.opts.WebhookSecret) == 0 || !llamaparse.VerifyWebhookToken(p.opts.WebhookSecret, jobID.String(), token) {
		return res, ErrWebhookToken
	}
	hook, err := llamaparse.ParseWebhook(body)
	if err != nil {
		return res, err
	}
	sum := sha256.Sum256(body)
	var status runstate.Status
	var remoteID string
	duplicate := false
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT document_id, correlation_id, status, coalesce(parse_job_id, '')
			FROM upload_pipeline.upload_jobs WHERE job_id = $1`, jobID).Scan(&res.DocumentID, &res.CorrelationID, &status, &remoteID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("job %s: %w", jobID, ErrNotFound)
			}
			return fmt.Errorf("read run: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.webhook_log (delivery_key, job_id, remote_addr, payload_sha256)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			jobID.String()+":"+hook.DeliveryKey, jobID, remoteAddr, hex.EncodeToString(sum[:]))
		if err != nil {
			return fmt.Errorf("record webhook delivery: %w", err)
		}
		if duplicate = tag.RowsAffected() == 0; duplicate {
			return nil
		}
		return insertEvent(ctx, tx, eventRow{jobID: jobID, docID: res.DocumentID, corrID: res.CorrelationID, typ: "webhook", stage: stageParse.name,
			severity: "info", code: "LLAMAPARSE_WEBHOOK", workerID: p.workerID,
			payload: map[string]any{"remote_job_id": hook.JobID, "hint_status": hook.Status, "style": hook.Style}})
	})
	res.Duplicate = duplicate
	if err != nil {
		return res, err
	}
	log := p.log.With("job_id", jobID, "document_id", res.DocumentID, "correlation_id", res.CorrelationID,
		"stage", stageParse.name, "remote_job_id", remoteID, "hint_status", hook.Status)
	if duplicate {
		log.Info("llamaparse webhook repeated; ignored")
		return res, nil
	}
	if status != runstate.ParseQueued {
		log.Info("llamaparse webhook after the parse stage moved on; nothing to wake", "status", status)
		return res, nil // the run has moved on (polling got there first)
	}
	// Run the waiting parse attempt now instead of at its next poll time. An attempt
	// that is running may have read the remote status before the job finished and is
	// about to snooze: wait for it to end, then wake it.
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		var riverID int64
		var state string
		err = p.pool.QueryRow(ctx, `SELECT id, state FROM river_job WHERE kind = $1 AND args->>'upload_job_id' = $2
			ORDER BY id DESC LIMIT 1`, ParseArgs{}.Kind(), jobID.String()).Scan(&riverID, &state)
		if errors.Is(err, pgx.ErrNoRows) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		switch state {
		case "scheduled", "retryable":
			if _, err := p.river.JobRetry(ctx, riverID); err != nil {
				return res, fmt.Errorf("wake parse job: %w", err)
			}
		case "running":
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		break // available: about to run and will see the finished job; otherwise nothing waits
	}
	log.Info("llamaparse webhook woke the parse stage")
	return res, nil
}

// WebhookResult is what a LlamaParse webhook delivery did.
type WebhookResult struct {
	Duplicate     bool // this delivery was seen before and ignored
	DocumentID    uuid.UUID
	CorrelationID uuid.UUID // the run's, for the request log
}

func (p *Pipeline) pollInterval(poll int) time.Duration {
	if p.opts.RemotePollInterval > 0 {
		return p.opts.RemotePollInterval
	}
	return llamaparse.PollInterval(poll)
}
