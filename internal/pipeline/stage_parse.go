package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	pgvector "github.com/pgvector/pgvector-go"

	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

func (r *run) readObject(ctx context.Context, key string) ([]byte, error) {
	b, err := storage.ReadAll(ctx, r.p.store, key, r.p.opts.MaxUploadBytes*4)
	if errors.Is(err, storage.ErrNotFound) {
		// The run only exists once its bytes were stored: a missing object is an
		// outage or a lost object. Retry; the attempt limit dead-letters it.
		return nil, fault.Wrap(fault.Transient, "STORAGE_OBJECT_MISSING", err, "stored object %s is missing", key)
	} else if err != nil {
		return nil, fault.Wrap(fault.Transient, "STORAGE_READ", err, "could not read stored object %s", key)
	}
	return b, nil
}

// parse: stored bytes → markdown object.
func (r *run) parse(ctx context.Context) (applyFunc, error) {
	var doc parse.Document
	if r.p.remote != nil {
		d, err := r.remoteParse(ctx)
		if err != nil {
			return nil, err
		}
		doc = d
	} else {
		data, err := r.readObject(ctx, r.rawPath)
		if err != nil {
			return nil, err
		}
		if doc, err = r.p.parser.Parse(ctx, data, r.filename); err != nil {
			return nil, err
		}
	}
	key := storage.ParsedKey(r.userID, r.docID)
	obj, err := r.p.store.Put(ctx, key, bytes.NewReader([]byte(doc.Markdown)))
	if err != nil {
		return nil, fault.Wrap(fault.Transient, "STORAGE_WRITE", err, "could not store the parsed document")
	}
	r.log.Info("parsed", "parser", doc.Parser, "pages", doc.Pages, "markdown_bytes", obj.Size)
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, *stage, error) {
		_, err := tx.Exec(ctx, `UPDATE upload_pipeline.documents
			SET parsed_path = $2, page_count = nullif($3, 0), mime = coalesce(nullif($4, ''), mime)
			WHERE document_id = $1`, r.docID, key, doc.Pages, doc.MIME)
		if err != nil {
			return "", nil, err
		}
		return runstate.Parsed, stageValidate, r.event(ctx, tx, "stage_done", "info", "PARSE_STORED", map[string]any{
			"parser": doc.Parser, "parser_version": doc.ParserVersion, "pages": doc.Pages, "bytes": obj.Size})
	}, nil
}

