package pipeline

import (
	"context"
	"log/slog"
)

// riverLogHandler is the handler of River's logger. River calls its int64 row id
// "job_id"; docpipe's lines use job_id for the run (a UUID) and river_job_id for
// River's row, so River's lines are renamed to match: job_id always means the run,
// and a River line about a job joins the stage lines on river_job_id.
type riverLogHandler struct{ slog.Handler }

func (h riverLogHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
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
	return riverLogHandler{h.Handler.WithAttrs(renamed)}
}

func (h riverLogHandler) WithGroup(name string) slog.Handler {
	return riverLogHandler{h.Handler.WithGroup(name)}
}

func renameRiverAttr(a slog.Attr) slog.Attr {
	if a.Key == "job_id" {
		a.Key = "river_job_id"
	}
	return a
}
