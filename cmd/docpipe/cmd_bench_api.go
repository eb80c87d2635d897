package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/bench"
)

func benchAPICmd(adminURL, clusterDir *string, clusterPort *int, workerEnv *[]string) *cobra.Command {
	var (
		runs int
		ao   bench.APIOptions
	)
	c := &cobra.Command{
		Use:   "api",
		Short: "HTTP API under load: --rate uploads/s for --duration against one docpipe serve + one docpipe worker",
		Long: `api starts, per run, a fresh database, one 'docpipe serve --addr 127.0.0.1:0' and one
'docpipe worker' process (request, upload and active-job limits off), creates an API key,
and sends --rate distinct small documents per second for --duration through
POST /v1/documents (multipart, open loop: arrivals never wait for answers), after a
--warmup at the same rate that is drained before anything is measured. It waits until
every accepted document is complete and reports requests, errors, upload latency
p50/p99, upload→complete p50/p99 (upload_jobs created_at → finished_at), the most runs
in flight, completions/s, both processes' RSS after the warm-up and at the end, CPU per
process during the load, and each stage's queue wait and run time. With --runs > 1 each
figure is the median over the runs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := benchOptions(cmd, *adminURL, *clusterDir, *clusterPort, *workerEnv, ao.PDF)
			if err != nil {
				return err
			}
			results, err := bench.APIRuns(cmd.Context(), o, ao, runs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return bench.WriteAPISummary(cmd.OutOrStdout(), ao, results)
		},
	}
	c.Flags().IntVar(&runs, "runs", 1, "runs (each figure is the median over them)")
	c.Flags().IntVar(&ao.Rate, "rate", 50, "uploads per second (open loop)")
	c.Flags().DurationVar(&ao.Duration, "duration", time.Minute, "how long uploads arrive (measured)")
	c.Flags().DurationVar(&ao.Warmup, "warmup", 10*time.Second, "uploads at --rate before the measurement, drained before RSS is sampled")
	c.Flags().BoolVar(&ao.PDF, "pdf", false, "upload generated one-page PDFs instead of small markdown documents")
	return c
}
