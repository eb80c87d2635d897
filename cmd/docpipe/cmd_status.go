package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/runstate"
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
(every user's).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ids := make([]uuid.UUID, len(args))
			for i, a := range args {
				if ids[i], err = uuid.Parse(a); err != nil {
					return fmt.Errorf("%q is not a document id", a)
				}
			}
			var docs []apitypes.Document
			evs := map[uuid.UUID][]apitypes.Event{}
			if c != nil {
				if len(ids) == 0 {
					if docs, err = c.Documents(ctx); err != nil {
						return apiError(err)
					}
					docs = docs[:min(len(docs), limit)]
				}
				for _, id := range ids {
					d, err := c.Document(ctx, id.String())
					if err != nil {
						return apiError(err)
					}
					docs = append(docs, d)
					if events {
						if evs[id], err = c.Events(ctx, id.String()); err != nil {
							return apiError(err)
						}
					}
				}
			} else {
				a, err := setup(ctx)
				if err != nil {
					return err
				}
				defer a.Close()
				scope := catalog.AllUsers()
				if len(ids) == 0 {
					infos, err := catalog.ListDocuments(ctx, a.pool, scope, catalog.Page{Limit: limit})
					if err != nil {
						return err
					}
					for _, d := range infos {
						docs = append(docs, d.Wire())
					}
				}
				for _, id := range ids {
					info, err := catalog.GetDocument(ctx, a.pool, scope, id)
					if err != nil {
						return err
					}
					docs = append(docs, info.Wire())
					if events {
						list, err := catalog.DocumentEvents(ctx, a.pool, scope, id, 0)
						if err != nil {
							return err
						}
						evs[id] = catalog.Wires(list)
					}
				}
			}
			out := cmd.OutOrStdout()
			if len(ids) == 0 {
				if asJSON {
					return printJSON(cmd, docs)
				}
				return printDocumentTable(out, docs)
			}
			if asJSON {
				if !events {
					if len(docs) == 1 {
						return printJSON(cmd, docs[0])
					}
					return printJSON(cmd, docs)
				}
				type withEvents struct {
					apitypes.Document
					Events []apitypes.Event `json:"events"`
				}
				list := make([]withEvents, len(docs))
				for i, d := range docs {
					list[i] = withEvents{Document: d, Events: evs[d.ID]}
				}
				if len(list) == 1 {
					return printJSON(cmd, list[0])
				}
				return printJSON(cmd, list)
			}
			for i, d := range docs {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printDocument(out, d)
				if events {
					printEvents(out, evs[d.ID])
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&events, "events", false, "with ids: also print each document's event trail")
	c.Flags().IntVar(&limit, "limit", 50, "without ids: how many documents, newest first")
	return c
}

func printDocument(out io.Writer, d apitypes.Document) {
	fmt.Fprintf(out, "document  %s  %s (%s, %d bytes)\n", d.ID, d.Filename, d.MIME, d.Bytes)
	fmt.Fprintf(out, "status    %s", d.Status)
	if d.State != "" {
		fmt.Fprintf(out, " (%s)", d.State)
	}
	if d.Stage != "" {
		fmt.Fprintf(out, ", stage %s", d.Stage)
	}
	if d.Percent >= 0 {
		fmt.Fprintf(out, ", %.0f%%", d.Percent)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "content   %d pages, %d searchable chunks\n", d.Pages, d.Chunks)
	if j := d.Job; j != nil {
		fmt.Fprintf(out, "run       %s, %d retries, %d tokens, $%.6f\n", j.ID, j.RetryCount, j.Tokens, j.CostUSD)
		if j.EmbedsTotal > 0 {
			fmt.Fprintf(out, "embedded  %d/%d chunks\n", j.EmbedsDone, j.EmbedsTotal)
		}
		if j.LastError != nil {
			fmt.Fprintf(out, "error     %s: %s", j.LastError.Code, j.LastError.Message)
			if j.LastError.Stage != "" {
				fmt.Fprintf(out, " (stage %s, attempt %d)", j.LastError.Stage, j.LastError.Attempt)
			}
			fmt.Fprintln(out)
		}
	}
	fmt.Fprintf(out, "updated   %s\n", d.UpdatedAt.Format("2006-01-02 15:04:05 MST"))
}

func printEvents(out io.Writer, events []apitypes.Event) {
	fmt.Fprintln(out, "\nevents:")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, e := range events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format("15:04:05.000"), e.Severity, e.Type, e.Stage, e.Code, e.Payload)
	}
	_ = tw.Flush()
}

func printDocumentTable(out io.Writer, docs []apitypes.Document) error {
	if len(docs) == 0 {
		fmt.Fprintln(out, "no documents")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOCUMENT\tFILE\tSTATUS\tPERCENT\tPAGES\tCHUNKS\tTOKENS\tCOST (USD)\tERROR")
	for _, d := range docs {
		pct := "-"
		if d.Percent >= 0 {
			pct = fmt.Sprintf("%.0f%%", d.Percent)
		}
		var tokens int64
		var cost float64
		errText := ""
		if j := d.Job; j != nil {
			tokens, cost = j.Tokens, j.CostUSD
			if j.LastError != nil && d.Status != runstate.Complete {
				errText = j.LastError.Code + ": " + snippet(j.LastError.Message, 80)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.6f\t%s\n", d.ID, d.Filename, d.Status, pct, d.Pages, d.Chunks, tokens, cost, errText)
	}
	return tw.Flush()
}
