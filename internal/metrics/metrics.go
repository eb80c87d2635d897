// Package metrics exposes docpipe's Prometheus metrics on its own registry.
//
// Two kinds of metrics:
//
//   - Database-derived (docpipe_documents, docpipe_queue_*, docpipe_stage_*,
//     docpipe_usage_*, …): read at scrape time from upload_pipeline and River's
//     tables by a Source (at most every SourceOptions.MinInterval; costlier counts
//     every SlowInterval). Counters among them come from the events table, read in
//     commit order (events.txid), so they are totals over the whole database, agree
//     with it, and survive restarts. Every process reports the same values:
//     aggregate them with max, not sum.
//   - In-process (docpipe_external_*, docpipe_breaker_state,
//     docpipe_rate_limit_remaining, docpipe_job_attempts_total, …): reported by the
//     code that does the work (ObserveExternalCall, SetBreakerState,
//     RiverMiddleware, …). Sum them across processes.
//
// Labels are bounded: stage, status, state, service, outcome, HTTP code, error code
// (at most 200 pairs); never a document, job or user id.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/docpipe/docpipe/internal/runstate"
)

// Options tune New.
type Options struct {
	// Source reads the database; nil = a new Source with SourceOptions. Share one
	// between the metrics and the alert evaluator of a process.
	Source        *Source
	SourceOptions SourceOptions
	// Budgets are the daily spending limits per service in US dollars
	// (pipeline.Budgets), exported as docpipe_budget_daily_usd.
	Budgets map[string]float64
	// StorageCheck, when set, is called (at most every SlowInterval) to export
	// docpipe_storage_up: nil error = the blob store answers.
	StorageCheck func(context.Context) error
	Log          *slog.Logger
}

// Metrics is a registry with docpipe's collectors.
type Metrics struct {
	reg *prometheus.Registry
	src *Source
}

// New returns the metrics of a process. With a nil pool only the in-process
// metrics (and Go runtime/process metrics) are exported.
func New(pool *pgxpool.Pool, opts Options) *Metrics {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range processCollectors {
		reg.MustRegister(c)
	}
	m := &Metrics{reg: reg}
	if pool != nil {
		m.src = opts.Source
		if m.src == nil {
			m.src = NewSource(pool, opts.SourceOptions)
		}
		reg.MustRegister(&dbCollector{src: m.src, opts: opts})
	}
	return m
}

// Handler serves the metrics in the Prometheus text (or OpenMetrics) format, for
// GET /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4, Timeout: 30 * time.Second})
}

// Registry is the registry behind Handler (to add collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Source is the database reader (nil without a pool).
func (m *Metrics) Source() *Source { return m.src }

