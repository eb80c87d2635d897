package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// IngestOptions tunes Ingest; the zero value uploads, waits for every
// document and prints progress lines (or bars on a terminal) and a table to w.
type IngestOptions struct {
	// NoWait returns right after the uploads (the table shows the queued status).
	NoWait bool
	// JSON prints one JSON array instead of the table (and no progress unless
	// Progress is set).
	JSON bool
	// Progress receives the bars or progress lines (nil: w). Bars are drawn only when
	// it is a terminal (*os.File), else a line per status change.
	Progress io.Writer
	// NoBars forces progress lines even on a terminal.
	NoBars bool
	// Timeout gives up waiting for the documents after this long (0: 30 minutes).
	Timeout time.Duration
	// Poll is the interval between status reads of the open documents (0: 500ms).
	Poll time.Duration
	// Parallel is how many uploads run at once (0: 4).
	Parallel int
}

// IngestResult is one file's outcome (the --json output is a list of them).
type IngestResult struct {
	File      string             `json:"file"`
	Duplicate bool               `json:"duplicate"`
	Error     string             `json:"error,omitempty"`
	Code      string             `json:"code,omitempty"`
	Document  *apitypes.Document `json:"document,omitempty"`
}

// ingestRow is the live state of one file while it is uploaded and processed.
type ingestRow struct {
	file     string
	name     string
	sent     int64
	size     int64
	uploaded bool
	fetched  bool // the document was read after the upload (for its counts)
	dup      bool
	doc      apitypes.Document
	err      error
	bar      *mpb.Bar
	label    atomic.Pointer[string] // what the bar shows; read by mpb without mu
	shown    string
}

// relabel recomputes what the row's bar shows (with mu held).
func (r *ingestRow) relabel() {
	s := r.phase()
	r.label.Store(&s)
}

// following: the row's document is still to be read (with mu held).
func (r *ingestRow) following(noWait bool) bool {
	return r.uploaded && r.err == nil && (!r.fetched || (!noWait && !r.doc.Status.Terminal()))
}

func (r *ingestRow) done() bool {
	return r.err != nil || (r.uploaded && (r.doc.Status == "" || r.doc.Status.Terminal()))
}

