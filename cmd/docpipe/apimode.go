package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
)

// addAPIFlags gives the client commands (ingest, status, search, jobs) their server
// settings: with --server (or DOCPIPE_API_URL) they talk to `docpipe serve`; without,
// or with --direct, they work on the database directly.
func addAPIFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String("server", "", "docpipe API URL for ingest/status/search/jobs (default $DOCPIPE_API_URL; empty = direct mode)")
	pf.String("token", "", "API key or JWT for --server (default $DOCPIPE_API_TOKEN)")
	pf.Bool("direct", false, "ingest/status/search/jobs: use the database directly even when DOCPIPE_API_URL is set")
}

// apiClient returns the API client for cmd, or nil in direct mode.
func apiClient(cmd *cobra.Command) *client.Client {
	if direct, _ := cmd.Flags().GetBool("direct"); direct {
		return nil
	}
	server, _ := cmd.Flags().GetString("server")
	if server == "" {
		server = os.Getenv("DOCPIPE_API_URL")
	}
	if server == "" {
		return nil
	}
	token, _ := cmd.Flags().GetString("token")
	if token == "" {
		token = os.Getenv("DOCPIPE_API_TOKEN")
	}
	return client.New(server, token)
}
