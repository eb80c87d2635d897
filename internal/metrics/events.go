package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Histogram bucket upper bounds, in seconds.
var (
	// StageDurationBuckets cover a stage attempt: milliseconds for text, minutes for
	// a large PDF or a long embedding.
	StageDurationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// UploadToCompleteBuckets cover a document's whole journey.
	UploadToCompleteBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200}
)

// maxCodes bounds the (stage, code) pairs of the retry and dead-letter counters;
// codes past it are counted as "other".
const maxCodes = 200

// EventTotals are counts over the whole events table, kept current by reading only
// the events committed since the previous read.
type EventTotals struct {
	Started     map[string]int64       // stage → stage_started events
	Results     map[StageOutcome]int64 // stage_done (done), retry, deadletter events
	Codes       map[StageCode]int64    // retry and deadletter events by error code (at most maxCodes keys)
	Redrives    map[string]int64       // stage → re-drives of dead-lettered runs
	Uploaded    int64                  // runs created by an upload (UPLOAD_ACCEPTED)
	Completed   int64                  // documents that reached complete (finalized events)
	ChunksDone  int64                  // chunks published by those completions
	StageTime   map[string]*Histogram  // stage → stage_done duration (seconds)
	UploadToEnd *Histogram             // upload (run created) → complete, seconds
}

// StageOutcome is a stage and how an attempt of it ended (AttemptDone, AttemptRetry
// or AttemptDeadletter).
type StageOutcome struct{ Stage, Outcome string }

// How a stage attempt ended: the outcome label of docpipe_stage_results_total. A
// failed attempt's outcome is the type of its event (retry, deadletter).
const (
	AttemptDone       = "done"
	AttemptRetry      = "retry"
	AttemptDeadletter = "deadletter"
)

// StageCode is a stage, the outcome of a failed attempt (retry, deadletter) and its error code.
type StageCode struct{ Stage, Outcome, Code string }

// Histogram is a cumulative-ready histogram: Counts[i] observations fell in
// (Bounds[i-1], Bounds[i]]; the last entry counts those above every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *Histogram) observe(v float64, n uint64) {
	i, _ := slices.BinarySearch(h.Bounds, v) // first bound >= v: v <= Bounds[i]
	h.Counts[i] += n
	h.Count += n
	h.Sum += v * float64(n)
}

// Cumulative returns the buckets as Prometheus wants them (upper bound → count ≤ it).
func (h *Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(h.Bounds))
	var acc uint64
	for i, b := range h.Bounds {
		acc += h.Counts[i]
		out[b] = acc
	}
	return out
}

func (h *Histogram) clone() *Histogram {
	if h == nil {
		return nil
	}
	c := *h
	c.Counts = slices.Clone(h.Counts)
	return &c
}

func (t EventTotals) clone() EventTotals {
	c := t
	c.Started = maps.Clone(t.Started)
	c.Results = maps.Clone(t.Results)
	c.Codes = maps.Clone(t.Codes)
	c.Redrives = maps.Clone(t.Redrives)
	c.StageTime = make(map[string]*Histogram, len(t.StageTime))
	for k, h := range t.StageTime {
		c.StageTime[k] = h.clone()
	}
	c.UploadToEnd = t.UploadToEnd.clone()
	return c
}

// eventTail follows the events table in commit order, counting each committed event
// exactly once. Each event carries the id of the transaction that wrote it
// (events.txid, 00004_alerts.sql), and a transaction's events become visible together
// when it commits. Every transaction below the snapshot's xmin has ended, so the
// cursor moves to xmin after each read; committed transactions at or above xmin
// (others older than them still run) are counted at once and remembered in seen
// until the cursor passes them. Long transactions elsewhere therefore neither delay
// nor double the counts; they only make a read re-scan the events since they began.
type eventTail struct {
	cursor uint64 // xid8; 0 before the first read
	seen   map[uint64]bool
	totals EventTotals
}

func newEventTail() eventTail {
	return eventTail{seen: map[uint64]bool{}, totals: EventTotals{
		Started: map[string]int64{}, Results: map[StageOutcome]int64{}, Codes: map[StageCode]int64{},
		Redrives: map[string]int64{}, StageTime: map[string]*Histogram{},
		UploadToEnd: newHistogram(UploadToCompleteBuckets),
	}}
}

