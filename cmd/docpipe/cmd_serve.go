package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"riverqueue.com/riverui"

	"github.com/docpipe/docpipe/internal/alerts"
	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/dashboard"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/metrics"
)

func serveCmd() *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (/v1, /healthz, /readyz, webhooks) until SIGINT/SIGTERM; --with-worker also runs pipeline workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a, err := setupService(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			return runServe(ctx, a, o, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	c.Flags().BoolVar(&o.withWorker, "with-worker", false, "also run pipeline workers in this process (DOCPIPE_WORKER_CONCURRENCY)")
	return c
}

type serveOptions struct {
	addr       string
	withWorker bool
	listener   net.Listener // already bound (docpipe dev); addr is ignored then
}

// apiOptions maps the configuration onto the API's options.
func apiOptions(cfg config.Config) (api.Options, error) {
	types, err := api.ParseAllowedTypes(cfg.AllowedTypes)
	if err != nil {
		return api.Options{}, fmt.Errorf("DOCPIPE_ALLOWED_TYPES: %w", err)
	}
	off := func(n int) int { // config 0 = no limit; api 0 = its default
		if n == 0 {
			return -1
		}
		return n
	}
	rate := float64(cfg.APIRatePerMinute) / 60
	if rate == 0 {
		rate = -1
	}
	return api.Options{
		JWT:            auth.JWTOptions{HS256Secret: []byte(cfg.JWTSecret), JWKSURL: cfg.JWKSURL, Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer},
		MaxUploadBytes: cfg.MaxUploadBytes, AllowedMIME: types, RatePerSecond: rate, RateBurst: cfg.APIRateBurst,
		UploadsPerDay: off(cfg.UploadsPerDay), MaxActiveJobs: off(cfg.MaxActiveJobs),
		PublicURL: cfg.PublicURL, BlobSignSecret: cfg.StorageSignSecret, UploadURLTTL: cfg.UploadURLTTL,
	}, nil
}

// runServe serves the API on o.addr until ctx ends, then stops taking requests,
// lets running ones finish (up to DOCPIPE_SHUTDOWN_TIMEOUT) and stops the workers.
// It prints the URL it listens on as the first line of out.
func runServe(ctx context.Context, a *app, o serveOptions, out io.Writer) error {
	opts, err := apiOptions(a.cfg)
	if err != nil {
		return err
	}
	// Metrics and the alert engine: every API process evaluates alerts when it holds
	// the election lock and answers GET /v1/alerts from the shared state.
	src := metrics.NewSource(a.pool, metrics.SourceOptions{})
	m := metrics.New(a.pool, metrics.Options{Source: src, Budgets: a.opts.Budgets, StorageCheck: a.storageCheck, Log: a.log})
	eng := alerts.New(a.pool, alerts.Options{Source: src, Budgets: a.opts.Budgets, StorageCheck: a.storageCheck,
		// A migration in flight is not waited for long: the next check is in 5 min.
		SchemaCheck: db.NewDriftChecker(a.pool, db.DriftOptions{ScratchURL: a.cfg.ScratchURL, LockWait: 2 * time.Second}).Drifted,
		WebhookURL:  a.cfg.AlertWebhookURL, Log: a.log})
	actx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
	alertsDone := make(chan struct{})
	go func() { defer close(alertsDone); _ = eng.Run(actx) }()
	defer func() { stopAlerts(); <-alertsDone }()

	handler, err := a.httpHandler(ctx, opts, m, eng)
	if err != nil {
		return err
	}
	l := o.listener
	if l == nil {
		if l, err = net.Listen("tcp", o.addr); err != nil {
			return fmt.Errorf("--addr: %w", err)
		}
	}
	if o.withWorker {
		// River runs on its own context so a signal triggers a graceful stop, not a hard cancel.
		stopObserve, err := a.startWorkers(ctx)
		if err != nil {
			l.Close()
			return err
		}
		defer stopObserve()
	}
	url := "http://" + l.Addr().String()
	fmt.Fprintf(out, "docpipe API listening on %s (OpenAPI: %s/v1/openapi.json)\n", url, url)
	a.log.Info("api listening", "addr", l.Addr().String(), "with_worker", o.withWorker)
	serveErr := a.serveHTTP(ctx, l, handler)
	if o.withWorker {
		a.log.Info("stopping workers", "timeout", a.cfg.ShutdownTimeout)
		if err := a.pipe.Stop(context.Background()); err != nil && serveErr == nil {
			serveErr = err
		}
	}
	a.log.Info("api stopped")
	return serveErr
}

// httpHandler is everything `docpipe serve` answers: the API, /metrics, the dashboard
// and River UI.
func (a *app) httpHandler(ctx context.Context, opts api.Options, m *metrics.Metrics, eng *alerts.Engine) (http.Handler, error) {
	apiHandler, err := api.New(api.Deps{
		Pool: a.pool, Pipe: a.pipe, Store: a.store, Embedder: a.embedder, Log: a.log,
		Alerts: eng, Budgets: a.opts.Budgets,
	}, opts)
	if err != nil {
		return nil, err
	}
	top := http.NewServeMux()
	top.Handle("GET /metrics", m.Handler()) // Prometheus text format, no auth (keep it on an internal network)
	dash := dashboard.Handler()             // the operator page: login, counts, documents, timelines, dead letters, alerts
	top.Handle("GET /{$}", dash)
	top.Handle("GET /ui/", dash)
	top.Handle("/", apiHandler)
	// River UI for job-level inspection, admin only (Bearer header or the cookie the
	// dashboard's sign-in sets through POST /v1/session).
	rui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(a.pipe.River(), nil), Logger: a.log.With("component", "riverui"), Prefix: "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	if err := rui.Start(ctx); err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	top.Handle("/riverui/", apiHandler.RequireAdmin(rui))
	top.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	return top, nil
}

// serveHTTP serves h on l until ctx ends, then lets running requests finish (up to
// DOCPIPE_SHUTDOWN_TIMEOUT) and cuts off the rest.
func (a *app) serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
		a.log.Info("shutting down: no new requests; waiting for running ones", "timeout", a.cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		serveErr = srv.Shutdown(sctx)
		cancel()
		if serveErr != nil {
			a.log.Warn("requests still running at the shutdown deadline were cut off", "error", serveErr)
			_ = srv.Close()
		}
		<-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}
