package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/pipeline"
)

// apiIngest uploads every file through the API, follows each document to a final
// status (a line per change) unless noWait, and prints a table (or JSON). It returns
// how many did not complete.
func apiIngest(ctx context.Context, c *client.Client, files []string, w io.Writer, noWait, asJSON bool) (failed int, err error) {
	type row struct {
		file string
		doc  api.Document
		dup  bool
		err  error
	}
	rows := make([]row, len(files))
	for i, f := range files {
		rows[i].file = f
		res, err := c.Upload(ctx, f)
		if err != nil {
			rows[i].err = err
			if !asJSON {
				fmt.Fprintf(w, "%-40s upload failed: %v\n", filepath.Base(f), err)
			}
			continue
		}
		rows[i].doc.ID, rows[i].dup = res.DocumentID, res.Duplicate
		note := ""
		if res.Duplicate {
			note = " (already uploaded: the existing document)"
		}
		rows[i].doc.Status = res.Status
		if !asJSON {
			fmt.Fprintf(w, "%-40s uploaded %d bytes%s\n", filepath.Base(f), res.Bytes, note)
		}
	}
	last := make([]string, len(files))
	// On a terminal: a bar per document (stage and percent); otherwise a line per change.
	var (
		prog   *mpb.Progress
		bars   []*mpb.Bar
		status = make([]string, len(files))
		smu    sync.Mutex
	)
	if isTerminal(os.Stderr) && !asJSON && !noWait {
		prog = mpb.NewWithContext(ctx, mpb.WithOutput(os.Stderr), mpb.WithWidth(30))
		bars = make([]*mpb.Bar, len(files))
		for i, r := range rows {
			if r.err != nil {
				continue
			}
			bars[i] = prog.AddBar(100, mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-28.28s", filepath.Base(r.file)))),
				mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
					smu.Lock()
					defer smu.Unlock()
					return " " + status[i]
				})))
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for !noWait {
		open := 0
		for i := range rows {
			r := &rows[i]
			if r.err != nil || (r.doc.Status != "" && pipeline.Terminal(r.doc.Status)) {
				continue
			}
			doc, err := c.Document(ctx, r.doc.ID.String())
			if err != nil {
				r.err = err
				if bars != nil && bars[i] != nil {
					bars[i].Abort(false)
				}
				continue
			}
			r.doc = doc
			if bars != nil && bars[i] != nil {
				smu.Lock()
				status[i] = r.doc.Status
				smu.Unlock()
				if r.doc.Percent >= 0 {
					bars[i].SetCurrent(int64(r.doc.Percent))
				}
				if pipeline.Terminal(r.doc.Status) {
					bars[i].Abort(false)
				}
			} else if s := fmt.Sprintf("%s %.0f%%", r.doc.Status, r.doc.Percent); s != last[i] && !asJSON {
				last[i] = s
				fmt.Fprintf(w, "%-40s %s %.0f%%\n", filepath.Base(r.file), r.doc.Status, max(r.doc.Percent, 0))
			}
			if !pipeline.Terminal(r.doc.Status) {
				open++
			}
		}
		if open == 0 {
			if prog != nil {
				prog.Wait()
			}
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d documents still running after 10 minutes", open)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if asJSON {
		type jrow struct {
			File      string        `json:"file"`
			Duplicate bool          `json:"duplicate"`
			Error     string        `json:"error,omitempty"`
			Document  *api.Document `json:"document,omitempty"`
		}
		out := make([]jrow, len(rows))
		for i, r := range rows {
			out[i] = jrow{File: r.file, Duplicate: r.dup}
			if r.err != nil {
				out[i].Error = r.err.Error()
				failed++
				continue
			}
			d := r.doc
			out[i].Document = &d
			if !noWait && d.Status != pipeline.StatusComplete {
				failed++
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return failed, enc.Encode(out)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSTATUS\tPAGES\tCHUNKS\tTOKENS\tCOST (USD)\tNOTE")
	for _, r := range rows {
		name := filepath.Base(r.file)
		if r.err != nil {
			failed++
			fmt.Fprintf(tw, "%s\terror\t\t\t\t\t%v\n", name, r.err)
			continue
		}
		var tokens int64
		var cost float64
		note := ""
		if j := r.doc.Job; j != nil {
			tokens, cost = j.Tokens, j.CostUSD
			if j.LastError != nil {
				note = j.LastError.Code + ": " + j.LastError.Message
			}
		}
		if r.dup {
			note = strings.TrimSpace("already uploaded " + note)
		}
		if !noWait && r.doc.Status != pipeline.StatusComplete {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.6f\t%s\n", name, r.doc.Status, r.doc.Pages, r.doc.Chunks, tokens, cost, note)
	}
	return failed, tw.Flush()
}

// devSearch prints the top hybrid results for query.
func devSearch(ctx context.Context, c *client.Client, query string, w io.Writer) error {
	hits, err := c.Search(ctx, query, 3, "hybrid")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "search (hybrid) %q:\n", query)
	for i, h := range hits {
		text := strings.Join(strings.Fields(h.Text), " ")
		if len(text) > 140 {
			text = text[:140] + "…"
		}
		fmt.Fprintf(w, "%d. %s (chunk %d, score %.4f)\n   %s\n", i+1, h.Filename, h.Ord, h.Score, text)
	}
	return nil
}
