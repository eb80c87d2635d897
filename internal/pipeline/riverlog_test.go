package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// River's repeated errors (a producer polling a database that is down) are written
// once every riverRepeatEvery with the count left out; info lines and other
// messages are not held back; River's job_id becomes river_job_id.
func TestRiverLogRepeatsAreThinned(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newRiverLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("component", "river")
	start := time.Now()
	emit := func(at time.Duration, level slog.Level, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(start.Add(at), level, msg, 0)
		r.AddAttrs(attrs...)
		if err := log.Handler().Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 { // 10 s of polling every 20 ms
		emit(time.Duration(i)*20*time.Millisecond, slog.LevelError, "producer: Error fetching jobs")
		if i%100 == 0 {
			emit(time.Duration(i)*20*time.Millisecond, slog.LevelInfo, "job done", slog.Int64("job_id", int64(i)))
		}
	}
	emit(time.Second, slog.LevelWarn, "notifier: reconnecting")
	emit(10*time.Second, slog.LevelError, "producer: Error fetching jobs")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var fetch, info, other []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Error fetching jobs"):
			fetch = append(fetch, l)
		case strings.Contains(l, "job done"):
			info = append(info, l)
		default:
			other = append(other, l)
		}
	}
	if len(fetch) != 2 || strings.Contains(fetch[0], "repeated") || !strings.Contains(fetch[1], "repeated=499") {
		t.Errorf("fetch errors written:\n%s", strings.Join(fetch, "\n"))
	}
	if len(info) != 5 || !strings.Contains(info[0], "river_job_id=0") || strings.Contains(info[0], " job_id=") {
		t.Errorf("info lines:\n%s", strings.Join(info, "\n"))
	}
	if len(other) != 1 || !strings.Contains(other[0], "component=river") {
		t.Errorf("other lines:\n%s", strings.Join(other, "\n"))
	}
}
