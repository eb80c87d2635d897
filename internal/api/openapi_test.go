package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// The served OpenAPI document is well-formed 3.1 and matches the mux: every route the
// server registered is documented, every documented operation is served (a request
// to it is answered by its handler, not by "no such route"), path parameters are
// declared, $refs resolve, operation ids are unique, and every error response is a
// problem+json Problem (except /readyz, whose 503 carries the checks, and the
// storage package's signed blob handler).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{signed: true})
	r := h.do(http.MethodGet, "/v1/openapi.json", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("openapi.json: %d", r.status)
	}
	if p := os.Getenv("DOCPIPE_OPENAPI_OUT"); p != "" {
		_ = os.WriteFile(p, r.body, 0o644) // for external validators
	}
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			OperationID string                      `json:"operationId"`
			Security    *[]map[string][]string      `json:"security"`
			Parameters  []struct{ Name, In string } `json:"parameters"`
			Responses   map[string]struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	r.json(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}

	documented := map[string]bool{}
	opIDs := map[string]string{}
	paramRE := regexp.MustCompile(`\{([^}]+)\}`)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			m := strings.ToUpper(method)
			key := m + " " + path
			documented[key] = true
			if op.OperationID == "" || opIDs[op.OperationID] != "" {
				t.Errorf("%s: operationId %q missing or used by %s too", key, op.OperationID, opIDs[op.OperationID])
			}
			opIDs[op.OperationID] = key
			for _, pm := range paramRE.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == pm[1] && p.In == "path" }) {
					t.Errorf("%s: path parameter %s not declared", key, pm[1])
				}
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses", key)
			}
			for code, resp := range op.Responses {
				for ct, mt := range resp.Content {
					if ref := mt.Schema.Ref; ref != "" {
						name := strings.TrimPrefix(ref, "#/components/schemas/")
						if _, ok := doc.Components.Schemas[name]; !ok {
							t.Errorf("%s %s: $ref %s does not resolve", key, code, ref)
						}
					}
					if code >= "400" && code != "default" && !strings.HasPrefix(path, "/v1/blobs/") && path != "/readyz" && (ct != "application/problem+json" || !strings.HasSuffix(mt.Schema.Ref, "/Problem")) {
						t.Errorf("%s %s: error response is %s %s, want application/problem+json Problem", key, code, ct, mt.Schema.Ref)
					}
				}
			}
			// Served: unauthenticated requests reach the route (401 for protected
			// routes, anything but "no route" for public ones).
			concrete := paramRE.ReplaceAllString(path, "00000000-0000-4000-8000-000000000000")
			resp := h.do(m, concrete, "", nil)
			var p api.Problem
			_ = json.Unmarshal(resp.body, &p)
			if p.Code == apitypes.CodeRouteNotFound || p.Code == apitypes.CodeMethodNotAllowed {
				t.Errorf("%s is documented but not served: %d %s", key, resp.status, resp.body)
			}
			public := op.Security != nil && len(*op.Security) == 0
			if !public && resp.status != http.StatusUnauthorized {
				t.Errorf("%s without credentials: %d, want 401", key, resp.status)
			}
		}
	}

	// The spec itself is served by huma outside the document.
	selfServed := map[string]bool{"GET /v1/openapi.json": true, "GET /v1/openapi.yaml": true, "GET /v1/openapi-3.0.json": true, "GET /v1/openapi-3.0.yaml": true}
	var routes []string
	for _, p := range h.api.Routes() {
		if selfServed[p] {
			continue
		}
		p = strings.ReplaceAll(p, "...}", "}")
		routes = append(routes, p)
		if !documented[p] {
			t.Errorf("route %s is served but not in the OpenAPI document", p)
		}
	}
	for k := range documented {
		if !slices.Contains(routes, k) {
			t.Errorf("%s is documented but not registered on the mux", k)
		}
	}
	// The requests that start a run take X-Correlation-Id.
	for _, op := range []struct{ path, method string }{{"/v1/documents", "post"}, {"/v1/uploads/{document_id}/complete", "post"}} {
		params := doc.Paths[op.path][op.method].Parameters
		if !slices.ContainsFunc(params, func(p struct{ Name, In string }) bool {
			return p.Name == apitypes.CorrelationHeader && p.In == "header"
		}) {
			t.Errorf("%s %s: no %s header parameter", strings.ToUpper(op.method), op.path, apitypes.CorrelationHeader)
		}
	}
	if !strings.Contains(string(doc.Components.Schemas["UploadResult"]), `"correlation_id"`) {
		t.Error("UploadResult has no correlation_id")
	}
	sort.Strings(routes)
	t.Logf("%d routes: %s", len(routes), strings.Join(routes, ", "))
	for _, want := range []string{"POST /v1/documents", "GET /v1/documents", "GET /v1/documents/{id}", "GET /v1/documents/{id}/chunks",
		"DELETE /v1/documents/{id}", "GET /v1/documents/{id}/events", "GET /v1/jobs/{id}", "GET /v1/jobs", "POST /v1/jobs/{id}/retry",
		"POST /v1/jobs/{id}/cancel", "POST /v1/search", "GET /healthz", "GET /readyz", "POST /v1/webhooks/llamaparse/{job_id}/{token}",
		"POST /v1/uploads", "POST /v1/uploads/{document_id}/complete", "PUT /v1/blobs/{key}", "GET /v1/blobs/{key}"} {
		if !documented[want] {
			t.Errorf("%s missing", want)
		}
	}
}

// The OpenAPI document's enums of state and status come from the run vocabulary: the
// jobs filter takes every state and status, Job.state every state, and Job.status
// names every status.
func TestOpenAPIEnumsAreTheVocabulary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum        []string `json:"enum"`
					Description string   `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string
				Schema struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	h.do(http.MethodGet, "/v1/openapi.json", "", nil).json(t, &doc)
	var filter []string
	for _, p := range doc.Paths["/v1/jobs"]["get"].Parameters {
		if p.Name == "state" {
			filter = p.Schema.Enum
		}
	}
	states, statuses := strings.Split(runstate.Join(runstate.States(), ","), ","), strings.Split(runstate.Join(runstate.Statuses(), ","), ",")
	if want := slices.Concat(states, statuses); !slices.Equal(filter, want) {
		t.Errorf("GET /v1/jobs state enum %v, want %v", filter, want)
	}
	job := doc.Components.Schemas["Job"].Properties
	if !slices.Equal(job["state"].Enum, states) {
		t.Errorf("Job.state enum %v, want %v", job["state"].Enum, states)
	}
	for _, s := range statuses {
		if !strings.Contains(job["status"].Description, s) {
			t.Errorf("Job.status description %q does not name %s", job["status"].Description, s)
		}
	}
	if r := h.do(http.MethodGet, "/v1/jobs?state=reviewing", token(t, userA), nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("GET /v1/jobs?state=reviewing: %d, want 422", r.status)
	}
}
