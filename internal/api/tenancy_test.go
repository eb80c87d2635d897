package api_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Tenant isolation: user B calls every endpoint that takes an id (walked from the
// OpenAPI document, so a new endpoint is covered automatically) with user A's ids
// and gets 404; lists and search show B nothing of A; A's objects are untouched.
// An admin API key sees A's objects; a user key is scoped like a JWT.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{workers: true})
	tokA, tokB := token(t, userA), token(t, userB)
	secret := "Section 7: prior authorization is required for imaging. Policy number QX-44721-ZB."
	resA := h.uploadOK(tokA, "a-policy.md", smallDoc("A's policy", secret))
	docA := h.waitDocument(tokA, resA.DocumentID, time.Minute)
	if docA.Status != runstate.Complete {
		t.Fatalf("A's document: %+v", docA)
	}
	resB := h.uploadOK(tokB, "b-notes.md", smallDoc("B's notes", "Nothing about imaging here."))
	h.waitDocument(tokB, resB.DocumentID, time.Minute)

	ids := map[string]string{"/v1/documents/": resA.DocumentID.String(), "/v1/jobs/": resA.JobID.String(), "/v1/uploads/": resA.DocumentID.String()}
	called := 0
	for path, item := range h.api.OpenAPI().Paths {
		if !strings.Contains(path, "{") || strings.HasPrefix(path, "/v1/webhooks/") || strings.HasPrefix(path, "/v1/blobs/") {
			continue // id-less routes are checked below; webhooks and blobs authenticate by token/signature, not by user
		}
		concrete := ""
		for prefix, id := range ids {
			if strings.HasPrefix(path, prefix+"{") {
				concrete = strings.Replace(path, "{id}", id, 1)
				concrete = strings.Replace(concrete, "{document_id}", id, 1)
			}
		}
		if concrete == "" || strings.Contains(concrete, "{") {
			t.Fatalf("no id of user A to put into %s; extend this test", path)
		}
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op == nil {
				continue
			}
			var r response
			if method == "GET" || method == "DELETE" {
				r = h.do(method, concrete, tokB, nil)
			} else {
				r = h.do(method, concrete, tokB, bytes.NewReader([]byte(`{}`)))
			}
			r.problem(t, http.StatusNotFound, apitypes.CodeNotFound)
			called++
		}
	}
	t.Logf("%d id endpoints called as another tenant", called)
	if called < 7 {
		t.Fatalf("only %d id endpoints called", called)
	}

	// Lists and search show B only B's objects.
	var docs struct{ Items []apitypes.Document }
	h.getJSON("/v1/documents", tokB, &docs)
	if len(docs.Items) != 1 || docs.Items[0].ID != resB.DocumentID {
		t.Fatalf("B's document list: %+v", docs.Items)
	}
	var jobs struct{ Items []apitypes.Job }
	h.getJSON("/v1/jobs", tokB, &jobs)
	if len(jobs.Items) != 1 || jobs.Items[0].ID != resB.JobID {
		t.Fatalf("B's job list: %+v", jobs.Items)
	}
	h.getJSON("/v1/jobs?document_id="+resA.DocumentID.String(), tokB, &jobs)
	if len(jobs.Items) != 0 {
		t.Fatalf("B lists A's runs by document id: %+v", jobs.Items)
	}
	for _, mode := range []string{"vector", "keyword", "hybrid"} {
		var sr struct{ Results []apitypes.SearchHit }
		h.postJSON("/v1/search", tokB, map[string]any{"query": "prior authorization imaging QX-44721-ZB", "mode": mode, "k": 10}).json(t, &sr)
		for _, hit := range sr.Results {
			if hit.DocumentID != resB.DocumentID {
				t.Fatalf("%s search as B returned A's chunk: %+v", mode, hit)
			}
		}
		h.postJSON("/v1/search", tokB, map[string]any{"query": "prior authorization", "mode": mode,
			"document_ids": []string{resA.DocumentID.String()}}).json(t, &sr)
		if len(sr.Results) != 0 {
			t.Fatalf("%s search as B in A's document: %+v", mode, sr.Results)
		}
	}
	// B uploading A's bytes makes B's own document.
	if r := h.upload(tokB, "a-policy.md", smallDoc("A's policy", secret), ""); r.status != http.StatusAccepted {
		t.Fatalf("B uploads the same bytes: %d %s", r.status, r.body)
	}

	// A's objects are untouched and still A's.
	var after apitypes.Document
	h.getJSON("/v1/documents/"+resA.DocumentID.String(), tokA, &after)
	if after.Status != runstate.Complete || after.Chunks != docA.Chunks {
		t.Fatalf("A's document after B's attempts: %+v", after)
	}
	var sr struct{ Results []apitypes.SearchHit }
	h.postJSON("/v1/search", tokA, map[string]any{"query": "QX-44721-ZB", "mode": "keyword"}).json(t, &sr)
	if len(sr.Results) != 1 || sr.Results[0].DocumentID != resA.DocumentID {
		t.Fatalf("A's keyword search: %+v", sr.Results)
	}

	// API keys: a user key is scoped like a JWT, an admin key sees every tenant.
	keys := auth.NewKeys(h.pool)
	ctx := context.Background()
	keyB, _, err := keys.Create(ctx, auth.NewKey{Name: "b-service", UserID: &userB})
	dbtest.Must(t, err, "create key")
	admin, adminInfo, err := keys.Create(ctx, auth.NewKey{Name: "ops", Admin: true})
	dbtest.Must(t, err, "create admin key")
	h.do(http.MethodGet, "/v1/documents/"+resA.DocumentID.String(), keyB, nil).problem(t, 404, apitypes.CodeNotFound)
	if r := h.do(http.MethodGet, "/v1/documents/"+resB.DocumentID.String(), "", nil, "X-API-Key", keyB); r.status != 200 {
		t.Fatalf("user key via X-API-Key: %d %s", r.status, r.body)
	}
	h.getJSON("/v1/documents", admin, &docs)
	if len(docs.Items) != 3 {
		t.Fatalf("admin sees %d documents, want 3", len(docs.Items))
	}
	var asAdmin apitypes.Document
	h.getJSON("/v1/documents/"+resA.DocumentID.String(), admin, &asAdmin)
	if asAdmin.UserID != userA {
		t.Fatalf("admin reads A's document: %+v", asAdmin)
	}
	h.postJSON("/v1/search", admin, map[string]any{"query": "QX-44721-ZB", "mode": "keyword"}).json(t, &sr)
	if len(sr.Results) < 1 {
		t.Fatal("admin search finds nothing")
	}
	// An admin key without a user must say whom it uploads for.
	h.upload(admin, "x.md", smallDoc("X", "x"), "").problem(t, 422, apitypes.CodeValidation)
	body, ct := multipartBody(t, "x.md", smallDoc("X", "for A"), "")
	if r := h.do(http.MethodPost, "/v1/documents?user_id="+userA.String(), admin, body, "Content-Type", ct); r.status != http.StatusAccepted {
		t.Fatalf("admin uploads for A: %d %s", r.status, r.body)
	}
	// A user may not upload for someone else.
	body, ct = multipartBody(t, "x.md", smallDoc("X", "for A by B"), "")
	h.do(http.MethodPost, "/v1/documents?user_id="+userA.String(), tokB, body, "Content-Type", ct).problem(t, 403, apitypes.CodeForbidden)

	// Revoked keys stop working.
	_, err = keys.Revoke(ctx, adminInfo.Prefix)
	dbtest.Must(t, err, "revoke")
	h.do(http.MethodGet, "/v1/documents", admin, nil).problem(t, 401, apitypes.CodeUnauthenticated)
	list, err := keys.List(ctx, true)
	dbtest.Must(t, err, "list keys")
	if len(list) != 2 || !slices.ContainsFunc(list, func(k auth.KeyInfo) bool { return k.ID == adminInfo.ID && k.RevokedAt != nil }) {
		t.Fatalf("keys %+v", list)
	}
	var stored int
	dbtest.Must(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.api_keys WHERE key_sha256 = $1 AND position($2 in key_prefix) = 0`,
		auth.HashKey(admin), admin).Scan(&stored), "key row")
	if stored != 1 {
		t.Fatal("the key is not stored as its hash only")
	}
}
