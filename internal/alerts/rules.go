package alerts

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/runstate"
)

// The rules. Names are stable: they are the alert names in deploy/prometheus/alerts.yml
// and the section headings (anchors) of docs/RUNBOOK.md.
const (
	NoLiveWorker          = "DocpipeNoLiveWorker"
	DocumentStuck         = "DocpipeDocumentStuck"
	DeadLettersIncreasing = "DocpipeDeadLettersIncreasing"
	StageErrorRateHigh    = "DocpipeStageErrorRateHigh"
	BreakerOpen           = "DocpipeBreakerOpen"
	Budget80              = "DocpipeBudget80Percent"
	BudgetExhausted       = "DocpipeBudgetExhausted"
	BuffersNotFinalized   = "DocpipeBuffersNotFinalized"
	DatabaseUnreachable   = "DocpipeDatabaseUnreachable"
	StorageUnreachable    = "DocpipeStorageUnreachable"
	SchemaDrift           = "DocpipeSchemaDrift"
)

// Rules lists every rule name with its severity.
var Rules = []struct{ Name, Severity string }{
	{NoLiveWorker, Critical},
	{DocumentStuck, Warning},
	{DeadLettersIncreasing, Warning},
	{StageErrorRateHigh, Warning},
	{BreakerOpen, Warning},
	{Budget80, Warning},
	{BudgetExhausted, Critical},
	{BuffersNotFinalized, Warning},
	{DatabaseUnreachable, Critical},
	{StorageUnreachable, Critical},
	{SchemaDrift, Warning},
}

// Severities.
const (
	Warning  = "warning"
	Critical = "critical"
)

func severityOf(name string) string {
	for _, r := range Rules {
		if r.Name == name {
			return r.Severity
		}
	}
	return Warning
}

// DefaultStatusDeadline is how long a run may stay in an active status without any
// change (upload_jobs.updated_at) before DocpipeDocumentStuck fires, unless
// DefaultStatusDeadlines says otherwise.
const DefaultStatusDeadline = 10 * time.Minute

// DefaultStatusDeadlines is the deadline of every active status of the vocabulary
// (runstate.ActiveStatuses): DefaultStatusDeadline, or longer or shorter where a
// status is known to take longer or less. A new status is watched without an edit.
var DefaultStatusDeadlines = statusDeadlines(map[runstate.Status]time.Duration{
	runstate.Uploaded:            5 * time.Minute,
	runstate.ParseQueued:         45 * time.Minute, // a LlamaParse job may take up to its 30 min deadline
	runstate.Chunking:            15 * time.Minute,
	runstate.EmbeddingQueued:     30 * time.Minute,
	runstate.EmbeddingInProgress: 30 * time.Minute, // every committed micro-batch counts as a change
})

func statusDeadlines(special map[runstate.Status]time.Duration) map[runstate.Status]time.Duration {
	out := map[runstate.Status]time.Duration{}
	for _, st := range runstate.ActiveStatuses() {
		out[st] = DefaultStatusDeadline
		if d, ok := special[st]; ok {
			out[st] = d
		}
	}
	return out
}

// condition is a rule that holds now.
type condition struct {
	name, subject, message string
}

type key struct{ name, subject string }

// sample is the event counters at one evaluation, for windows (increase over 5 min).
type sample struct {
	at      time.Time
	results map[metrics.StageOutcome]int64
}

func (e *Engine) runbook(name string) string {
	return e.opts.RunbookBase + "#" + strings.ToLower(name)
}

func (e *Engine) withRunbook(name, msg string) string {
	return msg + " Runbook: " + e.runbook(name)
}

// evaluation is what one evaluation found.
type evaluation struct {
	conds []condition
	// evaluated: rules whose inputs were read and whose windows are covered by this
	// evaluator's history; only those may resolve.
	evaluated map[string]bool
	// pending: conditions that hold but not yet for their duration; a firing alert
	// among them stays firing (a new evaluator starts its clocks afresh).
	pending map[key]bool
}

