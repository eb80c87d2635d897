package main

import (
	"context"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/devenv"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
)

// devCmd runs the whole of docpipe in one process, the same shape as production:
// a private Postgres, the three twins, the API with webhooks, two workers.
func devCmd() *cobra.Command {
	var o devenv.Options
	c := &cobra.Command{
		Use:   "dev",
		Short: "Everything locally in one process: private Postgres, the LlamaParse/OpenAI/Storage twins, the API and two workers; ingests samples/",
		Long: `dev starts a private PostgreSQL cluster under --dir (kept between runs; --reset wipes it),
migrates it, starts the LlamaParse, OpenAI and Supabase Storage twins on loopback, the API
(with the LlamaParse webhook route) and two workers, prints every URL, ingests --samples
(plus --policy) through the API with progress bars, prints a per-document table and an example
search, then serves until Ctrl-C. --once exits after the ingest: 0 only if every sample completed.
As root, when the postgres user cannot enter --dir (a home folder of mode 0700), the cluster
lives in /var/tmp/docpipe-pg-<hash of the folder> instead, printed at start.
--real uses the real LlamaParse and OpenAI (LLAMA_CLOUD_API_KEY and OPENAI_API_KEY must be set)
and the local blob store. The twins keep their state in memory.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return devenv.Run(cmd.Context(), o, cmd.OutOrStdout(), buildDevProcess)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", ".docpipe", "folder for the cluster, blobs and caches")
	f.IntVar(&o.PGPort, "pg-port", 54320, "private Postgres port")
	f.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "API listen address (port 0 picks a free one)")
	f.StringSliceVar(&o.Samples, "samples", []string{"samples"}, "files or folders to ingest")
	f.StringVar(&o.Policy, "policy", "testdata/corpus/sample-policy.pdf", "also ingest this file when it exists (\"\" = no)")
	f.StringVar(&o.Query, "query", "what is the deductible", "example search after the ingest")
	f.IntVar(&o.Workers, "workers", 2, "worker (River client) count")
	f.BoolVar(&o.Once, "once", false, "exit after the ingest: 0 if every sample completed")
	f.BoolVar(&o.Reset, "reset", false, "wipe the cluster and blobs first")
	f.BoolVar(&o.Real, "real", false, "use the real LlamaParse and OpenAI (keys from the environment)")
	return c
}

// devProcess is docpipe as `docpipe dev` runs it: the app wired from dev's
// configuration, serving the API with its workers.
type devProcess struct{ *app }

func buildDevProcess(ctx context.Context, cfg config.Config) (devenv.Process, error) {
	a, err := newApp(ctx, cfg, newLogger(cfg))
	if err != nil {
		return nil, err
	}
	return devProcess{a}, nil
}

func (p devProcess) Parser() *parse.Local { return p.parser }
func (p devProcess) Pool() *pgxpool.Pool  { return p.pool }

// Serve runs the API with the first worker; more workers are extra River clients.
func (p devProcess) Serve(ctx context.Context, l net.Listener, workers int) error {
	for i := 1; i < workers; i++ {
		extra, err := pipeline.New(p.deps, p.opts)
		if err != nil {
			return err
		}
		if err := extra.Start(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		defer func() { _ = extra.Stop(context.Background()) }()
	}
	return runServe(ctx, p.app, serveOptions{withWorker: true, listener: l}, io.Discard)
}
