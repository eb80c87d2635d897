-- +goose Up
-- The HTTP API (issue 4): service API keys, Idempotency-Key replay, per-user daily upload quotas.

-- Service API keys. Only the SHA-256 of a key is stored; the key itself is shown once
-- by `docpipe keys create`. key_prefix (the first characters) identifies a key in lists
-- and logs. A key acts as user_id; an admin key sees every tenant (user_id optional).
CREATE TABLE upload_pipeline.api_keys (
    key_id       uuid PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    key_prefix   text NOT NULL,
    key_sha256   text NOT NULL UNIQUE CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    user_id      uuid,
    admin        boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT ck_api_keys_tenant CHECK (admin OR user_id IS NOT NULL)
);

-- Idempotency-Key on POST requests: the first request's response is kept and replayed
-- for a retry with the same key (same principal, same request); a different request
-- under the same key is rejected. status IS NULL while the first request runs.
CREATE TABLE upload_pipeline.api_idempotency (
    principal      text NOT NULL,
    idem_key       text NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    request_sha256 text NOT NULL,
    status         integer,
    content_type   text,
    headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    PRIMARY KEY (principal, idem_key)
);
CREATE INDEX ix_api_idempotency_created ON upload_pipeline.api_idempotency (created_at);

-- Uploads that started a pipeline run, per user and UTC day (the daily upload limit).
CREATE TABLE upload_pipeline.api_upload_quota (
    user_id uuid NOT NULL,
    day     date NOT NULL,
    uploads integer NOT NULL DEFAULT 0 CHECK (uploads >= 0),
    PRIMARY KEY (user_id, day)
);

-- Signed-URL uploads waiting for their bytes (POST /v1/uploads → PUT upload_url →
-- POST /v1/uploads/{document_id}/complete). The bytes go to object_key, a staging
-- key; the run starts only when they match bytes_len and file_sha256.
CREATE TABLE upload_pipeline.api_uploads (
    document_id   uuid PRIMARY KEY,             -- uuid5(NS, "{user_id}:{file_sha256}")
    user_id       uuid NOT NULL,
    filename      text NOT NULL,
    bytes_len     bigint NOT NULL CHECK (bytes_len > 0),
    file_sha256   text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    declared_mime text NOT NULL DEFAULT '',
    object_key    text NOT NULL,
    job_id        uuid NOT NULL,                -- the run's id, promised to the client up front
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_api_uploads_expires ON upload_pipeline.api_uploads (expires_at);

-- Active runs per user (the concurrent-jobs limit) and user-scoped listings.
CREATE INDEX ix_upload_jobs_state_created ON upload_pipeline.upload_jobs (state, created_at DESC);

-- +goose Down
DROP INDEX upload_pipeline.ix_upload_jobs_state_created;
DROP TABLE upload_pipeline.api_uploads;
DROP TABLE upload_pipeline.api_upload_quota;
DROP TABLE upload_pipeline.api_idempotency;
DROP TABLE upload_pipeline.api_keys;
