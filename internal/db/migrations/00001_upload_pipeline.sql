-- +goose Up
-- The upload_pipeline schema (DESIGN.md §2). River's own tables are migrated by rivermigrate.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS upload_pipeline;

CREATE TABLE upload_pipeline.documents (
    document_id   uuid PRIMARY KEY,                 -- uuid5(NS, "{user_id}:{file_sha256}")
    user_id       uuid NOT NULL,
    filename      text NOT NULL,                    -- sanitized, for display only
    mime          text NOT NULL,
    bytes_len     bigint NOT NULL CHECK (bytes_len >= 0),
    file_sha256   text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    raw_path      text NOT NULL,
    parsed_path   text,
    parsed_sha256 text CHECK (parsed_sha256 IS NULL OR parsed_sha256 ~ '^[0-9a-f]{64}$'),
    page_count    integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_documents_user_file UNIQUE (user_id, file_sha256)
);
CREATE INDEX ix_documents_user ON upload_pipeline.documents (user_id, created_at DESC);
CREATE INDEX ix_documents_parsed_sha ON upload_pipeline.documents (user_id, parsed_sha256) WHERE parsed_sha256 IS NOT NULL;

CREATE TABLE upload_pipeline.upload_jobs (
    job_id          uuid PRIMARY KEY,               -- UUIDv7, generated in Go
    document_id     uuid NOT NULL REFERENCES upload_pipeline.documents ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'uploaded',
    state           text NOT NULL DEFAULT 'queued',
    progress        jsonb NOT NULL DEFAULT '{}'::jsonb,
    retry_count     integer NOT NULL DEFAULT 0,
    last_error      jsonb,                          -- {code, message, retryable, stage, at}
    correlation_id  uuid NOT NULL,
    parse_job_id    text,                           -- remote parser job id (LlamaParse)
    duplicate_of    uuid REFERENCES upload_pipeline.documents ON DELETE SET NULL,
    chunker_name    text,
    chunker_version text,
    embed_model     text,
    embed_version   text,
    embed_dims      integer,
    tokens          bigint NOT NULL DEFAULT 0,
    cost_usd        numeric(14,6) NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT ck_upload_jobs_status CHECK (status IN (
        'uploaded','parse_queued','parsed','parse_validated','chunking','chunks_stored',
        'embedding_queued','embedding_in_progress','embeddings_stored','complete',
        'failed_parse','failed_chunking','failed_embedding','duplicate')),
    CONSTRAINT ck_upload_jobs_state CHECK (state IN ('queued','working','retryable','done','deadletter')),
    CONSTRAINT ck_upload_jobs_terminal_state CHECK (
        (status IN ('complete','duplicate') AND state = 'done') OR
        (status LIKE 'failed\_%' AND state = 'deadletter') OR
        (status NOT IN ('complete','duplicate') AND status NOT LIKE 'failed\_%' AND state IN ('queued','working','retryable')))
);
CREATE INDEX ix_upload_jobs_document ON upload_pipeline.upload_jobs (document_id, created_at DESC);
CREATE INDEX ix_upload_jobs_active ON upload_pipeline.upload_jobs (status, created_at)
    WHERE state IN ('queued','working','retryable');
CREATE INDEX ix_upload_jobs_correlation ON upload_pipeline.upload_jobs (correlation_id);

