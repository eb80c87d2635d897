package embed

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// limiter keeps an API client under a requests-per-minute and a
// tokens-per-minute budget, and adapts to what the server says about its own
// budget. One limiter is shared by every goroutine that uses the same client.
//
// It is a sliding-window log: every request is recorded with its send time and
// token count, and a new request is scheduled at the earliest time t at which
// the window (t-window, t] holds fewer than rpm requests and at most tpm tokens
// including it. A window-compliant sequence also satisfies a token bucket of
// the same per-minute size (the kind servers use), so the client does not
// trigger 429s it could have avoided.
//
// On top of the window, requests are paced by two token buckets (requests and
// tokens) refilled at rpm and tpm per minute that hold only a tenth of a minute's
// budget: a sliding window alone lets a whole minute's budget go in one burst
// and then sends nothing until it leaves the window, while servers (OpenAI says
// so) may enforce the per-minute limits over shorter periods. Paced, the client
// sends steadily at the limit. A bucket that holds less than the server's
// (a minute's budget, also starting full) never lets through what the server's
// would refuse.
//
// Requests are scheduled in FIFO order: a reservation is never earlier than
// the previous one. Reservations are made with an explicit "now" so tests can
// drive the limiter with a fake clock; the caller sleeps until the returned
// time.
type limiter struct {
	mu     sync.Mutex
	rpm    int           // 0 = unlimited
	tpm    int           // 0 = unlimited
	window time.Duration // one minute; shorter in tests

	log  []limEntry // sorted by at; may hold future reservations
	last time.Time  // latest reservation

	// pauseUntil holds every request back after a rate-limit answer (a 429
	// with a retry hint), so goroutines that did not get the 429 do not keep
	// hitting the limit either.
	pauseUntil time.Time

	// What the server last said in x-ratelimit-remaining-* / -reset-*,
	// decremented locally for each request scheduled before the reset.
	req, tok serverBudget

	// Pacing buckets (nil when the limit is 0).
	reqBucket, tokBucket *bucket
}

// bucket is a token bucket whose level may go below zero (a request bigger
// than the bucket waits for a full bucket, then is paid off at the refill rate).
type bucket struct {
	capacity float64
	perNs    float64   // refill per nanosecond
	level    float64   // at time at
	at       time.Time // zero = not used yet (full)
}

func newBucket(perMinute int, window time.Duration) *bucket {
	if perMinute <= 0 {
		return nil
	}
	return &bucket{capacity: max(1, float64(perMinute)/10), perNs: float64(perMinute) / float64(window)}
}

// earliest is the first time ≥ t at which need (capped at the capacity) is in the bucket.
func (b *bucket) earliest(t time.Time, need float64) time.Time {
	if b == nil || b.at.IsZero() {
		return t
	}
	if t.Before(b.at) {
		t = b.at
	}
	level := min(b.capacity, b.level+float64(t.Sub(b.at))*b.perNs)
	need = min(need, b.capacity)
	if level >= need {
		return t
	}
	return t.Add(time.Duration((need-level)/b.perNs) + 1)
}

// take removes n at time t (t ≥ the bucket's time; earliest said it fits).
func (b *bucket) take(t time.Time, n float64) {
	if b == nil {
		return
	}
	level := b.capacity
	if !b.at.IsZero() {
		level = min(b.capacity, b.level+float64(t.Sub(b.at))*b.perNs)
	}
	b.level, b.at = level-n, t
}

type limEntry struct {
	at     time.Time
	tokens int
}

// serverBudget is one x-ratelimit-remaining / -reset pair.
type serverBudget struct {
	known     bool
	remaining int
	resetAt   time.Time
}

func newLimiter(rpm, tpm int) *limiter {
	return &limiter{rpm: max(rpm, 0), tpm: max(tpm, 0), window: time.Minute,
		reqBucket: newBucket(rpm, time.Minute), tokBucket: newBucket(tpm, time.Minute)}
}

