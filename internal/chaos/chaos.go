// Package chaos is `docpipe chaos`: it sends a set of documents through the API
// (a `docpipe serve` process and several `docpipe worker` processes, LlamaParse with
// webhooks, OpenAI embeddings and Supabase storage, all three twins injecting errors)
// while it SIGKILLs workers, restarts Postgres in immediate mode, optionally stops it
// for a while and kills the API, and then checks that nothing was lost or done twice:
// every document ends as it should, with the same chunks and vectors as a fault-free
// pass over the same set, nothing is left over, and nothing is billed twice.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/devenv"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Options configure a chaos run. Zero values take the defaults.
type Options struct {
	Bin        string        // the docpipe binary to run as serve and workers
	Docs       int           // documents in the set (default 100)
	Workers    int           // worker processes (default 3)
	KillEvery  time.Duration // SIGKILL a random worker this often (default 3 s; negative: never)
	PGRestarts int           // Postgres restarts in immediate mode during the uploads (default 1; negative: none)
	Outage     time.Duration // also stop Postgres this long, a quarter into the uploads (0: no outage)
	KillAPI    bool          // also SIGKILL the API process (and start another) during the uploads
	Rate       float64       // uploads per second (default 5)
	Seed       int64         // the set's bytes and the faults' randomness (default 1)
	// SettleTimeout bounds the wait for every run to end after the last fault (default 5 min).
	SettleTimeout time.Duration
	// Cluster is the private Postgres the run starts, restarts and (unless Keep)
	// removes. Dir and Port are required.
	ClusterDir  string
	ClusterPort int
	Keep        bool // leave the cluster and the logs for inspection
	// NoReference skips the fault-free pass: the faulty pass is checked against the
	// set's expectations only (no digest, token or page comparison).
	NoReference bool
	// CorpusDir and SamplesDir hold the fixed documents (testdata/corpus, samples).
	CorpusDir, SamplesDir string
	// Env is added to the processes' environment (after the run's own settings).
	Env []string
	// CacheDir holds pdfium's compiled WebAssembly for the LlamaParse twins' parser
	// (default: DOCPIPE_CACHE_DIR).
	CacheDir string
	// Progress receives a line per step (nil: discarded).
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Docs <= 0 {
		o.Docs = 100
	}
	if o.Workers <= 0 {
		o.Workers = 3
	}
	if o.KillEvery == 0 {
		o.KillEvery = 3 * time.Second
	}
	if o.PGRestarts == 0 {
		o.PGRestarts = 1
	}
	o.PGRestarts = max(o.PGRestarts, 0)
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Result is what a run found.
type Result struct {
	Docs       int // uploads in the set
	Complete   int // documents complete
	Duplicates int // documents ended as duplicates of another's content
	Failed     int // documents dead-lettered
	Refused    int // uploads refused by the API
	Kills      int // workers SIGKILLed
	Restarts   int // Postgres restarts (immediate mode)
	Outages    int
	APIKills   int
	Violations []Violation
	Elapsed    time.Duration // the chaos pass, first upload to checks done
	Reference  time.Duration // the fault-free pass
	// Settle is the time from the end of the last fault to the last run ending (0
	// when every run had ended before it; negative when they had not all ended
	// within SettleTimeout).
	Settle  time.Duration
	Answers string // the API's answers to uploads, by status
	// Embedded and Billed are the OpenAI twin's tokens embedded and the tokens
	// billed to runs: the difference is work redone after kills and restarts.
	Embedded, Billed int64
	Timeline         []string // the faults, in order
	WorkDir          string   // the processes' logs
	DBURL            string   // the chaos pass's database (left running with Keep)
}

// Summary is the one-line result.
func (r Result) Summary() string {
	s := fmt.Sprintf("chaos: %d documents, %d complete, %d duplicates, %d failed, %d refused; %d worker kills, %d Postgres restarts",
		r.Docs, r.Complete, r.Duplicates, r.Failed, r.Refused, r.Kills, r.Restarts)
	if r.Outages > 0 {
		s += fmt.Sprintf(", %d outages", r.Outages)
	}
	if r.APIKills > 0 {
		s += fmt.Sprintf(", %d API kills", r.APIKills)
	}
	settled := fmt.Sprintf("settled %.1f s after the last fault", r.Settle.Seconds())
	if r.Settle < 0 {
		settled = "NOT settled after the last fault"
	}
	reference := "no fault-free pass"
	if r.Reference > 0 {
		reference = fmt.Sprintf("fault-free pass %.1f s", r.Reference.Seconds())
	}
	return s + fmt.Sprintf("; %d violations; %.1f s (%s); %s", len(r.Violations), r.Elapsed.Seconds(), reference, settled)
}

// Report is the summary line, the faults and every violation (grouped by check).
func (r Result) Report() string {
	var b strings.Builder
	b.WriteString(r.Summary() + "\n")
	fmt.Fprintf(&b, "upload answers (retries included): %s\n", r.Answers)
	if r.Billed > 0 {
		fmt.Fprintf(&b, "embeddings: the OpenAI twin embedded %d tokens, runs were billed %d (%.1f%% embedded again after kills and restarts)\n",
			r.Embedded, r.Billed, 100*float64(r.Embedded-r.Billed)/float64(r.Billed))
	}
	if len(r.Timeline) > 0 {
		b.WriteString("faults:\n")
		for _, t := range r.Timeline {
			b.WriteString("  " + t + "\n")
		}
	}
	byCheck := map[string][]string{}
	var order []string
	for _, v := range r.Violations {
		if _, ok := byCheck[v.Check]; !ok {
			order = append(order, v.Check)
		}
		byCheck[v.Check] = append(byCheck[v.Check], v.Detail)
	}
	for _, c := range order {
		d := byCheck[c]
		fmt.Fprintf(&b, "VIOLATION %s (%d):\n", c, len(d))
		for i, line := range d {
			if i == 10 {
				fmt.Fprintf(&b, "  … and %d more\n", len(d)-10)
				break
			}
			b.WriteString("  " + strings.ReplaceAll(line, "\n", "\n  ") + "\n")
		}
	}
	fmt.Fprintf(&b, "logs: %s\n", r.WorkDir)
	return b.String()
}

// tally counts how the set's distinct uploads ended.
func (r *Result) tally(docs []Doc, p pass) {
	for i, d := range docs {
		if d.ExactOf >= 0 {
			continue
		}
		if a := p.answers[i].Status; a != http.StatusOK && a != http.StatusAccepted {
			r.Refused++
			continue
		}
		switch st := runstate.Status(p.states[d.SHA].Status); {
		case st == runstate.Complete:
			r.Complete++
		case st == runstate.Duplicate:
			r.Duplicates++
		case st.Failed():
			r.Failed++
		}
	}
}

// runner holds what both passes share.
type runner struct {
	o       Options
	cluster *devenv.Cluster
	parser  *parse.Local
	workDir string
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "chaos: "+format+"\n", args...)
}

