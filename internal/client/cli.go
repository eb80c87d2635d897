package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// CLI is the body of the `docpipe status`, `jobs` and `search` commands: it asks a
// Backend (the API, or the database for --direct) and prints for people (aligned
// tables and blocks) or, with JSON, the API's wire types, indented. The command line
// only picks the backend and passes its flags. (`docpipe ingest` is Uploader.)
type CLI struct {
	Backend Backend
	Out     io.Writer
	JSON    bool
}

// Status shows documents: each of ids in detail (with events, its audit trail), or
// without ids the newest limit documents as a table.
func (c CLI) Status(ctx context.Context, ids []string, events bool, limit int) error {
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("%q is not a document id", id)
		}
	}
	if len(ids) == 0 {
		docs, err := collect(max(limit, 0), func(cursor string, n int) ([]apitypes.Document, string, error) {
			return c.Backend.DocumentsPage(ctx, DocumentsQuery{Limit: n, Cursor: cursor})
		})
		if err != nil {
			return err
		}
		if c.JSON {
			return c.printJSON(nonNilList(docs))
		}
		return printDocumentTable(c.Out, docs)
	}
	type withEvents struct {
		apitypes.Document
		Events []apitypes.Event `json:"events"`
	}
	list := make([]withEvents, len(ids))
	for i, id := range ids {
		d, err := c.Backend.Document(ctx, id)
		if err != nil {
			return err
		}
		list[i].Document = d
		if events {
			if list[i].Events, err = c.Backend.Events(ctx, id); err != nil {
				return err
			}
		}
	}
	switch {
	case c.JSON && !events && len(list) == 1:
		return c.printJSON(list[0].Document)
	case c.JSON && !events:
		docs := make([]apitypes.Document, len(list))
		for i, d := range list {
			docs[i] = d.Document
		}
		return c.printJSON(docs)
	case c.JSON && len(list) == 1:
		return c.printJSON(list[0])
	case c.JSON:
		return c.printJSON(list)
	}
	for i, d := range list {
		if i > 0 {
			fmt.Fprintln(c.Out)
		}
		printDocument(c.Out, d.Document)
		if events {
			fmt.Fprintln(c.Out, "\nevents:")
			if err := printEvents(c.Out, d.Events); err != nil {
				return err
			}
		}
	}
	return nil
}

// Jobs lists the newest limit runs (default 50) in state, a state or a status ("" = all).
func (c CLI) Jobs(ctx context.Context, state string, limit int) error {
	if limit <= 0 {
		limit = 50
	}
	jobs, err := collect(limit, func(cursor string, n int) ([]apitypes.Job, string, error) {
		return c.Backend.JobsPage(ctx, JobsQuery{State: state, Limit: n, Cursor: cursor})
	})
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(nonNilList(jobs))
	}
	tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tDOCUMENT\tFILE\tSTATUS\tSTATE\tPERCENT\tCHUNKS\tRETRIES\tUPDATED")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%d\t%s\n", j.ID, j.DocumentID, j.Filename, j.Status, j.State,
			j.Percent, j.ChunksTotal, j.RetryCount, j.UpdatedAt.Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

// ShowJob shows one run and its event trail.
func (c CLI) ShowJob(ctx context.Context, id string) error {
	j, err := c.Backend.Job(ctx, id)
	if err != nil {
		return err
	}
	all, err := c.Backend.Events(ctx, j.DocumentID.String())
	if err != nil {
		return err
	}
	events := []apitypes.Event{}
	for _, e := range all {
		if e.JobID == j.ID {
			events = append(events, e)
		}
	}
	if c.JSON {
		return c.printJSON(map[string]any{"job": j, "events": events})
	}
	printJob(c.Out, j)
	fmt.Fprintln(c.Out, "\nevents:")
	return printEvents(c.Out, events)
}

// RetryJob re-drives a dead-lettered run.
func (c CLI) RetryJob(ctx context.Context, id string) error {
	j, err := c.Backend.Retry(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "job %s re-driven: status %s, queued\n", j.ID, j.Status)
	return nil
}

// CancelJob cancels a run; reason (may be empty) is recorded.
func (c CLI) CancelJob(ctx context.Context, id, reason string) error {
	j, err := c.Backend.Cancel(ctx, id, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "job %s cancelled: status %s\n", id, j.Status)
	return nil
}

