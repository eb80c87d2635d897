// Package pipeline is docpipe's state machine: one River job advances one document by
// one stage (parse → validate → chunk → embed → finalize). Each stage locks its run,
// does its work, and in ONE transaction writes its durable result, moves the status,
// inserts the next stage's job and completes its own job, so a crash at any point
// leaves either the old state (the job is retried or rescued) or the new one.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/storage"
)

// Parser turns stored bytes into markdown.
type Parser interface {
	Parse(ctx context.Context, data []byte, filename string) (parse.Document, error)
}

// Chunker splits markdown into chunks.
type Chunker interface {
	Chunk(markdown string) ([]chunk.Chunk, error)
}

// RemoteParser is an asynchronous parsing service (LlamaParse): submit, then poll.
type RemoteParser interface {
	Submit(ctx context.Context, data []byte, filename, webhookURL string) (string, error)
	Status(ctx context.Context, jobID string) (llamaparse.Status, error)
	Markdown(ctx context.Context, jobID string) (llamaparse.Result, error)
}

// Queue is the River queue the pipeline's jobs run on.
const Queue = "pipeline"

// Options tune the pipeline.
type Options struct {
	Workers         int           // concurrent stage jobs in this process (River MaxWorkers)
	MaxAttempts     int           // attempts per stage before dead-letter
	RetryBase       time.Duration // first retry delay; doubles per attempt, ±20% jitter
	RetryMax        time.Duration // cap on the retry delay
	JobTimeout      time.Duration // a stage attempt is cancelled after this
	RescueAfter     time.Duration // a job whose worker vanished is retried after this
	EmbedBatch      int           // texts per embedding micro-batch
	EmbedBatchDelay time.Duration // pause after each committed micro-batch (throttling, crash tests)
	MaxUploadBytes  int64         // largest raw object a stage will read
	ChunkerName     string
	ChunkerVersion  string
	ShutdownTimeout time.Duration
	// RemoteParseDeadline fails a remote parse that has not finished after this long
	// (code LLAMAPARSE_EXPIRED). Default 30 minutes.
	RemoteParseDeadline time.Duration
	// WebhookBaseURL is docpipe's public URL as LlamaParse reaches it; with
	// WebhookSecret set, remote parses ask for a webhook to
	// {WebhookBaseURL}/v1/webhooks/llamaparse/{job_id}/{hmac(job_id)} and move on as
	// soon as it arrives. Without them runs rely on polling alone.
	WebhookBaseURL string
	WebhookSecret  []byte
	// RemotePollInterval, when set, replaces the growing poll schedule
	// (1, 2, 4, 8, 16, then every 30 s) of a remote parse with a fixed interval.
	RemotePollInterval time.Duration
	// RejectPartial fails a remote parse that ends PARTIAL_SUCCESS (code
	// LLAMAPARSE_PARTIAL) instead of accepting it with a warning event.
	RejectPartial bool
	// Budgets are daily spending limits per service (ServiceOpenAI, ServiceLlamaParse).
	Budgets Budgets
	// BudgetRecheck is how often a stage paused by a spent budget looks again
	// (default 1 minute; it also resumes at the next UTC day).
	BudgetRecheck time.Duration
	// Now is the clock for billing days (nil = time.Now); tests move it.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = time.Minute
	}
	if o.RescueAfter <= o.JobTimeout {
		o.RescueAfter = o.JobTimeout + 30*time.Second
	}
	if o.BudgetRecheck <= 0 {
		o.BudgetRecheck = time.Minute
	}
	if o.EmbedBatch <= 0 {
		o.EmbedBatch = 64
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 50 << 20
	}
	if o.ChunkerName == "" {
		o.ChunkerName, o.ChunkerVersion = chunk.Name, chunk.Version
	}
	if o.RemoteParseDeadline <= 0 {
		o.RemoteParseDeadline = 30 * time.Minute
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
}

// Pipeline wires the stages to River and Postgres.
type Pipeline struct {
	pool     *pgxpool.Pool
	river    *river.Client[pgx.Tx]
	store    storage.Store
	parser   Parser
	remote   RemoteParser
	chunker  Chunker
	embedder embed.Embedder
	log      *slog.Logger
	opts     Options
	workerID string
	retry    *retryPolicy
}

