package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/runstate"
)

// Snapshot is the database's view of the pipeline at one moment. Ages are measured
// with the database clock. Every field is a fresh copy; callers may keep it.
type Snapshot struct {
	At time.Time // when it was read (database clock)

	// Documents counts runs (upload_jobs) by status and state. Terminal rows are
	// refreshed every SlowInterval, active ones on every read.
	Documents map[StatusState]int64
	// OldestUnchanged is, per active status, the seconds since the least recently
	// changed run in it last changed (upload_jobs.updated_at).
	OldestUnchanged map[runstate.Status]float64
	// Queue is River's live jobs by stage (job kind "docpipe.parse" → "parse").
	Queue map[string]Queue
	// Buffers are the chunk and vector buffer tables ("chunk", "vector").
	Buffers map[string]Buffer
	Workers Workers
	// Usage is spending per external service (usage_daily).
	Usage map[string]Usage
	// Chunks is the number of searchable chunks (document_chunks rows).
	Chunks int64
	// Events are totals over the whole events table (the audit trail).
	Events EventTotals
}

// StatusState is a (status, state) pair of upload_jobs.
type StatusState struct {
	Status runstate.Status
	State  runstate.State
}

// Queue is one stage's River jobs.
type Queue struct {
	Jobs map[string]int64 // River state → jobs (available, pending, retryable, running, scheduled)
	// Waiting counts jobs that are due (available, or retryable/scheduled with
	// scheduled_at passed) but not running.
	Waiting int64
	// OldestWaiting is the seconds since the oldest waiting job became due (0 if none).
	OldestWaiting float64
}

// Buffer is one buffer table.
type Buffer struct {
	Rows      int64
	OldestAge float64 // seconds since the oldest row was written (0 if empty)
}

// Workers is what the database knows about live pipeline workers.
type Workers struct {
	// Live counts workers (metrics.StartHeartbeat) whose last heartbeat is fresher
	// than the stale limit and that have not stopped.
	Live int
	// HeartbeatAge is the seconds since the freshest heartbeat of a worker that has
	// not stopped; -1 when there is none.
	HeartbeatAge float64
	// LeaderElected reports a current River leader: some River client with
	// workers is running (started clients elect a leader every few seconds; the
	// lease expires 15 s after its holder dies and is given up on a clean stop).
	LeaderElected bool
	// Breakers counts live workers per service and breaker state ("closed",
	// "half-open", "open"), as their heartbeats last reported.
	Breakers map[string]map[string]int
}

// Usage is one service's spending: today (UTC) and since the beginning.
type Usage struct {
	TodayRequests, TodayTokens, TodayPages int64
	TodayCredits, TodayCostUSD             float64
	Requests, Tokens, Pages                int64
	Credits, CostUSD                       float64
}

// SourceOptions tune a Source.
type SourceOptions struct {
	// MinInterval: reads closer together than this return the previous snapshot
	// (default 2 s; negative = never reuse).
	MinInterval time.Duration
	// SlowInterval: the costlier counts (terminal runs, searchable chunks) are
	// refreshed at most this often (default 15 s; negative = every read).
	SlowInterval time.Duration
	// WorkerStale: a worker whose last heartbeat is older is not live (default 20 s:
	// four missed heartbeats).
	WorkerStale time.Duration
	// QueryTimeout bounds one read (default 5 s).
	QueryTimeout time.Duration
}

func (o *SourceOptions) defaults() {
	if o.MinInterval == 0 {
		o.MinInterval = 2 * time.Second
	}
	if o.SlowInterval == 0 {
		o.SlowInterval = 15 * time.Second
	}
	if o.WorkerStale <= 0 {
		o.WorkerStale = 20 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 5 * time.Second
	}
}

// Source reads Snapshots from the database. One Source may serve the metrics
// handler and the alert evaluator of a process; it is safe for concurrent use.
type Source struct {
	pool *pgxpool.Pool
	opts SourceOptions

	mu       sync.Mutex
	last     *Snapshot
	lastRead time.Time // local clock
	slowRead time.Time
	terminal map[StatusState]int64
	chunks   int64
	tail     eventTail
}

// NewSource returns a Source reading from pool.
func NewSource(pool *pgxpool.Pool, opts SourceOptions) *Source {
	opts.defaults()
	return &Source{pool: pool, opts: opts, tail: newEventTail()}
}

