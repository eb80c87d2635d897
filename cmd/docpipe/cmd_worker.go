package main

import (
	"context"

	"github.com/spf13/cobra"
)

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run pipeline workers until SIGINT/SIGTERM (then finish or release in-flight jobs)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a, err := setup(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			// River runs on its own context so a signal triggers a graceful stop, not a hard cancel.
			if err := a.pipe.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			a.log.Info("worker started", "worker_id", a.pipe.WorkerID(), "concurrency", a.cfg.WorkerConcurrency)
			<-ctx.Done()
			a.log.Info("shutting down: no new jobs; waiting for running ones", "timeout", a.cfg.ShutdownTimeout)
			err = a.pipe.Stop(context.Background())
			a.log.Info("worker stopped")
			return err
		},
	}
}