// Run starts the cluster, makes the set, runs it once without faults and once with
// them, and checks the second against the first. An error means the run could not
// be carried out; broken guarantees are Result.Violations.
func Run(ctx context.Context, o Options) (res Result, err error) {
	o.defaults()
	if o.Bin == "" || o.ClusterDir == "" || o.ClusterPort == 0 {
		return res, errors.New("chaos: Bin, ClusterDir and ClusterPort are required")
	}
	docs, err := Corpus(CorpusOptions{CorpusDir: o.CorpusDir, SamplesDir: o.SamplesDir}, o.Docs, o.Seed)
	if err != nil {
		return res, err
	}
	res.Docs = len(docs)
	r := &runner{o: o, cluster: &devenv.Cluster{Dir: o.ClusterDir, Port: o.ClusterPort, Fsync: true}}
	if r.workDir, err = os.MkdirTemp("", "docpipe-chaos-"); err != nil {
		return res, err
	}
	res.WorkDir = r.workDir
	if err := r.cluster.Start(ctx); err != nil {
		return res, err
	}
	defer func() {
		if o.Keep {
			return
		}
		_ = r.cluster.Remove(context.WithoutCancel(ctx))
		if err == nil && len(res.Violations) == 0 {
			_ = os.RemoveAll(r.workDir) // else the processes' logs stay for the report
		}
	}()
	if o.CacheDir == "" {
		cfg, _ := config.FromEnv()
		o.CacheDir = cfg.CacheDir
	}
	// The LlamaParse twins parse in this process; two instances, so small PDFs need
	// not wait for the big one.
	r.parser = parse.NewLocal(parse.Options{CacheDir: filepath.Join(o.CacheDir, "wazero"), Workers: 2})
	defer r.parser.Close()

	var ref *pass
	if !o.NoReference {
		r.progress("%d documents; fault-free pass first", len(docs))
		start := time.Now()
		p, err := r.pass(ctx, docs, stackOptions{name: "chaos_reference", workers: o.Workers, seed: o.Seed}, nil)
		if err != nil {
			return res, fmt.Errorf("fault-free pass: %w", err)
		}
		ref = &p
		res.Reference = time.Since(start)
		for _, v := range check(docs, p, nil) {
			v.Check = "fault-free pass: " + v.Check
			res.Violations = append(res.Violations, v)
		}
		r.progress("fault-free pass done in %.1fs", res.Reference.Seconds())
	}
	r.progress("%d documents under faults", len(docs))

	fl := &faultLog{}
	start := time.Now()
	got, err := r.pass(ctx, docs, stackOptions{name: "chaos", faults: true, workers: o.Workers, seed: o.Seed + 1}, fl)
	if err != nil {
		return res, fmt.Errorf("chaos pass: %w", err)
	}
	res.Elapsed = time.Since(start)
	res.Violations = append(res.Violations, check(docs, got, ref)...)
	res.Violations = append(res.Violations, fl.violations...)
	res.Kills, res.Restarts, res.Outages, res.APIKills = fl.kills, fl.restarts, fl.outages, fl.apiKills
	res.Timeline = fl.timeline
	res.Settle = got.settle
	res.Answers = got.answerSummary
	res.Embedded, res.Billed = got.embedded, got.totals.BilledTokens
	res.DBURL = r.cluster.URL("chaos")
	res.tally(docs, got)
	return res, nil
}

