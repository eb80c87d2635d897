package main

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
)

// ingestLong is `docpipe ingest --help`.
const ingestLong = `With --server (or DOCPIPE_API_URL) ingest uploads each file through the API
(POST /v1/documents, sha256 verified by the server); without a server (direct mode) it
stores each file in the configured blob store and creates its document and pipeline
run, and by default also runs a worker in this process (--no-work leaves the work to
separately running 'docpipe worker' processes).

Either way it follows every document to a final status unless --no-wait: on a terminal
a progress bar per file shows the bytes sent, then the pipeline stage and percent;
otherwise a line per change. Then a summary table (status, pages, chunks, tokens, cost,
note) or --json (the API's document for each file). Through the API it authenticates
with --token or DOCPIPE_API_TOKEN (docpipe keys create).

Exit status 1 if any file failed.`

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
		Long:  ingestLong,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			corrID, err := correlationID(corrFlag)
			if err != nil {
				return err
			}
			files, err := client.ExpandPaths(args)
			if err != nil {
				return err
			}
			o := backendOptions{user: userFlag, corrID: corrID, work: !noWait && !noWork}
			if userFlag != "" {
				o.directOnly = "--user is for direct mode: through the API the credential's user owns the uploads"
			}
			return withBackend(cmd, o, func(b client.Backend) error {
				up := client.Uploader{Backend: b, Out: cmd.OutOrStdout(), Progress: cmd.ErrOrStderr(), JSON: asJSON, NoWait: noWait, Timeout: timeout}
				failed, err := up.Run(cmd.Context(), files)
				switch {
				case err != nil && cmd.Context().Err() != nil:
					return fmt.Errorf("interrupted: what was uploaded keeps processing (docpipe status shows it)")
				case err != nil:
					return err
				case failed > 0:
					return fmt.Errorf("%d of %d file(s) did not complete", failed, len(files))
				}
				return nil
			})
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

// correlationID reads --correlation-id ("" = none).
func correlationID(flag string) (uuid.UUID, error) {
	if flag == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(flag)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("--correlation-id: %q is not a UUID", flag)
	}
	return id, nil
}
