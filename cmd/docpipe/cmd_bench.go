package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/bench"
	"github.com/docpipe/docpipe/internal/devenv"
	"github.com/docpipe/docpipe/internal/pdfgen"
)

func benchCmd() *cobra.Command {
	var (
		runs, small   int
		pdfPath       string
		adminURL      string
		clusterDir    string
		clusterPort   int
		workerEnvFlag []string
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the pipeline end to end (local parser and embedder, one worker process)",
		Long: `bench runs two workloads, each --runs times in a fresh database with a fresh
'docpipe worker' process, and prints the median: the large PDF (default the 232-page
Medicare Evidence of Coverage from ../shared/corpus) and --small generated one-page PDFs.
It reports end-to-end time (first submit to last document complete), documents/s,
chunks/s and the worker process's peak RSS (VmHWM).

Without --admin-url it starts (and leaves running) a private cluster in --cluster-dir,
with fsync on. Worker settings come from the environment (DOCPIPE_*) plus --worker-env.
pdfium is compiled into DOCPIPE_CACHE_DIR before the first run, so the figures are
steady state (the one-time compile costs ~4-7 s and ~500 MB on the first PDF a machine sees).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			adminURL, err := benchCluster(cmd, adminURL, clusterDir, clusterPort)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			// Steady-state figures: compile pdfium into the cache first (a one-time cost
			// per machine, reported by `docpipe parse --warmup`).
			warm := exec.CommandContext(ctx, self, "parse", "--warmup")
			warm.Env = append(os.Environ(), workerEnvFlag...)
			if out, err := warm.CombinedOutput(); err != nil {
				return fmt.Errorf("warm-up: %w\n%s", err, out)
			}
			o := bench.Options{AdminURL: adminURL, WorkerBin: self, WorkerEnv: workerEnvFlag}
			var summaries []bench.Summary
			if pdfPath != "" {
				data, err := os.ReadFile(pdfPath)
				if err != nil {
					return fmt.Errorf("--pdf: %w", err)
				}
				var results []bench.Result
				for i := range runs {
					r, err := bench.Run(ctx, o, []bench.Doc{{Name: filepath.Base(pdfPath), Data: data}})
					if err != nil {
						return fmt.Errorf("pdf run %d: %w", i+1, err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "pdf run %d: %v, %d chunks, peak RSS %d MiB\n", i+1, r.Elapsed.Round(1e6), r.Chunks, r.PeakRSSKiB/1024)
					results = append(results, r)
				}
				summaries = append(summaries, bench.Summarize(filepath.Base(pdfPath), results))
			}
			if small > 0 {
				docs := make([]bench.Doc, small)
				var results []bench.Result
				for i := range runs {
					for j := range docs {
						// Different bytes per run and document: nothing is deduplicated.
						docs[j] = bench.Doc{Name: fmt.Sprintf("one-page-%03d.pdf", j), Data: pdfgen.OnePager(i*100000 + j)}
					}
					r, err := bench.Run(ctx, o, docs)
					if err != nil {
						return fmt.Errorf("small-docs run %d: %w", i+1, err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "small run %d: %v, %.1f docs/s, peak RSS %d MiB\n", i+1, r.Elapsed.Round(1e6), r.DocsPerSec(), r.PeakRSSKiB/1024)
					results = append(results, r)
				}
				summaries = append(summaries, bench.Summarize(fmt.Sprintf("%d one-page PDFs", small), results))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "WORKLOAD\tRUNS\tMEDIAN TIME\tDOCS/S\tCHUNKS/S\tPEAK RSS (MiB)\n")
			for _, s := range summaries {
				fmt.Fprintf(tw, "%s\t%d\t%.2fs\t%.1f\t%.0f\t%.0f\n", s.Name, len(s.Runs), s.MedianTime.Seconds(), s.DocsPerSec, s.ChunksPerSec, s.PeakRSSMiB)
			}
			return tw.Flush()
		},
	}
	c.Flags().IntVar(&runs, "runs", 5, "runs per workload (the median is reported)")
	c.Flags().IntVar(&small, "small", 200, "number of generated one-page PDFs (0 = skip)")
	c.Flags().StringVar(&pdfPath, "pdf", "../shared/corpus/scan_classic_hmo.pdf", "large PDF to ingest (\"\" = skip)")
	c.PersistentFlags().StringVar(&adminURL, "admin-url", "", "superuser URL of an existing cluster (default: start a private one)")
	c.PersistentFlags().StringVar(&clusterDir, "cluster-dir", ".docpipe/bench-pg", "private cluster folder")
	c.PersistentFlags().IntVar(&clusterPort, "cluster-port", 54340, "private cluster port")
	c.PersistentFlags().StringArrayVar(&workerEnvFlag, "worker-env", nil, "extra NAME=value for the worker process (repeatable)")
	c.AddCommand(benchThroughputCmd(&adminURL, &clusterDir, &clusterPort, &workerEnvFlag),
		benchAPICmd(&adminURL, &clusterDir, &clusterPort, &workerEnvFlag))
	return c
}

// benchCluster returns adminURL, or starts the private benchmark cluster (fsync on).
func benchCluster(cmd *cobra.Command, adminURL, dir string, port int) (string, error) {
	if adminURL != "" {
		return adminURL, nil
	}
	cl := &devenv.Cluster{Dir: dir, Port: port, Fsync: true}
	if err := cl.Start(cmd.Context()); err != nil {
		return "", err
	}
	return cl.URL("postgres"), nil
}

func benchThroughputCmd(adminURL, clusterDir *string, clusterPort *int, workerEnv *[]string) *cobra.Command {
	var (
		runs           int
		to             bench.ThroughputOptions
		warmup, window time.Duration
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
			url, err := benchCluster(cmd, *adminURL, *clusterDir, *clusterPort)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			to.Warmup, to.Window = warmup, window
			o := bench.Options{AdminURL: url, WorkerBin: self, WorkerEnv: *workerEnv}
			var results []bench.ThroughputResult
			for i := range runs {
				r, err := bench.Throughput(cmd.Context(), o, to)
				if err != nil {
					return fmt.Errorf("run %d: %w", i+1, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "run %d: %.1f%% of %d TPM over %s, %d requests, %d answered 429, %d/%d documents complete\n",
					i+1, 100*r.Share, to.TPM, window, r.Requests, r.Status429, r.Complete, r.Docs)
				results = append(results, r)
			}
			sort.Slice(results, func(i, j int) bool { return results[i].Share < results[j].Share })
			m := results[len(results)/2]
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "LIMITS\tRUNS\tMEDIAN SHARE OF TPM\tTOKENS/MIN\t429 SHARE\tDOCS COMPLETE\n")
			fmt.Fprintf(tw, "%d TPM, %d RPM\t%d\t%.1f%%\t%.0f\t%.2f%%\t%d/%d\n", to.TPM, to.RPM, len(results), 100*m.Share,
				float64(m.WindowTokens)/window.Minutes(), 100*float64(m.Status429)/float64(max(m.Requests, 1)), m.Complete, m.Docs)
			return tw.Flush()
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "runs (the median is reported)")
	c.Flags().IntVar(&to.TPM, "tpm", 1_000_000, "tokens per minute allowed by the twin")
	c.Flags().IntVar(&to.RPM, "rpm", 3000, "requests per minute allowed by the twin")
	c.Flags().DurationVar(&warmup, "warmup", time.Minute, "not measured (the limits start with a full minute's budget)")
	c.Flags().DurationVar(&window, "window", 2*time.Minute, "measured")
	return c
}