// remoteParse drives an asynchronous parse without holding a worker: the first attempt
// submits and records the remote job id, later attempts poll its status with growing
// snoozes until it finishes or the deadline passes.
func (r *run) remoteParse(ctx context.Context) (parse.Document, error) {
	if r.remoteID == "" {
		if err := r.overBudget(ctx, ServiceLlamaParse); err != nil {
			return parse.Document{}, err
		}
		data, err := r.readObject(ctx, r.rawPath)
		if err != nil {
			return parse.Document{}, err
		}
		id, err := r.p.remote.Submit(ctx, data, r.filename, r.p.webhookURL(r.jobID))
		if err != nil {
			return parse.Document{}, err
		}
		err = pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET parse_job_id = $2,
				progress = progress || jsonb_build_object('remote_submitted_at', now(), 'remote_polls', 0) WHERE job_id = $1`, r.jobID, id); err != nil {
				return err
			}
			return r.event(ctx, tx, "stage_done", "info", "PARSE_REQUESTED", map[string]any{"remote_job_id": id})
		})
		if err != nil {
			return parse.Document{}, err
		}
		r.log.Info("submitted to remote parser", "remote_job_id", id)
		return parse.Document{}, &snooze{r.p.pollInterval(1), "remote parse submitted"}
	}
	st, err := r.p.remote.Status(ctx, r.remoteID)
	if fault.CodeOf(err) == llamaparse.CodeJobNotFound {
		// The remote job is gone (expired, or a twin restarted): submit the document
		// again, at most a few times per run, instead of failing a healthy document.
		var lost int
		if qerr := r.conn.QueryRow(ctx, `UPDATE upload_pipeline.upload_jobs SET parse_job_id = NULL,
			progress = progress || jsonb_build_object('remote_lost', coalesce((progress->>'remote_lost')::int, 0) + 1)
			WHERE job_id = $1 RETURNING (progress->>'remote_lost')::int`, r.jobID).Scan(&lost); qerr != nil {
			return parse.Document{}, qerr
		}
		if lost > 3 {
			return parse.Document{}, err
		}
		if eerr := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			return r.event(ctx, tx, "warning", "warn", "LLAMAPARSE_JOB_LOST", map[string]any{"remote_job_id": r.remoteID, "resubmissions": lost})
		}); eerr != nil {
			return parse.Document{}, eerr
		}
		return parse.Document{}, &snooze{0, "remote job lost; submitting again"}
	}
	if err != nil {
		return parse.Document{}, err
	}
	if !st.Terminal() {
		var submitted time.Time
		var polls int
		if err := r.conn.QueryRow(ctx, `UPDATE upload_pipeline.upload_jobs
			SET progress = progress || jsonb_build_object('remote_polls', coalesce((progress->>'remote_polls')::int, 0) + 1)
			WHERE job_id = $1
			RETURNING coalesce((progress->>'remote_submitted_at')::timestamptz, updated_at), (progress->>'remote_polls')::int`,
			r.jobID).Scan(&submitted, &polls); err != nil {
			return parse.Document{}, err
		}
		if time.Since(submitted) > r.p.opts.RemoteParseDeadline {
			return parse.Document{}, fault.Permanentf("LLAMAPARSE_EXPIRED", "the remote parse did not finish within %s", r.p.opts.RemoteParseDeadline)
		}
		return parse.Document{}, &snooze{r.p.pollInterval(polls + 1), "remote parse " + st.State}
	}
	if err := st.Err(); err != nil {
		if !fault.IsPermanent(err) {
			// The remote job itself failed in a retryable way: the retry submits anew.
			if _, uerr := r.conn.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET parse_job_id = NULL WHERE job_id = $1`, r.jobID); uerr != nil {
				return parse.Document{}, uerr
			}
		}
		return parse.Document{}, err
	}
	if st.State == llamaparse.StatePartialSuccess && r.p.opts.RejectPartial {
		return parse.Document{}, fault.Permanentf("LLAMAPARSE_PARTIAL",
			"LlamaParse parsed the document only partly (PARTIAL_SUCCESS) and DOCPIPE_LLAMAPARSE_PARTIAL=fail")
	}
	res, err := r.p.remote.Markdown(ctx, r.remoteID)
	if err != nil {
		return parse.Document{}, err
	}
	if err := r.billRemoteParse(ctx, res); err != nil {
		return parse.Document{}, err
	}
	if st.State == llamaparse.StatePartialSuccess {
		if err := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			return r.event(ctx, tx, "warning", "warn", "LLAMAPARSE_PARTIAL_SUCCESS", map[string]any{"remote_job_id": r.remoteID})
		}); err != nil {
			return parse.Document{}, err
		}
	}
	return parse.Document{Markdown: res.Markdown, Pages: res.Pages, Parser: "llamaparse", ParserVersion: "v1"}, nil
}

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
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, *stage, error) {
		// Serialize validations of the same content for the same user.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 1))`, r.userID, sha); err != nil {
			return "", nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.documents SET parsed_sha256 = $2 WHERE document_id = $1`, r.docID, sha); err != nil {
			return "", nil, err
		}
		var dupOf uuid.UUID
		err := tx.QueryRow(ctx, `SELECT d.document_id FROM upload_pipeline.documents d
			WHERE d.user_id = $1 AND d.parsed_sha256 = $2 AND d.document_id <> $3
			  AND EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
			              AND j.status NOT LIKE 'failed\_%' AND j.status <> 'duplicate')
			ORDER BY d.created_at, d.document_id LIMIT 1`, r.userID, sha, r.docID).Scan(&dupOf)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return runstate.ParseValidated, stageChunk, nil
		case err != nil:
			return "", nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET duplicate_of = $2 WHERE job_id = $1`, r.jobID, dupOf); err != nil {
			return "", nil, err
		}
		r.log.Info("parsed content duplicates another document of this user", "duplicate_of", dupOf)
		return runstate.Duplicate, nil, r.event(ctx, tx, "duplicate", "info", "PARSED_DUPLICATE", map[string]any{"duplicate_of": dupOf})
	}, nil
}