// Ingest uploads files through the API (POST /v1/documents, sha256 declared so
// the server verifies the bytes), then follows every document (GET /v1/documents/{id})
// to a final status unless opts.NoWait: on a terminal a bar per file shows the bytes
// sent and then the pipeline stage and percent; otherwise a line per change. It ends
// with a summary table (file, document, status, pages, chunks, tokens, cost, error) or
// JSON on w and returns how many files did not complete (duplicates of an earlier
// completed upload count as complete). err is for the run as a whole, not for single
// files: ctx's error when it ends first (the table then shows where each file got
// to; the server keeps processing what was uploaded), a timeout, or the credential
// rejected (a *Problem with status 401).
func Ingest(ctx context.Context, c *Client, files []string, w io.Writer, opts IngestOptions) (failed int, err error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	pw := opts.Progress
	switch {
	case pw == nil && opts.JSON:
		pw = io.Discard // nothing but the JSON on w
	case pw == nil:
		pw = w
	}
	rows := make([]*ingestRow, len(files))
	width := 0
	for i, f := range files {
		rows[i] = &ingestRow{file: f, name: filepath.Base(f)}
		width = max(width, len(rows[i].name))
	}
	width = min(width, 40)

	var mu sync.Mutex // guards rows and the progress lines
	var prog *mpb.Progress
	if f, ok := pw.(*os.File); ok && isTerminal(f) && !opts.NoBars {
		prog = mpb.NewWithContext(ctx, mpb.WithOutput(f), mpb.WithWidth(30))
		for _, r := range rows {
			r.bar = prog.AddBar(0,
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-*.*s", width, width, r.name))),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					if l := r.label.Load(); l != nil {
						return " " + *l
					}
					return ""
				})))
			r.relabel()
		}
	}
	line := func(r *ingestRow, s string) { // with mu held
		r.relabel()
		if r.bar == nil && s != r.shown {
			r.shown = s
			fmt.Fprintf(pw, "%-*s  %s\n", width, r.name, s)
		}
	}
	finish := func(r *ingestRow) { // with mu held: the row reached its end
		r.relabel()
		if r.bar == nil {
			return
		}
		if r.err == nil && (r.doc.Status == runstate.Complete || r.doc.Status == runstate.Duplicate || opts.NoWait) {
			r.bar.SetTotal(100, true)
		} else {
			r.bar.Abort(false)
		}
	}

	wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	// Uploads, a few at a time; each bar counts bytes.
	var wg sync.WaitGroup
	sem := make(chan struct{}, opts.Parallel)
	for _, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-wctx.Done():
				mu.Lock()
				r.err = wctx.Err()
				finish(r)
				mu.Unlock()
				return
			}
			res, err := c.Upload(wctx, r.file, func(sent, total int64) {
				mu.Lock()
				r.sent, r.size = sent, total
				r.relabel()
				mu.Unlock()
				if r.bar != nil {
					r.bar.SetTotal(max(total, 1), false)
					r.bar.SetCurrent(sent)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.err = err
				line(r, "upload failed: "+err.Error())
				finish(r)
				return
			}
			r.uploaded, r.dup = true, res.Duplicate
			r.doc.ID, r.doc.Status, r.doc.Bytes, r.doc.Filename = res.DocumentID, res.Status, res.Bytes, res.Filename
			note := ""
			if res.Duplicate {
				note = " (already uploaded: the existing document)"
			}
			line(r, fmt.Sprintf("uploaded %d bytes%s", res.Bytes, note))
			if r.bar != nil {
				r.bar.SetTotal(100, false)
				r.bar.SetCurrent(0)
			}
			if opts.NoWait || res.Status.Terminal() {
				finish(r)
			}
		}()
	}
	uploadsDone := make(chan struct{})
	go func() { wg.Wait(); close(uploadsDone) }()

	// Follow the uploaded documents until every one has ended.
	var waitErr error
	for {
		allUploaded := false
		select {
		case <-uploadsDone:
			allUploaded = true
		default:
		}
		mu.Lock()
		var open []*ingestRow
		for _, r := range rows {
			if r.following(opts.NoWait) {
				open = append(open, r)
			}
		}
		mu.Unlock()
		if allUploaded && len(open) == 0 {
			break
		}
		still := 0
		for _, r := range open {
			d, err := c.Document(wctx, r.doc.ID.String())
			mu.Lock()
			switch {
			case err == nil:
				r.doc, r.fetched = d, true
				if r.bar != nil && d.Percent >= 0 {
					r.bar.SetCurrent(int64(d.Percent))
				}
				line(r, fmt.Sprintf("%s %.0f%%", d.Status, max(d.Percent, 0)))
				if d.Status.Terminal() || opts.NoWait {
					finish(r)
				}
			case wctx.Err() == nil:
				r.err = err
				line(r, "status failed: "+err.Error())
				finish(r)
			}
			if r.following(opts.NoWait) {
				still++
			}
			mu.Unlock()
		}
		if allUploaded && still == 0 && wctx.Err() == nil {
			break
		}
		t := time.NewTimer(opts.Poll)
		select {
		case <-wctx.Done():
			t.Stop()
		case <-t.C:
		}
		if wctx.Err() != nil {
			waitErr = wctx.Err()
			if ctx.Err() == nil && errors.Is(waitErr, context.DeadlineExceeded) {
				waitErr = fmt.Errorf("documents still running after %s", opts.Timeout)
			}
			break
		}
	}
	if waitErr != nil {
		// Let the uploads see the cancellation and end before the rows are read.
		<-uploadsDone
		mu.Lock()
		for _, r := range rows {
			if !r.done() {
				finish(r)
			}
		}
		mu.Unlock()
	}
	if prog != nil {
		prog.Wait()
	}

	var authErr error // a rejected credential fails the run, not just the file
	results := make([]IngestResult, len(rows))
	for i, r := range rows {
		if s := StatusOf(r.err); authErr == nil && (s == http.StatusUnauthorized || s == http.StatusForbidden) {
			authErr = r.err
		}
		res := IngestResult{File: r.file, Duplicate: r.dup}
		switch {
		case r.err != nil:
			res.Error = r.err.Error()
			var p *Problem
			if errors.As(r.err, &p) {
				res.Code = p.Code
			}
		case !r.uploaded:
			res.Error = "not uploaded"
		default:
			d := r.doc
			res.Document = &d
			if j := d.Job; j != nil && j.LastError != nil && d.Status != runstate.Complete {
				res.Error, res.Code = j.LastError.Message, j.LastError.Code
			}
		}
		if !apiIngestOK(res, opts.NoWait) {
			failed++
		}
		results[i] = res
	}
	if opts.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return failed, err
		}
	} else if err := printAPIIngestSummary(w, results, opts.NoWait); err != nil {
		return failed, err
	}
	if waitErr == nil {
		waitErr = authErr
	}
	return failed, waitErr
}

