package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Worker describes a pipeline worker process for its heartbeat.
type Worker struct {
	ID          string // the River client id (pipeline.WorkerID())
	Concurrency int    // jobs it runs at once
	// Interval between heartbeats (default 5 s; keep it well under
	// SourceOptions.WorkerStale, 20 s by default).
	Interval time.Duration
	Log      *slog.Logger
}

// Heartbeat keeps a worker's row in upload_pipeline.workers fresh.
type Heartbeat struct {
	pool   *pgxpool.Pool
	w      Worker
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartHeartbeat records the worker as live now and every Interval until Stop (or
// until ctx ends), with its breaker states (SetBreakerState); a breaker change is
// written at once, and so are its recent external calls (ServiceSummaries). Start it when the worker starts and Stop it when it stops.
func StartHeartbeat(ctx context.Context, pool *pgxpool.Pool, w Worker) *Heartbeat {
	if w.Interval <= 0 {
		w.Interval = 5 * time.Second
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Heartbeat{pool: pool, w: w, cancel: cancel, done: make(chan struct{})}
	h.beat(ctx)
	go h.loop(ctx)
	return h
}

func (h *Heartbeat) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.w.Interval)
	defer t.Stop()
	prune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-breakers.changed:
		}
		h.beat(ctx)
		if time.Since(prune) > time.Hour {
			prune = time.Now()
			_, _ = h.pool.Exec(ctx, `DELETE FROM upload_pipeline.workers WHERE heartbeat_at < now() - interval '1 day'`)
		}
	}
}

const sqlHeartbeat = `
INSERT INTO upload_pipeline.workers (worker_id, hostname, pid, concurrency, breakers, services)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), concurrency = excluded.concurrency,
    breakers = excluded.breakers, services = excluded.services, stopped_at = NULL`

func (h *Heartbeat) beat(ctx context.Context) {
	host, _ := os.Hostname()
	b, _ := json.Marshal(BreakerStates())
	svc, _ := json.Marshal(ServiceSummaries())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.pool.Exec(ctx, sqlHeartbeat, h.w.ID, host, os.Getpid(), h.w.Concurrency, b, svc); err != nil && ctx.Err() == nil {
		h.w.Log.Warn("worker heartbeat not recorded", "worker_id", h.w.ID, "error", err)
	}
}

// Stop ends the heartbeats and marks the worker stopped, so it stops counting as
// live at once.
func (h *Heartbeat) Stop(ctx context.Context) {
	h.once.Do(func() {
		h.cancel()
		<-h.done
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := h.pool.Exec(ctx, `UPDATE upload_pipeline.workers SET stopped_at = now() WHERE worker_id = $1`, h.w.ID); err != nil {
			h.w.Log.Warn("worker stop not recorded", "worker_id", h.w.ID, "error", err)
		}
	})
}
