package metrics

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// In-process metrics: what only the process that does the work can see (external
// calls, breaker and limiter state, River attempts). They are package-level so the
// clients can report without plumbing; every Metrics registry includes them.
// Across processes, sum them.

// External call outcomes (ObserveExternalCall).
const (
	OutcomeOK          = "ok"           // a 2xx answer
	OutcomeRateLimited = "rate_limited" // 429
	OutcomeServerError = "server_error" // 5xx
	OutcomeClientError = "client_error" // other 4xx (permanent)
	OutcomeNetwork     = "network"      // no answer: connection error, timeout
	OutcomeRejected    = "rejected"     // not sent: breaker open or limiter gave up
	OutcomeCanceled    = "canceled"     // the caller gave up (context canceled)
)

// Breaker states (SetBreakerState), as gobreaker names them.
var breakerStates = []string{"closed", "half-open", "open"}

var (
	externalRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "docpipe_external_requests_total",
		Help: "Requests to external services (openai, llamaparse, storage) by outcome and HTTP status code (\"none\" when there was no answer).",
	}, []string{"service", "outcome", "code"})
	externalDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "docpipe_external_request_duration_seconds",
		Help:    "Latency of requests to external services, by outcome.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"service", "outcome"})
	breakerGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "docpipe_breaker_state",
		Help: "Circuit breaker state of this process per service: 1 for the current state (closed, half-open, open), 0 for the others.",
	}, []string{"service", "state"})
	rateLimitGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "docpipe_rate_limit_remaining",
		Help: "What this process's rate limiter may still send now, per service and resource (requests, tokens).",
	}, []string{"service", "resource"})
	serverLimitGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "docpipe_external_rate_limit_remaining",
		Help: "What the external service says is left of its rate limits, per resource (requests, tokens), from its last x-ratelimit-remaining-* response headers (Transport).",
	}, []string{"service", "resource"})
	jobAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "docpipe_job_attempts_total",
		Help: "River job attempts worked by this process, by stage and result (ok, error, snooze, cancel).",
	}, []string{"stage", "result"})
	jobAttemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "docpipe_job_attempt_duration_seconds",
		Help:    "Duration of River job attempts worked by this process, by stage (includes no-op and snoozed attempts).",
		Buckets: StageDurationBuckets,
	}, []string{"stage"})
	jobsRescued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "docpipe_jobs_rescued_total",
		Help: "Jobs this process picked up after River's rescuer found them stuck (their previous worker died), by stage.",
	}, []string{"stage"})

	processCollectors = []prometheus.Collector{externalRequests, externalDuration, breakerGauge, rateLimitGauge,
		serverLimitGauge, jobAttempts, jobAttemptDuration, jobsRescued}
)

// breakers is this process's breaker state per service, for heartbeats.
var breakers = struct {
	sync.Mutex
	m       map[string]string
	changed chan struct{}
}{m: map[string]string{}, changed: make(chan struct{}, 1)}

// ObserveExternalCall records one request to an external service: service is
// "openai", "llamaparse", "storage", …; outcome one of the Outcome constants (others
// are counted as "other"); status the HTTP status code (0 = no answer); d how long
// it took.
func ObserveExternalCall(service, outcome string, status int, d time.Duration) {
	switch outcome {
	case OutcomeOK, OutcomeRateLimited, OutcomeServerError, OutcomeClientError, OutcomeNetwork, OutcomeRejected, OutcomeCanceled:
	default:
		outcome = "other"
	}
	code := "none"
	if status >= 100 && status <= 599 {
		code = strconv.Itoa(status)
	}
	externalRequests.WithLabelValues(service, outcome, code).Inc()
	externalDuration.WithLabelValues(service, outcome).Observe(d.Seconds())
	recordRecent(service, outcome, d)
}

// SetBreakerState records the state of service's circuit breaker in this process
// ("closed", "half-open" or "open"; gobreaker's State.String()). Heartbeats carry it
// to the database, so the alert evaluator sees every worker's breakers.
func SetBreakerState(service, state string) {
	state = strings.ToLower(state)
	for _, s := range breakerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		breakerGauge.WithLabelValues(service, s).Set(v)
	}
	breakers.Lock()
	old := breakers.m[service]
	breakers.m[service] = state
	breakers.Unlock()
	if old != state {
		select {
		case breakers.changed <- struct{}{}:
		default:
		}
	}
}

// BreakerStates returns this process's breaker states by service.
func BreakerStates() map[string]string {
	breakers.Lock()
	defer breakers.Unlock()
	return maps.Clone(breakers.m)
}

// SetRateLimitRemaining records what service's limiter may still send now
// (resource "requests" or "tokens").
func SetRateLimitRemaining(service, resource string, remaining float64) {
	rateLimitGauge.WithLabelValues(service, resource).Set(remaining)
}

// rescueMessage is what River's rescuer writes as the error of a stuck attempt.
const rescueMessage = "Stuck job rescued"

// RiverMiddleware counts River job attempts by stage and result, their durations,
// and attempts that follow a rescue (their previous worker died). Add it to
// river.Config.Middleware.
func RiverMiddleware() rivertype.Middleware { return &riverMiddleware{} }

type riverMiddleware struct{ river.MiddlewareDefaults }

func (*riverMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	stage := StageOfKind(job.Kind)
	if n := len(job.Errors); n > 0 && strings.HasPrefix(job.Errors[n-1].Error, rescueMessage) {
		jobsRescued.WithLabelValues(stage).Inc()
	}
	start := time.Now()
	err := doInner(ctx)
	jobAttemptDuration.WithLabelValues(stage).Observe(time.Since(start).Seconds())
	result := "ok"
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil:
	case errors.As(err, &snooze):
		result = "snooze"
	case errors.As(err, &cancel):
		result = "cancel"
	default:
		result = "error"
	}
	jobAttempts.WithLabelValues(stage, result).Inc()
	return err
}