-- The status machine. rank orders the forward path; failures and duplicate are terminal
-- exits reachable from any non-terminal status; a dead-lettered run can be re-driven
-- (failed_* → a non-terminal status) by `jobs retry`.
-- +goose StatementBegin
CREATE FUNCTION upload_pipeline.status_rank(s text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE s
        WHEN 'uploaded' THEN 1 WHEN 'parse_queued' THEN 2 WHEN 'parsed' THEN 3
        WHEN 'parse_validated' THEN 4 WHEN 'chunking' THEN 5 WHEN 'chunks_stored' THEN 6
        WHEN 'embedding_queued' THEN 7 WHEN 'embedding_in_progress' THEN 8
        WHEN 'embeddings_stored' THEN 9 WHEN 'complete' THEN 10
    END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION upload_pipeline.check_status_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_rank integer := upload_pipeline.status_rank(OLD.status);
    new_rank integer := upload_pipeline.status_rank(NEW.status);
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF OLD.status IN ('complete', 'duplicate') THEN
        RAISE EXCEPTION 'upload_jobs %: status % is terminal; cannot move to %', OLD.job_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status LIKE 'failed\_%' THEN
        -- re-drive of a dead-lettered run: back into the machine, never to complete directly
        IF new_rank IS NOT NULL AND NEW.status <> 'complete' THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'upload_jobs %: % can only be re-driven into a pipeline status, not %', OLD.job_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status LIKE 'failed\_%' OR NEW.status = 'duplicate' THEN
        RETURN NEW;
    END IF;
    IF new_rank IS NULL OR new_rank <= old_rank THEN
        RAISE EXCEPTION 'upload_jobs %: status may only move forward: % -> % rejected', OLD.job_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER trg_upload_jobs_status
    BEFORE UPDATE OF status ON upload_pipeline.upload_jobs
    FOR EACH ROW EXECUTE FUNCTION upload_pipeline.check_status_transition();

-- +goose StatementBegin
CREATE FUNCTION upload_pipeline.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER trg_documents_updated BEFORE UPDATE ON upload_pipeline.documents
    FOR EACH ROW EXECUTE FUNCTION upload_pipeline.touch_updated_at();
CREATE TRIGGER trg_upload_jobs_updated BEFORE UPDATE ON upload_pipeline.upload_jobs
    FOR EACH ROW EXECUTE FUNCTION upload_pipeline.touch_updated_at();

CREATE TABLE upload_pipeline.document_chunk_buffer (
    chunk_id        uuid PRIMARY KEY,               -- uuid5(NS, "{document_id}:{chunker_name}:{chunker_version}:{chunk_ord}")
    document_id     uuid NOT NULL REFERENCES upload_pipeline.documents ON DELETE CASCADE,
    chunker_name    text NOT NULL,
    chunker_version text NOT NULL,
    chunk_ord       integer NOT NULL CHECK (chunk_ord >= 0),
    chunk_sha       text NOT NULL,
    text            text NOT NULL,
    token_count     integer NOT NULL,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb,  -- {heading_path, page_start, page_end}
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_chunk_buffer_ord UNIQUE (document_id, chunker_name, chunker_version, chunk_ord)
);

CREATE TABLE upload_pipeline.document_vector_buffer (
    chunk_id      uuid NOT NULL REFERENCES upload_pipeline.document_chunk_buffer ON DELETE CASCADE,
    document_id   uuid NOT NULL REFERENCES upload_pipeline.documents ON DELETE CASCADE,
    embed_model   text NOT NULL,
    embed_version text NOT NULL,
    dims          integer NOT NULL,
    embedding     vector NOT NULL,
    vector_sha    text NOT NULL,
    batch_id      uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_vector_buffer UNIQUE (chunk_id, embed_model, embed_version),
    CONSTRAINT ck_vector_buffer_dims CHECK (vector_dims(embedding) = dims)
);
CREATE INDEX ix_vector_buffer_document ON upload_pipeline.document_vector_buffer (document_id);

-- The searchable result: one row per chunk and embedding model, so switching models
-- re-embeds without dropping the old vectors.
CREATE TABLE upload_pipeline.document_chunks (
    chunk_id         uuid NOT NULL,
    document_id      uuid NOT NULL REFERENCES upload_pipeline.documents ON DELETE CASCADE,
    user_id          uuid NOT NULL,
    chunker_name     text NOT NULL,
    chunker_version  text NOT NULL,
    chunk_ord        integer NOT NULL,
    chunk_sha        text NOT NULL,
    text             text NOT NULL,
    token_count      integer NOT NULL,
    meta             jsonb NOT NULL DEFAULT '{}'::jsonb,
    embed_model      text NOT NULL,
    embed_version    text NOT NULL,
    dims             integer NOT NULL,
    embedding        vector NOT NULL,
    vector_sha       text NOT NULL,
    tsv              tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chunk_id, embed_model, embed_version),
    CONSTRAINT uq_document_chunks_ord UNIQUE (document_id, chunker_name, chunker_version, chunk_ord, embed_model, embed_version),
    CONSTRAINT ck_document_chunks_dims CHECK (vector_dims(embedding) = dims)
) WITH (fillfactor = 90);
CREATE INDEX ix_document_chunks_user ON upload_pipeline.document_chunks (user_id, document_id);
CREATE INDEX ix_document_chunks_tsv ON upload_pipeline.document_chunks USING gin (tsv);
-- Per-dimension HNSW index (cosine). Queries must use the same expression and predicate:
--   WHERE dims = 1536 ORDER BY (embedding::vector(1536)) <=> $1::vector(1536)
CREATE INDEX ix_document_chunks_hnsw_1536 ON upload_pipeline.document_chunks
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE dims = 1536;

CREATE TABLE upload_pipeline.events (
    event_id       uuid PRIMARY KEY,
    job_id         uuid REFERENCES upload_pipeline.upload_jobs ON DELETE CASCADE,
    document_id    uuid REFERENCES upload_pipeline.documents ON DELETE CASCADE,
    ts             timestamptz NOT NULL DEFAULT clock_timestamp(),
    type           text NOT NULL CHECK (type IN ('stage_started','stage_done','retry','error','deadletter','finalized','webhook','redrive','duplicate','warning')),
    stage          text,
    severity       text NOT NULL CHECK (severity IN ('info','warn','error')),
    code           text NOT NULL,
    payload        jsonb NOT NULL DEFAULT '{}'::jsonb,
    correlation_id uuid,
    worker_id      text,
    attempt        integer
);
CREATE INDEX ix_events_job ON upload_pipeline.events (job_id, ts DESC);
CREATE INDEX ix_events_document ON upload_pipeline.events (document_id, ts DESC);

CREATE TABLE upload_pipeline.webhook_log (
    delivery_key  text PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES upload_pipeline.upload_jobs ON DELETE CASCADE,
    received_at   timestamptz NOT NULL DEFAULT now(),
    remote_addr   text,
    payload_sha256 text NOT NULL
);

-- +goose Down
DROP SCHEMA upload_pipeline CASCADE;
