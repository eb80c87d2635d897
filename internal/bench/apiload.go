package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/db"
)

// LoadOptions configure the API load benchmark.
type LoadOptions struct {
	Rate     int           // uploads per second (open loop: arrivals do not wait for answers)
	Duration time.Duration // how long uploads arrive
}

// LoadResult is one API load run.
type LoadResult struct {
	Requests, Errors             int
	APIp50, APIp99               time.Duration // upload request latency
	E2Ep50, E2Ep99               time.Duration // upload accepted → run complete
	Complete                     int
	ServeRSSStart, ServeRSSEnd   int64         // KiB
	WorkerRSSStart, WorkerRSSEnd int64         // KiB
	Drain                        time.Duration // from the last upload to the last completion
}

// APILoad runs one `docpipe serve` and one `docpipe worker` process on a fresh
// database and uploads Rate small distinct markdown documents per second for
// Duration through POST /v1/documents, then waits for every accepted one to complete.
func APILoad(ctx context.Context, o Options, lo LoadOptions) (LoadResult, error) {
	var res LoadResult
	dbName := "benchapi_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	dbURL, err := createDB(ctx, o.AdminURL, dbName)
	if err != nil {
		return res, err
	}
	defer dropDB(context.WithoutCancel(ctx), o.AdminURL, dbName)
	if err := db.Migrate(ctx, dbURL, nil); err != nil {
		return res, err
	}
	dataDir, err := os.MkdirTemp("", "docpipe-bench-api-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dataDir)
	pool, err := db.Open(ctx, dbURL, 8)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	user := uuid.MustParse("00000000-0000-4000-8000-0000000a9b1c")
	key, _, err := auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "bench", UserID: &user})
	if err != nil {
		return res, err
	}
	env := append(append(os.Environ(), "DATABASE_URL="+dbURL, "DOCPIPE_DATA_DIR="+dataDir, "DOCPIPE_LOG_LEVEL=warn",
		"DOCPIPE_API_RATE_PER_MINUTE=0", "DOCPIPE_UPLOADS_PER_DAY=0", "DOCPIPE_MAX_ACTIVE_JOBS=0"), o.WorkerEnv...)
	var stderr bytes.Buffer
	run := func(args ...string) (*exec.Cmd, io.Reader, error) {
		cmd := exec.CommandContext(ctx, o.WorkerBin, args...)
		cmd.Env, cmd.Stderr = env, &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		return cmd, out, cmd.Start()
	}
	stop := func(cmd *exec.Cmd) { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	serve, serveOut, err := run("serve", "--addr", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	defer stop(serve)
	line, err := bufio.NewReader(serveOut).ReadString('\n')
	if err != nil || !strings.Contains(line, "http://") {
		return res, fmt.Errorf("serve did not start: %v\n%s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, serveOut) }()
	base := strings.Fields(line[strings.Index(line, "http://"):])[0]
	worker, _, err := run("worker")
	if err != nil {
		return res, err
	}
	defer stop(worker)
	if err := waitWorkerReady(ctx, pool); err != nil {
		return res, err
	}

	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	upload := func(i int) (time.Duration, error) {
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		fw, _ := mw.CreateFormFile("file", fmt.Sprintf("note-%06d.md", i))
		fmt.Fprintf(fw, "# Member note %d\n\nNote %d of the load test: copay %d dollars, deductible %d dollars, run %s.\n",
			i, i, i%97, i%1000, dbName)
		_ = mw.Close()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/documents", &form)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		start := time.Now()
		resp, err := hc.Do(req)
		d := time.Since(start)
		if err != nil {
			return d, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return d, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return d, nil
	}
	// Warm up at the full rate for a sixth of the run (at most 10 s) and let it drain,
	// so the starting RSS is that of a process that has already served this load.
	warm := min(lo.Duration/6, 10*time.Second)
	warmN := 0
	wtick := time.NewTicker(time.Second / time.Duration(lo.Rate))
	var wwg sync.WaitGroup
	var werr error
	var wmu sync.Mutex
	for wend := time.Now().Add(warm); time.Now().Before(wend); warmN++ {
		<-wtick.C
		wwg.Add(1)
		go func(i int) {
			defer wwg.Done()
			if _, err := upload(-1 - i); err != nil {
				wmu.Lock()
				werr = err
				wmu.Unlock()
			}
		}(warmN)
	}
	wtick.Stop()
	wwg.Wait()
	if werr != nil {
		return res, fmt.Errorf("warm-up upload: %w\n%s", werr, stderr.String())
	}
	if err := waitComplete(ctx, pool, warmN, 5*time.Minute); err != nil {
		return res, err
	}
	res.ServeRSSStart, res.WorkerRSSStart = rss(serve.Process.Pid), rss(worker.Process.Pid)

	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(lo.Rate))
	end := time.Now().Add(lo.Duration)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := upload(i)
			mu.Lock()
			defer mu.Unlock()
			res.Requests++
			if err != nil {
				res.Errors++
				return
			}
			lats = append(lats, d)
		}()
	}
	tick.Stop()
	wg.Wait()
	lastUpload := time.Now()
	accepted := warmN + len(lats)
	if err := waitComplete(ctx, pool, accepted, 10*time.Minute); err != nil {
		return res, err
	}
	res.Drain = time.Since(lastUpload)
	res.ServeRSSEnd, res.WorkerRSSEnd = rss(serve.Process.Pid), rss(worker.Process.Pid)
	res.Complete = len(lats)
	slices.Sort(lats)
	res.APIp50, res.APIp99 = pct(lats, 50), pct(lats, 99)

	rows, err := pool.Query(ctx, `SELECT extract(epoch FROM finished_at - created_at)::float8 FROM upload_pipeline.upload_jobs
		WHERE status = 'complete' ORDER BY created_at OFFSET $1`, warmN)
	if err != nil {
		return res, err
	}
	var e2e []time.Duration
	for rows.Next() {
		var s float64
		if err := rows.Scan(&s); err != nil {
			return res, err
		}
		e2e = append(e2e, time.Duration(s*float64(time.Second)))
	}
	slices.Sort(e2e)
	res.E2Ep50, res.E2Ep99 = pct(e2e, 50), pct(e2e, 99)
	return res, rows.Err()
}

// waitComplete waits until n runs are complete; a failed run is an error.
func waitComplete(ctx context.Context, pool *pgxpool.Pool, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var done, failed int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'complete'), count(*) FILTER (WHERE status LIKE 'failed\_%' OR status = 'duplicate')
			FROM upload_pipeline.upload_jobs`).Scan(&done, &failed); err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d runs failed", failed)
		}
		if done >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d complete after %s", done, n, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

// rss is VmRSS of a process in KiB (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