// apiIngestOK: the file's document completed (or, with noWait, was accepted).
func apiIngestOK(r IngestResult, noWait bool) bool {
	if r.Document == nil || (r.Error != "" && !noWait) {
		return false
	}
	switch s := r.Document.Status; {
	case s == runstate.Complete || s == runstate.Duplicate:
		return true
	case noWait:
		return !s.Terminal()
	}
	return false
}

// phase is what a bar shows after the bytes: uploading, then the pipeline status.
func (r *ingestRow) phase() string {
	switch {
	case r.err != nil:
		var p *Problem
		if errors.As(r.err, &p) && p.Code != "" {
			return "failed: " + p.Code
		}
		return "failed"
	case !r.uploaded:
		if r.size == 0 {
			return "waiting to upload"
		}
		return fmt.Sprintf("uploading %s/%s", humanBytes(r.sent), humanBytes(r.size))
	case r.dup && r.doc.Status.Terminal():
		return string(r.doc.Status) + " (already uploaded)"
	case r.doc.Percent >= 0 && !r.doc.Status.Terminal():
		return fmt.Sprintf("%s %.0f%%", r.doc.Status, r.doc.Percent)
	}
	return string(r.doc.Status)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// printAPIIngestSummary prints the table of an API ingest, in the style of direct
// mode's printIngestSummary.
func printAPIIngestSummary(w io.Writer, results []IngestResult, noWait bool) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tDOCUMENT\tSTATUS\tPAGES\tCHUNKS\tTOKENS\tCOST (USD)\tNOTE")
	var tokens int64
	var cost float64
	for _, r := range results {
		d := r.Document
		if d == nil {
			fmt.Fprintf(tw, "%s\t-\terror\t-\t-\t-\t-\t%s\n", r.File, oneLine(r.Error))
			continue
		}
		var tok int64
		var usd float64
		if j := d.Job; j != nil {
			tok, usd = j.Tokens, j.CostUSD
		}
		tokens, cost = tokens+tok, cost+usd
		note := ""
		if r.Duplicate {
			note = "already uploaded: existing document"
		}
		if r.Error != "" {
			note = strings.TrimSpace(strings.TrimPrefix(r.Code+": "+oneLine(r.Error), ": "))
		} else if noWait && !d.Status.Terminal() {
			note = strings.TrimSpace(note + " queued; docpipe status " + d.ID.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.6f\t%s\n", r.File, d.ID, d.Status, d.Pages, d.Chunks, tok, usd, note)
	}
	if len(results) > 1 {
		fmt.Fprintf(tw, "total\t\t\t\t\t%d\t%.6f\t\n", tokens, cost)
	}
	return tw.Flush()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
