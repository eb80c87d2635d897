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

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

type overviewOutput struct {
	Body apitypes.Overview
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
	ov apitypes.Overview
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
		out.Body.Viewer = apitypes.Viewer{ID: p.ID, Admin: p.Admin}
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
func (s *Server) overview(ctx context.Context, p auth.Principal) (apitypes.Overview, error) {
	admin := p.Admin
	var user *uuid.UUID // nil = every tenant
	if !admin {
		user = &p.UserID
	}
	ov := apitypes.Overview{Counts: map[runstate.Status]int{}, Throughput: []apitypes.MinuteThroughput{}, Events: []apitypes.RecentEvent{}}
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
			var m apitypes.MinuteThroughput
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
			var e apitypes.RecentEvent
			if err := rows.Scan(&e.At, &e.Type, &e.Stage, &e.Severity, &e.Code, &e.DocumentID, &e.JobID, &e.Filename); err != nil {
				return err
			}
			ov.Events = append(ov.Events, e)
		}
		return rows.Err()
	})
	var summaries []map[string]metrics.ServiceSummary
	spent := map[string]apitypes.CostView{}
	if admin {
		ov.Workers = []apitypes.WorkerView{}
		b.Queue(sqlOverviewWorkers).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var w apitypes.WorkerView
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
				var c apitypes.CostView
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
func mergeServices(workers []apitypes.WorkerView, summaries []map[string]metrics.ServiceSummary) []apitypes.ServiceView {
	byName := map[string]*apitypes.ServiceView{}
	get := func(name string) *apitypes.ServiceView {
		if v, ok := byName[name]; ok {
			return v
		}
		v := &apitypes.ServiceView{Name: name}
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
	out := make([]apitypes.ServiceView, 0, len(byName))
	for _, v := range byName {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b apitypes.ServiceView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// costViews lists every service that spent today or has a budget.
func costViews(spent map[string]apitypes.CostView, budgets pipeline.Budgets) []apitypes.CostView {
	for svc, b := range budgets {
		if b > 0 {
			c := spent[svc]
			c.Service, c.BudgetUSD = svc, b
			spent[svc] = c
		}
	}
	out := make([]apitypes.CostView, 0, len(spent))
	for _, c := range spent {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b apitypes.CostView) int { return strings.Compare(a.Service, b.Service) })
	return out
}
