package main

import (
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
)

// statusCmd shows documents: one in detail (status, stage, percent, counts, cost, last
// error, optionally the event trail), or the newest as a table.
func statusCmd() *cobra.Command {
	var asJSON, events bool
	var limit int
	c := &cobra.Command{
		Use:   "status [DOCUMENT_ID...]",
		Short: "Show documents: status, stage, percent, pages, chunks, tokens, cost, last error (through the API with --server)",
		Long: `status DOCUMENT_ID shows one document and its latest run (--events adds the audit
trail); without an id it lists the newest documents as a table. Through the API with
--server/DOCPIPE_API_URL (the credential's documents), else directly on the database
(every user's). --json prints the API's document shape either way.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCLI(cmd, backendOptions{}, asJSON, func(c client.CLI) error {
				return c.Status(cmd.Context(), args, events, limit)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&events, "events", false, "with ids: also print each document's event trail")
	c.Flags().IntVar(&limit, "limit", 50, "without ids: how many documents, newest first")
	return c
}