// Deps are the parts a Pipeline needs.
type Deps struct {
	Pool     *pgxpool.Pool
	Store    storage.Store
	Parser   Parser
	Remote   RemoteParser // when set, the parse stage uses it instead of Parser
	Chunker  Chunker
	Embedder embed.Embedder
	Log      *slog.Logger
	// Middleware wraps every stage job (metrics.RiverMiddleware: attempts, rescues).
	Middleware []rivertype.Middleware
}

// New builds a pipeline. Call Start to run workers; without Start it can still submit
// documents and re-drive jobs (their jobs are inserted for other processes' workers).
func New(d Deps, opts Options) (*Pipeline, error) {
	opts.defaults()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	p := &Pipeline{
		pool: d.Pool, store: d.Store, parser: d.Parser, remote: d.Remote, chunker: d.Chunker, embedder: d.Embedder,
		log: d.Log, opts: opts,
		retry:    &retryPolicy{base: opts.RetryBase, max: opts.RetryMax},
		workerID: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8]),
	}
	workers := river.NewWorkers()
	for _, s := range stages {
		s.register(workers, p)
	}
	client, err := river.NewClient(riverpgxv5.New(d.Pool), &river.Config{
		ID:     p.workerID,
		Logger: slog.New(newRiverLogHandler(d.Log.With("component", "river").Handler())),
		Queues: map[string]river.QueueConfig{Queue: {
			MaxWorkers: opts.Workers,
			// River's defaults cap throughput and add ~0.5 s per stage (DESIGN.md §3).
			FetchCooldown:     2 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
		}},
		Workers:              workers,
		Middleware:           d.Middleware,
		MaxAttempts:          opts.MaxAttempts,
		JobTimeout:           opts.JobTimeout,
		RescueStuckJobsAfter: opts.RescueAfter,
		RetryPolicy:          p.retry,
		// Keep finished River rows a day for inspection; the business history is in events.
		CompletedJobRetentionPeriod: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	p.river = client
	return p, nil
}

// WorkerID identifies this process's River client (recorded on events).
func (p *Pipeline) WorkerID() string { return p.workerID }

// River exposes the River client (for the API and tests).
func (p *Pipeline) River() *river.Client[pgx.Tx] { return p.river }

// Start runs the workers until Stop.
func (p *Pipeline) Start(ctx context.Context) error {
	if (p.parser == nil && p.remote == nil) || p.chunker == nil || p.embedder == nil || p.store == nil {
		return errors.New("pipeline: Start needs a parser, chunker, embedder and store")
	}
	return p.river.Start(ctx)
}

// Stop stops claiming new jobs and waits for running ones up to the shutdown timeout,
// then cancels what is left (those jobs are retried by the next worker; their stage
// work is idempotent).
func (p *Pipeline) Stop(ctx context.Context) error {
	soft, cancel := context.WithTimeout(ctx, p.opts.ShutdownTimeout)
	defer cancel()
	err := p.river.Stop(soft)
	if err == nil {
		return nil
	}
	p.log.Warn("shutdown: running jobs did not finish in time; cancelling them", "timeout", p.opts.ShutdownTimeout)
	hard, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel2()
	return p.river.StopAndCancel(hard)
}

// retryPolicy is exponential backoff (base·2^(attempt-1), capped) with ±20% jitter.
// The jitter is derived from the job id and attempt, so the retry time recorded in
// last_error is the one River uses.
type retryPolicy struct{ base, max time.Duration }

func (r *retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(r.delay(job.ID, job.Attempt))
}

func (r *retryPolicy) delay(jobID int64, attempt int) time.Duration {
	d := r.base
	for i := 1; i < attempt && d < r.max; i++ {
		d *= 2
	}
	d = min(d, r.max)
	rng := rand.New(rand.NewPCG(uint64(jobID), uint64(attempt)))
	return time.Duration(float64(d) * (0.8 + 0.4*rng.Float64()))
}
