package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/docpipe/docpipe/internal/db"
)

// setupService is setup for the long-running commands (serve, worker): while the
// database cannot be reached (it is restarting, or starts after docpipe does), they
// wait for it instead of exiting, so a process started during an outage comes up
// when the database does. Other errors (configuration, a wrong password) end it.
func setupService(ctx context.Context) (*app, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg)
	var a *app
	err = untilDatabase(ctx, log, "connect to the database", func() error {
		var err error
		a, err = newApp(ctx, cfg, log)
		return err
	})
	return a, err
}

// untilDatabase runs f until it succeeds, fails for another reason than an
// unavailable database (db.Unavailable), or ctx ends; it logs the wait once, then
// every 30 s.
func untilDatabase(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	var since, logged time.Time
	for {
		err := f()
		if err == nil || !db.Unavailable(err) || ctx.Err() != nil {
			if err == nil && !since.IsZero() {
				log.Info("database reachable again", "what", what, "waited", time.Since(since).Round(time.Millisecond))
			}
			return err
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(logged) > 30*time.Second {
			log.Warn("database unavailable; waiting for it", "what", what, "error", err, "waiting", time.Since(since).Round(time.Second))
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
