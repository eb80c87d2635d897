-- +goose Up
-- Spending per UTC day and external service (issue 3: cost tracking and daily budgets).
-- Rows are upserted by the stage that made the requests, in the transaction that bills
-- the job (upload_jobs.tokens, cost_usd, pages_billed).
CREATE TABLE upload_pipeline.usage_daily (
    day       date NOT NULL,
    service   text NOT NULL,                 -- openai, llamaparse, local
    requests  bigint NOT NULL DEFAULT 0,
    tokens    bigint NOT NULL DEFAULT 0,
    pages     bigint NOT NULL DEFAULT 0,
    credits   numeric(14,3) NOT NULL DEFAULT 0,
    cost_usd  numeric(14,6) NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, service)
);
ALTER TABLE upload_pipeline.upload_jobs ADD COLUMN pages_billed integer NOT NULL DEFAULT 0;
ALTER TABLE upload_pipeline.events DROP CONSTRAINT events_type_check;
ALTER TABLE upload_pipeline.events ADD CONSTRAINT events_type_check CHECK (type IN (
    'stage_started','stage_done','retry','error','deadletter','finalized','webhook','redrive','duplicate','warning','budget'));

-- +goose Down
ALTER TABLE upload_pipeline.events DROP CONSTRAINT events_type_check;
ALTER TABLE upload_pipeline.events ADD CONSTRAINT events_type_check CHECK (type IN (
    'stage_started','stage_done','retry','error','deadletter','finalized','webhook','redrive','duplicate','warning'));
ALTER TABLE upload_pipeline.upload_jobs DROP COLUMN pages_billed;
DROP TABLE upload_pipeline.usage_daily;
