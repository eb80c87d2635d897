package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

// The overview is scoped like every other read: a user sees their own runs and
// events only and none of the operational sections; an admin sees everything,
// including live workers with their breakers and recent external calls, and cost
// against budget.
func TestOverview(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{workers: true, budgets: pipeline.Budgets{pipeline.ServiceOpenAI: 5}})
	ctx := context.Background()
	tokA, tokB := token(t, userA), token(t, userB)
	for i, body := range []string{"first policy body", "second policy body"} {
		r := h.uploadOK(tokA, "a"+string(rune('1'+i))+".md", smallDoc("A", body))
		h.waitDocument(tokA, r.DocumentID, time.Minute)
	}
	rb := h.uploadOK(tokB, "b.md", smallDoc("B", "other tenant"))
	h.waitDocument(tokB, rb.DocumentID, time.Minute)

	for range 4 {
		metrics.ObserveExternalCall("openai", metrics.OutcomeOK, 200, 40*time.Millisecond)
	}
	metrics.ObserveExternalCall("openai", metrics.OutcomeRateLimited, 429, 10*time.Millisecond)
	metrics.SetBreakerState("openai", "closed")
	hb := metrics.StartHeartbeat(ctx, h.pool, metrics.Worker{ID: "overview-test-worker", Concurrency: 3})
	defer hb.Stop(ctx)

	var ov apitypes.Overview
	h.getJSON("/v1/overview", tokA, &ov)
	if ov.Viewer.Admin || ov.Counts[runstate.Complete] != 2 || len(ov.Counts) != 1 {
		t.Fatalf("A's overview: viewer %+v counts %v", ov.Viewer, ov.Counts)
	}
	if ov.Latency.Count != 2 || ov.Latency.P50 <= 0 || ov.Latency.P99 < ov.Latency.P50 {
		t.Fatalf("A's latency: %+v", ov.Latency)
	}
	docs := 0
	for _, m := range ov.Throughput {
		docs += m.Documents
		if m.Chunks < m.Documents {
			t.Fatalf("minute %+v: fewer chunks than documents", m)
		}
	}
	if docs != 2 || ov.Rates.StageAttempts == 0 || ov.Rates.Errors != 0 {
		t.Fatalf("A's throughput %+v rates %+v", ov.Throughput, ov.Rates)
	}
	if len(ov.Events) == 0 {
		t.Fatal("A sees no events")
	}
	for _, e := range ov.Events {
		if !strings.HasPrefix(e.Filename, "a") {
			t.Fatalf("A sees an event of %q", e.Filename)
		}
	}
	if ov.Workers != nil || ov.Services != nil || ov.Cost != nil {
		t.Fatalf("a user sees operational sections: %+v %+v %+v", ov.Workers, ov.Services, ov.Cost)
	}

	admin, _, err := auth.NewKeys(h.pool).Create(ctx, auth.NewKey{Name: "ops", Admin: true})
	dbtest.Must(t, err, "admin key")
	h.getJSON("/v1/overview", admin, &ov)
	if !ov.Viewer.Admin || ov.Counts[runstate.Complete] != 3 {
		t.Fatalf("admin overview: viewer %+v counts %v", ov.Viewer, ov.Counts)
	}
	var w *apitypes.WorkerView
	for i := range ov.Workers {
		if ov.Workers[i].ID == "overview-test-worker" {
			w = &ov.Workers[i]
		}
	}
	if w == nil || w.Concurrency != 3 || w.Breakers["openai"] != "closed" {
		t.Fatalf("workers: %+v", ov.Workers)
	}
	var openai *apitypes.ServiceView
	for i := range ov.Services {
		if ov.Services[i].Name == "openai" {
			openai = &ov.Services[i]
		}
	}
	if openai == nil || openai.Calls < 5 || openai.RateLimited < 1 || openai.Breaker != "closed" || openai.P95ms < 10 {
		t.Fatalf("services: %+v", ov.Services)
	}
	var cost *apitypes.CostView
	for i := range ov.Cost {
		if ov.Cost[i].Service == pipeline.ServiceOpenAI {
			cost = &ov.Cost[i]
		}
	}
	if cost == nil || cost.BudgetUSD != 5 {
		t.Fatalf("cost: %+v", ov.Cost)
	}
}

// River UI cannot send Authorization headers, so signing in to the dashboard stores
// an admin credential in a cookie scoped to /riverui/; RequireAdmin takes either.
func TestSessionCookieGuardsRiverUI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	admin, _, err := auth.NewKeys(h.pool).Create(ctx, auth.NewKey{Name: "ops", Admin: true})
	dbtest.Must(t, err, "admin key")
	tokA := token(t, userA)

	cookieOf := func(r response) *http.Cookie {
		t.Helper()
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Name == api.SessionCookie {
				return c
			}
		}
		t.Fatalf("no %s cookie: %v", api.SessionCookie, r.header)
		return nil
	}
	var body struct{ RiverUI bool }
	r := h.do(http.MethodPost, "/v1/session", tokA, nil)
	r.json(t, &body)
	if c := cookieOf(r); body.RiverUI || c.Value != "" || c.MaxAge >= 0 {
		t.Fatalf("a user credential got a River UI cookie: %+v %+v", body, c)
	}
	r = h.do(http.MethodPost, "/v1/session", admin, nil)
	r.json(t, &body)
	c := cookieOf(r)
	if !body.RiverUI || c.Value != admin || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != api.SessionPath || c.MaxAge <= 0 {
		t.Fatalf("admin session cookie: %+v %+v", body, c)
	}
	h.do(http.MethodPost, "/v1/session", "", nil).problem(t, 401, apitypes.CodeUnauthenticated)
	if r := h.do(http.MethodDelete, "/v1/session", "", nil); r.status != http.StatusNoContent || cookieOf(r).MaxAge >= 0 {
		t.Fatalf("sign-out: %d %v", r.status, r.header)
	}

	guarded := h.api.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("river")) }))
	for _, tc := range []struct {
		name, header, cookie string
		want                 int
	}{
		{"nothing", "", "", 401},
		{"bad cookie", "", "dpk_nope", 401},
		{"user cookie", "", tokA, 403},
		{"user header", "Bearer " + tokA, "", 403},
		{"admin cookie", "", admin, 200},
		{"admin header", "Bearer " + admin, "", 200},
	} {
		req := httptest.NewRequest(http.MethodGet, "/riverui/api/jobs", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		if tc.cookie != "" {
			req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: tc.cookie})
		}
		rec := httptest.NewRecorder()
		guarded.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
	}
}