// Search prints the top k chunks for query in mode: vector, keyword or hybrid.
func (c CLI) Search(ctx context.Context, query string, k int, mode string) error {
	switch mode {
	case "vector", "keyword", "hybrid":
	default:
		return fmt.Errorf("--mode %q: use vector, keyword or hybrid", mode)
	}
	hits, err := c.Backend.Search(ctx, query, k, mode)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(nonNilList(hits))
	}
	if len(hits) == 0 {
		fmt.Fprintln(c.Out, "no results")
	}
	for i, h := range hits {
		pages := ""
		if h.PageStart > 0 {
			pages = fmt.Sprintf(" p.%d", h.PageStart)
			if h.PageEnd > h.PageStart {
				pages += fmt.Sprintf("-%d", h.PageEnd)
			}
		}
		fmt.Fprintf(c.Out, "%d. %.3f  %s  chunk %d%s  %s\n", i+1, h.Score, h.Filename, h.Ord, pages, strings.Join(h.HeadingPath, " > "))
		fmt.Fprintf(c.Out, "   %s\n", snippet(h.Text, 240))
	}
	return nil
}

func (c CLI) printJSON(v any) error {
	enc := json.NewEncoder(c.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nonNilList is list, or an empty one: JSON [] rather than null.
func nonNilList[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func printJob(out io.Writer, j apitypes.Job) {
	fmt.Fprintf(out, "job         %s\ndocument    %s (%s)\nstatus      %s (%s), %.0f%%\nchunks      %d, embedded %d/%d\nretries     %d\ntokens      %d ($%.6f)\ncorrelation %s\n",
		j.ID, j.DocumentID, j.Filename, j.Status, j.State, j.Percent, j.ChunksTotal, j.EmbedsDone, j.EmbedsTotal, j.RetryCount,
		j.Tokens, j.CostUSD, j.CorrelationID)
	if j.LastError != nil {
		le, _ := json.Marshal(j.LastError)
		fmt.Fprintf(out, "last error  %s\n", le)
	}
}

func printDocument(out io.Writer, d apitypes.Document) {
	fmt.Fprintf(out, "document  %s  %s (%s, %d bytes)\n", d.ID, d.Filename, d.MIME, d.Bytes)
	fmt.Fprintf(out, "status    %s", d.Status)
	if d.State != "" {
		fmt.Fprintf(out, " (%s)", d.State)
	}
	if d.Stage != "" {
		fmt.Fprintf(out, ", stage %s", d.Stage)
	}
	if d.Percent >= 0 {
		fmt.Fprintf(out, ", %.0f%%", d.Percent)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "content   %d pages, %d searchable chunks\n", d.Pages, d.Chunks)
	if j := d.Job; j != nil {
		fmt.Fprintf(out, "run       %s, %d retries, %d tokens, $%.6f\n", j.ID, j.RetryCount, j.Tokens, j.CostUSD)
		if j.EmbedsTotal > 0 {
			fmt.Fprintf(out, "embedded  %d/%d chunks\n", j.EmbedsDone, j.EmbedsTotal)
		}
		if j.LastError != nil {
			fmt.Fprintf(out, "error     %s: %s", j.LastError.Code, j.LastError.Message)
			if j.LastError.Stage != "" {
				fmt.Fprintf(out, " (stage %s, attempt %d)", j.LastError.Stage, j.LastError.Attempt)
			}
			fmt.Fprintln(out)
		}
	}
	fmt.Fprintf(out, "updated   %s\n", d.UpdatedAt.Format("2006-01-02 15:04:05 MST"))
}

// printEvents prints an event trail, a line per event, its payload compacted (as the
// API sends it, whichever backend read it).
func printEvents(out io.Writer, events []apitypes.Event) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, e := range events {
		var payload bytes.Buffer
		if json.Compact(&payload, e.Payload) != nil {
			payload.Reset()
			payload.Write(e.Payload)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format("15:04:05.000"), e.Severity, e.Type, e.Stage, e.Code, payload.Bytes())
	}
	return tw.Flush()
}

func printDocumentTable(out io.Writer, docs []apitypes.Document) error {
	if len(docs) == 0 {
		fmt.Fprintln(out, "no documents")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOCUMENT\tFILE\tSTATUS\tPERCENT\tPAGES\tCHUNKS\tTOKENS\tCOST (USD)\tERROR")
	for _, d := range docs {
		pct := "-"
		if d.Percent >= 0 {
			pct = fmt.Sprintf("%.0f%%", d.Percent)
		}
		var tokens int64
		var cost float64
		errText := ""
		if j := d.Job; j != nil {
			tokens, cost = j.Tokens, j.CostUSD
			if j.LastError != nil && d.Status != runstate.Complete {
				errText = j.LastError.Code + ": " + snippet(j.LastError.Message, 80)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.6f\t%s\n", d.ID, d.Filename, d.Status, pct, d.Pages, d.Chunks, tokens, cost, errText)
	}
	return tw.Flush()
}

// snippet is s on one line, cut to n runes.
func snippet(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
