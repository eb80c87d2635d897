package bench

// The observed variant of Run (Options.Observe): what monitoring adds to a running
// pipeline. Prometheus scrapes the worker's /metrics (--health-addr) and a
// `docpipe serve` process's /metrics every second, and the operator dashboard is open:
// its polls (dashboard.PollPaths) are replayed every dashboard.PollInterval with an
// admin API key.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/dashboard"
)

// ScrapeInterval is how often the observed variant scrapes each /metrics.
const ScrapeInterval = time.Second

// ObserveStats is what the observers did during one run (or, in a Summary, all runs).
// A run whose requests failed measures nothing: check Failed.
type ObserveStats struct {
	WorkerScrapes, WorkerFailed int // GET /metrics on the worker's --health-addr
	ServeScrapes, ServeFailed   int // GET /metrics on `docpipe serve`
	DashRequests, DashFailed    int // dashboard.PollPaths with an admin key (failed = not 2xx)
	FirstError                  string
	ServeCPU                    float64 // seconds of CPU the serve process used during the run
	ServePeakRSSKiB             int64
}

// Failed is the number of requests that failed.
func (s ObserveStats) Failed() int { return s.WorkerFailed + s.ServeFailed + s.DashFailed }

func (s *ObserveStats) add(o ObserveStats) {
	s.WorkerScrapes += o.WorkerScrapes
	s.WorkerFailed += o.WorkerFailed
	s.ServeScrapes += o.ServeScrapes
	s.ServeFailed += o.ServeFailed
	s.DashRequests += o.DashRequests
	s.DashFailed += o.DashFailed
	if s.FirstError == "" {
		s.FirstError = o.FirstError
	}
	s.ServeCPU += o.ServeCPU
	s.ServePeakRSSKiB = max(s.ServePeakRSSKiB, o.ServePeakRSSKiB)
}

// poller GETs urls every interval (the first round at once, the urls of a round in
// parallel, as the dashboard's Promise.all does) until ctx ends, reading every body
// in full. An answer other than 2xx is a failure; so is an error from check, which
// sees the first successful body of each url.
type poller struct {
	client   *http.Client
	urls     []string
	key      string // Authorization: Bearer key, if set
	interval time.Duration
	check    func([]byte) error

	mu       sync.Mutex
	requests int
	failed   int
	firstErr string
	checked  map[string]bool
}

// run polls until ctx ends; first (if not nil) is closed after the first round.
func (p *poller) run(ctx context.Context, first chan<- struct{}) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, u := range p.urls {
			wg.Go(func() { p.get(ctx, u) })
		}
		wg.Wait()
		if first != nil {
			close(first)
			first = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *poller) get(ctx context.Context, url string) {
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if p.key != "" {
			req.Header.Set("Authorization", "Bearer "+p.key)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, body)
		}
		p.mu.Lock()
		first := p.check != nil && !p.checked[url]
		if first {
			if p.checked == nil {
				p.checked = map[string]bool{}
			}
			p.checked[url] = true
		}
		p.mu.Unlock()
		if first {
			if err := p.check(body); err != nil {
				return fmt.Errorf("GET %s: %w", url, err)
			}
		}
		return nil
	}()
	if ctx.Err() != nil {
		return // cut off by the end of the run: neither a request nor a failure
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if err != nil {
		p.failed++
		if p.firstErr == "" {
			p.firstErr = err.Error()
		}
	}
}

func (p *poller) counts() (requests, failed int, firstErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, p.failed, p.firstErr
}

// metricsCheck returns a check that parses a body with the Prometheus text parser
// and wants the metric family need in it.
func metricsCheck(need string) func([]byte) error {
	return func(body []byte) error {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("not the Prometheus text format: %w", err)
		}
		if fams[need] == nil {
			return fmt.Errorf("no %s among %d metric families", need, len(fams))
		}
		return nil
	}
}

// observer is the serve process and the pollers of an observed run.
type observer struct {
	serve      *exec.Cmd
	serveErr   lockedBuffer
	serveURL   string
	workerAddr string // for the worker's --health-addr
	key        string
	client     *http.Client

	pollers  []*poller // worker /metrics, serve /metrics, dashboard
	cancel   context.CancelFunc
	done     chan struct{}
	serveCPU float64
}

