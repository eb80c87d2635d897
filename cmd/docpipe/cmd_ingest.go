package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

type ingestResult struct {
	File      string           `json:"file"`
	Duplicate bool             `json:"duplicate"`
	Error     string           `json:"error,omitempty"`
	Job       *catalog.JobInfo `json:"job,omitempty"`
}

func ingestCmd() *cobra.Command {
	var (
		userFlag string
		noWait   bool
		noWork   bool
		asJSON   bool
		timeout  time.Duration
		corrFlag string
	)
	c := &cobra.Command{
		Use:   "ingest PATH...",
		Short: "Upload files (or every file under folders) and wait for the pipeline: through the API with --server, else directly",
		Long: `With --server (or DOCPIPE_API_URL) ingest uploads each file through the API
(POST /v1/documents, sha256 verified by the server) and follows every document to a
final status unless --no-wait: on a terminal a progress bar per file shows the bytes
sent, then the pipeline stage and percent; otherwise a line per change. Then a summary
table (status, pages, chunks, tokens, cost, error) or --json. Authenticates with --token
or DOCPIPE_API_TOKEN (docpipe keys create).

Without a server (direct mode) it stores each file in the configured blob store, creates
its document and pipeline run, and (unless --no-wait) shows a progress bar per file until
every run ends, then a summary. By default it also runs a worker in this process
(--no-work leaves the work to separately running 'docpipe worker' processes).

Exit status 1 if any file failed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var corrID uuid.UUID
			if corrFlag != "" {
				var err error
				if corrID, err = uuid.Parse(corrFlag); err != nil || corrID == uuid.Nil {
					return fmt.Errorf("--correlation-id: %q is not a UUID", corrFlag)
				}
			}
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				if corrID != uuid.Nil {
					c.CorrelationID = corrID.String()
				}
				if userFlag != "" {
					return fmt.Errorf("--user is for direct mode: through the API the credential's user owns the uploads")
				}
				files, err := expandPaths(args)
				if err != nil {
					return err
				}
				failed, err := client.Ingest(ctx, c, files, cmd.OutOrStdout(), client.IngestOptions{
					NoWait: noWait, JSON: asJSON, Progress: cmd.ErrOrStderr(), Timeout: timeout,
				})
				if err != nil && ctx.Err() != nil {
					return fmt.Errorf("interrupted: what was uploaded keeps processing on the server (docpipe status shows it)")
				} else if err != nil {
					return apiError(err)
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d file(s) did not complete", failed, len(files))
				}
				return nil
			}
			a, err := setup(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			user := a.cfg.UserID
			if userFlag != "" {
				user = userFlag
			}
			userID, err := uuid.Parse(user)
			if err != nil {
				return fmt.Errorf("--user: %q is not a UUID", user)
			}
			files, err := expandPaths(args)
			if err != nil {
				return err
			}
			if !noWait && !noWork {
				if err := a.pipe.Start(context.WithoutCancel(ctx)); err != nil {
					return err
				}
				defer a.pipe.Stop(context.Background())
			}
			results := make([]ingestResult, len(files))
			var jobs []uuid.UUID
			var idx []int
			for i, f := range files {
				results[i].File = f
				data, err := os.ReadFile(f)
				if err != nil {
					results[i].Error = err.Error()
					continue
				}
				sub, err := a.pipe.Submit(ctx, pipeline.Submission{UserID: userID, Filename: filepath.Base(f), Data: data, CorrelationID: corrID})
				if err != nil {
					results[i].Error = err.Error()
					continue
				}
				results[i].Duplicate = sub.Duplicate
				jobs = append(jobs, sub.JobID)
				idx = append(idx, i)
			}
			if !noWait {
				wctx := ctx
				if timeout > 0 {
					var cancel context.CancelFunc
					wctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				waitAll(wctx, a, files, jobs, idx, results, asJSON)
			} else {
				for k, id := range jobs {
					if ji, err := catalog.GetJob(ctx, a.pool, catalog.AllUsers(), id); err == nil {
						results[idx[k]].Job = &ji
					}
				}
			}
			failed := printIngestSummary(cmd.OutOrStdout(), results, asJSON)
			if failed > 0 {
				return fmt.Errorf("%d of %d file(s) did not complete", failed, len(results))
			}
			return nil
		},
	}
	c.Flags().StringVar(&userFlag, "user", "", "user id to ingest as (default DOCPIPE_USER_ID)")
	c.Flags().BoolVar(&noWait, "no-wait", false, "queue and return without waiting")
	c.Flags().BoolVar(&noWork, "no-work", false, "do not run a worker in this process")
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up waiting after this long")
	c.Flags().StringVar(&corrFlag, "correlation-id", "", "correlation id (UUID) for the runs this starts: every log line and event of them carries it (API mode: sent as X-Correlation-Id); default: one per run")
	return c
}

func expandPaths(args []string) ([]string, error) {
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

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// waitAll follows every run to its end: progress bars on a terminal, one line per
// status change otherwise.
func waitAll(ctx context.Context, a *app, files []string, jobs []uuid.UUID, idx []int, results []ingestResult, quiet bool) {
	tty := isTerminal(os.Stderr) && !quiet
	var p *mpb.Progress
	if tty {
		p = mpb.NewWithContext(ctx, mpb.WithOutput(os.Stderr), mpb.WithWidth(30))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for k, id := range jobs {
		i := idx[k]
		name := filepath.Base(files[i])
		var bar *mpb.Bar
		var status runstate.Status
		if tty {
			bar = p.AddBar(100, mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-28.28s", name))),
				mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
					mu.Lock()
					defer mu.Unlock()
					return " " + string(status)
				})))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ji, err := catalog.Wait(ctx, a.pool, catalog.AllUsers(), id, func(ji catalog.JobInfo) {
				if bar != nil {
					mu.Lock()
					status = ji.Status
					mu.Unlock()
					if ji.Percent >= 0 {
						bar.SetCurrent(int64(ji.Percent))
					}
				} else if !quiet {
					fmt.Fprintf(os.Stderr, "%s: %s %.0f%%\n", name, ji.Status, max(ji.Percent, 0))
				}
			})
			if bar != nil {
				bar.Abort(false)
			}
			mu.Lock()
			defer mu.Unlock()
			results[i].Job = &ji
			if err != nil {
				results[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	if p != nil {
		p.Wait()
	}
}

func printIngestSummary(w io.Writer, results []ingestResult, asJSON bool) (failed int) {
	for _, r := range results {
		if r.Error != "" || r.Job == nil || (r.Job.Status != runstate.Complete && r.Job.Status != runstate.Duplicate && r.Job.Status.Terminal()) {
			failed++
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
		return failed
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tDOCUMENT\tJOB\tSTATUS\tPAGES\tCHUNKS\tNOTE")
	for _, r := range results {
		if r.Job == nil {
			fmt.Fprintf(tw, "%s\t-\t-\terror\t-\t-\t%s\n", r.File, r.Error)
			continue
		}
		note := r.Error
		if r.Duplicate {
			note = "already uploaded: existing document"
		}
		if len(r.Job.LastError) > 0 && r.Job.State == runstate.Deadletter {
			var le struct{ Code, Message string }
			_ = json.Unmarshal(r.Job.LastError, &le)
			note = le.Code + ": " + le.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.File, r.Job.DocumentID, r.Job.JobID, r.Job.Status, r.Job.Pages, r.Job.ChunksTotal, note)
	}
	tw.Flush()
	return failed
}