// reserve schedules a request of the given number of tokens and returns the
// time at which it may be sent (now or later). The request is recorded at that
// time whether or not the caller ends up sending it.
func (l *limiter) reserve(now time.Time, tokens int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)

	t := now
	later := func(c time.Time) {
		if c.After(t) {
			t = c
		}
	}
	later(l.last)
	later(l.pauseUntil)
	// The server's own budget: when it is spent, wait for its reset.
	if l.req.known && t.Before(l.req.resetAt) && l.req.remaining <= 0 {
		later(l.req.resetAt)
	}
	if l.tok.known && t.Before(l.tok.resetAt) && l.tok.remaining < tokens {
		later(l.tok.resetAt)
	}
	// Requests per window: the rpm-th most recent request must have left it.
	if l.rpm > 0 && len(l.log) >= l.rpm {
		later(l.log[len(l.log)-l.rpm].at.Add(l.window))
	}
	// Tokens per window: the oldest requests must leave until this one fits.
	// A request larger than the whole budget waits for an empty window.
	if l.tpm > 0 {
		need := min(tokens, l.tpm)
		sum := 0
		for _, e := range l.log {
			sum += e.tokens
		}
		for k := 0; k < len(l.log) && sum+need > l.tpm; k++ {
			sum -= l.log[k].tokens
			later(l.log[k].at.Add(l.window))
		}
	}

	// Pacing: both buckets must hold enough at t (checking the second may move t
	// later, which only fills the first further).
	tokCost := float64(tokens)
	if l.tpm > 0 {
		tokCost = min(tokCost, float64(l.tpm))
	}
	later(l.tokBucket.earliest(t, tokCost))
	later(l.reqBucket.earliest(t, 1))
	later(l.tokBucket.earliest(t, tokCost))
	l.tokBucket.take(t, tokCost)
	l.reqBucket.take(t, 1)

	if l.req.known {
		if t.Before(l.req.resetAt) {
			l.req.remaining--
		} else {
			l.req.known = false
		}
	}
	if l.tok.known {
		if t.Before(l.tok.resetAt) {
			l.tok.remaining -= tokens
		} else {
			l.tok.known = false
		}
	}
	if l.rpm > 0 || l.tpm > 0 {
		l.log = append(l.log, limEntry{at: t, tokens: tokens})
	}
	l.last = t
	return t
}

// cancel gives back a reservation that will not be sent (the caller's deadline
// or cancellation came first), so it does not hold later requests back.
func (l *limiter) cancel(at time.Time, tokens int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.log) - 1; i >= 0; i-- {
		if l.log[i].at.Equal(at) && l.log[i].tokens == tokens {
			l.log = append(l.log[:i], l.log[i+1:]...)
			break
		}
	}
	cost := float64(tokens)
	if l.tpm > 0 {
		cost = min(cost, float64(l.tpm))
	}
	if l.tokBucket != nil {
		l.tokBucket.level += cost
	}
	if l.reqBucket != nil {
		l.reqBucket.level++
	}
	if l.req.known {
		l.req.remaining++
	}
	if l.tok.known {
		l.tok.remaining += tokens
	}
	// FIFO order resumes from the latest reservation still standing.
	if l.last.Equal(at) {
		l.last = time.Time{}
		for _, e := range l.log {
			if e.at.After(l.last) {
				l.last = e.at
			}
		}
	}
}

// prune drops the entries that can no longer be in any window from now on.
func (l *limiter) prune(now time.Time) {
	cut := now.Add(-l.window)
	i := 0
	for i < len(l.log) && !l.log[i].at.After(cut) {
		i++
	}
	if i > 0 {
		l.log = append(l.log[:0], l.log[i:]...)
	}
}

// pause holds every request back until the given time.
func (l *limiter) pause(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.pauseUntil) {
		l.pauseUntil = until
	}
}

// observe records the server's x-ratelimit-remaining-* and -reset-* headers
// (sent by OpenAI on every response; a missing pair is ignored).
func (l *limiter) observe(now time.Time, h http.Header) {
	req, okR := parseBudget(now, h, "requests")
	tok, okT := parseBudget(now, h, "tokens")
	if !okR && !okT {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if okR {
		l.req = req
	}
	if okT {
		l.tok = tok
	}
}

func parseBudget(now time.Time, h http.Header, kind string) (serverBudget, bool) {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("x-ratelimit-remaining-" + kind)))
	if err != nil {
		return serverBudget{}, false
	}
	reset, ok := parseResetDuration(h.Get("x-ratelimit-reset-" + kind))
	if !ok {
		return serverBudget{}, false
	}
	return serverBudget{known: true, remaining: rem, resetAt: now.Add(reset)}, true
}

// parseResetDuration reads an x-ratelimit-reset-* value: a Go-style duration
// ("1s", "6m0s", "20ms") as OpenAI sends it, or a number of seconds as some
// compatible servers do.
func parseResetDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e9 {
		return time.Duration(f * float64(time.Second)), true
	}
	return 0, false
}