// Snapshot returns the current view (or the previous one if it is younger than
// MinInterval).
func (s *Source) Snapshot(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && s.opts.MinInterval > 0 && time.Since(s.lastRead) < s.opts.MinInterval {
		return s.last.clone(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	snap, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	s.last, s.lastRead = snap, time.Now()
	return snap.clone(), nil
}

// Events returns the event totals read so far without touching the database.
func (s *Source) Events() EventTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail.totals.clone()
}

// The live River job states.
var riverLiveStates = []string{"available", "pending", "retryable", "running", "scheduled"}

// The state lists are spelled out from the vocabulary (not passed as parameters) so
// the active one matches the partial index ix_upload_jobs_active.
var (
	sqlActiveRuns = `
SELECT status, state, count(*), extract(epoch FROM now() - min(updated_at))::float8
FROM upload_pipeline.upload_jobs
WHERE state IN (` + runstate.SQLList(runstate.ActiveStates()) + `)
GROUP BY status, state`

	sqlTerminalRuns = `
SELECT status, state, count(*)
FROM upload_pipeline.upload_jobs
WHERE state IN (` + runstate.SQLList(slices.DeleteFunc(runstate.States(), runstate.State.Active)) + `)
GROUP BY status, state`
)

const (
	sqlNow = `SELECT now()`

	sqlQueue = `
SELECT kind, state::text, count(*),
       count(*) FILTER (WHERE state <> 'running' AND state <> 'pending' AND scheduled_at <= now()),
       coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state <> 'running' AND state <> 'pending' AND scheduled_at <= now())), 0)::float8
FROM river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
GROUP BY kind, state`

	sqlBuffers = `
SELECT 'chunk', count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM upload_pipeline.document_chunk_buffer
UNION ALL
SELECT 'vector', count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM upload_pipeline.document_vector_buffer`

	sqlWorkers = `
SELECT count(*) FILTER (WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)),
       coalesce(extract(epoch FROM now() - max(heartbeat_at) FILTER (WHERE stopped_at IS NULL)), -1)::float8,
       EXISTS (SELECT 1 FROM river_leader WHERE expires_at > now())
FROM upload_pipeline.workers`

	sqlBreakers = `
SELECT b.key, b.value, count(*)
FROM upload_pipeline.workers w, jsonb_each_text(w.breakers) b
WHERE w.stopped_at IS NULL AND w.heartbeat_at > now() - make_interval(secs => $1)
GROUP BY 1, 2`

	sqlUsage = `
SELECT service,
       sum(requests)::bigint, sum(tokens)::bigint, sum(pages)::bigint, sum(credits)::float8, sum(cost_usd)::float8,
       coalesce(sum(requests) FILTER (WHERE day = today), 0)::bigint,
       coalesce(sum(tokens) FILTER (WHERE day = today), 0)::bigint,
       coalesce(sum(pages) FILTER (WHERE day = today), 0)::bigint,
       coalesce(sum(credits) FILTER (WHERE day = today), 0)::float8,
       coalesce(sum(cost_usd) FILTER (WHERE day = today), 0)::float8
FROM upload_pipeline.usage_daily, (SELECT (now() AT TIME ZONE 'UTC')::date AS today) t
GROUP BY service`

	sqlChunks = `SELECT count(*) FROM upload_pipeline.document_chunks`
)

func (s *Source) read(ctx context.Context) (*Snapshot, error) {
	slow := s.opts.SlowInterval < 0 || s.slowRead.IsZero() || time.Since(s.slowRead) >= s.opts.SlowInterval
	stale := s.opts.WorkerStale.Seconds()
	b := &pgx.Batch{}
	snap := &Snapshot{
		Documents: map[StatusState]int64{}, OldestUnchanged: map[runstate.Status]float64{}, Queue: map[string]Queue{},
		Buffers: map[string]Buffer{}, Usage: map[string]Usage{},
		Workers: Workers{Breakers: map[string]map[string]int{}},
	}
	b.Queue(sqlNow).QueryRow(func(r pgx.Row) error { return r.Scan(&snap.At) })
	b.Queue(sqlActiveRuns).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k StatusState
			var n int64
			var age float64
			if err := rows.Scan(&k.Status, &k.State, &n, &age); err != nil {
				return err
			}
			snap.Documents[k] = n
			snap.OldestUnchanged[k.Status] = max(snap.OldestUnchanged[k.Status], age)
		}
		return rows.Err()
	})
	terminal := map[StatusState]int64{}
	if slow {
		b.Queue(sqlTerminalRuns).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k StatusState
				var n int64
				if err := rows.Scan(&k.Status, &k.State, &n); err != nil {
					return err
				}
				terminal[k] = n
			}
			return rows.Err()
		})
	}
	b.Queue(sqlQueue).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var kind, state string
			var n, waiting int64
			var oldest float64
			if err := rows.Scan(&kind, &state, &n, &waiting, &oldest); err != nil {
				return err
			}
			st := StageOfKind(kind)
			q := snap.Queue[st]
			if q.Jobs == nil {
				q.Jobs = map[string]int64{}
			}
			q.Jobs[state] += n
			q.Waiting += waiting
			q.OldestWaiting = max(q.OldestWaiting, oldest)
			snap.Queue[st] = q
		}
		return rows.Err()
	})
	b.Queue(sqlBuffers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var buf Buffer
			if err := rows.Scan(&name, &buf.Rows, &buf.OldestAge); err != nil {
				return err
			}
			snap.Buffers[name] = buf
		}
		return rows.Err()
	})
	b.Queue(sqlWorkers, stale).QueryRow(func(r pgx.Row) error {
		return r.Scan(&snap.Workers.Live, &snap.Workers.HeartbeatAge, &snap.Workers.LeaderElected)
	})
	b.Queue(sqlBreakers, stale).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var service, state string
			var n int
			if err := rows.Scan(&service, &state, &n); err != nil {
				return err
			}
			if snap.Workers.Breakers[service] == nil {
				snap.Workers.Breakers[service] = map[string]int{}
			}
			snap.Workers.Breakers[service][state] += n
		}
		return rows.Err()
	})
	b.Queue(sqlUsage).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var service string
			var u Usage
			if err := rows.Scan(&service, &u.Requests, &u.Tokens, &u.Pages, &u.Credits, &u.CostUSD,
				&u.TodayRequests, &u.TodayTokens, &u.TodayPages, &u.TodayCredits, &u.TodayCostUSD); err != nil {
				return err
			}
			snap.Usage[service] = u
		}
		return rows.Err()
	})
	var chunks int64
	if slow {
		b.Queue(sqlChunks).QueryRow(func(r pgx.Row) error { return r.Scan(&chunks) })
	}
	tailSQL, tailArgs := s.tail.query()
	var tailRows []eventGroup
	var hi uint64
	b.Queue(tailSQL, tailArgs...).Query(func(rows pgx.Rows) error {
		var err error
		tailRows, hi, err = scanEventGroups(rows)
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read metrics from the database: %w", err)
	}
	if hi == 0 {
		return nil, errors.New("read events: no snapshot xmin")
	}
	s.tail.apply(tailRows, hi)
	if slow {
		s.terminal, s.chunks, s.slowRead = terminal, chunks, time.Now()
	}
	maps.Copy(snap.Documents, s.terminal)
	snap.Chunks = s.chunks
	snap.Events = s.tail.totals.clone()
	return snap, nil
}

