package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/docpipe/docpipe/internal/pdfgen"
)

// WarmUp compiles pdfium into the worker's cache (`docpipe parse --warmup`, with
// env on top of this process's environment), so the figures that follow are steady
// state: the one-time compile costs ~4-7 s and ~500 MB on the first PDF a machine sees.
func WarmUp(ctx context.Context, bin string, env []string) error {
	warm := exec.CommandContext(ctx, bin, "parse", "--warmup")
	warm.Env = append(os.Environ(), env...)
	if out, err := warm.CombinedOutput(); err != nil {
		return fmt.Errorf("warm-up: %w\n%s", err, out)
	}
	return nil
}

// Workload is one set of documents to benchmark, made afresh for every run.
type Workload struct {
	Label string              // for the progress lines, e.g. "pdf"
	Name  string              // in the table, e.g. the file's name
	Docs  func(seq int) []Doc // seq numbers the run among all the suite's runs
}

// FileWorkload ingests the file at path, the same bytes every run.
func FileWorkload(label, path string) (Workload, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Workload{}, err
	}
	name := filepath.Base(path)
	return Workload{Label: label, Name: name, Docs: func(int) []Doc { return []Doc{{Name: name, Data: data}} }}, nil
}

// OnePagerWorkload ingests n generated one-page PDFs, different bytes in every run and
// document, so nothing is deduplicated. Six-digit numbers keep every document the same
// length in every run and variant (a seventh digit adds enough tokens for a second
// chunk).
func OnePagerWorkload(label string, n int) Workload {
	return Workload{Label: label, Name: fmt.Sprintf("%d one-page PDFs", n), Docs: func(seq int) []Doc {
		docs := make([]Doc, n)
		for j := range docs {
			docs[j] = Doc{Name: fmt.Sprintf("one-page-%03d.pdf", j), Data: pdfgen.OnePager(100000 + seq*n + j)}
		}
		return docs
	}}
}

// Suite runs workloads Runs times each (Run), and with Observe every run twice, plain
// and observed (Options.Observe), interleaved and mirrored (plain, observed, observed,
// plain, …) so that drift during the benchmark weighs on both alike.
type Suite struct {
	Options
	Runs    int
	Observe bool
	// Progress receives a line per run (nil: none).
	Progress io.Writer
	seq      int
}

// Run runs each workload and returns, per workload, one Summary per variant: plain,
// then (Observe) observed.
func (s *Suite) Run(ctx context.Context, workloads []Workload) ([][]Summary, error) {
	var groups [][]Summary
	for _, w := range workloads {
		g, err := s.workload(ctx, w)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func (s *Suite) workload(ctx context.Context, w Workload) ([]Summary, error) {
	variants := []bool{false}
	if s.Observe {
		variants = []bool{false, true}
	}
	results := make([][]Result, len(variants))
	for i := range s.Runs {
		for k := range variants {
			v := k
			if i%2 == 1 {
				v = len(variants) - 1 - k
			}
			o := s.Options
			o.Observe = variants[v]
			s.seq++
			r, err := Run(ctx, o, w.Docs(s.seq))
			tag := ""
			if s.Observe {
				tag = map[bool]string{false: " plain", true: " observed"}[o.Observe]
			}
			if err != nil {
				return nil, fmt.Errorf("%s run %d%s: %w", w.Label, i+1, tag, err)
			}
			line := r.String()
			if o.Observe {
				line += fmt.Sprintf(" serve %.2fs; %s", r.Observed.ServeCPU, r.Observed)
			}
			s.report("%s run %d%s: %s\n", w.Label, i+1, tag, line)
			results[v] = append(results[v], r)
		}
	}
	var out []Summary
	for v, observed := range variants {
		name := w.Name
		if observed {
			name += ", observed"
		}
		out = append(out, Summarize(name, results[v]))
	}
	return out, nil
}

func (s *Suite) report(format string, a ...any) {
	if s.Progress != nil {
		fmt.Fprintf(s.Progress, format, a...)
	}
}

// ThroughputRuns runs Throughput runs times, reporting each run to progress (nil:
// not), and returns the results sorted by Share.
func ThroughputRuns(ctx context.Context, o Options, to ThroughputOptions, runs int, progress io.Writer) ([]ThroughputResult, error) {
	var results []ThroughputResult
	for i := range runs {
		r, err := Throughput(ctx, o, to)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		if progress != nil {
			fmt.Fprintf(progress, "run %d: %.1f%% of %d TPM over %s, %d requests, %d answered 429, %d/%d documents complete\n",
				i+1, 100*r.Share, to.TPM, to.Window, r.Requests, r.Status429, r.Complete, r.Docs)
		}
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Share < results[j].Share })
	return results, nil
}

// APIRuns runs RunAPI runs times, each with its own seed, reporting each run's
// details to progress (nil: not).
func APIRuns(ctx context.Context, o Options, ao APIOptions, runs int, progress io.Writer) ([]APIResult, error) {
	var results []APIResult
	for i := range runs {
		ao.Seed = int(time.Now().UnixNano()%1000) + i
		r, err := RunAPI(ctx, o, ao)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		if progress != nil {
			r.writeDetail(progress, i+1)
		}
		results = append(results, r)
	}
	return results, nil
}
