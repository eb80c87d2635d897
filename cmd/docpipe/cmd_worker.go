package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/metrics"
)

func workerCmd() *cobra.Command {
	var healthAddr string
	c := &cobra.Command{
		Use:   "worker",
		Short: "Run pipeline workers until SIGINT/SIGTERM (then finish or release in-flight jobs)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a, err := setupService(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			stopObserve, err := a.startWorkers(ctx)
			if err != nil {
				return err
			}
			defer stopObserve()
			if healthAddr != "" {
				stop, _, err := serveWorkerHealth(healthAddr, a)
				if err != nil {
					_ = a.pipe.Stop(context.Background())
					return err
				}
				defer stop()
			}
			<-ctx.Done()
			a.log.Info("shutting down: no new jobs; waiting for running ones", "timeout", a.cfg.ShutdownTimeout)
			err = a.pipe.Stop(context.Background())
			a.log.Info("worker stopped")
			return err
		},
	}
	c.Flags().StringVar(&healthAddr, "health-addr", "", "serve GET /healthz (process up) and /readyz (database reachable, migrations at head) on this address, e.g. 0.0.0.0:8081")
	return c
}

// serveWorkerHealth serves the worker's probes; stop shuts the server down.
func serveWorkerHealth(addr string, a *app) (stop func(), bound string, err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.New(nil, metrics.Options{}).Handler()) // this process's own counters
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	head := &db.HeadCheck{Pool: a.pool}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.pool.Ping(ctx); err != nil {
			http.Error(w, "database unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		pending, err := head.Pending(ctx)
		if err != nil {
			http.Error(w, "cannot read migration status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(pending) > 0 {
			http.Error(w, fmt.Sprintf("%d migrations pending (%s): run `docpipe migrate up`", len(pending), pending[0]), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--health-addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	a.log.Info("worker health endpoints", "addr", l.Addr().String())
	return func() { _ = srv.Close() }, l.Addr().String(), nil
}
