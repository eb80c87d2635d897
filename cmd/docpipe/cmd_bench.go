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
		observe       bool
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the pipeline end to end (local parser and embedder, one worker process)",
		Long: `bench runs two workloads, each --runs times in a fresh database with a fresh
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
requests failed.`,
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
			variants := []bool{false}
			if observe {
				variants = []bool{false, true}
			}
			stderr := cmd.ErrOrStderr()
			// workload runs docs(run) --runs times per variant and returns one summary per variant.
			seq := 0
			workload := func(label, name string, docs func(seq int) []bench.Doc) ([]bench.Summary, error) {
				results := make([][]bench.Result, len(variants))
				for i := range runs {
					for k := range variants {
						// Interleaved and mirrored (plain, observed, observed, plain, …): drift
						// during the benchmark weighs on both variants alike.
						v := k
						if i%2 == 1 {
							v = len(variants) - 1 - k
						}
						observed := variants[v]
						o.Observe = observed
						seq++
						r, err := bench.Run(ctx, o, docs(seq))
						tag := ""
						if observe {
							tag = map[bool]string{false: " plain", true: " observed"}[observed]
						}
						if err != nil {
							return nil, fmt.Errorf("%s run %d%s: %w", label, i+1, tag, err)
						}
						fmt.Fprintf(stderr, "%s run %d%s: %v, %d chunks, %.1f docs/s, peak RSS %d MiB, CPU worker %.2fs Postgres %.2fs",
							label, i+1, tag, r.Elapsed.Round(time.Millisecond), r.Chunks, r.DocsPerSec(), r.PeakRSSKiB/1024, r.WorkerCPU, r.PostgresCPU)
						if observed {
							fmt.Fprintf(stderr, " serve %.2fs; %s", r.Observed.ServeCPU, observeLine(r.Observed))
						}
						fmt.Fprintln(stderr)
						results[v] = append(results[v], r)
					}
				}
				var out []bench.Summary
				for v, observed := range variants {
					n := name
					if observed {
						n += ", observed"
					}
					out = append(out, bench.Summarize(n, results[v]))
				}
				return out, nil
			}
			var groups [][]bench.Summary
			if pdfPath != "" {
				data, err := os.ReadFile(pdfPath)
				if err != nil {
					return fmt.Errorf("--pdf: %w", err)
				}
				g, err := workload("pdf", filepath.Base(pdfPath), func(int) []bench.Doc {
					return []bench.Doc{{Name: filepath.Base(pdfPath), Data: data}}
				})
				if err != nil {
					return err
				}
				groups = append(groups, g)
			}
			if small > 0 {
				g, err := workload("small", fmt.Sprintf("%d one-page PDFs", small), func(seq int) []bench.Doc {
					docs := make([]bench.Doc, small)
					for j := range docs {
						// Different bytes per run and document: nothing is deduplicated. Six-digit
						// numbers keep every document the same length in every run and variant
						// (a seventh digit adds enough tokens for a second chunk).
						docs[j] = bench.Doc{Name: fmt.Sprintf("one-page-%03d.pdf", j), Data: pdfgen.OnePager(100000 + seq*small + j)}
					}
					return docs
				})
				if err != nil {
					return err
				}
				groups = append(groups, g)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "WORKLOAD\tRUNS\tMEDIAN TIME\tDOCS/S\tCHUNKS/S\tPEAK RSS (MiB)\n")
			for _, g := range groups {
				for _, s := range g {
					fmt.Fprintf(tw, "%s\t%d\t%.2fs\t%.1f\t%.0f\t%.0f\n", s.Name, len(s.Runs), s.MedianTime.Seconds(), s.DocsPerSec, s.ChunksPerSec, s.PeakRSSMiB)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !observe {
				return nil
			}
			failed := 0
			for _, g := range groups {
				plain, observed := g[0], g[1]
				pw, ppg := meanCPU(plain)
				ow, opg := meanCPU(observed)
				fmt.Fprintf(cmd.OutOrStdout(), "%s: observed vs plain: %+.1f%% (target ≤ 5%%)\n", plain.Name, 100*bench.Overhead(plain, observed))
				fmt.Fprintf(cmd.OutOrStdout(), "  median of the %d back-to-back run pairs: %+.1f%%\n", len(observed.Runs), 100*bench.PairedOverhead(plain.Runs, observed.Runs))
				fmt.Fprintf(cmd.OutOrStdout(), "  mean CPU per run, plain → observed: worker %.2fs → %.2fs, Postgres %.2fs → %.2fs, serve %.2fs\n",
					pw, ow, ppg, opg, observed.Observed.ServeCPU/float64(max(len(observed.Runs), 1)))
				fmt.Fprintf(cmd.OutOrStdout(), "  observers over %d runs: %s\n", len(observed.Runs), observeLine(observed.Observed))
				failed += observed.Observed.Failed()
			}
			if failed > 0 {
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

// meanCPU is the mean CPU seconds per run of the worker and of Postgres.
func meanCPU(s bench.Summary) (worker, postgres float64) {
	for _, r := range s.Runs {
		worker += r.WorkerCPU
		postgres += r.PostgresCPU
	}
	n := float64(max(len(s.Runs), 1))
	return worker / n, postgres / n
}

// observeLine is the observers' counts for people.
func observeLine(s bench.ObserveStats) string {
	line := fmt.Sprintf("worker /metrics %d scrapes (%d failed), serve /metrics %d (%d failed), dashboard %d requests (%d not 2xx), serve peak RSS %d MiB",
		s.WorkerScrapes, s.WorkerFailed, s.ServeScrapes, s.ServeFailed, s.DashRequests, s.DashFailed, s.ServePeakRSSKiB/1024)
	if s.FirstError != "" {
		line += "; first error: " + s.FirstError
	}
	return line
}
