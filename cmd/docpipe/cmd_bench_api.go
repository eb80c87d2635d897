package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
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
			url, err := benchCluster(cmd, *adminURL, *clusterDir, *clusterPort)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if ao.PDF {
				warm := exec.CommandContext(cmd.Context(), self, "parse", "--warmup")
				warm.Env = append(os.Environ(), *workerEnv...)
				if out, err := warm.CombinedOutput(); err != nil {
					return fmt.Errorf("warm-up: %w\n%s", err, out)
				}
			}
			o := bench.Options{AdminURL: url, WorkerBin: self, WorkerEnv: *workerEnv}
			var results []bench.APIResult
			for i := range runs {
				ao.Seed = int(time.Now().UnixNano()%1000) + i
				r, err := bench.RunAPI(cmd.Context(), o, ao)
				if err != nil {
					return fmt.Errorf("run %d: %w", i+1, err)
				}
				printAPIRunDetail(cmd.ErrOrStderr(), i+1, r)
				results = append(results, r)
			}
			return printAPISummary(cmd.OutOrStdout(), ao, results)
		},
	}
	c.Flags().IntVar(&runs, "runs", 1, "runs (each figure is the median over them)")
	c.Flags().IntVar(&ao.Rate, "rate", 50, "uploads per second (open loop)")
	c.Flags().DurationVar(&ao.Duration, "duration", time.Minute, "how long uploads arrive (measured)")
	c.Flags().DurationVar(&ao.Warmup, "warmup", 10*time.Second, "uploads at --rate before the measurement, drained before RSS is sampled")
	c.Flags().BoolVar(&ao.PDF, "pdf", false, "upload generated one-page PDFs instead of small markdown documents")
	return c
}

func printAPIRunDetail(w io.Writer, run int, r bench.APIResult) {
	fmt.Fprintf(w, "run %d: %d uploads, %d errors %v, API p50 %s p99 %s max %s (generator lag ≤ %s); upload→complete p50 %s p99 %s; drain %s; max backlog %d runs, %d River jobs waiting; %.1f completions/s during the load\n",
		run, r.Requests, r.Errors, r.ByStatus, benchMS(r.APIp50), benchMS(r.APIp99), benchMS(r.APIMax), benchMS(r.SendLag), benchSecs(r.E2Ep50), benchSecs(r.E2Ep99),
		benchSecs(r.Drain), r.MaxBacklog, r.MaxRiverQueue, r.DonePerSec)
	fmt.Fprintf(w, "run %d: RSS serve %d → %d MiB (peak %d), worker %d → %d MiB (peak %d); CPU during the load (cores of %d): serve %.2f, worker %.2f, postgres %.2f, whole machine %.2f\n",
		run, r.ServeRSSStart/1024, r.ServeRSSEnd/1024, r.ServeHWM/1024, r.WorkerRSSStart/1024, r.WorkerRSSEnd/1024, r.WorkerHWM/1024,
		r.Cores, r.ServeCPU, r.WorkerCPU, r.PostgresCPU, r.MachineCPU)
	var st []string
	for _, s := range r.Stages {
		st = append(st, fmt.Sprintf("%s ×%d wait p50 %s p99 %s run %s", s.Kind, s.Jobs, benchMS(s.WaitP50), benchMS(s.WaitP99), benchMS(s.RunMean)))
	}
	fmt.Fprintf(w, "run %d: stages: %s\n", run, strings.Join(st, "; "))
}

func printAPISummary(w io.Writer, ao bench.APIOptions, rs []bench.APIResult) error {
	if len(rs) == 0 {
		return nil
	}
	medD := func(f func(bench.APIResult) time.Duration) time.Duration {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	medF := func(f func(bench.APIResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	growth := func(a, b int64) float64 {
		if a == 0 {
			return 0
		}
		return 100 * float64(b-a) / float64(a)
	}
	requests, errs := 0, 0
	for _, r := range rs {
		requests += r.Requests
		errs += r.Errors
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RUNS\tUPLOADS/RUN\tERRORS\tAPI P50\tAPI P99\tUPLOAD→COMPLETE P50\tP99\tMAX BACKLOG\tDONE/S\tSERVE RSS (MiB)\tWORKER RSS (MiB)\n")
	fmt.Fprintf(tw, "%d\t%d at %d/s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%.1f\t%.0f → %.0f (%+.0f%%)\t%.0f → %.0f (%+.0f%%)\n",
		len(rs), requests/len(rs), ao.Rate, errs,
		benchMS(medD(func(r bench.APIResult) time.Duration { return r.APIp50 })),
		benchMS(medD(func(r bench.APIResult) time.Duration { return r.APIp99 })),
		benchSecs(medD(func(r bench.APIResult) time.Duration { return r.E2Ep50 })),
		benchSecs(medD(func(r bench.APIResult) time.Duration { return r.E2Ep99 })),
		medF(func(r bench.APIResult) float64 { return float64(r.MaxBacklog) }),
		medF(func(r bench.APIResult) float64 { return r.DonePerSec }),
		medF(func(r bench.APIResult) float64 { return float64(r.ServeRSSStart) / 1024 }),
		medF(func(r bench.APIResult) float64 { return float64(r.ServeRSSEnd) / 1024 }),
		medF(func(r bench.APIResult) float64 { return growth(r.ServeRSSStart, r.ServeRSSEnd) }),
		medF(func(r bench.APIResult) float64 { return float64(r.WorkerRSSStart) / 1024 }),
		medF(func(r bench.APIResult) float64 { return float64(r.WorkerRSSEnd) / 1024 }),
		medF(func(r bench.APIResult) float64 { return growth(r.WorkerRSSStart, r.WorkerRSSEnd) }))
	return tw.Flush()
}

func benchMS(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
func benchSecs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