// chunk: markdown → chunk buffer rows (deterministic ids; ON CONFLICT DO NOTHING).
func (r *run) chunk(ctx context.Context) (applyFunc, error) {
	raw, err := r.readObject(ctx, r.parsed)
	if err != nil {
		return nil, err
	}
	chunks, err := r.p.chunker.Chunk(string(raw))
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, "CHUNK_FAILED", err, "the document could not be split into chunks")
	}
	if len(chunks) == 0 {
		return nil, fault.Permanentf("NO_CHUNKS", "the document produced no chunks")
	}
	name, version := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	n := len(chunks)
	ids, ords, shas, texts, tokens := make([]uuid.UUID, n), make([]int32, n), make([]string, n), make([]string, n), make([]int32, n)
	metas := make([]string, n)
	for i, c := range chunks {
		ids[i] = ChunkID(r.docID, name, version, c.Ord)
		ords[i], shas[i], texts[i], tokens[i] = int32(c.Ord), c.SHA256, c.Text, int32(c.TokenCount)
		m, _ := json.Marshal(map[string]any{"heading_path": nonNil(c.HeadingPath), "page_start": c.PageStart, "page_end": c.PageEnd})
		metas[i] = string(m)
	}
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, *stage, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_chunk_buffer
			(chunk_id, document_id, chunker_name, chunker_version, chunk_ord, chunk_sha, text, token_count, meta)
			SELECT u.id, $1, $2, $3, u.ord, u.sha, u.text, u.tokens, u.meta::jsonb
			FROM unnest($4::uuid[], $5::int[], $6::text[], $7::text[], $8::int[], $9::text[]) AS u(id, ord, sha, text, tokens, meta)
			ON CONFLICT DO NOTHING`, r.docID, name, version, ids, ords, shas, texts, tokens, metas)
		if err != nil {
			return "", nil, fmt.Errorf("write chunk buffer: %w", err)
		}
		r.progress = map[string]any{"chunks_total": n, "chunks_done": n, "embeds_total": n, "embeds_done": 0}
		pj, _ := json.Marshal(r.progress)
		if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
			SET chunker_name = $2, chunker_version = $3, progress = progress || $4::jsonb WHERE job_id = $1`,
			r.jobID, name, version, pj); err != nil {
			return "", nil, err
		}
		return runstate.EmbeddingQueued, stageEmbed, r.event(ctx, tx, "stage_done", "info", "CHUNK_BUFFERED", map[string]any{
			"chunks": n, "inserted": tag.RowsAffected(), "chunker": name + "@" + version})
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// embed: vectors for every buffered chunk that has none yet, one committed micro-batch
// at a time, so a retry embeds only what is missing.
func (r *run) embed(ctx context.Context) (applyFunc, error) {
	e := r.p.embedder
	model, version, dims := e.Model(), e.Version(), e.Dims()
	if _, err := r.conn.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET embed_model = $2, embed_version = $3, embed_dims = $4 WHERE job_id = $1`,
		r.jobID, model, version, dims); err != nil {
		return nil, err
	}
	name, version2 := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	var total int
	if err := r.conn.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.document_chunk_buffer
		WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3`, r.docID, name, version2).Scan(&total); err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, fault.Transientf("CHUNK_BUFFER_EMPTY", "no buffered chunks to embed")
	}
	rows, err := r.conn.Query(ctx, `SELECT c.chunk_id, c.text, c.token_count FROM upload_pipeline.document_chunk_buffer c
		WHERE c.document_id = $1 AND c.chunker_name = $2 AND c.chunker_version = $3
		  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.document_vector_buffer v
		                  WHERE v.chunk_id = c.chunk_id AND v.embed_model = $4 AND v.embed_version = $5)
		ORDER BY c.chunk_ord`, r.docID, name, version2, model, version)
	if err != nil {
		return nil, err
	}
	type pending struct {
		id     uuid.UUID
		text   string
		tokens int
	}
	todo, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pending, error) {
		var p pending
		return p, row.Scan(&p.id, &p.text, &p.tokens)
	})
	if err != nil {
		return nil, fmt.Errorf("list chunks to embed: %w", err)
	}
	done := total - len(todo)
	r.log.Info("embedding", "chunks_total", total, "already_embedded", done, "model", model)
	batch := r.p.opts.EmbedBatch
	service := embedService(e)
	sink := &usageSink{}
	for start := 0; start < len(todo); start += batch {
		if start > 0 && r.nearDeadline(ctx) {
			// Progress is committed; continue in a fresh attempt rather than time out.
			return nil, &snooze{0, "embedding progress committed; attempt time nearly used"}
		}
		if err := r.overBudget(ctx, service); err != nil {
			return nil, err
		}
		part := todo[start:min(start+batch, len(todo))]
		texts := make([]string, len(part))
		var localTokens int64
		for i, p := range part {
			texts[i] = p.text
			localTokens += int64(p.tokens)
		}
		vecs, err := e.Embed(embed.WithUsage(ctx, sink.add), texts)
		billed := sink.take()
		if service == ServiceLocal && err == nil {
			billed = usage{tokens: localTokens} // in-process: no requests, no cost; count the tokens
		}
		var wait *embed.WaitError
		if errors.As(err, &wait) {
			// The client's rate limiter has no slot before this attempt's deadline:
			// wait for it without holding a worker or counting a failure.
			err = &snooze{wait.Wait, "embedding rate limit: next slot in " + wait.Wait.Round(time.Millisecond).String()}
		}
		if err != nil {
			// Requests that succeeded before the failure are billed all the same.
			if berr := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error { return r.bill(ctx, tx, service, billed) }); berr != nil {
				r.log.Error("could not record embedding usage", "error", berr)
			}
			return nil, err
		}
		if len(vecs) != len(part) {
			return nil, fault.Transientf("EMBED_COUNT_MISMATCH", "the embedder returned %d vectors for %d texts", len(vecs), len(part))
		}
		ids := make([]uuid.UUID, len(part))
		vs := make([]pgvector.Vector, len(part))
		shas := make([]string, len(part))
		for i, v := range vecs {
			if len(v) != dims {
				return nil, fault.Permanentf("EMBED_DIMS_MISMATCH", "the embedder returned %d dimensions, expected %d", len(v), dims)
			}
			ids[i], vs[i], shas[i] = part[i].id, pgvector.NewVector(v), embed.VectorSHA(v)
		}
		done += len(part)
		r.progress["embeds_done"], r.progress["embeds_total"] = done, total
		err = pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			if err := r.bill(ctx, tx, service, billed); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_vector_buffer
				(chunk_id, document_id, embed_model, embed_version, dims, embedding, vector_sha, batch_id)
				SELECT u.id, $1, $2, $3, $4, u.v, u.sha, $5
				FROM unnest($6::uuid[], $7::vector[], $8::text[]) AS u(id, v, sha)
				ON CONFLICT DO NOTHING`, r.docID, model, version, dims, uuid.Must(uuid.NewV7()), ids, vs, shas); err != nil {
				return fmt.Errorf("write vector buffer: %w", err)
			}
			_, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
				SET progress = progress || jsonb_build_object('embeds_done', $2::int, 'embeds_total', $3::int, 'percent', $4::float8)
				WHERE job_id = $1`, r.jobID, done, total, runstate.Percent(runstate.EmbeddingInProgress, done, total))
			return err
		})
		if err != nil {
			return nil, err
		}
		if d := r.p.opts.EmbedBatchDelay; d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
	}
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, *stage, error) {
		var have int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.document_vector_buffer v
			JOIN upload_pipeline.document_chunk_buffer c USING (chunk_id)
			WHERE c.document_id = $1 AND c.chunker_name = $2 AND c.chunker_version = $3 AND v.embed_model = $4 AND v.embed_version = $5`,
			r.docID, name, version2, model, version).Scan(&have); err != nil {
			return "", nil, err
		}
		if have != total {
			return "", nil, fault.Transientf("EMBED_INCOMPLETE", "%d of %d chunks have vectors", have, total)
		}
		return runstate.EmbeddingsStored, stageFinalize, r.event(ctx, tx, "stage_done", "info", "EMBED_BUFFERED", map[string]any{
			"vectors": have, "model": model})
	}, nil
}

// snooze ends an attempt that has more to do later (progress made, or waiting on a
// remote service): the job is snoozed, which does not use up an attempt, and the next
// attempt resumes from what was committed.
type snooze struct {
	after  time.Duration
	reason string
}

func (s *snooze) Error() string { return "stage continues in a new attempt: " + s.reason }

// nearDeadline reports whether less than a fifth of the attempt's time (at least 2 s) is left.
func (r *run) nearDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return false
	}
	return time.Until(dl) < max(2*time.Second, r.p.opts.JobTimeout/5)
}

// finalize: buffers → document_chunks in one transaction, buffers cleared.
func (r *run) finalize(ctx context.Context) (applyFunc, error) {
	var model, version string
	if err := r.conn.QueryRow(ctx, `SELECT coalesce(embed_model, ''), coalesce(embed_version, '') FROM upload_pipeline.upload_jobs WHERE job_id = $1`,
		r.jobID).Scan(&model, &version); err != nil {
		return nil, err
	}
	if model == "" {
		return nil, fault.Permanentf("EMBED_MODEL_UNKNOWN", "the run has no recorded embedding model")
	}
	name, cver := r.p.opts.ChunkerName, r.p.opts.ChunkerVersion
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, *stage, error) {
		if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.document_chunks
			(chunk_id, document_id, user_id, chunker_name, chunker_version, chunk_ord, chunk_sha, text, token_count, meta,
			 embed_model, embed_version, dims, embedding, vector_sha)
			SELECT c.chunk_id, c.document_id, $2, c.chunker_name, c.chunker_version, c.chunk_ord, c.chunk_sha, c.text, c.token_count, c.meta,
			       v.embed_model, v.embed_version, v.dims, v.embedding, v.vector_sha
			FROM upload_pipeline.document_chunk_buffer c
			JOIN upload_pipeline.document_vector_buffer v ON v.chunk_id = c.chunk_id AND v.embed_model = $5 AND v.embed_version = $6
			WHERE c.document_id = $1 AND c.chunker_name = $3 AND c.chunker_version = $4
			ON CONFLICT DO NOTHING`, r.docID, r.userID, name, cver, model, version); err != nil {
			return "", nil, fmt.Errorf("publish chunks: %w", err)
		}
		var have, want int
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM upload_pipeline.document_chunks WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3 AND embed_model = $4 AND embed_version = $5),
			(SELECT count(*) FROM upload_pipeline.document_chunk_buffer WHERE document_id = $1 AND chunker_name = $2 AND chunker_version = $3)`,
			r.docID, name, cver, model, version).Scan(&have, &want); err != nil {
			return "", nil, err
		}
		if want == 0 || have < want {
			return "", nil, fault.Transientf("FINALIZE_INCOMPLETE", "%d chunks published, %d buffered", have, want)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM upload_pipeline.document_vector_buffer WHERE document_id = $1`, r.docID); err != nil {
			return "", nil, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM upload_pipeline.document_chunk_buffer WHERE document_id = $1`, r.docID); err != nil {
			return "", nil, err
		}
		return runstate.Complete, nil, nil
	}, nil
}