// evaluate runs every rule over snap.
func (e *Engine) evaluate(ctx context.Context, snap *metrics.Snapshot, now time.Time) evaluation {
	var out []condition
	done := map[string]bool{}
	pending := map[key]bool{}
	// A window rule may resolve only once this evaluator has watched a whole window.
	covers := func(w time.Duration) bool { return now.Sub(e.electedAt) >= w }
	held := func(k key, cond bool, d time.Duration) bool {
		ok := e.held(k, cond, now, d)
		if cond && !ok {
			pending[k] = true
		}
		return ok
	}
	add := func(name, subject, format string, args ...any) {
		out = append(out, condition{name, subject, e.withRunbook(name, fmt.Sprintf(format, args...))})
	}
	e.record(snap, now)

	// No live worker while work waits.
	waiting, oldest := snap.Waiting()
	live := snap.Workers.Live > 0 || snap.Workers.LeaderElected
	if held(key{NoLiveWorker, ""}, waiting > 0 && !live, e.opts.NoWorkerFor) {
		add(NoLiveWorker, "", "No pipeline worker is running while %d jobs wait (the oldest for %s): nothing is being processed. "+
			"Start a worker (`docpipe worker`, or scale the worker deployment up) and check why the last one stopped (its logs, OOM kills, crash loops).",
			waiting, dur(oldest))
	}
	done[NoLiveWorker] = true

	// Documents past their status's deadline.
	if stuck, err := e.stuck(ctx); err != nil {
		e.log.Warn("alerts: reading stuck documents failed", "error", err)
	} else {
		for _, s := range stuck {
			add(DocumentStuck, string(s.status), "%d documents have not moved in status %s for longer than its %s deadline (the oldest for %s). "+
				"Check that workers run and are not failing (`docpipe jobs list`, `docpipe jobs show JOB_ID`), then the stage's external service.",
				s.n, s.status, dur(e.deadlines[s.status].Seconds()), dur(s.oldest))
		}
		done[DocumentStuck] = true
	}

	// Dead letters increasing.
	if inc := e.increase(func(k metrics.StageOutcome) bool { return k.Outcome == metrics.AttemptDeadletter }, e.opts.DeadLetterWindow); len(inc) > 0 {
		var total int64
		var parts []string
		for _, st := range sortedKeys(inc) {
			total += inc[st]
			parts = append(parts, fmt.Sprintf("%s %d", st, inc[st]))
		}
		add(DeadLettersIncreasing, "", "%d runs were dead-lettered in the last %s (%s). "+
			"Read their errors (`docpipe jobs list --state deadletter`, `docpipe jobs show JOB_ID`), fix the cause, then re-drive them (`docpipe jobs retry JOB_ID`).",
			total, dur(e.opts.DeadLetterWindow.Seconds()), strings.Join(parts, ", "))
	}
	done[DeadLettersIncreasing] = covers(e.opts.DeadLetterWindow)

	// Stage error rate.
	failed := e.increase(func(k metrics.StageOutcome) bool { return k.Outcome != metrics.AttemptDone }, e.opts.ErrorRateWindow)
	all := e.increase(func(metrics.StageOutcome) bool { return true }, e.opts.ErrorRateWindow)
	for _, st := range sortedKeys(failed) {
		f, n := failed[st], all[st]
		if n < int64(e.opts.ErrorRateMinAttempts) || float64(f)/float64(n) < e.opts.ErrorRateThreshold {
			continue
		}
		add(StageErrorRateHigh, st, "%.0f%% of %s attempts failed in the last %s (%d of %d; threshold %.0f%%). "+
			"Look at the recent errors of the stage (`docpipe jobs list`, the worker logs): an external service down, rate limited or rejecting requests, or a bad deploy.",
			100*float64(f)/float64(n), st, dur(e.opts.ErrorRateWindow.Seconds()), f, n, 100*e.opts.ErrorRateThreshold)
	}
	done[StageErrorRateHigh] = covers(e.opts.ErrorRateWindow)

	// Circuit breakers open: this process's (hook) and every live worker's (heartbeats).
	open := map[string]int{}
	for service, states := range snap.Workers.Breakers {
		if states["open"] > 0 {
			open[service] += states["open"]
		}
	}
	if e.opts.Breakers != nil {
		for service, state := range e.opts.Breakers() {
			if strings.EqualFold(state, "open") && open[service] == 0 {
				open[service] = 1
			}
		}
	}
	for _, service := range sortedKeys(open) {
		add(BreakerOpen, service, "The %s circuit breaker is open in %d worker(s): calls to %s fail fast and its stages wait. "+
			"Check the service's status and the workers' logs (authentication, quota, outage); the breaker probes again by itself.",
			service, open[service], service)
	}
	done[BreakerOpen] = true

	// Budgets.
	for _, service := range sortedKeys(e.opts.Budgets) {
		budget := e.opts.Budgets[service]
		if budget <= 0 {
			continue
		}
		spent := snap.Usage[service].TodayCostUSD
		share := spent / budget
		if share >= 1 {
			add(BudgetExhausted, service, "%s spending today is $%.2f, the whole $%.2f daily budget: calls to %s are paused until 00:00 UTC and documents wait. "+
				"Raise DOCPIPE_BUDGET_%s_USD if the spending is expected, or find what is using it.",
				service, spent, budget, service, strings.ToUpper(service))
		}
		if share >= 0.8 {
			add(Budget80, service, "%s spending today is $%.2f, %.0f%% of the $%.2f daily budget; at 100%% calls pause until 00:00 UTC. "+
				"Check whether the volume is expected and raise DOCPIPE_BUDGET_%s_USD if needed.",
				service, spent, 100*share, budget, strings.ToUpper(service))
		}
	}
	done[Budget80], done[BudgetExhausted] = true, true

	// Buffers holding rows while nothing finalizes.
	var rows int64
	var bufAge float64
	for _, b := range snap.Buffers {
		rows += b.Rows
		bufAge = max(bufAge, b.OldestAge)
	}
	stall := e.opts.BufferStall
	if rows > 0 && bufAge >= stall.Seconds() && now.Sub(e.lastCompletion) >= stall {
		add(BuffersNotFinalized, "", "The chunk/vector buffers hold %d rows (the oldest %s old) and no document has been finalized for %s. "+
			"Check the embed and finalize stages: worker logs, `docpipe jobs list --state retryable`, the embedding service.",
			rows, dur(bufAge), dur(now.Sub(e.lastCompletion).Seconds()))
	}
	done[BuffersNotFinalized] = covers(stall)

	// Storage.
	if e.opts.StorageCheck != nil {
		cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
		err := e.opts.StorageCheck(cctx)
		cancel()
		if held(key{StorageUnreachable, ""}, err != nil, e.opts.StorageFor) {
			add(StorageUnreachable, "", "The blob store does not answer (%s): uploads fail and stages cannot read documents. "+
				"Check the storage service, its credentials (S3_*/SUPABASE_*) and the network from docpipe to it.", oneLine(err))
		}
		done[StorageUnreachable] = true
	}
	// Schema drift: checked at election and every SchemaCheckInterval (the first
	// check builds the expected schema in a scratch database). When a check cannot
	// run (a migration in flight, no scratch database), the last answer stands.
	if e.opts.SchemaCheck != nil {
		if e.schemaAt.IsZero() || now.Sub(e.schemaAt) >= e.opts.SchemaCheckInterval {
			e.schemaAt = now
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			drift, err := e.opts.SchemaCheck(cctx)
			cancel()
			if err != nil {
				e.log.Warn("alerts: schema drift check could not run", "error", err)
			} else {
				e.schemaDrift, e.schemaKnown = drift, true
			}
		}
		if n := len(e.schemaDrift); n > 0 {
			shown := e.schemaDrift[:min(n, 5)]
			more := ""
			if n > len(shown) {
				more = fmt.Sprintf("; and %d more", n-len(shown))
			}
			add(SchemaDrift, "", "The database schema differs from what docpipe's migrations create, in %d ways: %s%s. "+
				"Run `docpipe validate db` for each difference with the SQL that restores it, then apply that SQL (or a new migration); "+
				"the alert resolves at the next check (every %s).", n, strings.Join(shown, "; "), more, dur(e.opts.SchemaCheckInterval.Seconds()))
		}
		done[SchemaDrift] = e.schemaKnown
	}
	return evaluation{conds: out, evaluated: done, pending: pending}
}

