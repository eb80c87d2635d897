package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
)

// The client commands (ingest, status, search, jobs) talk to a `docpipe serve` when a
// server URL is given (--server, else DOCPIPE_API_URL) and authenticate with --token
// (else DOCPIPE_API_TOKEN): an API key from `docpipe keys create` or a JWT. Without a
// server, or with --direct, they work on the database directly (DATABASE_URL).
const (
	envAPIURL   = "DOCPIPE_API_URL"
	envAPIToken = "DOCPIPE_API_TOKEN"
)

// addAPIFlags gives every command the server settings (persistent flags).
func addAPIFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String("server", "", "docpipe API URL for ingest/status/search/jobs (default $"+envAPIURL+"; none = direct mode on the database)")
	pf.String("token", "", "API key (docpipe keys create) or JWT for --server (default $"+envAPIToken+")")
	pf.Bool("direct", false, "ingest/status/search/jobs: work on the database directly even when "+envAPIURL+" is set")
}

// apiClient returns the API client for cmd, or nil in direct mode.
func apiClient(cmd *cobra.Command) (*client.Client, error) {
	direct, _ := cmd.Flags().GetBool("direct")
	server, _ := cmd.Flags().GetString("server")
	token, _ := cmd.Flags().GetString("token")
	if direct {
		if server != "" {
			return nil, errors.New("--direct and --server exclude each other")
		}
		return nil, nil
	}
	if server == "" {
		server = os.Getenv(envAPIURL)
	}
	if server == "" {
		if token != "" {
			return nil, fmt.Errorf("--token needs --server (or %s)", envAPIURL)
		}
		return nil, nil
	}
	if token == "" {
		token = os.Getenv(envAPIToken)
	}
	if token == "" {
		return nil, fmt.Errorf("no credential for %s: pass --token or set %s (an API key from `docpipe keys create`, or a JWT); --direct works on the database instead", server, envAPIToken)
	}
	return client.New(server, token), nil
}

// apiError adds what to do to an API error the user can fix here.
func apiError(err error) error {
	var p *client.Problem
	if !errors.As(err, &p) {
		return err
	}
	switch p.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w\n  the server rejected the credential: check --token / %s (an API key from `docpipe keys create`, or an unexpired JWT)", err, envAPIToken)
	case http.StatusForbidden:
		return fmt.Errorf("%w\n  the credential may not do this (admin keys: `docpipe keys create --admin`)", err)
	}
	if p.RequestID != "" && p.Status >= 500 {
		return fmt.Errorf("%w (request id %s in the server log)", err, p.RequestID)
	}
	return err
}