// Statuses, states and stages come from internal/runstate, so a new one is exported
// (at 0) without an edit here.
var (
	stageOutcomes      = []string{AttemptDone, AttemptRetry, AttemptDeadletter}
	bufferTables       = []string{"chunk", "vector"}
	storageCheckPeriod = 15 * time.Second
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dDatabaseUp     = desc("docpipe_database_up", "1 when the last read of the database for metrics succeeded, else 0.")
	dScrapeDuration = desc("docpipe_database_scrape_duration_seconds", "How long the last read of the database for metrics took.")
	dDocuments      = desc("docpipe_documents", "Pipeline runs (upload_jobs) by status and state.", "status", "state")
	dOldest         = desc("docpipe_documents_oldest_unchanged_seconds", "Per active status, seconds since the least recently changed run in it last changed (0 = none).", "status")
	dQueueJobs      = desc("docpipe_queue_jobs", "River jobs by stage and state (available, pending, retryable, running, scheduled).", "stage", "state")
	dQueueWaiting   = desc("docpipe_queue_waiting_jobs", "River jobs that are due but not running, by stage.", "stage")
	dQueueOldest    = desc("docpipe_queue_oldest_waiting_job_age_seconds", "Seconds since the oldest waiting job of a stage became due (0 = none).", "stage")
	dBufferRows     = desc("docpipe_buffer_rows", "Rows in the buffer tables (chunk, vector) of runs not yet finalized.", "table")
	dBufferAge      = desc("docpipe_buffer_oldest_row_age_seconds", "Seconds since the oldest buffer row was written (0 = empty).", "table")
	dWorkersLive    = desc("docpipe_workers_live", "Pipeline worker processes with a fresh heartbeat.")
	dHeartbeatAge   = desc("docpipe_worker_heartbeat_age_seconds", "Seconds since the freshest heartbeat of a worker that has not stopped (absent when none).")
	dLeader         = desc("docpipe_river_leader_elected", "1 when River has a current leader (some River client with workers is running), else 0.")
	dWorkerBreakers = desc("docpipe_workers_breaker_state", "Live workers per service and circuit-breaker state, as their heartbeats report.", "service", "state")
	dUsageRequests  = desc("docpipe_usage_requests_total", "Billed requests to external services.", "service")
	dUsageTokens    = desc("docpipe_usage_tokens_total", "Tokens billed per service.", "service")
	dUsagePages     = desc("docpipe_usage_pages_total", "Pages billed per service.", "service")
	dUsageCredits   = desc("docpipe_usage_credits_total", "Credits billed per service (LlamaParse).", "service")
	dUsageCost      = desc("docpipe_usage_cost_usd_total", "US dollars spent per service.", "service")
	dTodayRequests  = desc("docpipe_usage_requests_today", "Billed requests today (UTC) per service.", "service")
	dTodayTokens    = desc("docpipe_usage_tokens_today", "Tokens billed today (UTC) per service.", "service")
	dTodayPages     = desc("docpipe_usage_pages_today", "Pages billed today (UTC) per service.", "service")
	dTodayCost      = desc("docpipe_usage_cost_today_usd", "US dollars spent today (UTC) per service.", "service")
	dBudget         = desc("docpipe_budget_daily_usd", "Daily spending limit per service in US dollars (0 = none).", "service")
	dChunks         = desc("docpipe_chunks_searchable", "Searchable chunks (document_chunks rows).")
	dStarted        = desc("docpipe_stage_started_total", "Stage attempts that started work, by stage.", "stage")
	dResults        = desc("docpipe_stage_results_total", "Stage attempts by how they ended: done, retry (failed, will retry) or deadletter.", "stage", "outcome")
	dFailures       = desc("docpipe_stage_failures_total", "Failed stage attempts by outcome (retry, deadletter) and error code.", "stage", "outcome", "code")
	dDeadLetters    = desc("docpipe_dead_letters_total", "Runs dead-lettered, by the stage that failed.", "stage")
	dRedrives       = desc("docpipe_redrives_total", "Dead-lettered runs re-driven, by the stage they restart at.", "stage")
	dUploaded       = desc("docpipe_documents_uploaded_total", "Runs created by an upload.")
	dCompleted      = desc("docpipe_documents_completed_total", "Runs that reached complete.")
	dChunksDone     = desc("docpipe_chunks_published_total", "Chunks made searchable by completed runs.")
	dStageDuration  = desc("docpipe_stage_duration_seconds", "Duration of stage attempts that finished their stage, by stage.", "stage")
	dUploadToEnd    = desc("docpipe_upload_to_complete_seconds", "Time from upload (run created) to complete.")
	dStorageUp      = desc("docpipe_storage_up", "1 when the blob store answered the last check, else 0.")
)

var allDescs = []*prometheus.Desc{dDatabaseUp, dScrapeDuration, dDocuments, dOldest, dQueueJobs, dQueueWaiting, dQueueOldest,
	dBufferRows, dBufferAge, dWorkersLive, dHeartbeatAge, dLeader, dWorkerBreakers, dUsageRequests, dUsageTokens, dUsagePages,
	dUsageCredits, dUsageCost, dTodayRequests, dTodayTokens, dTodayPages, dTodayCost, dBudget, dChunks, dStarted, dResults,
	dFailures, dDeadLetters, dRedrives, dUploaded, dCompleted, dChunksDone, dStageDuration, dUploadToEnd, dStorageUp}

type dbCollector struct {
	src  *Source
	opts Options

	storageMu sync.Mutex
	storageAt time.Time
	storageUp float64
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.src.opts.QueryTimeout)
	defer cancel()
	start := time.Now()
	snap, err := c.src.Snapshot(ctx)
	gauge(dScrapeDuration, time.Since(start).Seconds())
	if c.opts.StorageCheck != nil {
		gauge(dStorageUp, c.storage(ctx))
	}
	for service, b := range c.opts.Budgets {
		gauge(dBudget, b, service)
	}
	var ev EventTotals
	if err != nil {
		c.opts.Log.Warn("metrics: database read failed", "error", err)
		gauge(dDatabaseUp, 0)
		ev = c.src.Events() // counters stay valid while the database is away
	} else {
		gauge(dDatabaseUp, 1)
		ev = snap.Events
		c.collectSnapshot(snap, gauge, counter)
	}
	c.collectEvents(ev, ch, counter)
}

