package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/docpipe/docpipe/internal/pdfgen"
	"github.com/docpipe/docpipe/internal/runstate"
)

// APIOptions configure the API benchmark (`docpipe bench api`).
type APIOptions struct {
	Rate     int           // uploads per second, open loop (arrivals never wait for answers)
	Duration time.Duration // how long uploads arrive (measured)
	Warmup   time.Duration // uploads at the same rate before the measurement, drained before RSS is sampled (0 = none)
	PDF      bool          // one-page PDFs (internal/pdfgen) instead of small markdown documents
	Seed     int           // makes every document's bytes distinct between runs
}

// APIStage is how long one pipeline stage's River jobs waited and ran (measured uploads only).
type APIStage struct {
	Kind             string
	Jobs             int
	WaitP50, WaitP99 time.Duration // scheduled → attempted (queue wait)
	RunMean          time.Duration // attempted → finalized
}

// APIResult is one `docpipe bench api` run.
type APIResult struct {
	Requests               int            // uploads sent in the measured window
	Errors                 int            // transport errors and answers other than 202
	ByStatus               map[string]int // errors by HTTP status (or "transport")
	APIp50, APIp99, APIMax time.Duration
	SendLag                time.Duration // the generator's worst lateness against its schedule
	Accepted, Complete     int
	E2Ep50, E2Ep99         time.Duration // upload_jobs.created_at → finished_at
	Drain                  time.Duration // last answer → last completion
	MaxBacklog             int           // measured runs not yet complete (the most at any sample)
	MaxRiverQueue          int           // River jobs available but not yet running (the most at any sample)
	DonePerSec             float64       // completions/s while uploads arrived

	ServeRSSStart, ServeRSSEnd   int64 // KiB (VmRSS)
	WorkerRSSStart, WorkerRSSEnd int64 // KiB (VmRSS)
	ServeHWM, WorkerHWM          int64 // KiB (VmHWM at the end)

	// CPU while uploads arrived, in cores (1.0 = one core busy the whole window).
	ServeCPU, WorkerCPU, PostgresCPU, MachineCPU float64
	Cores                                        int

	Stages []APIStage
}

