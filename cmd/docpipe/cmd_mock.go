package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
)

func mockCmd() *cobra.Command {
	c := &cobra.Command{Use: "mock", Short: "Run a local twin of an external service (same routes and shapes as the real one)"}
	var (
		addr, apiKey          string
		delay                 time.Duration
		drop                  float64
		duplicate, neverFinsh bool
		seed                  int64
		errorRate500          float64
	)
	lp := &cobra.Command{
		Use:   "llamaparse",
		Short: "LlamaParse v1 parsing API twin: parses with docpipe's local parser, delivers webhooks",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _ := config.FromEnv()
			parser := parse.NewLocal(parse.Options{CacheDir: filepath.Join(cfg.CacheDir, "wazero"), MaxPages: cfg.MaxPages})
			defer parser.Close()
			opts := mock.LlamaParseOptions{APIKey: apiKey, Parser: parser, Delay: delay, WebhookDrop: drop,
				WebhookDuplicate: duplicate, NeverFinish: neverFinsh, Seed: seed}
			if errorRate500 > 0 {
				opts.ErrorRates = map[int]float64{500: errorRate500}
			}
			twin := mock.NewLlamaParseServer(opts)
			defer twin.Close()
			return serveUntilDone(cmd, addr, twin, "llamaparse twin")
		},
	}
	lp.Flags().StringVar(&addr, "addr", "127.0.0.1:8001", "listen address")
	lp.Flags().StringVar(&apiKey, "api-key", "", "require this Bearer key (empty: accept any)")
	lp.Flags().DurationVar(&delay, "delay", 2*time.Second, "time a job stays PENDING")
	lp.Flags().Float64Var(&drop, "drop-webhooks", 0, "share of webhooks not delivered (0..1)")
	lp.Flags().BoolVar(&duplicate, "duplicate-webhooks", false, "deliver every webhook three times")
	lp.Flags().BoolVar(&neverFinsh, "never-finish", false, "jobs stay PENDING forever")
	lp.Flags().Float64Var(&errorRate500, "error-rate-500", 0, "share of requests answered 500 (0..1)")
	lp.Flags().Int64Var(&seed, "seed", 1, "seed for injected faults")
	c.AddCommand(lp)
	return c
}

// serveUntilDone serves h on addr until the command's context ends (SIGINT/SIGTERM).
func serveUntilDone(cmd *cobra.Command, addr string, h http.Handler, name string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(cmd.OutOrStdout(), "%s listening on http://%s\n", name, l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-cmd.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
