// Command docpipe is the one binary of docpipe: workers, the ingest CLI, migrations,
// search, job management and development helpers are its subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/redact"
	"github.com/docpipe/docpipe/internal/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := rootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "docpipe:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "docpipe",
		Short:         "docpipe turns uploaded documents into searchable, embedded chunks in Postgres",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addAPIFlags(root)
	root.AddCommand(statusCmd(), configCmd(), migrateCmd(), workerCmd(), ingestCmd(), jobsCmd(), searchCmd(), clusterCmd(), benchCmd(), parseCmd(), mockCmd(), probeCmd(), serveCmd(), keysCmd(), devCmd(), validateCmd(), chaosCmd())
	return root
}

// loadConfig reads the environment; every problem is reported at once.
func loadConfig() (config.Config, error) {
	cfg, problems := config.FromEnv()
	if len(problems) > 0 {
		var b strings.Builder
		b.WriteString("configuration problems:")
		for _, p := range problems {
			b.WriteString("\n  " + p.Message)
		}
		b.WriteString("\n(run `docpipe config check` for the full picture)")
		return cfg, errors.New(b.String())
	}
	return cfg, nil
}

// newLogger writes to stderr in the configured format and level. Every line goes
// through the redactor: the configured secrets (and the password in DATABASE_URL)
// and secret-shaped text (webhook tokens, URL signatures and credentials, API keys,
// Bearer tokens, JWTs) never reach the log.
func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(redact.New(cfg.SecretValues()...).Handler(h))
}

// app is the wired-up set of parts a command uses.
type app struct {
	cfg   config.Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	pipe  *pipeline.Pipeline
	store storage.Store
	// deps and opts built pipe; `docpipe dev` makes its extra workers (more River
	// clients) from them (devProcess.Serve).
	deps     pipeline.Deps
	opts     pipeline.Options
	parser   *parse.Local
	embedder embed.Embedder
}

func (a *app) Close() {
	if a.parser != nil {
		a.parser.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
}

// newApp connects to the database and builds the pipeline.
func newApp(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	pool, err := db.Open(ctx, cfg.DatabaseURL, int32(cfg.WorkerConcurrency*2+8))
	if err != nil {
		return nil, fmt.Errorf("%w (is DATABASE_URL right, and did `docpipe migrate up` run?)", err)
	}
	a := &app{cfg: cfg, log: log, pool: pool}
	store, err := storage.Open(storageSettings(cfg))
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("DOCPIPE_STORAGE=%s: %w", cfg.Storage, err)
	}
	a.store = store
	a.parser = parse.NewLocal(parse.Options{
		CacheDir: filepath.Join(cfg.CacheDir, "wazero"), MaxPages: cfg.MaxPages, Workers: cfg.ParseWorkers,
	})
	chunker, err := chunk.New(chunk.Options{MaxTokens: cfg.ChunkTokens, OverlapTokens: cfg.ChunkOverlap})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.embedder, err = newEmbedder(cfg, log)
	if err != nil {
		a.Close()
		return nil, err
	}
	var remote pipeline.RemoteParser
	if cfg.Parser == "llamaparse" {
		remote, err = llamaparse.New(llamaparse.Options{BaseURL: cfg.LlamaParseBaseURL, APIKey: cfg.LlamaCloudAPIKey,
			HTTPClient: &http.Client{Transport: metrics.Transport("llamaparse", nil)}})
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("LLAMAPARSE_BASE_URL: %w", err)
		}
	}
	a.deps = pipeline.Deps{
		Pool: pool, Store: store, Parser: a.parser, Remote: remote, Chunker: chunker, Embedder: a.embedder, Log: log,
		Middleware: []rivertype.Middleware{metrics.RiverMiddleware()},
	}
	a.opts = pipeline.Options{
		RemoteParseDeadline: cfg.LlamaParseDeadline, RejectPartial: cfg.LlamaParsePartial == "fail",
		Workers: cfg.WorkerConcurrency, MaxAttempts: cfg.MaxAttempts, RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax,
		JobTimeout: cfg.JobTimeout, RescueAfter: cfg.RescueAfter, EmbedBatch: cfg.EmbedBatch, EmbedBatchDelay: cfg.EmbedBatchDelay,
		MaxUploadBytes: cfg.MaxUploadBytes, ShutdownTimeout: cfg.ShutdownTimeout,
		WebhookBaseURL: cfg.PublicURL, WebhookSecret: []byte(cfg.WebhookSecret),
		Budgets: pipeline.Budgets{pipeline.ServiceOpenAI: cfg.BudgetOpenAIUSD, pipeline.ServiceLlamaParse: cfg.BudgetLlamaParseUSD},
	}
	a.pipe, err = pipeline.New(a.deps, a.opts)
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// storageSettings maps the configuration onto the blob store's settings.
func storageSettings(cfg config.Config) storage.Settings {
	return storage.Settings{
		Backend: cfg.Storage, Dir: cfg.DataDir, SignSecret: cfg.StorageSignSecret, PublicBaseURL: cfg.PublicURL,
		S3Endpoint: cfg.S3Endpoint, S3Region: cfg.S3Region, S3Bucket: cfg.S3Bucket, S3AccessKey: cfg.S3AccessKey,
		S3SecretKey: cfg.S3SecretKey, S3SessionToken: cfg.S3SessionToken, S3VirtualHosted: cfg.S3VirtualHosted,
		SupabaseURL: cfg.SupabaseURL, SupabaseKey: cfg.SupabaseKey, SupabaseBucket: cfg.SupabaseBucket,
	}
}