// The events the exporter counts, grouped so a read returns few rows: durations
// are whole milliseconds already. A stage attempt ends with one stage_done event
// coded STAGE_DONE (the stages' other stage_done events mark intermediate steps);
// Submit writes stage_done UPLOAD_ACCEPTED for stage "upload".
const sqlEvents = `
WITH x AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS hi)
SELECT x.hi::text, g.* FROM x LEFT JOIN LATERAL (
SELECT coalesce(e.txid::text, '0') AS tx, e.type AS typ, coalesce(e.stage, '') AS stage,
       CASE WHEN e.type IN ('retry', 'deadletter', 'stage_done') THEN e.code ELSE '' END AS code,
       CASE WHEN e.type = 'stage_done' THEN coalesce((e.payload->>'duration_ms')::numeric, 0)::bigint ELSE 0 END AS dur_ms,
       CASE WHEN e.type = 'finalized' THEN coalesce(ceil(extract(epoch FROM e.ts - j.created_at) * 1000), 0)::bigint ELSE 0 END AS e2e_ms,
       count(*) AS n,
       coalesce(sum(CASE WHEN e.type = 'finalized' THEN (j.progress->>'chunks_total')::bigint END), 0)::bigint AS chunks
FROM upload_pipeline.events e
LEFT JOIN upload_pipeline.upload_jobs j ON e.type = 'finalized' AND j.job_id = e.job_id
WHERE e.type IN ('stage_started', 'stage_done', 'retry', 'deadletter', 'finalized', 'redrive')
  AND (e.type <> 'stage_done' OR e.code IN ('STAGE_DONE', 'UPLOAD_ACCEPTED'))
  AND %s
GROUP BY 1, 2, 3, 4, 5, 6) g ON true`

// The first read counts everything committed (rows from before the txid column have
// NULL); later ones what committed since, minus the transactions already counted.
var (
	sqlEventsFirst = strings.Replace(sqlEvents, "%s", "true", 1)
	sqlEventsNext  = strings.Replace(sqlEvents, "%s", "e.txid >= $1::text::xid8 AND NOT (e.txid = ANY($2::text[]::xid8[]))", 1)
)

func (t *eventTail) query() (string, []any) {
	if t.cursor == 0 {
		return sqlEventsFirst, nil
	}
	seen := make([]string, 0, len(t.seen))
	for tx := range t.seen {
		seen = append(seen, strconv.FormatUint(tx, 10))
	}
	return sqlEventsNext, []any{strconv.FormatUint(t.cursor, 10), seen}
}

type eventGroup struct {
	tx               uint64
	typ, stage, code string
	durMS, e2eMS     int64
	n, chunks        int64
}

func scanEventGroups(rows pgx.Rows) ([]eventGroup, uint64, error) {
	var out []eventGroup
	var hi string
	for rows.Next() {
		var tx, typ, stage, code *string
		var dur, e2e, n, chunks *int64
		if err := rows.Scan(&hi, &tx, &typ, &stage, &code, &dur, &e2e, &n, &chunks); err != nil {
			return nil, 0, err
		}
		if typ == nil { // the LEFT JOIN's row when nothing new committed
			continue
		}
		id, err := strconv.ParseUint(*tx, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("event txid %q: %w", *tx, err)
		}
		out = append(out, eventGroup{tx: id, typ: *typ, stage: *stage, code: *code, durMS: *dur, e2eMS: *e2e, n: *n, chunks: *chunks})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	h, err := strconv.ParseUint(hi, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot xmin %q: %w", hi, err)
	}
	return out, h, nil
}

func (t *eventTail) apply(groups []eventGroup, hi uint64) {
	tt := &t.totals
	for _, g := range groups {
		if g.tx >= hi {
			t.seen[g.tx] = true
		}
		switch g.typ {
		case "stage_started":
			tt.Started[g.stage] += g.n
		case "stage_done":
			if g.code == "UPLOAD_ACCEPTED" { // written by Submit, not by a stage
				tt.Uploaded += g.n
				continue
			}
			tt.Results[StageOutcome{g.stage, AttemptDone}] += g.n
			h := tt.StageTime[g.stage]
			if h == nil {
				h = newHistogram(StageDurationBuckets)
				tt.StageTime[g.stage] = h
			}
			h.observe(float64(g.durMS)/1000, uint64(g.n))
		case AttemptRetry, AttemptDeadletter:
			tt.Results[StageOutcome{g.stage, g.typ}] += g.n
			k := StageCode{g.stage, g.typ, g.code}
			if _, ok := tt.Codes[k]; !ok && len(tt.Codes) >= maxCodes {
				k.Code = "other"
			}
			tt.Codes[k] += g.n
		case "finalized":
			tt.Completed += g.n
			tt.ChunksDone += g.chunks
			tt.UploadToEnd.observe(float64(g.e2eMS)/1000, uint64(g.n))
		case "redrive":
			tt.Redrives[g.stage] += g.n
		}
	}
	for tx := range t.seen {
		if tx < hi {
			delete(t.seen, tx)
		}
	}
	t.cursor = hi
}

// DeadLetters is the total of dead-letter events over every stage.
func (t EventTotals) DeadLetters() int64 {
	var n int64
	for k, v := range t.Results {
		if k.Outcome == AttemptDeadletter {
			n += v
		}
	}
	return n
}
