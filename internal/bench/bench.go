// Package bench measures the pipeline end to end: a worker process (the real
// `docpipe worker`) drains documents submitted to a fresh database, and the run reports
// wall time, documents/s, chunks/s and the worker's peak RSS. A Suite runs workloads
// several times (plain and observed, interleaved), Throughput and RunAPI measure the
// embedding limits and the HTTP API under load, and report.go prints what
// `docpipe bench` shows; the command only parses flags and starts the cluster.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
	"github.com/docpipe/docpipe/internal/storage"
)

// Doc is one document to ingest.
type Doc struct {
	Name string
	Data []byte
}

// Options configure a benchmark.
type Options struct {
	AdminURL  string   // superuser URL of a cluster; each run gets its own database
	WorkerBin string   // path of the docpipe binary
	WorkerEnv []string // extra environment for the worker (DOCPIPE_* tuning)
	Log       *slog.Logger
	// Watch, if set, runs while the run is under way (from the first submit); its
	// context ends when the run does.
	Watch func(ctx context.Context, start time.Time)
	// Observe runs the observed variant (observe.go): the worker serves /metrics on
	// --health-addr, a `docpipe serve` process runs on the same database, and from one
	// round before the first submit until the run ends both /metrics are scraped every
	// second and the dashboard's polls are replayed with an admin key.
	Observe bool
}

// Result is one run.
type Result struct {
	Docs       int
	Complete   int
	Chunks     int
	Elapsed    time.Duration
	PeakRSSKiB int64
	WorkerCPU  float64 // seconds of CPU the worker process used (user+system, from its start)
	// PostgresCPU is the seconds of CPU the cluster's server processes used during the
	// run (those in pg_stat_activity at its end; one that exited earlier is missed).
	PostgresCPU float64
	Observed    ObserveStats // the observers' counts (Options.Observe only)
}

// DocsPerSec is documents completed per second.
func (r Result) DocsPerSec() float64 { return float64(r.Complete) / r.Elapsed.Seconds() }

// ChunksPerSec is chunks published per second.
func (r Result) ChunksPerSec() float64 { return float64(r.Chunks) / r.Elapsed.Seconds() }

// Run ingests docs into a fresh database with one worker process and waits for all of them.
func Run(ctx context.Context, o Options, docs []Doc) (Result, error) {
	dbName := "bench_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	dbURL, err := createDB(ctx, o.AdminURL, dbName)
	if err != nil {
		return Result{}, err
	}
	defer dropDB(context.WithoutCancel(ctx), o.AdminURL, dbName)
	if err := db.Migrate(ctx, dbURL, nil); err != nil {
		return Result{}, err
	}
	dataDir, err := os.MkdirTemp("", "docpipe-bench-data-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dataDir)

	pool, err := db.Open(ctx, dbURL, 8)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	store, err := storage.NewLocal(dataDir)
	if err != nil {
		return Result{}, err
	}
	submitter, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Log: o.Log}, pipeline.Options{})
	if err != nil {
		return Result{}, err
	}

	env := append(append(os.Environ(), "DATABASE_URL="+dbURL, "DOCPIPE_DATA_DIR="+dataDir, "DOCPIPE_LOG_LEVEL=warn"), o.WorkerEnv...)
	args := []string{"worker"}
	var obs *observer
	if o.Observe {
		if obs, err = startObserver(ctx, o, pool, env); err != nil {
			return Result{}, err
		}
		defer obs.close()
		args = append(args, "--health-addr", obs.workerAddr)
	}
	worker := exec.CommandContext(ctx, o.WorkerBin, args...)
	worker.Env = env
	var werr bytes.Buffer
	worker.Stderr = &werr
	if err := worker.Start(); err != nil {
		return Result{}, fmt.Errorf("start worker: %w", err)
	}
	defer func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
	}()
	// Let the worker connect and start its River client before the clock starts.
	if err := waitWorkerReady(ctx, pool); err != nil {
		return Result{}, fmt.Errorf("%w\nworker stderr:\n%s", err, werr.String())
	}
	if obs != nil {
		if err := obs.begin(ctx); err != nil {
			return Result{}, fmt.Errorf("%w\nworker stderr:\n%s", err, werr.String())
		}
	}

	user := uuid.MustParse("00000000-0000-4000-8000-00000000be9c")
	pgBefore := postgresCPU(ctx, pool)
	start := time.Now()
	if o.Watch != nil {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); o.Watch(wctx, start) }()
		defer func() { stop(); <-done }()
	}
	for _, d := range docs {
		if _, err := submitter.Submit(ctx, pipeline.Submission{UserID: user, Filename: d.Name, Data: d.Data}); err != nil {
			return Result{}, err
		}
	}
	res := Result{Docs: len(docs)}
	for {
		var terminal int
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status <> ALL($1)),
			count(*) FILTER (WHERE status = $2) FROM upload_pipeline.upload_jobs`, runstate.ActiveStatuses(), runstate.Complete).Scan(&terminal, &res.Complete)
		if err != nil {
			return res, err
		}
		if terminal == len(docs) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.Elapsed = time.Since(start)
	res.PostgresCPU = postgresCPU(ctx, pool).sub(pgBefore).total()
	if obs != nil {
		res.Observed = obs.stop()
	}
	res.PeakRSSKiB = peakRSS(worker.Process.Pid)
	res.WorkerCPU = procCPU(worker.Process.Pid)
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.document_chunks`).Scan(&res.Chunks); err != nil {
		return res, err
	}
	if res.Complete != len(docs) {
		return res, fmt.Errorf("%d of %d documents completed\nworker stderr:\n%s", res.Complete, len(docs), werr.String())
	}
	return res, nil
}

func waitWorkerReady(ctx context.Context, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		// River records each started client's producer for the queue.
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_queue WHERE name = $1`, pipeline.Queue).Scan(&n); err == nil && n > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("worker did not start within 30s")
}

// peakRSS is VmHWM of a process in KiB (0 if unknown).
func peakRSS(pid int) int64 { return procStatusKiB(pid, "VmHWM") }

func withDB(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("admin URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func createDB(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to benchmark cluster: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return withDB(adminURL, name)
}

func dropDB(ctx context.Context, adminURL, name string) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// Summary is the median over runs.
type Summary struct {
	Name         string
	Runs         []Result
	MedianTime   time.Duration
	DocsPerSec   float64
	ChunksPerSec float64
	PeakRSSMiB   float64      // the largest over runs
	Observed     ObserveStats // totals over the runs (observed runs only)
}

// Summarize takes the median run by elapsed time.
func Summarize(name string, runs []Result) Summary {
	s := Summary{Name: name, Runs: runs}
	if len(runs) == 0 {
		return s
	}
	sorted := append([]Result(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Elapsed < sorted[j].Elapsed })
	m := sorted[len(sorted)/2]
	s.MedianTime, s.DocsPerSec, s.ChunksPerSec = m.Elapsed, m.DocsPerSec(), m.ChunksPerSec()
	for _, r := range runs {
		s.PeakRSSMiB = max(s.PeakRSSMiB, float64(r.PeakRSSKiB)/1024)
		s.Observed.add(r.Observed)
	}
	return s
}
