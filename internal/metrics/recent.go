package metrics

import (
	"slices"
	"sync"
	"time"
)

// RecentWindow is how far back ServiceSummaries looks.
const RecentWindow = 5 * time.Minute

// recentCap bounds the calls kept per service (the newest win); the percentiles of a
// busy service are then over its last recentCap calls.
const recentCap = 1024

// ServiceSummary is one process's recent requests to one external service, carried
// by worker heartbeats to the dashboard's overview.
type ServiceSummary struct {
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`       // no answer, 5xx or a permanent 4xx
	RateLimited int     `json:"rate_limited"` // 429
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
}

type call struct {
	at      time.Time
	d       time.Duration
	outcome string
}

// recent is a ring of the newest calls per service.
var recent = struct {
	sync.Mutex
	m map[string][]call
}{m: map[string][]call{}}

func recordRecent(service, outcome string, d time.Duration) {
	recent.Lock()
	defer recent.Unlock()
	calls := append(recent.m[service], call{at: time.Now(), d: d, outcome: outcome})
	if len(calls) > recentCap {
		calls = slices.Delete(calls, 0, len(calls)-recentCap)
	}
	recent.m[service] = calls
}

// ServiceSummaries returns this process's requests per service over RecentWindow
// (rejected and canceled calls are not counted: nothing was asked of the service).
func ServiceSummaries() map[string]ServiceSummary {
	cutoff := time.Now().Add(-RecentWindow)
	recent.Lock()
	defer recent.Unlock()
	out := map[string]ServiceSummary{}
	for service, calls := range recent.m {
		i, _ := slices.BinarySearchFunc(calls, cutoff, func(c call, t time.Time) int { return c.at.Compare(t) })
		recent.m[service] = calls[i:]
		var s ServiceSummary
		var ds []time.Duration
		for _, c := range calls[i:] {
			switch c.outcome {
			case OutcomeRejected, OutcomeCanceled:
				continue
			case OutcomeRateLimited:
				s.RateLimited++
			case OutcomeOK:
			default:
				s.Errors++
			}
			s.Calls++
			ds = append(ds, c.d)
		}
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		s.P50ms = ms(ds[(len(ds)-1)/2])
		s.P95ms = ms(ds[(len(ds)-1)*95/100])
		out[service] = s
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