// RunAPI runs one API benchmark: a fresh database, one `docpipe serve --addr 127.0.0.1:0`
// and one `docpipe worker` process (o.WorkerBin, environment like Run's worker plus
// o.WorkerEnv, request/upload/active-job limits off), an API key, ao.Warmup of uploads
// at the full rate drained before anything is measured, then ao.Rate distinct small
// documents per second for ao.Duration through POST /v1/documents (multipart), and a
// wait until every accepted one is complete.
func RunAPI(ctx context.Context, o Options, ao APIOptions) (APIResult, error) {
	res := APIResult{ByStatus: map[string]int{}}
	if ao.Rate <= 0 || ao.Duration <= 0 {
		return res, errors.New("rate and duration must be positive")
	}
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
	pool, err := db.Open(ctx, dbURL, 4)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	user := uuid.New()
	key, _, err := auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "bench-api", UserID: &user})
	if err != nil {
		return res, fmt.Errorf("create API key: %w", err)
	}

	env := append(append(os.Environ(), "DATABASE_URL="+dbURL, "DOCPIPE_DATA_DIR="+dataDir, "DOCPIPE_LOG_LEVEL=warn",
		"DOCPIPE_API_RATE_PER_MINUTE=0", "DOCPIPE_UPLOADS_PER_DAY=0", "DOCPIPE_MAX_ACTIVE_JOBS=0"), o.WorkerEnv...)
	var serveErr, workerErr lockedBuffer
	serve := exec.CommandContext(ctx, o.WorkerBin, "serve", "--addr", "127.0.0.1:0")
	serve.Env, serve.Stderr = env, &serveErr
	serveOut, err := serve.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := serve.Start(); err != nil {
		return res, fmt.Errorf("start serve: %w", err)
	}
	defer stopProcess(serve)
	base, err := listenURL(serveOut, 30*time.Second)
	if err != nil {
		return res, fmt.Errorf("%w\nserve stderr:\n%s", err, serveErr.String())
	}
	worker := exec.CommandContext(ctx, o.WorkerBin, "worker")
	worker.Env, worker.Stdout, worker.Stderr = env, io.Discard, &workerErr
	if err := worker.Start(); err != nil {
		return res, fmt.Errorf("start worker: %w", err)
	}
	defer stopProcess(worker)
	if err := waitWorkerReady(ctx, pool); err != nil {
		return res, fmt.Errorf("%w\nworker stderr:\n%s", err, workerErr.String())
	}
	fail := func(err error) (APIResult, error) {
		return res, fmt.Errorf("%w\nserve stderr:\n%s\nworker stderr:\n%s", err, tail(serveErr.String()), tail(workerErr.String()))
	}

	// Every body is built before the clock starts, so the generator only sends.
	interval := time.Second / time.Duration(ao.Rate)
	nWarm, nLoad := int(ao.Warmup/interval), int(ao.Duration/interval)
	gen := &apiLoadGen{
		url: base + "/v1/documents", key: key,
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute,
		}},
	}
	defer gen.client.CloseIdleConnections()
	bodies := func(from, n int) []apiBody {
		out := make([]apiBody, n)
		for i := range out {
			out[i] = apiDoc(ao, dbName, from+i)
		}
		return out
	}

	if nWarm > 0 {
		w := gen.run(ctx, bodies(0, nWarm), interval)
		if w.errors > 0 {
			return fail(fmt.Errorf("warm-up: %d of %d uploads failed (%v)", w.errors, nWarm, w.byStatus))
		}
		if _, err := waitDone(ctx, pool, w.jobIDs, 10*time.Minute); err != nil {
			return fail(fmt.Errorf("warm-up: %w", err))
		}
	}
	res.ServeRSSStart, res.WorkerRSSStart = procStatusKiB(serve.Process.Pid, "VmRSS"), procStatusKiB(worker.Process.Pid, "VmRSS")

	// Backlog sampler, from the first measured upload until the last one is complete.
	var (
		smu                  sync.Mutex
		maxBacklog, maxRiver int
	)
	sctx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			var backlog, queued int
			if err := pool.QueryRow(sctx, `SELECT
				(SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = ANY($1)),
				(SELECT count(*) FROM river_job WHERE state = 'available')`, runstate.ActiveStatuses()).Scan(&backlog, &queued); err == nil {
				smu.Lock()
				maxBacklog, maxRiver = max(maxBacklog, backlog), max(maxRiver, queued)
				smu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stopSampler(); <-samplerDone }()

	pgBefore := postgresCPU(ctx, pool)
	serveBefore, workerBefore := procCPU(serve.Process.Pid), procCPU(worker.Process.Pid)
	machBusyBefore, machTotalBefore := machineCPU()
	var doneAtStart int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = $1`, runstate.Complete).Scan(&doneAtStart)
	loadStart := time.Now()

	l := gen.run(ctx, bodies(nWarm, nLoad), interval)

	window := time.Since(loadStart)
	res.ServeCPU = (procCPU(serve.Process.Pid) - serveBefore) / window.Seconds()
	res.WorkerCPU = (procCPU(worker.Process.Pid) - workerBefore) / window.Seconds()
	res.PostgresCPU = postgresCPU(ctx, pool).sub(pgBefore).total() / window.Seconds()
	if busy, total := machineCPU(); total > machTotalBefore {
		res.MachineCPU = (busy - machBusyBefore) / (total - machTotalBefore) * float64(cpuCount())
	}
	res.Cores = cpuCount()
	var doneAtEnd int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.upload_jobs WHERE status = $1`, runstate.Complete).Scan(&doneAtEnd)
	res.DonePerSec = float64(doneAtEnd-doneAtStart) / window.Seconds()

	res.Requests, res.Errors, res.ByStatus, res.SendLag = nLoad, l.errors, l.byStatus, l.lag
	res.Accepted = len(l.jobIDs)
	slices.Sort(l.lats)
	res.APIp50, res.APIp99 = quantile(l.lats, 0.50), quantile(l.lats, 0.99)
	if len(l.lats) > 0 {
		res.APIMax = l.lats[len(l.lats)-1]
	}
	lastAnswer := time.Now()
	complete, err := waitDone(ctx, pool, l.jobIDs, 15*time.Minute)
	res.Complete = complete
	if err != nil {
		return fail(err)
	}
	res.Drain = time.Since(lastAnswer)
	res.ServeRSSEnd, res.WorkerRSSEnd = procStatusKiB(serve.Process.Pid, "VmRSS"), procStatusKiB(worker.Process.Pid, "VmRSS")
	res.ServeHWM, res.WorkerHWM = procStatusKiB(serve.Process.Pid, "VmHWM"), procStatusKiB(worker.Process.Pid, "VmHWM")
	stopSampler()
	<-samplerDone
	res.MaxBacklog, res.MaxRiverQueue = maxBacklog, maxRiver

	var e2e []time.Duration
	rows, err := pool.Query(ctx, `SELECT extract(epoch FROM finished_at - created_at)::float8
		FROM upload_pipeline.upload_jobs WHERE job_id = ANY($1) AND status = $2`, l.jobIDs, runstate.Complete)
	if err != nil {
		return res, err
	}
	for rows.Next() {
		var s float64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return res, err
		}
		e2e = append(e2e, time.Duration(s*float64(time.Second)))
	}
	if err := rows.Err(); err != nil {
		return res, err
	}
	slices.Sort(e2e)
	res.E2Ep50, res.E2Ep99 = quantile(e2e, 0.50), quantile(e2e, 0.99)
	res.Stages, err = stageTimes(ctx, pool, loadStart)
	return res, err
}

