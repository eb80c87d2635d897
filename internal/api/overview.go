package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Overview is the operator dashboard's summary: what the caller may see of the
// pipeline now and over the last hour. Workers, services and cost are operational
// facts about the whole deployment, shown to admin credentials only.
type Overview struct {
	At     time.Time               `json:"at" doc:"When it was read (database clock)."`
	Viewer Viewer                  `json:"viewer"`
	Counts map[runstate.Status]int `json:"counts" doc:"Runs by status."`
	// Throughput is one entry per minute of the last hour that finished a run.
	Throughput []MinuteThroughput `json:"throughput" doc:"Runs finished per minute over the last hour (minutes with none are left out)."`
	Latency    LatencySummary     `json:"latency" doc:"Upload to complete, over runs completed in the last hour."`
	Rates      HourRates          `json:"rates" doc:"Stage attempts, errors, retries and dead letters over the last hour (from events)."`
	Events     []RecentEvent      `json:"events" doc:"The newest events, newest first."`
	Workers    []WorkerView       `json:"workers,omitempty" doc:"Admin only: live pipeline workers (fresh heartbeat, not stopped)."`
	Services   []ServiceView      `json:"services,omitempty" doc:"Admin only: external services as the live workers see them."`
	Cost       []CostView         `json:"cost,omitempty" doc:"Admin only: spending today (UTC) per service against its daily budget."`
}

// Viewer is who is looking.
type Viewer struct {
	ID    string `json:"id" doc:"The credential (API key id or JWT subject)."`
	Admin bool   `json:"admin" doc:"Admin scope: every tenant, and the dashboard's retry and cancel actions."`
}

// MinuteThroughput is one minute's finished runs.
type MinuteThroughput struct {
	Minute    time.Time `json:"minute"`
	Documents int       `json:"documents" doc:"Runs that reached complete."`
	Chunks    int       `json:"chunks" doc:"Chunks of those runs."`
	Failed    int       `json:"failed" doc:"Runs dead-lettered (failed_*)."`
}

// LatencySummary is a distribution of upload→complete times in seconds.
type LatencySummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P95   float64 `json:"p95_seconds"`
	P99   float64 `json:"p99_seconds"`
}

// HourRates counts the last hour's events.
type HourRates struct {
	StageAttempts int     `json:"stage_attempts"`
	Errors        int     `json:"errors"`
	Retries       int     `json:"retries"`
	DeadLetters   int     `json:"dead_letters"`
	ErrorRate     float64 `json:"error_rate" doc:"errors / stage_attempts (0 with no attempts)."`
	RetryRate     float64 `json:"retry_rate" doc:"retries / stage_attempts."`
}

// RecentEvent is one event with its document's name.
type RecentEvent struct {
	At         time.Time  `json:"at"`
	Type       string     `json:"type"`
	Stage      string     `json:"stage,omitempty"`
	Severity   string     `json:"severity"`
	Code       string     `json:"code"`
	DocumentID *uuid.UUID `json:"document_id,omitempty"`
	JobID      *uuid.UUID `json:"job_id,omitempty"`
	Filename   string     `json:"filename,omitempty"`
}

// WorkerView is one live worker process.
type WorkerView struct {
	ID           string            `json:"id"`
	Hostname     string            `json:"hostname"`
	PID          int               `json:"pid"`
	Concurrency  int               `json:"concurrency"`
	StartedAt    time.Time         `json:"started_at"`
	HeartbeatAge float64           `json:"heartbeat_age_seconds"`
	Breakers     map[string]string `json:"breakers"`
}

// ServiceView is one external service over the live workers' last 5 minutes.
type ServiceView struct {
	Name        string  `json:"name"`
	Breaker     string  `json:"breaker" doc:"The worst state any live worker reports: open, half-open or closed (\"\" = none reported)."`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	RateLimited int     `json:"rate_limited"`
	P50ms       float64 `json:"p50_ms" doc:"Call-weighted mean of the workers' medians."`
	P95ms       float64 `json:"p95_ms" doc:"The highest of the workers' 95th percentiles."`
}

// CostView is one service's spending today against its budget.
type CostView struct {
	Service   string  `json:"service"`
	CostUSD   float64 `json:"cost_usd"`
	BudgetUSD float64 `json:"budget_usd" doc:"Daily budget (0 = none)."`
	Tokens    int64   `json:"tokens"`
	Pages     int64   `json:"pages"`
	Requests  int64   `json:"requests"`
}

type overviewOutput struct {
	Body Overview
}

// overviewTTL: readers within this of each other share one read per scope, so many
// open dashboards cost the database one set of queries per second.
const overviewTTL = time.Second

