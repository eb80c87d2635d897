package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/client/direct"
)

// The client commands (ingest, status, search, jobs) talk to a `docpipe serve` when a
// server URL is given (--server, else DOCPIPE_API_URL) and authenticate with --token
// (else DOCPIPE_API_TOKEN): an API key from `docpipe keys create` or a JWT. Without a
// server, or with --direct, they work on the database directly (DATABASE_URL). Either
// way one body (client.CLI, client.Uploader) serves them and prints the API's shapes.
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

// backendOptions say how a client command is served.
type backendOptions struct {
	// directOnly, when set, refuses the API: a flag only direct mode has was given.
	directOnly string
	// user owns direct mode's uploads ("" = DOCPIPE_USER_ID); with ownOnly, reads and
	// search see only that user's documents, else every user's.
	user    string
	ownOnly bool
	// corrID is the correlation id of the runs uploads start (uuid.Nil: one each).
	corrID uuid.UUID
	// work runs a worker in this process while the command runs (direct mode).
	work bool
}

// withBackend runs the command's body on its backend: the API, or the database in
// direct mode (then released after), with API errors explained.
func withBackend(cmd *cobra.Command, o backendOptions, body func(client.Backend) error) error {
	b, done, err := openBackend(cmd, o)
	if err != nil {
		return err
	}
	defer done()
	return apiError(body(b))
}

// withCLI runs a status, jobs or search body on the command's backend.
func withCLI(cmd *cobra.Command, o backendOptions, asJSON bool, body func(client.CLI) error) error {
	return withBackend(cmd, o, func(b client.Backend) error {
		return body(client.CLI{Backend: b, Out: cmd.OutOrStdout(), JSON: asJSON})
	})
}

// openBackend returns the API client, or in direct mode the database backend wired
// from the configuration, and what releases it.
func openBackend(cmd *cobra.Command, o backendOptions) (client.Backend, func(), error) {
	c, err := apiClient(cmd)
	if err != nil {
		return nil, nil, err
	}
	if c != nil {
		if o.directOnly != "" {
			return nil, nil, errors.New(o.directOnly)
		}
		if o.corrID != uuid.Nil {
			c.CorrelationID = o.corrID.String()
		}
		return c, func() {}, nil
	}
	a, err := setup(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	user := a.cfg.UserID
	if o.user != "" {
		user = o.user
	}
	userID, err := uuid.Parse(user)
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("--user: %q is not a UUID", user)
	}
	scope := catalog.AllUsers()
	if o.ownOnly {
		scope = catalog.UserScope(userID)
	}
	done := a.Close
	if o.work {
		if err := a.pipe.Start(context.WithoutCancel(cmd.Context())); err != nil {
			a.Close()
			return nil, nil, err
		}
		done = func() { _ = a.pipe.Stop(context.Background()); a.Close() }
	}
	return &direct.Backend{Pool: a.pool, Pipe: a.pipe, Store: a.store, Embedder: a.embedder, Log: a.log,
		Scope: scope, User: userID, CorrelationID: o.corrID}, done, nil
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
