package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/bench"
	"github.com/docpipe/docpipe/internal/devenv"
)

// benchLong is `docpipe bench --help`.
const benchLong = `bench runs two workloads, each --runs times in a fresh database with a fresh
'docpipe worker' process, and prints the median: the large PDF (default the 232-page
Medicare Evidence of Coverage from testdata/corpus) and --small generated one-page PDFs.
It reports end-to-end time (first submit to last document complete), documents/s,
chunks/s and the worker process's peak RSS (VmHWM).

Without --admin-url it starts (and leaves running) a private cluster in --cluster-dir,
with fsync on. Worker settings come from the environment (DOCPIPE_*) plus --worker-env.
pdfium is compiled into DOCPIPE_CACHE_DIR before the first run, so the figures are
steady state (the one-time compile costs ~4-7 s and ~500 MB on the first PDF a machine sees).

--observe measures what monitoring costs: every run is done twice, plain and observed,
interleaved and mirrored (plain, observed, observed, plain, …) so that drift weighs on
both alike. The observed run starts the worker with --health-addr and a 'docpipe serve'
on the same database; it scrapes both /metrics every second and replays the dashboard's
polls (dashboard.PollPaths every dashboard.PollInterval) with an admin API key, from one
round before the first submit (the page is already open) to the last completion. It
prints both medians, "observed vs plain: +x.x%" per workload, the median of the run
pairs, CPU per process and the scrape and request counts, and fails if any of those
requests failed.`

func benchCmd() *cobra.Command {
	var (
		runs, small   int
		pdfPath       string
		adminURL      string
		clusterDir    string
		clusterPort   int
		workerEnvFlag []string
		observe       bool
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the pipeline end to end (local parser and embedder, one worker process)",
		Long:  benchLong,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := benchOptions(cmd, adminURL, clusterDir, clusterPort, workerEnvFlag, true)
			if err != nil {
				return err
			}
			var workloads []bench.Workload
			if pdfPath != "" {
				w, err := bench.FileWorkload("pdf", pdfPath)
				if err != nil {
					return fmt.Errorf("--pdf: %w", err)
				}
				workloads = append(workloads, w)
			}
			if small > 0 {
				workloads = append(workloads, bench.OnePagerWorkload("small", small))
			}
			suite := bench.Suite{Options: o, Runs: runs, Observe: observe, Progress: cmd.ErrOrStderr()}
			groups, err := suite.Run(cmd.Context(), workloads)
			if err != nil {
				return err
			}
			if err := bench.WriteSummaries(cmd.OutOrStdout(), groups); err != nil || !observe {
				return err
			}
			if failed := bench.WriteOverhead(cmd.OutOrStdout(), groups); failed > 0 {
				return fmt.Errorf("%d observer requests failed, so the observed runs were not fully observed", failed)
			}
			return nil
		},
	}
	c.Flags().IntVar(&runs, "runs", 5, "runs per workload (the median is reported)")
	c.Flags().IntVar(&small, "small", 200, "number of generated one-page PDFs (0 = skip)")
	c.Flags().BoolVar(&observe, "observe", false, "also run every workload observed (worker and serve /metrics scraped every second, the dashboard's polls replayed), interleaved with the plain runs, and report the difference")
	c.Flags().StringVar(&pdfPath, "pdf", "testdata/corpus/scan_classic_hmo.pdf", "large PDF to ingest (\"\" = skip)")
	c.PersistentFlags().StringVar(&adminURL, "admin-url", "", "superuser URL of an existing cluster (default: start a private one)")
	c.PersistentFlags().StringVar(&clusterDir, "cluster-dir", ".docpipe/bench-pg", "private cluster folder")
	c.PersistentFlags().IntVar(&clusterPort, "cluster-port", 54340, "private cluster port")
	c.PersistentFlags().StringArrayVar(&workerEnvFlag, "worker-env", nil, "extra NAME=value for the worker process (repeatable)")
	c.AddCommand(benchThroughputCmd(&adminURL, &clusterDir, &clusterPort, &workerEnvFlag),
		benchAPICmd(&adminURL, &clusterDir, &clusterPort, &workerEnvFlag))
	return c
}

// benchOptions starts the private benchmark cluster (fsync on) unless adminURL names
// one, and with warm compiles pdfium into the worker's cache first.
func benchOptions(cmd *cobra.Command, adminURL, dir string, port int, workerEnv []string, warm bool) (bench.Options, error) {
	if adminURL == "" {
		cl := &devenv.Cluster{Dir: dir, Port: port, Fsync: true}
		if err := cl.Start(cmd.Context()); err != nil {
			return bench.Options{}, err
		}
		adminURL = cl.URL("postgres")
	}
	self, err := os.Executable()
	if err != nil {
		return bench.Options{}, err
	}
	if warm {
		if err := bench.WarmUp(cmd.Context(), self, workerEnv); err != nil {
			return bench.Options{}, err
		}
	}
	return bench.Options{AdminURL: adminURL, WorkerBin: self, WorkerEnv: workerEnv}, nil
}

func benchThroughputCmd(adminURL, clusterDir *string, clusterPort *int, workerEnv *[]string) *cobra.Command {
	var (
		runs int
		to   bench.ThroughputOptions
	)
	c := &cobra.Command{
		Use:   "throughput",
		Short: "Sustained embedding throughput against the OpenAI twin at its rate limits",
		Long: `throughput runs one 'docpipe worker' with DOCPIPE_EMBED_PROVIDER=openai against the
OpenAI twin limited to --tpm and --rpm (the worker's own limiter gets the same limits),
keeps it busy with generated markdown documents, and reports the tokens embedded per
minute after --warmup as a share of --tpm, the share of requests answered 429, and
whether every document completed. Median of --runs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := benchOptions(cmd, *adminURL, *clusterDir, *clusterPort, *workerEnv, false)
			if err != nil {
				return err
			}
			results, err := bench.ThroughputRuns(cmd.Context(), o, to, runs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return bench.WriteThroughput(cmd.OutOrStdout(), to, results)
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "runs (the median is reported)")
	c.Flags().IntVar(&to.TPM, "tpm", 1_000_000, "tokens per minute allowed by the twin")
	c.Flags().IntVar(&to.RPM, "rpm", 3000, "requests per minute allowed by the twin")
	c.Flags().DurationVar(&to.Warmup, "warmup", time.Minute, "not measured (the limits start with a full minute's budget)")
	c.Flags().DurationVar(&to.Window, "window", 2*time.Minute, "measured")
	return c
}
