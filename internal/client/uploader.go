package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Uploader is the body of `docpipe ingest`: it sends files to docpipe a few at a time
// (Backend.Upload: through the API, streamed with their sha256 declared so the server
// verifies the bytes, or straight into the pipeline for --direct) and follows every
// document (Backend.Document) to a final status unless NoWait, showing progress as it
// goes: on a terminal a bar per file with the bytes sent, then the pipeline stage and
// percent; otherwise a line per change. It ends with a summary table (file, document,
// status, pages, chunks, tokens, cost, note) or JSON.
type Uploader struct {
	Backend Backend
	// Out receives the summary table, or with JSON one JSON array of FileResult.
	Out io.Writer
	// Progress receives the bars or progress lines (nil: Out, or nothing with JSON).
	// Bars are drawn only when it is a terminal (*os.File), else a line per change.
	Progress io.Writer
	// JSON prints the summary as JSON.
	JSON bool
	// NoWait returns right after the uploads (the table shows the queued status).
	NoWait bool
	// NoBars draws progress lines even on a terminal.
	NoBars bool
	// Timeout gives up waiting for the documents after this long (0: 30 minutes).
	Timeout time.Duration
	// Poll is the interval between status reads of the open documents (0: 500ms).
	Poll time.Duration
	// Parallel is how many uploads run at once (0: 4).
	Parallel int
}

// FileResult is one file's outcome (the --json output is a list of them).
type FileResult struct {
	File      string             `json:"file"`
	Duplicate bool               `json:"duplicate"`
	Error     string             `json:"error,omitempty"`
	Code      string             `json:"code,omitempty"`
	Document  *apitypes.Document `json:"document,omitempty"`
}

// OK reports whether the file's document completed (duplicates of an earlier completed
// upload count as complete) or, with noWait, was accepted.
func (r FileResult) OK(noWait bool) bool {
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

// Run uploads files, follows them and prints the summary; it returns how many files
// did not complete (FileResult.OK). err is for the run as a whole, not for single
// files: ctx's error when it ends first (the table then shows where each file got to;
// what was uploaded keeps processing), a timeout, or the credential rejected (a
// *Problem with status 401 or 403).
func (u Uploader) Run(ctx context.Context, files []string) (failed int, err error) {
	u.defaults()
	s := &session{u: u, rows: make([]*fileRow, len(files))}
	for i, f := range files {
		s.rows[i] = &fileRow{file: f, name: filepath.Base(f)}
	}
	s.display = newDisplay(ctx, u.progressWriter(), s.rows, u.NoBars, u.NoWait)

	wctx, cancel := context.WithTimeout(ctx, u.Timeout)
	defer cancel()
	uploadsDone := s.uploadAll(wctx)
	waitErr := s.follow(ctx, wctx, uploadsDone)
	if waitErr != nil {
		// Let the uploads see the cancellation and end before the rows are read.
		<-uploadsDone
		s.finishOpen()
	}
	s.display.wait()

	results, failed, authErr := s.results()
	if err := u.print(results); err != nil {
		return failed, err
	}
	if waitErr == nil {
		waitErr = authErr
	}
	return failed, waitErr
}

func (u *Uploader) defaults() {
	if u.Timeout <= 0 {
		u.Timeout = 30 * time.Minute
	}
	if u.Poll <= 0 {
		u.Poll = 500 * time.Millisecond
	}
	if u.Parallel <= 0 {
		u.Parallel = 4
	}
}

func (u Uploader) progressWriter() io.Writer {
	switch {
	case u.Progress != nil:
		return u.Progress
	case u.JSON:
		return io.Discard // nothing but the JSON on Out
	}
	return u.Out
}

// session is one Run: the files' rows and what shows them.
type session struct {
	u       Uploader
	mu      sync.Mutex // guards rows and the display
	rows    []*fileRow
	display *display
}

// uploadAll starts the uploads, Parallel at a time; the channel closes when all ended.
func (s *session) uploadAll(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.u.Parallel)
	for _, r := range s.rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				s.mu.Lock()
				r.err = ctx.Err()
				s.display.finish(r)
				s.mu.Unlock()
				return
			}
			s.upload(ctx, r)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// upload sends one file; its bar counts the bytes.
