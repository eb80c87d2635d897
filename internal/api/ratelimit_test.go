package api

import (
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.allow("k"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("k")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("4th request: ok=%v wait=%s", ok, wait)
	}
	if ok, _ := l.allow("other"); !ok {
		t.Fatal("another credential shares the bucket")
	}
	now = now.Add(time.Second)
	if ok, _ := l.allow("k"); !ok {
		t.Fatal("no token after a second")
	}
	if ok, _ := (*limiter)(nil).allow("k"); !ok {
		t.Fatal("nil limiter refuses")
	}
}

func TestParseAllowedTypes(t *testing.T) {
	got, err := ParseAllowedTypes("pdf, Markdown,text/plain,md")
	if err != nil || len(got) != 3 {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := ParseAllowedTypes("pdf,exe"); err == nil {
		t.Fatal("exe accepted")
	}
	if got, _ := ParseAllowedTypes(""); len(got) != 0 {
		t.Fatalf("empty list: %v", got)
	}
}