type overviewCache struct {
	mu sync.Mutex
	m  map[string]cachedOverview
}

type cachedOverview struct {
	at time.Time
	ov Overview
}

func (s *Server) registerOverview() {
	cache := &overviewCache{m: map[string]cachedOverview{}}
	huma.Register(s.api, huma.Operation{
		OperationID: "get-overview", Method: http.MethodGet, Path: "/v1/overview", Tags: []string{"operations"},
		Summary: "Dashboard overview: runs by status, throughput and latency over the last hour, error and retry rates, recent events; for admins also live workers, external services and cost against budget",
		Errors:  []int{401, 429},
	}, func(ctx context.Context, _ *struct{}) (*overviewOutput, error) {
		_, p := scopeOf(ctx)
		key := "admin"
		if !p.Admin {
			key = "user:" + p.UserID.String()
		}
		cache.mu.Lock()
		c, ok := cache.m[key]
		cache.mu.Unlock()
		if !ok || time.Since(c.at) > overviewTTL {
			ov, err := s.overview(ctx, p)
			if err != nil {
				return nil, s.internal(ctx, "read overview", err)
			}
			c = cachedOverview{at: time.Now(), ov: ov}
			cache.mu.Lock()
			cache.m[key] = c
			cache.mu.Unlock()
		}
		out := &overviewOutput{Body: c.ov}
		out.Body.Viewer = Viewer{ID: p.ID, Admin: p.Admin}
		return out, nil
	})
}

const (
	sqlOverviewCounts = `
SELECT j.status, count(*)::int
FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
WHERE ($1::uuid IS NULL OR d.user_id = $1)
GROUP BY 1`

	sqlOverviewThroughput = `
SELECT date_trunc('minute', j.finished_at),
       count(*) FILTER (WHERE j.status = $2)::int,
       coalesce(sum((j.progress->>'chunks_total')::int) FILTER (WHERE j.status = $2), 0)::int,
       count(*) FILTER (WHERE j.status = ANY($3))::int
FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
WHERE j.finished_at > now() - interval '1 hour' AND ($1::uuid IS NULL OR d.user_id = $1)
GROUP BY 1 ORDER BY 1`

	sqlOverviewLatency = `
SELECT count(*)::int, coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at)), ARRAY[0, 0, 0]::float8[])
FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id)
WHERE j.status = $2 AND j.finished_at > now() - interval '1 hour' AND ($1::uuid IS NULL OR d.user_id = $1)`

	sqlOverviewRates = `
SELECT count(*) FILTER (WHERE e.type = 'stage_started')::int, count(*) FILTER (WHERE e.type = 'error')::int,
       count(*) FILTER (WHERE e.type = 'retry')::int, count(*) FILTER (WHERE e.type = 'deadletter')::int
FROM upload_pipeline.events e LEFT JOIN upload_pipeline.documents d USING (document_id)
WHERE e.ts > now() - interval '1 hour' AND ($1::uuid IS NULL OR d.user_id = $1)`

	sqlOverviewEvents = `
SELECT e.ts, e.type, coalesce(e.stage, ''), e.severity, e.code, e.document_id, e.job_id, coalesce(d.filename, '')
FROM upload_pipeline.events e LEFT JOIN upload_pipeline.documents d USING (document_id)
WHERE ($1::uuid IS NULL OR d.user_id = $1)
ORDER BY e.ts DESC LIMIT 30`

	sqlOverviewWorkers = `
SELECT worker_id, hostname, pid, concurrency, started_at, extract(epoch FROM now() - heartbeat_at)::float8, breakers, services
FROM upload_pipeline.workers
WHERE stopped_at IS NULL AND heartbeat_at > now() - interval '20 seconds'
ORDER BY worker_id`

	sqlOverviewCost = `
SELECT service, cost_usd::float8, tokens, pages, requests
FROM upload_pipeline.usage_daily
WHERE day = (now() AT TIME ZONE 'UTC')::date
ORDER BY service`
)

