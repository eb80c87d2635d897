// Package alerts evaluates docpipe's alert rules and announces them.
//
// Every process serving the API runs an Engine. One of them, the holder of a
// Postgres session advisory lock taken on a dedicated connection, evaluates the rules
// every Interval over a metrics.Snapshot (and a few queries of its own), keeps the
// firing/resolved state with timestamps in upload_pipeline.alerts, and delivers each
// firing and each resolution once: to the log and, when configured, to a
// Slack-compatible webhook ({"text": …}). If it dies, its connection closes, the
// lock is released, and another process takes over within an Interval. Every process
// answers GET /v1/alerts (Handler) from the table, so they all show the same alerts.
//
// The database being unreachable is the exception: each process notices it by
// itself (and shows it in its own GET /v1/alerts); the process that was the
// evaluator when the outage began announces it and its end.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Alert is one alert as GET /v1/alerts shows it.
type Alert struct {
	Name       string     `json:"name"`
	Subject    string     `json:"subject,omitempty"` // the stage, status or service it is about
	Severity   string     `json:"severity"`          // warning, critical
	State      string     `json:"state"`             // firing, resolved
	Message    string     `json:"message"`           // what is wrong and what to do
	Runbook    string     `json:"runbook"`           // docs/RUNBOOK.md#anchor
	FiredAt    time.Time  `json:"fired_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
}

// States.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	// Interval between evaluations (default 5 s).
	Interval time.Duration
	Log      *slog.Logger
	// WebhookURL receives {"text": "..."} (Slack incoming-webhook format) for each
	// firing and resolution; empty = log only.
	WebhookURL string
	HTTPClient *http.Client // default: 10 s timeout
	// RunbookBase is prefixed to "#anchor" (default "docs/RUNBOOK.md"; a URL to the
	// file in the repository works too).
	RunbookBase string
	// Source reads the database; share the one of metrics.New (nil = a new one).
	Source *metrics.Source
	// Budgets are the daily budgets per service in US dollars (pipeline.Budgets).
	Budgets map[string]float64
	// StatusDeadlines override DefaultStatusDeadlines per status.
	StatusDeadlines map[runstate.Status]time.Duration
	// NoWorkerFor: jobs must wait with no live worker this long (default 20 s). A
	// worker that dies stops counting within 20 s (its heartbeat goes stale; River's
	// leader lease expires within 15 s), so with the 5 s interval the alert fires
	// within about 50 s of the last worker dying, and within 25 s of a clean stop.
	NoWorkerFor time.Duration
	// DeadLetterWindow: DocpipeDeadLettersIncreasing fires while a run was
	// dead-lettered within this window (default 10 min).
	DeadLetterWindow time.Duration
	// ErrorRateWindow, ErrorRateThreshold, ErrorRateMinAttempts: a stage's failed
	// attempts (retry + dead letter) over all its finished attempts in the window
	// (default 5 min, 0.2, at least 10 attempts).
	ErrorRateWindow      time.Duration
	ErrorRateThreshold   float64
	ErrorRateMinAttempts int
	// BufferStall: buffers holding rows this old while no document was finalized for
	// this long (default 30 min).
	BufferStall time.Duration
	// DatabaseFor, StorageFor: how long the check must fail before the alert fires
	// (default 10 s and 30 s).
	DatabaseFor time.Duration
	StorageFor  time.Duration
	// CheckTimeout bounds the database ping and the storage check (default 3 s).
	CheckTimeout time.Duration
	// StorageCheck, when set, tells whether the blob store answers (nil error).
	StorageCheck func(context.Context) error
	// Breakers, when set, reports this process's circuit breakers (service → state);
	// workers' breakers also come from their heartbeats (metrics.StartHeartbeat).
	Breakers func() map[string]string
	// SchemaCheck, when set, compares the database schema with the migrations'
	// (db.DriftChecker): each difference in words, none when there is no drift.
	SchemaCheck func(context.Context) ([]string, error)
	// SchemaCheckInterval is how often the evaluator runs SchemaCheck (default
	// 5 min; also once when it is elected).
	SchemaCheckInterval time.Duration
	// ResolvedFor: resolved alerts stay listed this long (default 24 h).
	ResolvedFor time.Duration
	// LockKey is the advisory lock electing the evaluator.
	LockKey int64
}

// DefaultLockKey is the advisory lock key of the evaluator ("docpipe" + 1).
const DefaultLockKey int64 = 0x646f637069706501

// webhookAttempts bounds the deliveries of one notice to a failing webhook.
const webhookAttempts = 10

func (o *Options) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&o.Interval, 5*time.Second)
	set(&o.NoWorkerFor, 20*time.Second)
	set(&o.DeadLetterWindow, 10*time.Minute)
	set(&o.ErrorRateWindow, 5*time.Minute)
	set(&o.BufferStall, 30*time.Minute)
	set(&o.DatabaseFor, 10*time.Second)
	set(&o.StorageFor, 30*time.Second)
	set(&o.CheckTimeout, 3*time.Second)
	set(&o.ResolvedFor, 24*time.Hour)
	set(&o.SchemaCheckInterval, 5*time.Minute)
	if o.ErrorRateThreshold <= 0 {
		o.ErrorRateThreshold = 0.2
	}
	if o.ErrorRateMinAttempts <= 0 {
		o.ErrorRateMinAttempts = 10
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.RunbookBase == "" {
		o.RunbookBase = "docs/RUNBOOK.md"
	}
	if o.LockKey == 0 {
		o.LockKey = DefaultLockKey
	}
}

// Engine evaluates the rules (when elected) and serves the alerts.
type Engine struct {
	pool      *pgxpool.Pool
	opts      Options
	src       *metrics.Source
	log       *slog.Logger
	deadlines map[runstate.Status]time.Duration

	mu sync.Mutex // guards leader and db (read by Handler)
	// leadership
	lockConn *pgx.Conn
	leader   bool
	// evaluator state (reset on election)
	since          map[key]time.Time
	samples        []sample
	completed      int64
	lastCompletion time.Time
	electedAt      time.Time
	schemaAt       time.Time // last schema drift check
	schemaDrift    []string
	schemaKnown    bool // a schema check has answered since the election
	// database outage as this process sees it
	dbDownSince time.Time
	dbWasLeader bool
	db          *Alert // firing while the database is unreachable
	dbNotified  bool
}

// New returns an Engine; call Run to start it.
func New(pool *pgxpool.Pool, opts Options) *Engine {
	opts.defaults()
	e := &Engine{pool: pool, opts: opts, src: opts.Source, log: opts.Log.With("component", "alerts"),
		deadlines: maps.Clone(DefaultStatusDeadlines), since: map[key]time.Time{}}
	maps.Copy(e.deadlines, opts.StatusDeadlines)
	if e.src == nil {
		e.src = metrics.NewSource(pool, metrics.SourceOptions{})
	}
	return e
}

// Run evaluates every Interval until ctx ends (then it gives up the lock).
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	defer e.resign()
	for {
		e.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Leader reports whether this process evaluates the rules.
func (e *Engine) Leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

func (e *Engine) tick(ctx context.Context) {
	now := time.Now()
	wasLeader, err := e.checkDatabase(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		e.databaseDown(ctx, now, wasLeader, err)
		return
	}
	e.databaseUp(ctx, now)
	if !e.elect(ctx) {
		return
	}
	snap, err := e.src.Snapshot(ctx)
	if err != nil {
		e.log.Warn("alerts: reading the database failed; rules not evaluated", "error", err)
		return
	}
	if err := e.reconcile(ctx, e.evaluate(ctx, snap, now)); err != nil {
		e.log.Warn("alerts: saving alert state failed", "error", err)
		return
	}
	// Announcements already decided are finished even when the process is stopping,
	// so a graceful stop never leaves a notice for the next evaluator to repeat.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.HTTPClient.Timeout+5*time.Second)
	defer cancel()
	if err := e.deliver(dctx); err != nil {
		e.log.Warn("alerts: delivering notices failed", "error", err)
	}
}

// checkDatabase pings the database on the process's dedicated connection (not the
// pool, which may be busy), reconnecting it if needed. A broken connection also
// loses the evaluator's lock: wasLeader says whether it held it.
func (e *Engine) checkDatabase(ctx context.Context) (wasLeader bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
	defer cancel()
	wasLeader = e.leader
	if e.lockConn != nil {
		if err = e.lockConn.Ping(cctx); err == nil {
			return wasLeader, nil
		}
		if e.leader {
			e.log.Warn("alerts: lost the evaluator's connection; no longer evaluating", "error", err)
		}
		e.dropLockLocked()
	}
	c, err := pgx.ConnectConfig(cctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return wasLeader, err
	}
	e.lockConn = c
	return wasLeader, nil
}

// elect keeps or takes the evaluator's advisory lock on the dedicated connection.
func (e *Engine) elect(ctx context.Context) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leader {
		return true
	}
	if e.lockConn == nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
	defer cancel()
	var ok bool
	if err := e.lockConn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1)`, e.opts.LockKey).Scan(&ok); err != nil {
		e.dropLockLocked()
		return false
	}
	if ok {
		e.leader = true
		e.since, e.samples = map[key]time.Time{}, nil
		e.completed, e.lastCompletion, e.electedAt = -1, time.Now(), time.Now()
		e.schemaAt, e.schemaDrift, e.schemaKnown = time.Time{}, nil, false
		e.log.Info("alerts: this process evaluates the alert rules", "interval", e.opts.Interval)
	}
	return ok
}

