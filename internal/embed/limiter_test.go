package embed

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

var limT0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// checkWindows fails if any window (t-60s, t] holds more than rpm requests or
// tpm tokens.
func checkWindows(t *testing.T, es []limEntry, rpm, tpm int) {
	t.Helper()
	slices.SortFunc(es, func(a, b limEntry) int { return a.at.Compare(b.at) })
	for i := range es {
		n, tok := 0, 0
		for j := i; j < len(es) && es[j].at.Sub(es[i].at) < time.Minute; j++ {
			n++
			tok += es[j].tokens
		}
		if (rpm > 0 && n > rpm) || (tpm > 0 && tok > tpm) {
			t.Fatalf("window from %v: %d requests, %d tokens (limits %d, %d)", es[i].at.Sub(limT0), n, tok, rpm, tpm)
		}
	}
}

func TestLimiterConcurrentBurstStaysUnderLimits(t *testing.T) {
	l := newLimiter(7, 300)
	var (
		mu  sync.Mutex
		got []limEntry
		wg  sync.WaitGroup
	)
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var prev time.Time
			for range 10 {
				n := 10 + r.IntN(50)
				at := l.reserve(limT0.Add(time.Duration(r.IntN(5))*time.Second), n)
				if at.Before(prev) {
					t.Errorf("reservation went back in time")
				}
				prev = at
				mu.Lock()
				got = append(got, limEntry{at: at, tokens: n})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 200 {
		t.Fatal(len(got))
	}
	checkWindows(t, got, 7, 300)
	// 200 requests at 7 per minute need at least 28 minutes.
	last := slices.MaxFunc(got, func(a, b limEntry) int { return a.at.Compare(b.at) })
	if last.at.Sub(limT0) < 28*time.Minute {
		t.Fatalf("200 requests scheduled within %v", last.at.Sub(limT0))
	}
}

func TestLimiterNoLimitsNoWait(t *testing.T) {
	l := newLimiter(0, 0)
	for range 1000 {
		if at := l.reserve(limT0, 100000); !at.Equal(limT0) {
			t.Fatal(at)
		}
	}
	if len(l.log) != 0 {
		t.Fatal("unlimited limiter keeps a log")
	}
}

func TestLimiterOversizedRequestWaitsForAnEmptyWindow(t *testing.T) {
	l := newLimiter(0, 100)
	if at := l.reserve(limT0, 60); !at.Equal(limT0) {
		t.Fatal(at)
	}
	// 500 > TPM: it cannot fit; it goes alone once the window is empty.
	if at := l.reserve(limT0, 500); !at.Equal(limT0.Add(time.Minute)) {
		t.Fatal(at.Sub(limT0))
	}
	if at := l.reserve(limT0, 1); !at.Equal(limT0.Add(2 * time.Minute)) {
		t.Fatal(at.Sub(limT0))
	}
}

func TestLimiterPauseAndServerHeaders(t *testing.T) {
	l := newLimiter(0, 0)
	l.pause(limT0.Add(3 * time.Second))
	if at := l.reserve(limT0, 1); !at.Equal(limT0.Add(3 * time.Second)) {
		t.Fatal(at.Sub(limT0))
	}
	now := limT0.Add(10 * time.Second)
	h := http.Header{}
	h.Set("x-ratelimit-remaining-requests", "1")
	h.Set("x-ratelimit-reset-requests", "2s")
	h.Set("x-ratelimit-remaining-tokens", "100")
	h.Set("x-ratelimit-reset-tokens", "6m0s")
	l.observe(now, h)
	if at := l.reserve(now, 50); !at.Equal(now) { // 1 request, 100 tokens left
		t.Fatal(at.Sub(now))
	}
	if at := l.reserve(now, 10); !at.Equal(now.Add(2 * time.Second)) { // requests spent
		t.Fatal(at.Sub(now))
	}
	// After the requests reset, the tokens (50 left) still bind a big request.
	if at := l.reserve(now.Add(2*time.Second), 80); !at.Equal(now.Add(6 * time.Minute)) {
		t.Fatal(at.Sub(now))
	}
	// Seconds as plain numbers (some compatible servers).
	h.Set("x-ratelimit-remaining-requests", "0")
	h.Set("x-ratelimit-reset-requests", "1.5")
	h.Del("x-ratelimit-remaining-tokens")
	l2 := newLimiter(0, 0)
	l2.observe(limT0, h)
	if at := l2.reserve(limT0, 1); !at.Equal(limT0.Add(1500 * time.Millisecond)) {
		t.Fatal(at.Sub(limT0))
	}
}

func TestRetryDelay(t *testing.T) {
	now := limT0
	hd := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name  string
		h     http.Header
		msg   string
		typ   string
		is429 bool
		want  time.Duration
	}{
		{"ms", hd("retry-after-ms", "12.5"), "", "", true, 12500 * time.Microsecond},
		{"seconds", hd("retry-after", "7"), "", "", true, 7 * time.Second},
		{"date", hd("retry-after", now.Add(90*time.Second).Format(http.TimeFormat)), "", "", true, 90 * time.Second},
		{"past date falls through", hd("retry-after", now.Add(-time.Hour).Format(http.TimeFormat)), "Please try again in 2s.", "", true, 2 * time.Second},
		{"zero falls through", hd("retry-after", "0"), "", "", false, 0},
		{"message ms", nil, "Please try again in 20ms.", "", true, 20 * time.Millisecond},
		{"message s", nil, "… Please try again in 2.812s. Visit …", "", true, 2812 * time.Millisecond},
		{"message m", nil, "Please try again in 1m30.5s.", "", true, 90500 * time.Millisecond},
		{"message 6m0s", nil, "Please try again in 6m0s.", "", true, 6 * time.Minute},
		{"message words", nil, "Please retry after 7 seconds.", "", true, 7 * time.Second},
		{"reset by type", hd("x-ratelimit-reset-requests", "1s", "x-ratelimit-reset-tokens", "20ms"), "", "tokens", true, 20 * time.Millisecond},
		{"reset exhausted", hd("x-ratelimit-reset-requests", "1s", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-tokens", "6m0s", "x-ratelimit-remaining-tokens", "10"), "", "", true, time.Second},
		{"reset longest", hd("x-ratelimit-reset-requests", "1s", "x-ratelimit-reset-tokens", "3s"), "", "", true, 3 * time.Second},
		{"reset ignored on 5xx", hd("x-ratelimit-reset-requests", "1s"), "", "", false, 0},
		{"nothing", nil, "Rate limit reached.", "", true, 0},
	}
	for _, tc := range cases {
		h := tc.h
		if h == nil {
			h = http.Header{}
		}
		if got := retryDelay(h, tc.msg, tc.typ, tc.is429, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDecodeVector(t *testing.T) {
	for _, bad := range []string{`null`, `"AAA"`, `"AAAAAAA="`, `[1,"x"]`, `{}`} {
		if _, err := decodeVector(json.RawMessage(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	v, err := decodeVector(json.RawMessage(`"AACAPwAAAMA"`)) // unpadded base64 of [1, -2]
	if err != nil || len(v) != 2 || v[0] != 1 || v[1] != -2 {
		t.Fatal(v, err)
	}
}

func TestParseAPIErrorShapes(t *testing.T) {
	cases := map[string]apiError{
		`{"error":{"message":"m","type":"t","param":null,"code":"c"}}`:            {Message: "m", Type: "t", Code: "c"},
		`{"error":{"code":502,"message":"Bad gateway.","type":"cf_bad_gateway"}}`: {Message: "Bad gateway.", Type: "cf_bad_gateway"},
		`{"error":"plain"}`: {Message: "plain"},
		`{"object":"error","message":"v","type":"BadRequestError","code":400}`: {Message: "v", Type: "BadRequestError"},
		`<html>`: {},
	}
	for in, want := range cases {
		if got := parseAPIError([]byte(in)); got != want {
			t.Errorf("%s: %+v, want %+v", in, got, want)
		}
	}
}

// Requests are paced at the limit instead of a minute's budget going in one
// burst: no 10 s holds more than the bucket (60k tokens) plus 10 s of refill
// (100k), where a sliding window alone would send 600k at once; and the long-run
// rate is the limit (3M tokens in about 5 minutes).
func TestLimiterPacesSteadily(t *testing.T) {
	l := newLimiter(0, 600_000)
	var got []limEntry
	for range 300 {
		got = append(got, limEntry{at: l.reserve(limT0, 10_000), tokens: 10_000})
	}
	checkWindows(t, got, 0, 600_000)
	for i := range got {
		sum := 0
		for j := i; j < len(got) && got[j].at.Sub(got[i].at) < 10*time.Second; j++ {
			sum += got[j].tokens
		}
		if sum > 160_000 {
			t.Fatalf("%d tokens in the 10 s from %v", sum, got[i].at.Sub(limT0))
		}
	}
	if last := got[len(got)-1].at.Sub(limT0); last < 285*time.Second || last > 300*time.Second {
		t.Fatalf("3M tokens at 600k TPM took %v", last)
	}
}

// A cancelled reservation gives its slot back: the next request goes when the
// cancelled one would have.
func TestLimiterCancelGivesTheSlotBack(t *testing.T) {
	l := newLimiter(0, 600) // bucket 60 tokens, 10 tokens/s
	l.reserve(limT0, 60)
	b := l.reserve(limT0, 60)
	if !b.Equal(limT0.Add(6*time.Second + time.Nanosecond)) {
		t.Fatal(b.Sub(limT0))
	}
	l.cancel(b, 60)
	if c := l.reserve(limT0, 60); !c.Equal(b) {
		t.Fatalf("after cancel the next request goes at %v, want %v", c.Sub(limT0), b.Sub(limT0))
	}
}