// overview reads what p may see in one round trip.
func (s *Server) overview(ctx context.Context, p auth.Principal) (Overview, error) {
	admin := p.Admin
	var user *uuid.UUID // nil = every tenant
	if !admin {
		user = &p.UserID
	}
	ov := Overview{Counts: map[runstate.Status]int{}, Throughput: []MinuteThroughput{}, Events: []RecentEvent{}}
	b := &pgx.Batch{}
	b.Queue(`SELECT now()`).QueryRow(func(r pgx.Row) error { return r.Scan(&ov.At) })
	b.Queue(sqlOverviewCounts, user).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var st runstate.Status
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				return err
			}
			ov.Counts[st] = n
		}
		return rows.Err()
	})
	b.Queue(sqlOverviewThroughput, user, runstate.Complete, runstate.FailedStatuses()).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var m MinuteThroughput
			if err := rows.Scan(&m.Minute, &m.Documents, &m.Chunks, &m.Failed); err != nil {
				return err
			}
			ov.Throughput = append(ov.Throughput, m)
		}
		return rows.Err()
	})
	b.Queue(sqlOverviewLatency, user, runstate.Complete).QueryRow(func(r pgx.Row) error {
		var ps []float64
		if err := r.Scan(&ov.Latency.Count, &ps); err != nil {
			return err
		}
		if len(ps) == 3 {
			ov.Latency.P50, ov.Latency.P95, ov.Latency.P99 = ps[0], ps[1], ps[2]
		}
		return nil
	})
	b.Queue(sqlOverviewRates, user).QueryRow(func(r pgx.Row) error {
		rt := &ov.Rates
		if err := r.Scan(&rt.StageAttempts, &rt.Errors, &rt.Retries, &rt.DeadLetters); err != nil {
			return err
		}
		if rt.StageAttempts > 0 {
			rt.ErrorRate = float64(rt.Errors) / float64(rt.StageAttempts)
			rt.RetryRate = float64(rt.Retries) / float64(rt.StageAttempts)
		}
		return nil
	})
	b.Queue(sqlOverviewEvents, user).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e RecentEvent
			if err := rows.Scan(&e.At, &e.Type, &e.Stage, &e.Severity, &e.Code, &e.DocumentID, &e.JobID, &e.Filename); err != nil {
				return err
			}
			ov.Events = append(ov.Events, e)
		}
		return rows.Err()
	})
	var summaries []map[string]metrics.ServiceSummary
	spent := map[string]CostView{}
	if admin {
		ov.Workers = []WorkerView{}
		b.Queue(sqlOverviewWorkers).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var w WorkerView
				var svc []byte
				if err := rows.Scan(&w.ID, &w.Hostname, &w.PID, &w.Concurrency, &w.StartedAt, &w.HeartbeatAge, &w.Breakers, &svc); err != nil {
					return err
				}
				var m map[string]metrics.ServiceSummary
				if err := json.Unmarshal(svc, &m); err != nil {
					return err
				}
				summaries = append(summaries, m)
				ov.Workers = append(ov.Workers, w)
			}
			return rows.Err()
		})
		b.Queue(sqlOverviewCost).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var c CostView
				if err := rows.Scan(&c.Service, &c.CostUSD, &c.Tokens, &c.Pages, &c.Requests); err != nil {
					return err
				}
				spent[c.Service] = c
			}
			return rows.Err()
		})
	}
	if err := s.d.Pool.SendBatch(ctx, b).Close(); err != nil {
		return ov, err
	}
	if admin {
		ov.Services = mergeServices(ov.Workers, summaries)
		ov.Cost = costViews(spent, s.d.Budgets)
	}
	return ov, nil
}

var breakerRank = map[string]int{"": 0, "closed": 1, "half-open": 2, "open": 3}

// mergeServices combines the live workers' breaker states and recent call summaries
// per service.
func mergeServices(workers []WorkerView, summaries []map[string]metrics.ServiceSummary) []ServiceView {
	byName := map[string]*ServiceView{}
	get := func(name string) *ServiceView {
		if v, ok := byName[name]; ok {
			return v
		}
		v := &ServiceView{Name: name}
		byName[name] = v
		return v
	}
	for i, w := range workers {
		for name, state := range w.Breakers {
			if v := get(name); breakerRank[state] > breakerRank[v.Breaker] {
				v.Breaker = state
			}
		}
		for name, sum := range summaries[i] {
			v := get(name)
			if sum.Calls > 0 {
				v.P50ms = (v.P50ms*float64(v.Calls) + sum.P50ms*float64(sum.Calls)) / float64(v.Calls+sum.Calls)
			}
			v.Calls += sum.Calls
			v.Errors += sum.Errors
			v.RateLimited += sum.RateLimited
			v.P95ms = max(v.P95ms, sum.P95ms)
		}
	}
	out := make([]ServiceView, 0, len(byName))
	for _, v := range byName {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b ServiceView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// costViews lists every service that spent today or has a budget.
func costViews(spent map[string]CostView, budgets pipeline.Budgets) []CostView {
	for svc, b := range budgets {
		if b > 0 {
			c := spent[svc]
			c.Service, c.BudgetUSD = svc, b
			spent[svc] = c
		}
	}
	out := make([]CostView, 0, len(spent))
	for _, c := range spent {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CostView) int { return strings.Compare(a.Service, b.Service) })
	return out
}
