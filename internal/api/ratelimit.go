package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per credential (API key or JWT subject), in process
// memory: each API process enforces the rate on its own.
type limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for id, or says how long until one is available.
func (l *limiter) allow(id string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[id] = b
	}
	b.seen = now
	if now.Sub(l.swept) > time.Minute {
		// Forget credentials idle long enough for their bucket to be full again.
		full := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
		for k, v := range l.buckets {
			if now.Sub(v.seen) > full {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