func (s *session) upload(ctx context.Context, r *fileRow) {
	res, err := s.u.Backend.Upload(ctx, r.file, func(sent, total int64) {
		s.mu.Lock()
		r.sent, r.size = sent, total
		r.relabel()
		s.mu.Unlock()
		s.display.bytes(r, sent, total)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		r.err = err
		s.display.line(r, "upload failed: "+err.Error())
		s.display.finish(r)
		return
	}
	r.uploaded, r.dup = true, res.Duplicate
	r.doc.ID, r.doc.Status, r.doc.Bytes, r.doc.Filename = res.DocumentID, res.Status, res.Bytes, res.Filename
	note := ""
	if res.Duplicate {
		note = " (already uploaded: the existing document)"
	}
	s.display.line(r, fmt.Sprintf("uploaded %d bytes%s", res.Bytes, note))
	s.display.percent(r, 0)
	if s.u.NoWait || res.Status.Terminal() {
		s.display.finish(r)
	}
}

// follow reads the uploaded documents every Poll until each has ended (or, with
// NoWait, been read once) and the uploads are done; it returns wctx's end (ctx's
// error, or a timeout) if that comes first.
func (s *session) follow(ctx, wctx context.Context, uploadsDone <-chan struct{}) error {
	for {
		allUploaded := false
		select {
		case <-uploadsDone:
			allUploaded = true
		default:
		}
		open := s.open()
		if allUploaded && len(open) == 0 {
			return nil
		}
		if still := s.read(wctx, open); allUploaded && still == 0 && wctx.Err() == nil {
			return nil
		}
		t := time.NewTimer(s.u.Poll)
		select {
		case <-wctx.Done():
			t.Stop()
		case <-t.C:
		}
		if err := wctx.Err(); err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("documents still running after %s", s.u.Timeout)
			}
			return err
		}
	}
}

// open lists the rows whose document is still to be read.
func (s *session) open() []*fileRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var open []*fileRow
	for _, r := range s.rows {
		if r.following(s.u.NoWait) {
			open = append(open, r)
		}
	}
	return open
}

// read reads each open row's document once and returns how many still need reading.
func (s *session) read(ctx context.Context, open []*fileRow) (still int) {
	for _, r := range open {
		d, err := s.u.Backend.Document(ctx, r.doc.ID.String())
		s.mu.Lock()
		switch {
		case err == nil:
			r.doc, r.fetched = d, true
			if d.Percent >= 0 {
				s.display.percent(r, d.Percent)
			}
			s.display.line(r, fmt.Sprintf("%s %.0f%%", d.Status, max(d.Percent, 0)))
			if d.Status.Terminal() || s.u.NoWait {
				s.display.finish(r)
			}
		case ctx.Err() == nil:
			r.err = err
			s.display.line(r, "status failed: "+err.Error())
			s.display.finish(r)
		}
		if r.following(s.u.NoWait) {
			still++
		}
		s.mu.Unlock()
	}
	return still
}

// finishOpen ends the display of every row that has not ended (the run was cut short).
func (s *session) finishOpen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if !r.done() {
			s.display.finish(r)
		}
	}
}

// results is each file's outcome, how many did not complete, and a rejected
// credential (which fails the run, not just the file).
func (s *session) results() (results []FileResult, failed int, authErr error) {
	results = make([]FileResult, len(s.rows))
	for i, r := range s.rows {
		if st := StatusOf(r.err); authErr == nil && (st == http.StatusUnauthorized || st == http.StatusForbidden) {
			authErr = r.err
		}
		res := FileResult{File: r.file, Duplicate: r.dup}
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
		if !res.OK(s.u.NoWait) {
			failed++
		}
		results[i] = res
	}
	return results, failed, authErr
}

// print writes the summary: JSON, or the table.
func (u Uploader) print(results []FileResult) error {
	if u.JSON {
		enc := json.NewEncoder(u.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	w := u.Out
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
		} else if u.NoWait && !d.Status.Terminal() {
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

// ExpandPaths is the files named by args: each file, and every regular file under each
// folder (hidden ones left out).
func ExpandPaths(args []string) ([]string, error) {
	var files []string
	for _, p := range args {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && d.Name()[0] != '.' {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}
