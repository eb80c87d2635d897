package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/redact"
	"github.com/docpipe/docpipe/internal/storage"
	"github.com/docpipe/docpipe/internal/validate"
)

// validateEnvCmd is the live preflight of the environment this process is
// configured for (the same variables `serve` and `worker` read).
func validateEnvCmd() *cobra.Command {
	var scratchURL string
	c := &cobra.Command{
		Use:   "env",
		Short: "Live preflight: Postgres, pgvector, migrations, schema drift, blob store, LlamaParse/OpenAI credentials, webhook route, workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r validate.Report
			r.Add(validate.Config("env: config", os.Getenv)...)
			cfg, _ := config.FromEnv() // what is valid of it; the problems are the checks above
			if scratchURL == "" {
				scratchURL = cfg.ScratchURL
			}
			r.Add(validate.Env(cmd.Context(), envTarget(cfg, scratchURL))...)
			return printReport(cmd, &r)
		},
	}
	c.Flags().StringVar(&scratchURL, "scratch-url", "", "PostgreSQL where the drift check may create a scratch database (default DOCPIPE_SCRATCH_DATABASE_URL, else DATABASE_URL's server)")
	return c
}

// envTarget builds the clients of the configured services, with short timeouts
// and no retries: a preflight reports what the first answer was.
func envTarget(cfg config.Config, scratchURL string) validate.EnvTarget {
	t := validate.EnvTarget{
		DatabaseURL: cfg.DatabaseURL, Drift: db.DriftOptions{ScratchURL: scratchURL},
		PublicURL: cfg.PublicURL, WebhookSecret: cfg.WebhookSecret, StoreName: storeName(cfg),
	}
	t.Store, t.StoreErr = storage.Open(storageSettings(cfg))
	if cfg.Parser == "llamaparse" {
		lp, err := llamaparse.New(llamaparse.Options{BaseURL: cfg.LlamaParseBaseURL, APIKey: cfg.LlamaCloudAPIKey, Timeout: 15 * time.Second})
		if err == nil {
			t.LlamaParse = lp
		} else {
			t.LlamaParse = failingStatus{err}
		}
	}
	if cfg.EmbedProvider == "openai" {
		oa, err := embed.NewOpenAI(embed.OpenAIOptions{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey, Model: cfg.EmbedModel,
			Dims: cfg.EmbedDims, MaxRetries: -1, RequestTimeout: 15 * time.Second})
		if err == nil {
			t.OpenAI = oa
		} else {
			t.OpenAI = failingEmbedder{err}
		}
	}
	return t
}

// storeName says which blob store the configuration selects, without secrets.
func storeName(cfg config.Config) string {
	switch cfg.Storage {
	case storage.BackendS3:
		return fmt.Sprintf("s3 bucket %s at %s", cfg.S3Bucket, redact.URL(cfg.S3Endpoint))
	case storage.BackendSupabase:
		return fmt.Sprintf("supabase bucket %s at %s", cfg.SupabaseBucket, redact.URL(cfg.SupabaseURL))
	}
	return "local " + cfg.DataDir
}

// failingStatus and failingEmbedder report a client that could not be built.
type failingStatus struct{ err error }

func (f failingStatus) Status(_ context.Context, _ string) (llamaparse.Status, error) {
	return llamaparse.Status{}, f.err
}

type failingEmbedder struct{ err error }

func (f failingEmbedder) Embed(_ context.Context, _ []string) ([][]float32, error) { return nil, f.err }
func (f failingEmbedder) Model() string                                            { return "" }

// validateDBCmd compares the live schema with the migrations' own.
func validateDBCmd() *cobra.Command {
	var scratchURL string
	var sqlOnly bool
	c := &cobra.Command{
		Use:   "db",
		Short: "Schema drift: compare the live catalog with the one the migrations produce, with the SQL that restores each difference",
		Long: `db reads the live catalog of docpipe's schema and River's tables under goose's migration
lock, builds the schema the embedded migrations produce at the same versions in a scratch
database (created and dropped on DATABASE_URL's server, or on --scratch-url), and compares
them object by object: tables, columns (type, nullability, default), constraints, indexes,
triggers, functions, enum types and extension versions. Pending migrations are listed, not
reported as drift. --sql prints only the SQL that restores the expected schema.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _ := config.FromEnv()
			if cfg.DatabaseURL == "" {
				return errors.New("DATABASE_URL is not set")
			}
			if scratchURL == "" {
				scratchURL = cfg.ScratchURL
			}
			pool, err := pgxpool.New(cmd.Context(), cfg.DatabaseURL)
			if err != nil {
				return errors.New("DATABASE_URL: malformed connection string")
			}
			defer pool.Close()
			checks, rep := validate.DB(cmd.Context(), pool, db.DriftOptions{ScratchURL: scratchURL})
			if sqlOnly && rep != nil {
				out := cmd.OutOrStdout()
				for _, d := range rep.Differences {
					fmt.Fprintf(out, "-- %s\n%s\n\n", d, d.SQL)
				}
				if len(rep.Differences) > 0 {
					return errChecksFailed
				}
				return nil
			}
			var r validate.Report
			r.Add(checks...)
			return printReport(cmd, &r)
		},
	}
	c.Flags().StringVar(&scratchURL, "scratch-url", "", "PostgreSQL (with pgvector) where a scratch database may be created (default DOCPIPE_SCRATCH_DATABASE_URL, else DATABASE_URL's server)")
	c.Flags().BoolVar(&sqlOnly, "sql", false, "print only the SQL that restores the expected schema (exit 1 when there is any)")
	return c
}
