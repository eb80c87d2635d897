package main

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/pipeline"
)

// statusCmd shows one document: status, stage, progress, counts, cost, last error.
func statusCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status DOCUMENT_ID",
		Short: "Show a document: status, stage, percent, pages, chunks, tokens, cost, last error (through the API with --server)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d api.Document
			if c := apiClient(cmd); c != nil {
				var err error
				if d, err = c.Document(cmd.Context(), args[0]); err != nil {
					return err
				}
			} else {
				id, err := uuid.Parse(args[0])
				if err != nil {
					return fmt.Errorf("%q is not a document id", args[0])
				}
				a, err := setup(cmd.Context())
				if err != nil {
					return err
				}
				defer a.Close()
				info, err := pipeline.ScopedDocument(cmd.Context(), a.pool, pipeline.AllUsers(), id)
				if err != nil {
					return err
				}
				d = api.Document{ID: info.DocumentID, UserID: info.UserID, Filename: info.Filename, MIME: info.MIME, Bytes: info.Bytes,
					SHA256: info.SHA256, Pages: info.Pages, Chunks: info.Chunks, CreatedAt: info.CreatedAt, UpdatedAt: info.UpdatedAt}
				if j := info.Job; j != nil {
					d.Status, d.State, d.Stage, d.Percent = j.Status, j.State, j.Stage, j.Percent
					d.Job = &api.Job{ID: j.JobID, Status: j.Status, Tokens: j.Tokens, CostUSD: j.CostUSD, RetryCount: j.RetryCount}
					if len(j.LastError) > 0 {
						d.Job.LastError = &api.LastError{Message: string(j.LastError)}
					}
				}
			}
			if asJSON {
				return printJSON(cmd, d)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "document  %s  %s (%s, %d bytes)\n", d.ID, d.Filename, d.MIME, d.Bytes)
			fmt.Fprintf(out, "status    %s (%s), stage %s, %.0f%%\n", d.Status, d.State, d.Stage, max(d.Percent, 0))
			fmt.Fprintf(out, "content   %d pages, %d searchable chunks\n", d.Pages, d.Chunks)
			if j := d.Job; j != nil {
				fmt.Fprintf(out, "run       %s, %d retries, %d tokens, $%.6f\n", j.ID, j.RetryCount, j.Tokens, j.CostUSD)
				if j.LastError != nil {
					fmt.Fprintf(out, "error     %s %s\n", j.LastError.Code, j.LastError.Message)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