// startObserver creates an admin API key, starts `docpipe serve` on the run's database
// (env is the worker's environment) and picks a free address for the worker's
// --health-addr. Call close when the run is over.
func startObserver(ctx context.Context, o Options, pool *pgxpool.Pool, env []string) (*observer, error) {
	key, _, err := auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "bench-observe", Admin: true})
	if err != nil {
		return nil, fmt.Errorf("create admin API key: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ob := &observer{workerAddr: addr, key: key, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}}
	ob.serve = exec.CommandContext(ctx, o.WorkerBin, "serve", "--addr", "127.0.0.1:0")
	ob.serve.Env, ob.serve.Stderr = env, &ob.serveErr
	out, err := ob.serve.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := ob.serve.Start(); err != nil {
		return nil, fmt.Errorf("start serve: %w", err)
	}
	if ob.serveURL, err = listenURL(out, 30*time.Second); err == nil {
		err = waitOK(ctx, ob.client, ob.serveURL+"/readyz", 30*time.Second)
	}
	if err != nil {
		ob.close()
		return nil, fmt.Errorf("%w\nserve stderr:\n%s", err, tail(ob.serveErr.String()))
	}
	return ob, nil
}

// begin waits for the worker's health server, starts the pollers and returns after
// their first round: like a dashboard already open and a Prometheus already scraping
// when the documents arrive, the serve process's connections and caches are warm
// (its first database read for metrics is costlier than the next ones).
func (ob *observer) begin(ctx context.Context) error {
	if err := waitOK(ctx, ob.client, "http://"+ob.workerAddr+"/healthz", 30*time.Second); err != nil {
		return fmt.Errorf("worker --health-addr: %w", err)
	}
	paths := make([]string, len(dashboard.PollPaths))
	for i, p := range dashboard.PollPaths {
		paths[i] = ob.serveURL + p
	}
	ob.pollers = []*poller{
		// Every registry has the Go collector; the serve one's database collector
		// exports docpipe_documents only when its read of the database succeeded.
		{client: ob.client, urls: []string{"http://" + ob.workerAddr + "/metrics"}, interval: ScrapeInterval, check: metricsCheck("go_goroutines")},
		{client: ob.client, urls: []string{ob.serveURL + "/metrics"}, interval: ScrapeInterval, check: metricsCheck("docpipe_documents")},
		{client: ob.client, urls: paths, key: ob.key, interval: dashboard.PollInterval},
	}
	ob.serveCPU = procCPU(ob.serve.Process.Pid)
	pctx, cancel := context.WithCancel(ctx)
	ob.cancel, ob.done = cancel, make(chan struct{})
	firsts := make([]chan struct{}, len(ob.pollers))
	for i := range firsts {
		firsts[i] = make(chan struct{})
	}
	go func() {
		defer close(ob.done)
		var wg sync.WaitGroup
		for i, p := range ob.pollers {
			wg.Go(func() { p.run(pctx, firsts[i]) })
		}
		wg.Wait()
	}()
	for _, f := range firsts {
		select {
		case <-f:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop ends the pollers and returns what they did.
func (ob *observer) stop() ObserveStats {
	if ob.cancel == nil {
		return ObserveStats{}
	}
	ob.cancel()
	<-ob.done
	ob.cancel = nil
	var s ObserveStats
	counts := []struct{ n, failed *int }{{&s.WorkerScrapes, &s.WorkerFailed}, {&s.ServeScrapes, &s.ServeFailed}, {&s.DashRequests, &s.DashFailed}}
	for i, p := range ob.pollers {
		var e string
		*counts[i].n, *counts[i].failed, e = p.counts()
		if s.FirstError == "" {
			s.FirstError = e
		}
	}
	s.ServeCPU = procCPU(ob.serve.Process.Pid) - ob.serveCPU
	s.ServePeakRSSKiB = procStatusKiB(ob.serve.Process.Pid, "VmHWM")
	return s
}

// close stops the pollers and the serve process.
func (ob *observer) close() {
	ob.stop()
	stopProcess(ob.serve)
	ob.client.CloseIdleConnections()
}

// waitOK polls url until it answers 2xx.
func waitOK(ctx context.Context, c *http.Client, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeAddr is a 127.0.0.1 address with a port nothing listens on (at the moment).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Overhead is how much longer the observed median end-to-end time is than the
// plain one, as a fraction (0.05 = 5% slower; negative = faster).
func Overhead(plain, observed Summary) float64 {
	if plain.MedianTime <= 0 {
		return 0
	}
	return float64(observed.MedianTime-plain.MedianTime) / float64(plain.MedianTime)
}

// PairedOverhead is the median over run pairs (plain[i], observed[i]: run back to
// back) of how much longer the observed run took, as a fraction; less sensitive to
// drift than Overhead. Runs without a partner are ignored.
func PairedOverhead(plain, observed []Result) float64 {
	n := min(len(plain), len(observed))
	if n == 0 {
		return 0
	}
	r := make([]float64, 0, n)
	for i := range n {
		if plain[i].Elapsed > 0 {
			r = append(r, float64(observed[i].Elapsed-plain[i].Elapsed)/float64(plain[i].Elapsed))
		}
	}
	if len(r) == 0 {
		return 0
	}
	sort.Float64s(r)
	if len(r)%2 == 1 {
		return r[len(r)/2]
	}
	return (r[len(r)/2-1] + r[len(r)/2]) / 2
}
