package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/pipeline"
)

// devAPI is the little HTTP client `docpipe dev` uses to ingest through the API.
type devAPI struct {
	base, token string
	hc          *http.Client
}

func (c devAPI) do(ctx context.Context, method, path, ct string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var p struct{ Code, Detail string }
		_ = json.Unmarshal(b, &p)
		return fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, p.Code, p.Detail)
	}
	return json.Unmarshal(b, out)
}

func (c devAPI) upload(ctx context.Context, path string) (api.UploadResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return api.UploadResult{}, err
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", filepath.Base(path))
	_, _ = fw.Write(data)
	_ = mw.Close()
	var res api.UploadResult
	err = c.do(ctx, http.MethodPost, "/v1/documents", mw.FormDataContentType(), &form, &res)
	return res, err
}

// devIngest uploads every file through the API, follows each document to a final
// status (a line per change), and prints a table. It returns how many did not complete.
func devIngest(ctx context.Context, c devAPI, files []string, w io.Writer) (failed int, err error) {
	type row struct {
		file string
		doc  api.Document
		dup  bool
		err  error
	}
	rows := make([]row, len(files))
	for i, f := range files {
		rows[i].file = f
		res, err := c.upload(ctx, f)
		if err != nil {
			rows[i].err = err
			fmt.Fprintf(w, "%-40s upload failed: %v\n", filepath.Base(f), err)
			continue
		}
		rows[i].doc.ID, rows[i].dup = res.DocumentID, res.Duplicate
		note := ""
		if res.Duplicate {
			note = " (already uploaded: the existing document)"
		}
		fmt.Fprintf(w, "%-40s uploaded %d bytes%s\n", filepath.Base(f), res.Bytes, note)
	}
	last := make([]string, len(files))
	deadline := time.Now().Add(10 * time.Minute)
	for {
		open := 0
		for i := range rows {
			r := &rows[i]
			if r.err != nil || (r.doc.Status != "" && pipeline.Terminal(r.doc.Status)) {
				continue
			}
			if err := c.do(ctx, http.MethodGet, "/v1/documents/"+r.doc.ID.String(), "", nil, &r.doc); err != nil {
				r.err = err
				continue
			}
			if s := fmt.Sprintf("%s %.0f%%", r.doc.Status, r.doc.Percent); s != last[i] {
				last[i] = s
				fmt.Fprintf(w, "%-40s %s\n", filepath.Base(r.file), r.doc.Status)
			}
			if !pipeline.Terminal(r.doc.Status) {
				open++
			}
		}
		if open == 0 {
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
		if r.doc.Status != pipeline.StatusComplete {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.6f\t%s\n", name, r.doc.Status, r.doc.Pages, r.doc.Chunks, tokens, cost, note)
	}
	return failed, tw.Flush()
}

// devSearch prints the top hybrid results for query.
func devSearch(ctx context.Context, c devAPI, query string, w io.Writer) error {
	body, _ := json.Marshal(map[string]any{"query": query, "k": 3, "mode": "hybrid"})
	var out struct {
		Results []api.SearchHit `json:"results"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/search", "application/json", bytes.NewReader(body), &out); err != nil {
		return err
	}
	fmt.Fprintf(w, "search (hybrid) %q:\n", query)
	for i, h := range out.Results {
		text := strings.Join(strings.Fields(h.Text), " ")
		if len(text) > 140 {
			text = text[:140] + "…"
		}
		fmt.Fprintf(w, "%d. %s (chunk %d, score %.4f)\n   %s\n", i+1, h.Filename, h.Ord, h.Score, text)
	}
	return nil
}
