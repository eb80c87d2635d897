package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// riverLogHandler is the handler of River's logger. River calls its int64 row id
// "job_id"; docpipe's lines use job_id for the run (a UUID) and river_job_id for
// River's row, so River's lines are renamed to match: job_id always means the run,
// and a River line about a job joins the stage lines on river_job_id.
//
// While the database is unreachable River repeats the same error dozens of times a
// second (its producer polls every 20 ms), so a warning or error with the same
// message is written at most once every riverRepeatEvery, with "repeated" = the
// lines left out since.
type riverLogHandler struct {
	slog.Handler
	repeats *repeatGate
}

// riverRepeatEvery is how often one River warning or error message is written.
const riverRepeatEvery = 10 * time.Second

func newRiverLogHandler(h slog.Handler) riverLogHandler {
	return riverLogHandler{Handler: h, repeats: &repeatGate{last: map[string]*repeatState{}}}
}

func (h riverLogHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if r.Level >= slog.LevelWarn {
		ok, left := h.repeats.allow(r.Message, r.Time)
		if !ok {
			return nil
		}
		if left > 0 {
			out.AddAttrs(slog.Int("repeated", left))
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(renameRiverAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h riverLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	renamed := make([]slog.Attr, len(as))
	for i, a := range as {
		renamed[i] = renameRiverAttr(a)
	}
	return riverLogHandler{h.Handler.WithAttrs(renamed), h.repeats}
}

func (h riverLogHandler) WithGroup(name string) slog.Handler {
	return riverLogHandler{h.Handler.WithGroup(name), h.repeats}
}

func renameRiverAttr(a slog.Attr) slog.Attr {
	if a.Key == "job_id" {
		a.Key = "river_job_id"
	}
	return a
}

// repeatGate lets a message through at most once every riverRepeatEvery.
type repeatGate struct {
	mu   sync.Mutex
	last map[string]*repeatState
}

type repeatState struct {
	at   time.Time
	left int
}

// allow reports whether msg may be written at now, and how many were left out since
// it last was.
func (g *repeatGate) allow(msg string, now time.Time) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.last[msg]
	if !ok {
		if len(g.last) > 1000 { // River's messages are a fixed set; never grow without bound
			clear(g.last)
		}
		g.last[msg] = &repeatState{at: now}
		return true, 0
	}
	if now.Sub(st.at) < riverRepeatEvery {
		st.left++
		return false, 0
	}
	left := st.left
	st.at, st.left = now, 0
	return true, left
}
