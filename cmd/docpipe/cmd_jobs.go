package main

import (
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/runstate"
)

// jobsCmd lists, shows, re-drives and cancels runs; client.CLI does each, on the API
// or (direct mode) the database, every user's runs.
func jobsCmd() *cobra.Command {
	c := &cobra.Command{Use: "jobs", Short: "List, inspect, cancel and re-drive pipeline runs (through the API with --server)"}
	var (
		state  string
		limit  int
		asJSON bool
		reason string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first (--state " + runstate.Join(runstate.States(), "|") + " or a status)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCLI(cmd, backendOptions{}, asJSON, func(c client.CLI) error { return c.Jobs(cmd.Context(), state, limit) })
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
			return withCLI(cmd, backendOptions{}, asJSON, func(c client.CLI) error { return c.ShowJob(cmd.Context(), args[0]) })
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	retry := &cobra.Command{
		Use:   "retry JOB_ID",
		Short: "Re-drive a dead-lettered run from the stage that failed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCLI(cmd, backendOptions{}, false, func(c client.CLI) error { return c.RetryJob(cmd.Context(), args[0]) })
		},
	}

	cancel := &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Cancel a run (it ends dead-lettered with code CANCELLED; `jobs retry` re-drives it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCLI(cmd, backendOptions{}, false, func(c client.CLI) error { return c.CancelJob(cmd.Context(), args[0], reason) })
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (recorded in last_error.message and the event trail)")

	c.AddCommand(list, show, retry, cancel)
	return c
}
