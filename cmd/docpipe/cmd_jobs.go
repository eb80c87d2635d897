package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/pipeline"
)

func jobsCmd() *cobra.Command {
	c := &cobra.Command{Use: "jobs", Short: "List, inspect and re-drive pipeline runs"}
	var state string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first (--state queued|working|retryable|done|deadletter or a status)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := setup(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			jobs, err := pipeline.ListJobs(cmd.Context(), a.pool, state, limit)
			if err != nil {
				return err
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
			id, a, err := jobArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			ji, err := pipeline.GetJob(cmd.Context(), a.pool, id)
			if err != nil {
				return err
			}
			events, err := pipeline.JobEvents(cmd.Context(), a.pool, id)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, map[string]any{"job": ji, "events": events})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "job         %s\ndocument    %s (%s)\nstatus      %s (%s), %.0f%%\nchunks      %d, embedded %d/%d\nretries     %d\ncorrelation %s\n",
				ji.JobID, ji.DocumentID, ji.Filename, ji.Status, ji.State, ji.Percent, ji.ChunksTotal, ji.EmbedsDone, ji.EmbedsTotal, ji.RetryCount, ji.CorrelationID)
			if len(ji.LastError) > 0 {
				fmt.Fprintf(out, "last error  %s\n", ji.LastError)
			}
			fmt.Fprintln(out, "\nevents:")
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
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
	c.AddCommand(list, show, retry)
	return c
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
