package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// fileRow is the live state of one file while it is uploaded and processed.
type fileRow struct {
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
	label    atomic.Pointer[string] // what the bar shows; read by mpb without the session's lock
	shown    string                 // the last progress line printed
}

// relabel recomputes what the row's bar shows (with the session's lock held).
func (r *fileRow) relabel() {
	s := r.phase()
	r.label.Store(&s)
}

// following: the row's document is still to be read (with the lock held).
func (r *fileRow) following(noWait bool) bool {
	return r.uploaded && r.err == nil && (!r.fetched || (!noWait && !r.doc.Status.Terminal()))
}

func (r *fileRow) done() bool {
	return r.err != nil || (r.uploaded && (r.doc.Status == "" || r.doc.Status.Terminal()))
}

// phase is what a bar shows after the name: uploading, then the pipeline status.
func (r *fileRow) phase() string {
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

// display shows the rows' progress: a bar per file when w is a terminal, else a line
// per change. line and finish are called with the session's lock held (they read the
// row); the bars themselves are safe to move from any goroutine.
type display struct {
	w      io.Writer
	width  int           // of the name column
	bars   *mpb.Progress // nil: lines
	noWait bool
}

func newDisplay(ctx context.Context, w io.Writer, rows []*fileRow, noBars, noWait bool) *display {
	d := &display{w: w, noWait: noWait}
	for _, r := range rows {
		d.width = max(d.width, len(r.name))
	}
	d.width = min(d.width, 40)
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) || noBars {
		return d
	}
	d.bars = mpb.NewWithContext(ctx, mpb.WithOutput(f), mpb.WithWidth(30))
	for _, r := range rows {
		r.bar = d.bars.AddBar(0,
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-*.*s", d.width, d.width, r.name))),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				if l := r.label.Load(); l != nil {
					return " " + *l
				}
				return ""
			})))
		r.relabel()
	}
	return d
}

// line updates the row's bar, or prints s as its progress line when it changed.
func (d *display) line(r *fileRow, s string) {
	r.relabel()
	if r.bar == nil && s != r.shown {
		r.shown = s
		fmt.Fprintf(d.w, "%-*s  %s\n", d.width, r.name, s)
	}
}

// bytes moves the row's bar along the upload.
func (d *display) bytes(r *fileRow, sent, total int64) {
	if r.bar != nil {
		r.bar.SetTotal(max(total, 1), false)
		r.bar.SetCurrent(sent)
	}
}

// percent sets the row's bar to the pipeline's percent.
func (d *display) percent(r *fileRow, pct float64) {
	if r.bar != nil {
		r.bar.SetTotal(100, false)
		r.bar.SetCurrent(int64(pct))
	}
}

// finish ends the row's bar: full when the file completed (or, with noWait, was
// accepted), cut short otherwise.
func (d *display) finish(r *fileRow) {
	r.relabel()
	if r.bar == nil {
		return
	}
	if r.err == nil && (r.doc.Status == runstate.Complete || r.doc.Status == runstate.Duplicate || d.noWait) {
		r.bar.SetTotal(100, true)
	} else {
		r.bar.Abort(false)
	}
}

// wait lets the bars draw their last state.
func (d *display) wait() {
	if d.bars != nil {
		d.bars.Wait()
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
