-- +goose Up
-- The operator dashboard's overview (GET /v1/overview): throughput and latency over the
-- last hour read finished runs and recent events by time, and each worker's heartbeat
-- carries its recent external-call figures per service.

CREATE INDEX ix_upload_jobs_finished ON upload_pipeline.upload_jobs (finished_at DESC)
    WHERE finished_at IS NOT NULL;
CREATE INDEX ix_events_ts ON upload_pipeline.events (ts DESC);

-- {"openai": {"calls": 12, "errors": 1, "rate_limited": 0, "p50_ms": 80, "p95_ms": 210}}:
-- this worker's requests to each external service over the last 5 minutes.
ALTER TABLE upload_pipeline.workers ADD COLUMN services jsonb NOT NULL DEFAULT '{}'::jsonb;

-- +goose Down
ALTER TABLE upload_pipeline.workers DROP COLUMN services;
DROP INDEX upload_pipeline.ix_events_ts;
DROP INDEX upload_pipeline.ix_upload_jobs_finished;
