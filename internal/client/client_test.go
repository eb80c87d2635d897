package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestProblemsAndRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/jobs/busy":
			if calls.Add(1) == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			_, _ = w.Write([]byte(`{"id":"0190d9c6-8c9a-7000-8000-000000000001","status":"complete"}`))
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":404,"code":"NOT_FOUND","title":"Not Found","detail":"job not found"}`))
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "dpk_x")
	j, err := c.Job(context.Background(), "busy")
	if err != nil || j.Status != "complete" || calls.Load() != 2 {
		t.Fatalf("429 then 200: %+v, %v, %d calls", j, err, calls.Load())
	}
	_, err = c.Job(context.Background(), "nope")
	var p *Problem
	if !errors.As(err, &p) || p.Status != 404 || p.Code != "NOT_FOUND" || !strings.Contains(err.Error(), "job not found") {
		t.Fatalf("problem: %v", err)
	}
	c2 := New("http://127.0.0.1:1", "")
	if _, err := c2.Job(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "is the API at") {
		t.Fatalf("no server: %v", err)
	}
}