// stageTimes summarises the River jobs scheduled from the first measured upload on.
func stageTimes(ctx context.Context, pool *pgxpool.Pool, since time.Time) ([]APIStage, error) {
	rows, err := pool.Query(ctx, `SELECT kind, count(*),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - scheduled_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - scheduled_at)),
			avg(extract(epoch FROM finalized_at - attempted_at))
		FROM river_job WHERE state = 'completed' AND created_at >= $1
		GROUP BY kind ORDER BY min(id)`, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIStage
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for rows.Next() {
		var s APIStage
		var w50, w99, run float64
		if err := rows.Scan(&s.Kind, &s.Jobs, &w50, &w99, &run); err != nil {
			return nil, err
		}
		s.WaitP50, s.WaitP99, s.RunMean = sec(w50), sec(w99), sec(run)
		out = append(out, s)
	}
	return out, rows.Err()
}

// waitDone waits until every run in ids is complete and returns how many are; a
// failed or duplicate run is an error.
func waitDone(ctx context.Context, pool *pgxpool.Pool, ids []uuid.UUID, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		var done, bad int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = $2),
				count(*) FILTER (WHERE status <> $2 AND status <> ALL($3))
			FROM upload_pipeline.upload_jobs WHERE job_id = ANY($1)`, ids, runstate.Complete, runstate.ActiveStatuses()).Scan(&done, &bad); err != nil {
			return done, err
		}
		if bad > 0 {
			return done, fmt.Errorf("%d runs failed or were duplicates", bad)
		}
		if done >= len(ids) {
			return done, nil
		}
		if time.Now().After(deadline) {
			return done, fmt.Errorf("%d of %d runs complete after %s", done, len(ids), within)
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type apiBody struct {
	name string
	data []byte
}

// apiDoc is document i of a run: distinct bytes for every run and index.
func apiDoc(ao APIOptions, run string, i int) apiBody {
	if ao.PDF {
		return apiBody{name: fmt.Sprintf("one-page-%06d.pdf", i), data: pdfgen.OnePager(ao.Seed*10_000_000 + i)}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Member notice %d (%s)\n\n", i, run)
	fmt.Fprintf(&b, "Your plan's deductible for in-network services is $%d per year; after it, you pay a $%d copay per visit "+
		"to a primary care provider and %d%% coinsurance for specialist care.\n\n", 250+i%1750, 5+i%45, 10+i%30)
	fmt.Fprintf(&b, "## Prior authorization\n\nServices marked with an asterisk need prior authorization. Ask your provider to "+
		"request it at least %d business days before the service. Reference %s-%06d.\n\n", 3+i%10, run, i)
	fmt.Fprintf(&b, "## Out-of-pocket maximum\n\nThe most you pay for covered services in a plan year is $%d.\n", 3000+i%5000)
	return apiBody{name: fmt.Sprintf("notice-%06d.md", i), data: b.Bytes()}
}

// apiLoadGen is an open-loop load generator: request i is sent at start + i×interval
// (late requests go at once), each in its own goroutine, whatever the earlier ones are doing.
type apiLoadGen struct {
	url, key string
	client   *http.Client
}

type apiLoad struct {
	lats     []time.Duration // of the accepted (202) uploads
	jobIDs   []uuid.UUID
	errors   int
	byStatus map[string]int
	lag      time.Duration
}

func (g *apiLoadGen) run(ctx context.Context, bodies []apiBody, interval time.Duration) apiLoad {
	out := apiLoad{byStatus: map[string]int{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for i, b := range bodies {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else {
			out.lag = max(out.lag, -d)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, id, status := g.upload(ctx, b)
			mu.Lock()
			defer mu.Unlock()
			if status != "" {
				out.errors++
				out.byStatus[status]++
				return
			}
			out.lats = append(out.lats, lat)
			out.jobIDs = append(out.jobIDs, id)
		}()
	}
	wg.Wait()
	return out
}

// upload sends one multipart POST /v1/documents; status is "" when it was accepted (202).
func (g *apiLoadGen) upload(ctx context.Context, b apiBody) (time.Duration, uuid.UUID, string) {
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", b.name)
	_, _ = fw.Write(b.data)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, &form)
	if err != nil {
		return 0, uuid.Nil, "request"
	}
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		return time.Since(start), uuid.Nil, "transport"
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		return lat, uuid.Nil, "transport"
	}
	if resp.StatusCode != http.StatusAccepted {
		return lat, uuid.Nil, strconv.Itoa(resp.StatusCode)
	}
	var r struct {
		JobID uuid.UUID `json:"job_id"`
	}
	if json.Unmarshal(body, &r) != nil || r.JobID == uuid.Nil {
		return lat, uuid.Nil, "202 without job_id"
	}
	return lat, r.JobID, ""
}

// listenURL reads serve's first stdout line ("docpipe API listening on http://...")
// and keeps draining stdout afterwards.
func listenURL(stdout io.Reader, within time.Duration) (string, error) {
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, err := br.ReadString('\n')
		ch <- answer{line, err}
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case a := <-ch:
		i := strings.Index(a.line, "http://")
		if i < 0 {
			return "", fmt.Errorf("serve did not print its URL (first line %q, %v)", a.line, a.err)
		}
		return strings.Fields(a.line[i:])[0], nil
	case <-time.After(within):
		return "", fmt.Errorf("serve printed nothing within %s", within)
	}
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.999999)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// procStatusKiB is a "Vm…: N kB" field of /proc/PID/status (0 if unknown).
func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// procCPU is a process's user+system CPU time in seconds (0 if unknown).
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name (which is in parentheses and may hold spaces).
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// pgCPU is the CPU time of every server process of the cluster, by pid.
type pgCPU map[int]float64

func postgresCPU(ctx context.Context, pool *pgxpool.Pool) pgCPU {
	out := pgCPU{}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			out[pid] = procCPU(pid)
		}
	}
	return out
}

// sub is the CPU each process used since before (a process born since counts whole).
func (p pgCPU) sub(before pgCPU) pgCPU {
	out := pgCPU{}
	for pid, t := range p {
		out[pid] = t - before[pid]
	}
	return out
}

func (p pgCPU) total() float64 {
	var s float64
	for _, t := range p {
		s += t
	}
	return s
}

// machineCPU is busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func cpuCount() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// lockedBuffer is a bytes.Buffer safe for a process's stderr and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string) string {
	const n = 4000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
