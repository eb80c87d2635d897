package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/llamaparse"
)

// Services whose spending is tracked per day.
const (
	ServiceOpenAI     = "openai"
	ServiceLlamaParse = "llamaparse"
	ServiceLocal      = "local"
)

// Budgets are daily (UTC) spending limits in US dollars per service; 0 or
// missing = no limit. When a service's spending today has reached its budget,
// the stages that would call it pause (their jobs snooze; nothing fails) until
// the next day, re-checking every Options.BudgetRecheck.
type Budgets map[string]float64

// usage is what one stage attempt billed.
type usage struct {
	requests int
	tokens   int64
	pages    int
	credits  float64
	costUSD  float64
}

// usageSink collects embed.Usage reports of one micro-batch (they may arrive
// concurrently from the client's in-flight requests).
type usageSink struct {
	mu sync.Mutex
	u  usage
}

func (s *usageSink) add(u embed.Usage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.u.requests++
	s.u.tokens += int64(u.PromptTokens)
	s.u.costUSD += u.CostUSD
}

func (s *usageSink) take() usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.u
	s.u = usage{}
	return u
}

func embedService(e embed.Embedder) string {
	if s, ok := e.(interface{ Service() string }); ok {
		return s.Service()
	}
	return ServiceLocal
}

func (p *Pipeline) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// bill adds u to the run's totals and to today's row for service, in tx, and
// reports the budget thresholds (80 %, 100 %) this bill crossed. The crossing is
// computed from the row's value after the atomic update, so across all workers
// each threshold is announced once per day.
func (r *run) bill(ctx context.Context, tx pgx.Tx, service string, u usage) error {
	if u == (usage{}) {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs
		SET tokens = tokens + $2, cost_usd = cost_usd + $3, pages_billed = pages_billed + $4 WHERE job_id = $1`,
		r.jobID, u.tokens, u.costUSD, u.pages); err != nil {
		return fmt.Errorf("bill job: %w", err)
	}
	var total float64
	if err := tx.QueryRow(ctx, `INSERT INTO upload_pipeline.usage_daily AS d (day, service, requests, tokens, pages, credits, cost_usd)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (day, service) DO UPDATE SET requests = d.requests + excluded.requests, tokens = d.tokens + excluded.tokens,
			pages = d.pages + excluded.pages, credits = d.credits + excluded.credits, cost_usd = d.cost_usd + excluded.cost_usd,
			updated_at = now()
		RETURNING cost_usd::float8`, utcDay(r.p.now()), service, u.requests, u.tokens, u.pages, u.credits, u.costUSD).Scan(&total); err != nil {
		return fmt.Errorf("bill day: %w", err)
	}
	budget := r.p.opts.Budgets[service]
	if budget <= 0 {
		return nil
	}
	before := total - u.costUSD
	for _, th := range []struct {
		share    float64
		code     string
		severity string
	}{{0.8, "BUDGET_80", "warn"}, {1, "BUDGET_REACHED", "error"}} {
		limit := budget * th.share
		if before < limit && total >= limit {
			msg := fmt.Sprintf("%s spending today is $%.4f of the $%.2f daily budget", service, total, budget)
			if th.share >= 1 {
				msg += "; calls pause until the next UTC day (raise DOCPIPE_BUDGET_" + strings.ToUpper(service) + "_USD to resume sooner)"
				r.log.Error("daily budget reached", "service", service, "spent_usd", total, "budget_usd", budget)
			} else {
				r.log.Warn("daily budget 80% used", "service", service, "spent_usd", total, "budget_usd", budget)
			}
			if err := r.event(ctx, tx, "budget", th.severity, th.code, map[string]any{
				"service": service, "spent_usd": total, "budget_usd": budget, "message": msg}); err != nil {
				return err
			}
		}
	}
	return nil
}

// overBudget returns a snooze when service's spending today has reached its
// budget: the stage waits (recorded once per pause as a BUDGET_PAUSED event) and
// checks again after Options.BudgetRecheck or at the next UTC day, if sooner.
func (r *run) overBudget(ctx context.Context, service string) error {
	budget := r.p.opts.Budgets[service]
	if budget <= 0 {
		return nil
	}
	now := r.p.now()
	var spent float64
	if err := r.conn.QueryRow(ctx, `SELECT coalesce((SELECT cost_usd::float8 FROM upload_pipeline.usage_daily
		WHERE day = $1 AND service = $2), 0)`, utcDay(now), service).Scan(&spent); err != nil {
		return fmt.Errorf("read spending today: %w", err)
	}
	if spent < budget {
		if _, ok := r.progress["budget_paused"]; ok {
			delete(r.progress, "budget_paused")
			if _, err := r.conn.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET progress = progress - 'budget_paused' WHERE job_id = $1`, r.jobID); err != nil {
				return fmt.Errorf("clear budget pause: %w", err)
			}
			r.log.Info("daily budget allows again; continuing", "service", service)
		}
		return nil
	}
	if _, ok := r.progress["budget_paused"]; !ok {
		r.progress["budget_paused"] = service
		err := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET progress = progress || jsonb_build_object('budget_paused', $2::text)
				WHERE job_id = $1`, r.jobID, service); err != nil {
				return fmt.Errorf("record budget pause: %w", err)
			}
			return r.event(ctx, tx, "budget", "warn", "BUDGET_PAUSED", map[string]any{"service": service, "spent_usd": spent, "budget_usd": budget,
				"message": fmt.Sprintf("waiting: %s spending today ($%.4f) has reached the daily budget ($%.2f)", service, spent, budget)})
		})
		if err != nil {
			return fmt.Errorf("pause for budget: %w", err)
		}
	}
	wait := min(r.p.opts.BudgetRecheck, utcDay(now).Add(24*time.Hour).Sub(now)+time.Second)
	return &snooze{wait, fmt.Sprintf("%s daily budget reached ($%.4f of $%.2f)", service, spent, budget)}
}

// billRemoteParse bills a finished LlamaParse job once, however many attempts
// fetch its result (the remote job id is remembered in progress.remote_billed).
func (r *run) billRemoteParse(ctx context.Context, res llamaparse.Result) error {
	pages := res.JobPages
	if pages == 0 {
		pages = res.Pages
	}
	return pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE upload_pipeline.upload_jobs SET progress = progress || jsonb_build_object('remote_billed', $2::text)
			WHERE job_id = $1 AND progress->>'remote_billed' IS DISTINCT FROM $2`, r.jobID, r.remoteID)
		if err != nil {
			return fmt.Errorf("mark remote parse billed: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // an earlier attempt billed it
		}
		return r.bill(ctx, tx, ServiceLlamaParse, usage{requests: 1, pages: pages, credits: res.Credits, costUSD: res.CostUSD})
	})
}