// newEmbedder builds the configured embedding backend.
func newEmbedder(cfg config.Config, log *slog.Logger) (embed.Embedder, error) {
	if cfg.EmbedProvider != "openai" {
		return embed.NewLocal(cfg.EmbedDims)
	}
	e, err := embed.NewOpenAI(embed.OpenAIOptions{
		BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey, Model: cfg.EmbedModel, Dims: cfg.EmbedDims,
		RPM: cfg.OpenAIRPM, TPM: cfg.OpenAITPM, MaxBatchTokens: cfg.OpenAIMaxBatch, Concurrency: cfg.OpenAIConc,
		Logger:     log.With("component", "openai"),
		HTTPClient: &http.Client{Transport: metrics.Transport("openai", nil)},
	})
	if err != nil {
		return nil, fmt.Errorf("OpenAI embeddings (OPENAI_BASE_URL, DOCPIPE_EMBED_MODEL, DOCPIPE_EMBED_DIMS): %w", err)
	}
	log.Info("embedding with an OpenAI-compatible API", "base_url", redact.URL(cfg.OpenAIBaseURL), "model", cfg.EmbedModel, "dims", e.Dims(),
		"rpm", cfg.OpenAIRPM, "tpm", cfg.OpenAITPM)
	return e, nil
}

// startWorkers runs the pipeline's workers (on their own context, so a signal
// triggers a graceful Stop rather than a hard cancel) and what they report; stop
// ends the reporting (call pipe.Stop for the workers).
func (a *app) startWorkers(ctx context.Context) (stopObserve func(), err error) {
	// River pings the database at start: a worker started during an outage waits.
	if err := untilDatabase(ctx, a.log, "start the workers", func() error { return a.pipe.Start(context.WithoutCancel(ctx)) }); err != nil {
		return nil, err
	}
	a.log.Info("worker started", "worker_id", a.pipe.WorkerID(), "concurrency", a.cfg.WorkerConcurrency)
	return a.observe(ctx), nil
}

// observe starts what every process that runs workers reports: the heartbeat that
// tells the alert engine a worker is alive, and the embedding breaker's state.
// stop ends both.
func (a *app) observe(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hb := metrics.StartHeartbeat(ctx, a.pool, metrics.Worker{ID: a.pipe.WorkerID(), Concurrency: a.cfg.WorkerConcurrency, Log: a.log})
	if oa, ok := a.embedder.(*embed.OpenAI); ok {
		metrics.TrackBreaker(ctx, "openai", oa.BreakerState)
	}
	return func() {
		hb.Stop(context.Background())
		cancel()
	}
}

// storageCheck is the blob store probe for readiness and alerts.
func (a *app) storageCheck(ctx context.Context) error {
	_, err := a.store.Stat(ctx, "health/readyz-probe")
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// setup is loadConfig + newLogger + newApp.
func setup(ctx context.Context) (*app, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	return newApp(ctx, cfg, newLogger(cfg))
}
