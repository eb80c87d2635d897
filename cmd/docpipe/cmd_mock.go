package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
)

func mockCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "mock",
		Short: "Run a local twin of an external service (same routes and shapes as the real one)",
		Long: "Run a local twin of an external service (same routes and shapes as the real one).\n\n" +
			"Every flag can also be set in the environment as DOCPIPE_MOCK_<FLAG>, e.g. --error-rates → DOCPIPE_MOCK_ERROR_RATES;\n" +
			"a flag given on the command line wins.",
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return flagsFromEnv(cmd, "DOCPIPE_MOCK_") },
	}
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
	c.AddCommand(lp, mockOpenAICmd(), mockStorageCmd())
	return c
}

// flagsFromEnv sets every flag of cmd not given on the command line from the
// environment variable prefix+FLAG_NAME, when that is set.
func flagsFromEnv(cmd *cobra.Command, prefix string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && !f.Changed && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// parseRates reads "500=0.2,503=0.05" (HTTP status = probability).
func parseRates(s string) (map[int]float64, error) {
	out := map[int]float64{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		code, err1 := strconv.Atoi(strings.TrimSpace(k))
		p, err2 := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err1 != nil || err2 != nil || code < 400 || code > 599 || p < 0 || p > 1 {
			return nil, fmt.Errorf("bad error rate %q: want STATUS=PROBABILITY, e.g. 500=0.2", part)
		}
		out[code] = p
	}
	return out, nil
}

func mockOpenAICmd() *cobra.Command {
	var (
		addr, apiKey, rates       string
		rpm, tpm, dims            int
		latency, jitter, retryAft time.Duration
		rate429                   float64
		quota                     bool
		seed                      int64
	)
	c := &cobra.Command{
		Use:   "openai",
		Short: "OpenAI embeddings API twin: deterministic local vectors, cl100k token counts, RPM/TPM limits with real 429s",
		RunE: func(cmd *cobra.Command, _ []string) error {
			er, err := parseRates(rates)
			if err != nil {
				return err
			}
			twin := mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: apiKey, RPM: rpm, TPM: tpm, Dims: dims, Latency: latency,
				LatencyJitter: jitter, ErrorRates: er, RateLimit429: rate429, RetryAfter: retryAft, InsufficientQuota: quota, Seed: seed})
			return serveUntilDone(cmd, addr, twin, "openai twin")
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8002", "listen address (clients use OPENAI_BASE_URL=http://ADDR/v1)")
	f.StringVar(&apiKey, "api-key", "", "require this Bearer key (empty: accept any)")
	f.IntVar(&rpm, "rpm", 0, "requests per minute before 429 rate_limit_exceeded (0 = unlimited)")
	f.IntVar(&tpm, "tpm", 0, "tokens per minute before 429 rate_limit_exceeded (0 = unlimited)")
	f.IntVar(&dims, "dims", 0, "vector size for unknown models without `dimensions` (0 = 1536)")
	f.DurationVar(&latency, "latency", 0, "added to every request")
	f.DurationVar(&jitter, "latency-jitter", 0, "plus a uniform random 0..this")
	f.StringVar(&rates, "error-rates", "", "injected errors, STATUS=PROBABILITY list, e.g. 500=0.2,503=0.05")
	f.Float64Var(&rate429, "rate-limit-429", 0, "share of requests answered 429 rate_limit_exceeded (0..1)")
	f.DurationVar(&retryAft, "retry-after", 0, "wait suggested by injected 429/503s (0 = 20ms)")
	f.BoolVar(&quota, "insufficient-quota", false, "answer every embeddings request 429 insufficient_quota")
	f.Int64Var(&seed, "seed", 1, "seed for injected faults and latency")
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