func (e *Engine) dropLockLocked() {
	if e.lockConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = e.lockConn.Close(ctx)
		cancel()
	}
	e.lockConn, e.leader = nil, false
}

func (e *Engine) resign() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLockLocked() // closing the session releases the lock
}

func (e *Engine) databaseDown(ctx context.Context, now time.Time, wasLeader bool, err error) {
	e.mu.Lock()
	if e.dbDownSince.IsZero() {
		e.dbDownSince, e.dbWasLeader = now, wasLeader
		e.log.Warn("alerts: database unreachable", "error", err)
	}
	// The lock's session is gone or going; elect again once the database is back.
	e.dropLockLocked()
	var notice *Alert
	if e.db == nil && now.Sub(e.dbDownSince) >= e.opts.DatabaseFor {
		e.db = &Alert{Name: DatabaseUnreachable, Severity: Critical, State: Firing, FiredAt: e.dbDownSince,
			Runbook: e.runbook(DatabaseUnreachable),
			Message: e.withRunbook(DatabaseUnreachable, fmt.Sprintf("docpipe cannot reach its database (%s): nothing is uploaded, processed or searched. "+
				"Check the database server and the network, DATABASE_URL, and its connection limit.", oneLine(err)))}
		if e.dbWasLeader {
			e.dbNotified = true
			a := *e.db
			notice = &a
		}
	}
	e.mu.Unlock()
	if notice != nil {
		_ = e.notify(ctx, *notice, true)
	}
}

