package apitypes

import (
	"time"

	"github.com/google/uuid"

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
