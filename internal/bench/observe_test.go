package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPollerCounts(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# TYPE go_goroutines gauge\ngo_goroutines 7\n"))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("go_goroutines{ 7\n")) })
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	// The check sees the first successful body of each url only.
	p := &poller{client: srv.Client(), check: metricsCheck("go_goroutines")}
	for range 3 {
		p.get(ctx, srv.URL+"/metrics")
		p.get(ctx, srv.URL+"/garbage")
	}
	p.get(ctx, srv.URL+"/fail")
	if n, failed, first := p.counts(); n != 7 || failed != 2 || !strings.Contains(first, "/garbage") {
		t.Errorf("requests %d, failed %d (want 7, 2), first error %q", n, failed, first)
	}
	p = &poller{client: srv.Client(), check: metricsCheck("docpipe_documents")}
	p.get(ctx, srv.URL+"/metrics")
	if _, failed, first := p.counts(); failed != 1 || !strings.Contains(first, "no docpipe_documents") {
		t.Errorf("missing family: failed %d, error %q", failed, first)
	}

	// The key goes in Authorization; an answer other than 2xx fails.
	for key, want := range map[string]int{"k": 0, "": 1} {
		p := &poller{client: srv.Client(), key: key}
		p.get(ctx, srv.URL+"/auth")
		if n, failed, _ := p.counts(); n != 1 || failed != want {
			t.Errorf("key %q: requests %d, failed %d (want 1, %d)", key, n, failed, want)
		}
	}

	// A request cut off by the end of the run counts as neither.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p = &poller{client: srv.Client()}
	p.get(cctx, srv.URL+"/metrics")
	if n, failed, _ := p.counts(); n != 0 || failed != 0 {
		t.Errorf("canceled: requests %d, failed %d", n, failed)
	}

	// run polls every url at once, then every interval, until ctx ends.
	rctx, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	p = &poller{client: srv.Client(), urls: []string{srv.URL + "/metrics", srv.URL + "/fail"}, interval: time.Millisecond}
	first := make(chan struct{})
	p.run(rctx, first)
	<-first // closed after the first round
	if n, failed, _ := p.counts(); n < 2 || failed == 0 || failed > n {
		t.Errorf("run: requests %d, failed %d", n, failed)
	}
}

func TestOverhead(t *testing.T) {
	plain := Summarize("p", []Result{{Elapsed: 3 * time.Second}, {Elapsed: 2 * time.Second}, {Elapsed: 4 * time.Second}})
	obs := Summarize("o", []Result{{Elapsed: 2100 * time.Millisecond, Observed: ObserveStats{ServeScrapes: 2, DashFailed: 1}},
		{Elapsed: 3150 * time.Millisecond, Observed: ObserveStats{ServeScrapes: 3}}, {Elapsed: 9 * time.Second}})
	if got := Overhead(plain, obs); got < 0.0499 || got > 0.0501 {
		t.Errorf("overhead %v, want 0.05", got)
	}
	if obs.Observed.ServeScrapes != 5 || obs.Observed.Failed() != 1 {
		t.Errorf("totals %+v", obs.Observed)
	}
	// Pairs: +10%, -5%, +5%, +20% → median (5+10)/2 = 7.5%; an unpaired run is ignored.
	sec := func(s ...float64) (out []Result) {
		for _, x := range s {
			out = append(out, Result{Elapsed: time.Duration(x * float64(time.Second))})
		}
		return out
	}
	if got := PairedOverhead(sec(2, 4, 2, 1, 9), sec(2.2, 3.8, 2.1, 1.2)); got < 0.0749 || got > 0.0751 {
		t.Errorf("paired overhead %v, want 0.075", got)
	}
	if PairedOverhead(nil, nil) != 0 {
		t.Error("no pairs: want 0")
	}
	if Overhead(Summary{}, obs) != 0 {
		t.Error("no plain runs: want 0")
	}
}