func (e *Engine) databaseUp(ctx context.Context, now time.Time) {
	e.mu.Lock()
	a, notified, wasLeader := e.db, e.dbNotified, e.dbWasLeader
	if !e.dbDownSince.IsZero() {
		e.log.Info("alerts: database reachable again", "after", now.Sub(e.dbDownSince).Round(time.Second))
	}
	e.db, e.dbNotified, e.dbDownSince, e.dbWasLeader = nil, false, time.Time{}, false
	e.mu.Unlock()
	if a == nil {
		return
	}
	a.State, a.ResolvedAt = Resolved, &now
	if notified {
		_ = e.notify(ctx, *a, true)
	}
	if !wasLeader {
		return
	}
	// Keep the episode in the table, announced (or left for the evaluator to announce).
	var ns *string
	if notified {
		s := Resolved
		ns = &s
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO upload_pipeline.alerts
		(name, subject, severity, state, message, runbook, fired_at, resolved_at, notified_state)
		VALUES ($1, '', $2, 'resolved', $3, $4, $5, $6, $7)
		ON CONFLICT (name, subject) DO UPDATE SET severity = excluded.severity, state = 'resolved', message = excluded.message,
			runbook = excluded.runbook, fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,
			notified_state = excluded.notified_state, notify_attempts = 0, updated_at = now()`,
		a.Name, a.Severity, a.Message, a.Runbook, a.FiredAt, now, ns); err != nil {
		e.log.Warn("alerts: recording the database outage failed", "error", err)
	}
}

// reconcile writes the evaluation into the table: new firings, updated messages,
// resolutions.
func (e *Engine) reconcile(ctx context.Context, ev evaluation) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name, subject FROM upload_pipeline.alerts WHERE state = 'firing' FOR UPDATE`)
		if err != nil {
			return err
		}
		firing := map[key]bool{}
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.name, &k.subject); err != nil {
				rows.Close()
				return err
			}
			firing[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		holds := map[key]bool{}
		for _, c := range ev.conds {
			k := key{c.name, c.subject}
			holds[k] = true
			if firing[k] {
				if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.alerts SET message = $3, updated_at = now()
					WHERE name = $1 AND subject = $2`, c.name, c.subject, c.message); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO upload_pipeline.alerts (name, subject, severity, state, message, runbook, fired_at)
				VALUES ($1, $2, $3, 'firing', $4, $5, now())
				ON CONFLICT (name, subject) DO UPDATE SET severity = excluded.severity, state = 'firing', message = excluded.message,
					runbook = excluded.runbook, fired_at = now(), resolved_at = NULL, notified_state = NULL, notify_attempts = 0, updated_at = now()`,
				c.name, c.subject, severityOf(c.name), c.message, e.runbook(c.name)); err != nil {
				return err
			}
		}
		for k := range firing {
			if holds[k] || ev.pending[k] || !ev.evaluated[k.name] {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.alerts SET state = 'resolved', resolved_at = now(), notify_attempts = 0, updated_at = now()
				WHERE name = $1 AND subject = $2`, k.name, k.subject); err != nil {
				return err
			}
		}
		return nil
	})
}

// deliver announces every firing and resolution not yet announced.
func (e *Engine) deliver(ctx context.Context) error {
	rows, err := e.pool.Query(ctx, `SELECT `+alertColumns+`, notified_state, notify_attempts
		FROM upload_pipeline.alerts WHERE notified_state IS DISTINCT FROM state ORDER BY fired_at`)
	if err != nil {
		return err
	}
	type pending struct {
		a        Alert
		attempts int
	}
	var todo []pending
	for rows.Next() {
		var p pending
		var notified *string
		if err := rows.Scan(append(alertDest(&p.a), &notified, &p.attempts)...); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range todo {
		err := e.notify(ctx, p.a, p.attempts == 0)
		if err != nil && p.attempts+1 < webhookAttempts {
			if _, uerr := e.pool.Exec(ctx, `UPDATE upload_pipeline.alerts SET notify_attempts = notify_attempts + 1
				WHERE name = $1 AND subject = $2 AND state = $3`, p.a.Name, p.a.Subject, p.a.State); uerr != nil {
				return uerr
			}
			continue
		}
		if err != nil {
			e.log.Error("alerts: giving up on the webhook for this notice", "alert", p.a.Name, "subject", p.a.Subject, "state", p.a.State)
		}
		if _, err := e.pool.Exec(ctx, `UPDATE upload_pipeline.alerts SET notified_state = state
			WHERE name = $1 AND subject = $2 AND state = $3`, p.a.Name, p.a.Subject, p.a.State); err != nil {
			return err
		}
	}
	return nil
}

// notify logs the notice (when log is set) and posts it to the webhook.
func (e *Engine) notify(ctx context.Context, a Alert, log bool) error {
	text := noticeText(a)
	if log {
		attrs := []any{"alert", a.Name, "subject", a.Subject, "severity", a.Severity, "state", a.State,
			"fired_at", a.FiredAt, "runbook", a.Runbook, "message", a.Message}
		switch {
		case a.State == Resolved:
			e.log.Info("alert resolved", attrs...)
		case a.Severity == Critical:
			e.log.Error("alert firing", attrs...)
		default:
			e.log.Warn("alert firing", attrs...)
		}
	}
	if e.opts.WebhookURL == "" {
		return nil
	}
	body, _ := json.Marshal(map[string]string{"text": text})
	ctx, cancel := context.WithTimeout(ctx, e.opts.HTTPClient.Timeout+time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.opts.HTTPClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("webhook answered %s", resp.Status)
		}
	}
	if err != nil {
		e.log.Warn("alerts: webhook delivery failed", "alert", a.Name, "state", a.State, "error", redactURL(err))
	}
	return err
}

func noticeText(a Alert) string {
	subject := ""
	if a.Subject != "" {
		subject = " (" + a.Subject + ")"
	}
	if a.State == Resolved {
		lasted := ""
		if a.ResolvedAt != nil {
			lasted = fmt.Sprintf(" after %s", a.ResolvedAt.Sub(a.FiredAt).Round(time.Second))
		}
		return fmt.Sprintf("[RESOLVED] %s%s resolved%s (fired %s). Was: %s", a.Name, subject, lasted,
			a.FiredAt.UTC().Format(time.RFC3339), a.Message)
	}
	return fmt.Sprintf("[FIRING %s] %s%s: %s", a.Severity, a.Name, subject, a.Message)
}

// redactURL drops the webhook URL (it is a secret) from an error.
func redactURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return fmt.Errorf("webhook request: %w", inner)
		}
	}
	return err
}

const alertColumns = `name, subject, severity, state, message, runbook, fired_at, resolved_at`

func alertDest(a *Alert) []any {
	return []any{&a.Name, &a.Subject, &a.Severity, &a.State, &a.Message, &a.Runbook, &a.FiredAt, &a.ResolvedAt}
}

// Alerts lists the firing alerts and those resolved within ResolvedFor, firing and
// critical first. When the database does not answer, it returns this process's own
// view: the database is unreachable.
func (e *Engine) Alerts(ctx context.Context) ([]Alert, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
	defer cancel()
	rows, err := e.pool.Query(ctx, `SELECT `+alertColumns+` FROM upload_pipeline.alerts
		WHERE state = 'firing' OR resolved_at > now() - make_interval(secs => $1)
		ORDER BY state = 'firing' DESC, severity = 'critical' DESC, coalesce(resolved_at, fired_at) DESC, name, subject`,
		e.opts.ResolvedFor.Seconds())
	var out []Alert
	if err == nil {
		for rows.Next() {
			var a Alert
			if err = rows.Scan(alertDest(&a)...); err != nil {
				break
			}
			out = append(out, a)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		e.mu.Lock()
		local := e.db
		e.mu.Unlock()
		if local == nil {
			local = &Alert{Name: DatabaseUnreachable, Severity: Critical, State: Firing, FiredAt: time.Now(),
				Runbook: e.runbook(DatabaseUnreachable),
				Message: e.withRunbook(DatabaseUnreachable, fmt.Sprintf("docpipe cannot read its database (%s). "+
					"Check the database server and the network, DATABASE_URL, and its connection limit.", oneLine(err)))}
		}
		return []Alert{*local}, err
	}
	if out == nil {
		out = []Alert{}
	}
	return out, nil
}

// Handler serves GET /v1/alerts: {"alerts": [...]}, each with name, subject,
// severity, state, message, runbook, fired_at, resolved_at. ?state=firing lists
// only the firing ones. Mount it behind the API's authentication.
func (e *Engine) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		list, err := e.Alerts(r.Context())
		if err != nil {
			e.log.Warn("alerts: listing from the database failed; answering with this process's view", "error", err)
		}
		if r.URL.Query().Get("state") == Firing {
			kept := list[:0]
			for _, a := range list {
				if a.State == Firing {
					kept = append(kept, a)
				}
			}
			list = kept
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(struct {
			Alerts []Alert `json:"alerts"`
		}{list})
	})
}