// held reports whether cond has been true for at least d.
func (e *Engine) held(k key, cond bool, now time.Time, d time.Duration) bool {
	if !cond {
		delete(e.since, k)
		return false
	}
	s, ok := e.since[k]
	if !ok {
		s = now
		e.since[k] = s
	}
	return now.Sub(s) >= d
}

// record keeps the event counters for windows and notes the last completion.
func (e *Engine) record(snap *metrics.Snapshot, now time.Time) {
	if snap.Events.Completed != e.completed {
		e.completed, e.lastCompletion = snap.Events.Completed, now
	}
	keep := max(e.opts.ErrorRateWindow, e.opts.DeadLetterWindow) + 2*e.opts.Interval
	i := 0
	for i < len(e.samples) && now.Sub(e.samples[i].at) > keep {
		i++
	}
	e.samples = append(e.samples[i:], sample{at: now, results: snap.Events.Results})
}

// increase is, per stage, how much the matching counters grew over the window
// (from the oldest sample inside it to the newest).
func (e *Engine) increase(match func(metrics.StageOutcome) bool, window time.Duration) map[string]int64 {
	if len(e.samples) < 2 {
		return nil
	}
	last := e.samples[len(e.samples)-1]
	first := last
	for _, s := range e.samples {
		if last.at.Sub(s.at) <= window {
			first = s
			break
		}
	}
	out := map[string]int64{}
	for k, v := range last.results {
		if match(k) {
			if d := v - first.results[k]; d > 0 {
				out[k.Stage] += d
			}
		}
	}
	return out
}

type stuckStatus struct {
	status runstate.Status
	n      int64
	oldest float64
}

var sqlStuck = `
SELECT j.status, count(*), max(extract(epoch FROM now() - j.updated_at))::float8
FROM upload_pipeline.upload_jobs j
JOIN unnest($1::text[], $2::float8[]) AS d(status, secs) ON d.status = j.status
WHERE j.state IN (` + runstate.SQLList(runstate.ActiveStates()) + `) AND j.updated_at < now() - make_interval(secs => d.secs)
GROUP BY j.status
ORDER BY j.status`

func (e *Engine) stuck(ctx context.Context) ([]stuckStatus, error) {
	var statuses []runstate.Status
	var secs []float64
	for st, d := range e.deadlines {
		statuses = append(statuses, st)
		secs = append(secs, d.Seconds())
	}
	rows, err := e.pool.Query(ctx, sqlStuck, statuses, secs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stuckStatus
	for rows.Next() {
		var s stuckStatus
		if err := rows.Scan(&s.status, &s.n, &s.oldest); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dur formats seconds for people: 45s, 12m, 3h10m.
func dur(secs float64) string {
	d := time.Duration(secs * float64(time.Second))
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func oneLine(err error) string {
	if err == nil {
		return "no error"
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