// StageOfKind maps a River job kind to a stage label: "docpipe.parse" → "parse";
// other kinds keep their name.
func StageOfKind(kind string) string {
	if st, ok := strings.CutPrefix(kind, runstate.KindPrefix); ok {
		return st
	}
	return kind
}

func (s *Snapshot) clone() *Snapshot {
	c := *s
	c.Documents = maps.Clone(s.Documents)
	c.OldestUnchanged = maps.Clone(s.OldestUnchanged)
	c.Queue = make(map[string]Queue, len(s.Queue))
	for k, q := range s.Queue {
		q.Jobs = maps.Clone(q.Jobs)
		c.Queue[k] = q
	}
	c.Buffers = maps.Clone(s.Buffers)
	c.Usage = maps.Clone(s.Usage)
	c.Workers.Breakers = make(map[string]map[string]int, len(s.Workers.Breakers))
	for k, m := range s.Workers.Breakers {
		c.Workers.Breakers[k] = maps.Clone(m)
	}
	c.Events = s.Events.clone()
	return &c
}

// Waiting is the number of due jobs of every stage, and the age of the oldest.
func (s *Snapshot) Waiting() (jobs int64, oldest float64) {
	for _, q := range s.Queue {
		jobs += q.Waiting
		oldest = max(oldest, q.OldestWaiting)
	}
	return jobs, oldest
}
