package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// ParseArgs is the job of the parse stage.
type ParseArgs StageArgs

// Kind is the River job kind.
func (ParseArgs) Kind() string { return runstate.Parse.Kind() }

// stageParse turns the stored bytes into markdown, locally or through a remote parser.
var stageParse = bind[ParseArgs](&stage{
	name:     runstate.Parse,
	accepts:  []runstate.Status{runstate.ParseQueued},
	entry:    runstate.ParseQueued,
	priority: 4,
}, (*run).parse)

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
	return func(ctx context.Context, tx pgx.Tx) (runstate.Status, error) {
		_, err := tx.Exec(ctx, `UPDATE upload_pipeline.documents
			SET parsed_path = $2, page_count = nullif($3, 0), mime = coalesce(nullif($4, ''), mime)
			WHERE document_id = $1`, r.docID, key, doc.Pages, doc.MIME)
		if err != nil {
			return "", fmt.Errorf("record parsed document: %w", err)
		}
		return advance, r.event(ctx, tx, "stage_done", "info", "PARSE_STORED", map[string]any{
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
				return fmt.Errorf("record remote parse job: %w", err)
			}
			return r.event(ctx, tx, "stage_done", "info", "PARSE_REQUESTED", map[string]any{"remote_job_id": id})
		})
		if err != nil {
			return parse.Document{}, fmt.Errorf("submit remote parse: %w", err)
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
			return parse.Document{}, fmt.Errorf("count lost remote parse jobs: %w", qerr)
		}
		if lost > 3 {
			return parse.Document{}, err
		}
		if eerr := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			return r.event(ctx, tx, "warning", "warn", "LLAMAPARSE_JOB_LOST", map[string]any{"remote_job_id": r.remoteID, "resubmissions": lost})
		}); eerr != nil {
			return parse.Document{}, fmt.Errorf("record lost remote parse job: %w", eerr)
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
			return parse.Document{}, fmt.Errorf("count remote parse polls: %w", err)
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
				return parse.Document{}, fmt.Errorf("clear failed remote parse job: %w", uerr)
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
		return parse.Document{}, fmt.Errorf("bill remote parse: %w", err)
	}
	if st.State == llamaparse.StatePartialSuccess {
		if err := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			return r.event(ctx, tx, "warning", "warn", "LLAMAPARSE_PARTIAL_SUCCESS", map[string]any{"remote_job_id": r.remoteID})
		}); err != nil {
			return parse.Document{}, fmt.Errorf("record partial remote parse: %w", err)
		}
	}
	return parse.Document{Markdown: res.Markdown, Pages: res.Pages, Parser: "llamaparse", ParserVersion: "v1"}, nil
}