// pass runs the set through a new stack: with fl set, under faults. It waits until
// every run has ended, then reads what the database holds.
func (r *runner) pass(ctx context.Context, docs []Doc, so stackOptions, fl *faultLog) (pass, error) {
	var p pass
	s, err := r.newStack(ctx, so)
	if err != nil {
		return p, err
	}
	defer s.close()
	up := newUploader(s.base, s.key)
	interval := time.Duration(float64(time.Second) / r.o.Rate)
	uploadsDone := make(chan struct{})
	injected := make(chan struct{})
	if fl != nil {
		fl.start = time.Now()
		window := interval * time.Duration(len(docs))
		go func() { defer close(injected); r.inject(ctx, s, fl, window, uploadsDone) }()
	} else {
		close(injected)
		interval = 0 // as fast as the API takes them
	}
	p.answers = up.uploadAll(ctx, docs, interval, 16)
	close(uploadsDone)
	<-injected
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	faultsEnd := time.Now()
	if fl != nil {
		faultsEnd = fl.last
		r.progress("uploads answered, faults over; waiting for every run to end")
	}
	settled, err := s.waitSettled(ctx, r.o.SettleTimeout)
	if err != nil {
		return p, err
	}
	switch {
	case settled.IsZero():
		p.settle = -1
	case settled.After(faultsEnd):
		p.settle = settled.Sub(faultsEnd)
	}
	p.answerSummary = up.summary()
	p.embedded = s.oai.Stats().Tokens
	for _, line := range up.internal {
		if fl != nil {
			fl.violate("no 500 from the API", "an upload answered 500: %s", line)
		}
	}
	if p.states, err = s.docStates(ctx); err != nil {
		return p, err
	}
	if p.totals, err = s.totals(ctx); err != nil {
		return p, err
	}
	for _, j := range s.lp.Jobs() {
		run := ""
		if parts := strings.Split(j.WebhookURL, "/"); len(parts) >= 2 {
			run = parts[len(parts)-2] // …/v1/webhooks/llamaparse/{run}/{token}
		}
		p.lpJobs = append(p.lpJobs, lpJob{id: j.ID, run: run})
	}
	for _, e := range s.fleet.unexpectedExits() {
		if fl != nil {
			fl.violate("processes keep running", "%s", e)
		} else {
			return p, fmt.Errorf("%s", e)
		}
	}
	return p, nil
}

// waitSettled waits until no run of the database is active and River holds no
// unfinished stage job, and returns when the last run ended (zero time if the
// deadline passed first: the checks then list what is left).
func (s *stack) waitSettled(ctx context.Context, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	var lastEnd time.Time
	for {
		var active, river int
		err := s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = ANY($1)),
			(SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded') AND args ? 'upload_job_id')`,
			runstate.ActiveStatuses()).Scan(&active, &river)
		if err == nil {
			if active == 0 && lastEnd.IsZero() {
				lastEnd = time.Now()
			}
			if active > 0 {
				lastEnd = time.Time{}
			}
			if active == 0 && river == 0 {
				return lastEnd, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, nil
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return time.Time{}, ctx.Err()
		}
	}
}
