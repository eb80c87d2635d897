-- +goose Up
-- Observability (issue 6): alert state shared by every process, worker heartbeats, and
-- a commit-order cursor on events for the metrics exporter.

-- One row per alert (rule name + subject: a stage, status or service; '' for global
-- rules). Written only by the process holding the alerts advisory lock; read by every
-- process serving GET /v1/alerts. notified_state is the state last delivered to the
-- log and the webhook, so each firing and each resolution is announced once.
CREATE TABLE upload_pipeline.alerts (
    name            text NOT NULL,
    subject         text NOT NULL DEFAULT '',
    severity        text NOT NULL CHECK (severity IN ('warning', 'critical')),
    state           text NOT NULL CHECK (state IN ('firing', 'resolved')),
    message         text NOT NULL,
    runbook         text NOT NULL,
    fired_at        timestamptz NOT NULL,
    resolved_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    notified_state  text CHECK (notified_state IN ('firing', 'resolved')),
    notify_attempts integer NOT NULL DEFAULT 0,
    PRIMARY KEY (name, subject),
    CONSTRAINT ck_alerts_resolved CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);

-- Pipeline worker processes: each upserts its row every few seconds (metrics.StartHeartbeat)
-- and sets stopped_at when it stops. breakers holds its circuit-breaker states
-- ({"openai": "open"}), so the alert evaluator sees breakers of other processes.
CREATE TABLE upload_pipeline.workers (
    worker_id    text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    concurrency  integer NOT NULL DEFAULT 0,
    breakers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);
CREATE INDEX ix_workers_heartbeat ON upload_pipeline.workers (heartbeat_at DESC);

-- The id of the transaction that wrote each event. Transactions commit out of order,
-- so neither ts nor event_id can be tailed safely; a transaction id below
-- pg_snapshot_xmin(pg_current_snapshot()) has finished, so the exporter reads events in
-- [last xmin, current xmin) and never misses or double-counts one. Older rows keep NULL.
ALTER TABLE upload_pipeline.events ADD COLUMN txid xid8;
ALTER TABLE upload_pipeline.events ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX ix_events_txid ON upload_pipeline.events (txid);

-- +goose Down
DROP INDEX upload_pipeline.ix_events_txid;
ALTER TABLE upload_pipeline.events DROP COLUMN txid;
DROP TABLE upload_pipeline.workers;
DROP TABLE upload_pipeline.alerts;