func (c *dbCollector) collectSnapshot(s *Snapshot, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	docs := map[StatusState]int64{}
	for _, st := range runstate.Statuses() {
		for _, state := range st.States() {
			docs[StatusState{st, state}] = 0
		}
		if !st.Terminal() {
			gauge(dOldest, s.OldestUnchanged[st], string(st))
		}
	}
	for k, n := range s.Documents {
		docs[k] = n
	}
	for k, n := range docs {
		gauge(dDocuments, float64(n), string(k.Status), string(k.State))
	}

	queues := map[string]Queue{}
	for _, st := range runstate.Stages() {
		queues[string(st)] = Queue{}
	}
	for k, q := range s.Queue {
		queues[k] = q
	}
	for st, q := range queues {
		for _, state := range riverLiveStates {
			gauge(dQueueJobs, float64(q.Jobs[state]), st, state)
		}
		gauge(dQueueWaiting, float64(q.Waiting), st)
		gauge(dQueueOldest, q.OldestWaiting, st)
	}
	for _, t := range bufferTables {
		gauge(dBufferRows, float64(s.Buffers[t].Rows), t)
		gauge(dBufferAge, s.Buffers[t].OldestAge, t)
	}

	gauge(dWorkersLive, float64(s.Workers.Live))
	if s.Workers.HeartbeatAge >= 0 {
		gauge(dHeartbeatAge, s.Workers.HeartbeatAge)
	}
	leader := 0.0
	if s.Workers.LeaderElected {
		leader = 1
	}
	gauge(dLeader, leader)
	for service, states := range s.Workers.Breakers {
		for _, state := range breakerStates {
			gauge(dWorkerBreakers, float64(states[state]), service, state)
		}
	}

	for service, u := range s.Usage {
		counter(dUsageRequests, float64(u.Requests), service)
		counter(dUsageTokens, float64(u.Tokens), service)
		counter(dUsagePages, float64(u.Pages), service)
		counter(dUsageCredits, u.Credits, service)
		counter(dUsageCost, u.CostUSD, service)
		gauge(dTodayRequests, float64(u.TodayRequests), service)
		gauge(dTodayTokens, float64(u.TodayTokens), service)
		gauge(dTodayPages, float64(u.TodayPages), service)
		gauge(dTodayCost, u.TodayCostUSD, service)
	}
	for service := range c.opts.Budgets {
		if _, ok := s.Usage[service]; !ok {
			gauge(dTodayCost, 0, service)
		}
	}
	gauge(dChunks, float64(s.Chunks))
}

func (c *dbCollector) collectEvents(ev EventTotals, ch chan<- prometheus.Metric, counter func(*prometheus.Desc, float64, ...string)) {
	results := map[StageOutcome]int64{}
	started := map[string]int64{}
	dead := map[string]int64{}
	for _, st := range runstate.Stages() {
		started[string(st)] = 0
		dead[string(st)] = 0
		for _, o := range stageOutcomes {
			results[StageOutcome{string(st), o}] = 0
		}
	}
	for k, n := range ev.Results {
		results[k] = n
		if k.Outcome == AttemptDeadletter {
			dead[k.Stage] = n
		}
	}
	for k, n := range ev.Started {
		started[k] = n
	}
	for k, n := range results {
		counter(dResults, float64(n), k.Stage, k.Outcome)
	}
	for k, n := range started {
		counter(dStarted, float64(n), k)
	}
	for k, n := range dead {
		counter(dDeadLetters, float64(n), k)
	}
	for k, n := range ev.Codes {
		counter(dFailures, float64(n), k.Stage, k.Outcome, k.Code)
	}
	for k, n := range ev.Redrives {
		counter(dRedrives, float64(n), k)
	}
	counter(dUploaded, float64(ev.Uploaded))
	counter(dCompleted, float64(ev.Completed))
	counter(dChunksDone, float64(ev.ChunksDone))
	for _, st := range runstate.Stages() {
		if ev.StageTime[string(st)] == nil {
			ev.StageTime[string(st)] = newHistogram(StageDurationBuckets)
		}
	}
	for st, h := range ev.StageTime {
		ch <- prometheus.MustNewConstHistogram(dStageDuration, h.Count, h.Sum, h.Cumulative(), st)
	}
	if h := ev.UploadToEnd; h != nil {
		ch <- prometheus.MustNewConstHistogram(dUploadToEnd, h.Count, h.Sum, h.Cumulative())
	}
}

func (c *dbCollector) storage(ctx context.Context) float64 {
	c.storageMu.Lock()
	defer c.storageMu.Unlock()
	if !c.storageAt.IsZero() && time.Since(c.storageAt) < storageCheckPeriod {
		return c.storageUp
	}
	c.storageUp = 0
	if err := c.opts.StorageCheck(ctx); err == nil {
		c.storageUp = 1
	}
	c.storageAt = time.Now()
	return c.storageUp
}
