package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/runstate"
)

func jobsCmd() *cobra.Command {
	c := &cobra.Command{Use: "jobs", Short: "List, inspect, cancel and re-drive pipeline runs (through the API with --server)"}
	var state string
	var limit int
	var asJSON bool
	var reason string
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first (--state " + runstate.Join(runstate.States(), "|") + " or a status)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var jobs []catalog.JobInfo
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if limit <= 0 {
				limit = 50
			}
			if c != nil {
				q := client.JobsQuery{State: state}
				for len(jobs) < limit {
					q.Limit = min(limit-len(jobs), 500)
					page, next, err := c.JobsPage(cmd.Context(), q)
					if err != nil {
						return apiError(err)
					}
					for _, j := range page {
						jobs = append(jobs, jobInfoOf(j))
					}
					if next == "" || len(page) == 0 {
						break
					}
					q.Cursor = next
				}
			} else {
				a, err := setup(cmd.Context())
				if err != nil {
					return err
				}
				defer a.Close()
				var pg catalog.Page
				for len(jobs) < limit {
					pg.Limit = min(limit-len(jobs), 500)
					page, err := catalog.ListJobs(cmd.Context(), a.pool, catalog.AllUsers(), state, nil, pg)
					if err != nil {
						return err
					}
					jobs = append(jobs, page...)
					if len(page) < pg.Limit {
						break
					}
					last := page[len(page)-1]
					pg.BeforeTime, pg.BeforeID = last.CreatedAt, last.JobID
				}
			}
			if asJSON {
				return printJSON(cmd, jobs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tDOCUMENT\tFILE\tSTATUS\tSTATE\tPERCENT\tCHUNKS\tRETRIES\tUPDATED")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%d\t%s\n", j.JobID, j.DocumentID, j.Filename, j.Status, j.State,
					j.Percent, j.ChunksTotal, j.RetryCount, j.UpdatedAt.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "filter by state or status")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use:   "show JOB_ID",
		Short: "Show one run and its event trail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				j, err := c.Job(cmd.Context(), args[0])
				if err != nil {
					return apiError(err)
				}
				all, err := c.Events(cmd.Context(), j.DocumentID.String())
				if err != nil {
					return apiError(err)
				}
				events := []apitypes.Event{}
				for _, e := range all {
					if e.JobID == j.ID {
						events = append(events, e)
					}
				}
				if asJSON {
					return printJSON(cmd, map[string]any{"job": j, "events": events})
				}
				printJob(cmd, jobInfoOf(j))
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, e := range events {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format("15:04:05.000"), e.Severity, e.Type, e.Stage, e.Code, e.Payload)
				}
				return tw.Flush()
			}
			id, a, err := jobArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			ji, err := catalog.GetJob(cmd.Context(), a.pool, catalog.AllUsers(), id)
			if err != nil {
				return err
			}
			events, err := catalog.JobEvents(cmd.Context(), a.pool, catalog.AllUsers(), id, 0)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, map[string]any{"job": ji, "events": events})
			}
			printJob(cmd, ji)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, e := range events {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format("15:04:05.000"), e.Severity, e.Type, e.Stage, e.Code, e.Payload)
			}
			return tw.Flush()
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	retry := &cobra.Command{
		Use:   "retry JOB_ID",
		Short: "Re-drive a dead-lettered run from the stage that failed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				j, err := c.Retry(cmd.Context(), args[0])
				if err != nil {
					return apiError(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "job %s re-driven: status %s, queued\n", j.ID, j.Status)
				return nil
			}
			id, a, err := jobArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			status, err := a.pipe.Retry(cmd.Context(), id)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s re-driven: status %s, queued\n", id, status)
			return nil
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Cancel a run (it ends dead-lettered with code CANCELLED; `jobs retry` re-drives it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var status runstate.Status
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				j, err := c.Cancel(cmd.Context(), args[0], reason)
				if err != nil {
					return apiError(err)
				}
				status = j.Status
			} else {
				id, a, err := jobArg(cmd, args[0])
				if err != nil {
					return err
				}
				defer a.Close()
				why := reason
				if why == "" {
					why = "cancelled with docpipe jobs cancel"
				}
				m := catalog.Manager{Pool: a.pool, Engine: a.pipe, Store: a.store, Log: a.log}
				ji, err := m.Cancel(cmd.Context(), catalog.AllUsers(), id, why)
				if err != nil {
					return err
				}
				status = ji.Status
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s cancelled: status %s\n", args[0], status)
			return nil
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (recorded in last_error.message and the event trail)")
	c.AddCommand(list, show, retry, cancel)
	return c
}

func printJob(cmd *cobra.Command, ji catalog.JobInfo) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "job         %s\ndocument    %s (%s)\nstatus      %s (%s), %.0f%%\nchunks      %d, embedded %d/%d\nretries     %d\ntokens      %d ($%.6f)\ncorrelation %s\n",
		ji.JobID, ji.DocumentID, ji.Filename, ji.Status, ji.State, ji.Percent, ji.ChunksTotal, ji.EmbedsDone, ji.EmbedsTotal, ji.RetryCount,
		ji.Tokens, ji.CostUSD, ji.CorrelationID)
	if len(ji.LastError) > 0 {
		fmt.Fprintf(out, "last error  %s\n", ji.LastError)
	}
	fmt.Fprintln(out, "\nevents:")
}

// jobInfoOf converts the API's view of a run for the shared printers.
func jobInfoOf(j apitypes.Job) catalog.JobInfo {
	ji := catalog.JobInfo{JobID: j.ID, DocumentID: j.DocumentID, UserID: j.UserID, Filename: j.Filename, Status: j.Status, State: j.State,
		Stage: j.Stage, Percent: j.Percent, ChunksTotal: j.ChunksTotal, EmbedsDone: j.EmbedsDone, EmbedsTotal: j.EmbedsTotal,
		RetryCount: j.RetryCount, CorrelationID: j.CorrelationID, Pages: j.Pages, Tokens: j.Tokens, CostUSD: j.CostUSD,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt}
	if j.LastError != nil {
		ji.LastError, _ = json.Marshal(j.LastError)
	}
	return ji
}

// jobArg parses a job id argument and sets up the app.
func jobArg(cmd *cobra.Command, arg string) (uuid.UUID, *app, error) {
	id, err := uuid.Parse(arg)
	if err != nil {
		return id, nil, fmt.Errorf("%q is not a job id", arg)
	}
	a, err := setup(cmd.Context())
	return id, a, err
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
