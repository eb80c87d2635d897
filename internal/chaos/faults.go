package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// faultLog records the faults injected into a pass and when.
type faultLog struct {
	start time.Time

	mu         sync.Mutex
	kills      int
	restarts   int
	outages    int
	apiKills   int
	last       time.Time // end of the last fault
	timeline   []string
	violations []Violation
}

func (f *faultLog) note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timeline = append(f.timeline, fmt.Sprintf("%6.1fs ", time.Since(f.start).Seconds())+fmt.Sprintf(format, args...))
}

func (f *faultLog) violate(check, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations = append(f.violations, Violation{Check: check, Detail: fmt.Sprintf(format, args...)})
}

func (f *faultLog) done(counter *int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*counter++
	f.last = time.Now()
}

// clusterEvent is a scheduled fault other than the worker kills.
type clusterEvent struct {
	at   time.Duration
	kind string // restart, outage, api
}

// schedule spreads the Postgres restarts over the upload window, puts the outage
// at a quarter of it (so that fresh uploads arrive after it too) and the API kills
// between the restarts.
func schedule(o Options, window time.Duration) []clusterEvent {
	var ev []clusterEvent
	slots := time.Duration(o.PGRestarts + 1)
	for i := range o.PGRestarts {
		ev = append(ev, clusterEvent{at: window * time.Duration(i+1) / slots, kind: "restart"})
	}
	if o.Outage > 0 {
		ev = append(ev, clusterEvent{at: window / 4, kind: "outage"})
	}
	if o.KillAPI {
		for i := range o.PGRestarts + 1 {
			ev = append(ev, clusterEvent{at: window * time.Duration(2*i+1) / (2 * slots), kind: "api"})
		}
	}
	sort.SliceStable(ev, func(a, b int) bool { return ev[a].at < ev[b].at })
	return ev
}

// inject runs the faults against s until stop is closed and every scheduled event
// has happened: a worker SIGKILLed (and replaced) every KillEvery, and the events of
// schedule, one after the other.
func (r *runner) inject(ctx context.Context, s *stack, fl *faultLog, window time.Duration, stop <-chan struct{}) {
	var wg sync.WaitGroup
	killCtx, stopKills := context.WithCancel(ctx)
	defer stopKills()
	if r.o.KillEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sleep(killCtx, r.o.KillEvery) {
				name, err := s.killWorker()
				if err != nil {
					fl.violate("processes keep running", "start a replacement worker: %v", err)
					continue
				}
				fl.done(&fl.kills)
				fl.note("SIGKILL %s, replacement started", name)
			}
		}()
	}
	for _, e := range schedule(r.o, window) {
		if !sleep(ctx, time.Until(fl.start.Add(e.at))) {
			break
		}
		switch e.kind {
		case "restart":
			t := time.Now()
			if err := r.cluster.Crash(ctx); err != nil {
				fl.violate("fault injection", "%v", err)
				continue
			}
			if err := r.cluster.Start(ctx); err != nil {
				fl.violate("fault injection", "%v", err)
				continue
			}
			fl.done(&fl.restarts)
			fl.note("Postgres restarted in immediate mode (down %.1fs)", time.Since(t).Seconds())
		case "outage":
			r.outage(ctx, s, fl)
		case "api":
			if err := s.killAPI(ctx); err != nil {
				fl.violate("processes keep running", "restart the API: %v", err)
				continue
			}
			fl.done(&fl.apiKills)
			fl.note("SIGKILL the API process, another started on the same port")
		}
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	stopKills()
	wg.Wait()
}

// outage stops Postgres (immediate mode) for Options.Outage while uploads go on,
// checks what the API answers meanwhile, starts it again and times the recovery.
func (r *runner) outage(ctx context.Context, s *stack, fl *faultLog) {
	if err := r.cluster.Crash(ctx); err != nil {
		fl.violate("fault injection", "%v", err)
		return
	}
	fl.note("Postgres stopped (immediate mode) for %s", r.o.Outage)
	down := time.Now()
	pctx, stopProbe := context.WithCancel(ctx)
	probed := make(chan int)
	go func() { probed <- probeDown(pctx, s, fl) }()
	sleep(ctx, r.o.Outage)
	stopProbe()
	n := <-probed
	if err := r.cluster.Start(ctx); err != nil {
		fl.violate("fault injection", "%v", err)
		return
	}
	fl.done(&fl.outages)
	fl.note("Postgres started again after %.1fs; %d probes of the API during the outage", time.Since(down).Seconds(), n)
	up := time.Now()
	for {
		if code, _, _, err := get(ctx, s.base+"/readyz", ""); err == nil && code == http.StatusOK {
			fl.note("/readyz ready again %.1fs after Postgres started", time.Since(up).Seconds())
			return
		}
		if time.Since(up) > time.Minute {
			fl.violate("ready again by itself", "/readyz still not ready a minute after Postgres started")
			return
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// probeDown asks the API, every 500 ms while the database is down, for readiness and
// for a list (with the API key, whose lookup needs the database, and with a JWT,
// which is checked without it): each must answer 503, the list as problem+json with
// code UNAVAILABLE and a Retry-After. It returns the number of probe rounds.
func probeDown(ctx context.Context, s *stack, fl *faultLog) int {
	rounds := 0
	for {
		code, _, body, err := get(ctx, s.base+"/readyz", "")
		if ctx.Err() != nil {
			return rounds
		}
		switch {
		case err != nil:
			fl.violate("503 while the database is down", "GET /readyz: %v (the API process must stay up)", err)
		case code != http.StatusServiceUnavailable || !strings.Contains(body, "not_ready"):
			fl.violate("503 while the database is down", "GET /readyz answered %d %s", code, body)
		}
		for _, cred := range []struct{ name, token string }{{"API key", s.key}, {"JWT", s.jwt}} {
			code, hdr, body, err := get(ctx, s.base+"/v1/documents?limit=5", cred.token)
			if ctx.Err() != nil {
				return rounds
			}
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal([]byte(body), &p)
			switch {
			case err != nil:
				fl.violate("503 while the database is down", "GET /v1/documents (%s): %v", cred.name, err)
			case code != http.StatusServiceUnavailable || !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") ||
				p.Code != "UNAVAILABLE" || hdr.Get("Retry-After") == "":
				fl.violate("503 while the database is down", "GET /v1/documents (%s) answered %d, Content-Type %q, Retry-After %q: %s",
					cred.name, code, hdr.Get("Content-Type"), hdr.Get("Retry-After"), strings.TrimSpace(body))
			}
		}
		rounds++
		if !sleep(ctx, 500*time.Millisecond) {
			return rounds
		}
	}
}

// get is a GET with an optional Bearer token; it returns the status, headers and body.
func get(ctx context.Context, url, token string) (int, http.Header, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header, string(b), nil
}
