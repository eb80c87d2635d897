package bench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// String is the run for people: time, chunks, rate, memory and CPU.
func (r Result) String() string {
	return fmt.Sprintf("%v, %d chunks, %.1f docs/s, peak RSS %d MiB, CPU worker %.2fs Postgres %.2fs",
		r.Elapsed.Round(time.Millisecond), r.Chunks, r.DocsPerSec(), r.PeakRSSKiB/1024, r.WorkerCPU, r.PostgresCPU)
}

// String is the observers' counts for people.
func (s ObserveStats) String() string {
	line := fmt.Sprintf("worker /metrics %d scrapes (%d failed), serve /metrics %d (%d failed), dashboard %d requests (%d not 2xx), serve peak RSS %d MiB",
		s.WorkerScrapes, s.WorkerFailed, s.ServeScrapes, s.ServeFailed, s.DashRequests, s.DashFailed, s.ServePeakRSSKiB/1024)
	if s.FirstError != "" {
		line += "; first error: " + s.FirstError
	}
	return line
}

// MeanCPU is the mean CPU seconds per run of the worker and of Postgres.
func (s Summary) MeanCPU() (worker, postgres float64) {
	for _, r := range s.Runs {
		worker += r.WorkerCPU
		postgres += r.PostgresCPU
	}
	n := float64(max(len(s.Runs), 1))
	return worker / n, postgres / n
}

// WriteSummaries prints the medians of every workload and variant as a table.
func WriteSummaries(w io.Writer, groups [][]Summary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKLOAD\tRUNS\tMEDIAN TIME\tDOCS/S\tCHUNKS/S\tPEAK RSS (MiB)\n")
	for _, g := range groups {
		for _, s := range g {
			fmt.Fprintf(tw, "%s\t%d\t%.2fs\t%.1f\t%.0f\t%.0f\n", s.Name, len(s.Runs), s.MedianTime.Seconds(), s.DocsPerSec, s.ChunksPerSec, s.PeakRSSMiB)
		}
	}
	return tw.Flush()
}

// WriteOverhead prints what observing cost per workload (each group: plain, observed)
// and returns how many observer requests failed (then the observed runs were not
// fully observed).
func WriteOverhead(w io.Writer, groups [][]Summary) (failed int) {
	for _, g := range groups {
		plain, observed := g[0], g[1]
		pw, ppg := plain.MeanCPU()
		ow, opg := observed.MeanCPU()
		fmt.Fprintf(w, "%s: observed vs plain: %+.1f%% (target ≤ 5%%)\n", plain.Name, 100*Overhead(plain, observed))
		fmt.Fprintf(w, "  median of the %d back-to-back run pairs: %+.1f%%\n", len(observed.Runs), 100*PairedOverhead(plain.Runs, observed.Runs))
		fmt.Fprintf(w, "  mean CPU per run, plain → observed: worker %.2fs → %.2fs, Postgres %.2fs → %.2fs, serve %.2fs\n",
			pw, ow, ppg, opg, observed.Observed.ServeCPU/float64(max(len(observed.Runs), 1)))
		fmt.Fprintf(w, "  observers over %d runs: %s\n", len(observed.Runs), observed.Observed)
		failed += observed.Observed.Failed()
	}
	return failed
}

// WriteThroughput prints the median of throughput results sorted by Share.
func WriteThroughput(w io.Writer, to ThroughputOptions, results []ThroughputResult) error {
	if len(results) == 0 {
		return nil
	}
	m := results[len(results)/2]
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "LIMITS\tRUNS\tMEDIAN SHARE OF TPM\tTOKENS/MIN\t429 SHARE\tDOCS COMPLETE\n")
	fmt.Fprintf(tw, "%d TPM, %d RPM\t%d\t%.1f%%\t%.0f\t%.2f%%\t%d/%d\n", to.TPM, to.RPM, len(results), 100*m.Share,
		float64(m.WindowTokens)/to.Window.Minutes(), 100*float64(m.Status429)/float64(max(m.Requests, 1)), m.Complete, m.Docs)
	return tw.Flush()
}

// writeDetail prints one API run's figures.
func (r APIResult) writeDetail(w io.Writer, run int) {
	fmt.Fprintf(w, "run %d: %d uploads, %d errors %v, API p50 %s p99 %s max %s (generator lag ≤ %s); upload→complete p50 %s p99 %s; drain %s; max backlog %d runs, %d River jobs waiting; %.1f completions/s during the load\n",
		run, r.Requests, r.Errors, r.ByStatus, millis(r.APIp50), millis(r.APIp99), millis(r.APIMax), millis(r.SendLag), secs(r.E2Ep50), secs(r.E2Ep99),
		secs(r.Drain), r.MaxBacklog, r.MaxRiverQueue, r.DonePerSec)
	fmt.Fprintf(w, "run %d: RSS serve %d → %d MiB (peak %d), worker %d → %d MiB (peak %d); CPU during the load (cores of %d): serve %.2f, worker %.2f, postgres %.2f, whole machine %.2f\n",
		run, r.ServeRSSStart/1024, r.ServeRSSEnd/1024, r.ServeHWM/1024, r.WorkerRSSStart/1024, r.WorkerRSSEnd/1024, r.WorkerHWM/1024,
		r.Cores, r.ServeCPU, r.WorkerCPU, r.PostgresCPU, r.MachineCPU)
	var st []string
	for _, s := range r.Stages {
		st = append(st, fmt.Sprintf("%s ×%d wait p50 %s p99 %s run %s", s.Kind, s.Jobs, millis(s.WaitP50), millis(s.WaitP99), millis(s.RunMean)))
	}
	fmt.Fprintf(w, "run %d: stages: %s\n", run, strings.Join(st, "; "))
}

// WriteAPISummary prints the median of every figure over the API runs.
func WriteAPISummary(w io.Writer, ao APIOptions, rs []APIResult) error {
	if len(rs) == 0 {
		return nil
	}
	medD := func(f func(APIResult) time.Duration) string {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return millis(v[len(v)/2])
	}
	medS := func(f func(APIResult) time.Duration) string {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return secs(v[len(v)/2])
	}
	medF := func(f func(APIResult) float64) float64 {
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
		medD(func(r APIResult) time.Duration { return r.APIp50 }),
		medD(func(r APIResult) time.Duration { return r.APIp99 }),
		medS(func(r APIResult) time.Duration { return r.E2Ep50 }),
		medS(func(r APIResult) time.Duration { return r.E2Ep99 }),
		medF(func(r APIResult) float64 { return float64(r.MaxBacklog) }),
		medF(func(r APIResult) float64 { return r.DonePerSec }),
		medF(func(r APIResult) float64 { return float64(r.ServeRSSStart) / 1024 }),
		medF(func(r APIResult) float64 { return float64(r.ServeRSSEnd) / 1024 }),
		medF(func(r APIResult) float64 { return growth(r.ServeRSSStart, r.ServeRSSEnd) }),
		medF(func(r APIResult) float64 { return float64(r.WorkerRSSStart) / 1024 }),
		medF(func(r APIResult) float64 { return float64(r.WorkerRSSEnd) / 1024 }),
		medF(func(r APIResult) float64 { return growth(r.WorkerRSSStart, r.WorkerRSSEnd) }))
	return tw.Flush()
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
