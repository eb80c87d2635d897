package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/llamaparse"
)

// The LlamaParse webhook authenticates by the per-run token in its URL only: a wrong
// token is 401 whatever the job, a right one for an unknown run 404, a repeated
// delivery is acknowledged as a duplicate, a body that is not JSON 400.
func TestLlamaParseWebhook(t *testing.T) {
	t.Parallel()
	secret := []byte("webhook-secret-0123456789")
	h := newHarness(t, harnessOpts{webhookSecret: secret})
	res := h.uploadOK(token(t, userA), "a.md", smallDoc("A", "webhook target"))
	job := res.JobID.String()
	path := "/v1/webhooks/llamaparse/" + job + "/"
	body := `{"event_id":"ev-1","event_type":"parse.success","timestamp":"2026-01-01T00:00:00Z","data":{"job_id":"remote-1"}}`

	h.do(http.MethodPost, path+strings.Repeat("0", 64), "", strings.NewReader(body)).problem(t, 401, apitypes.CodeWebhookTokenBad)
	h.do(http.MethodPost, "/v1/webhooks/llamaparse/not-a-uuid/abc", "", strings.NewReader(body)).problem(t, 401, apitypes.CodeWebhookTokenBad)
	unknown := uuid.NewString()
	h.do(http.MethodPost, "/v1/webhooks/llamaparse/"+unknown+"/"+llamaparse.WebhookToken(secret, unknown), "", strings.NewReader(body)).
		problem(t, 404, apitypes.CodeNotFound)

	tok := llamaparse.WebhookToken(secret, job)
	h.do(http.MethodPost, path+tok, "", strings.NewReader("not json")).problem(t, 400, apitypes.CodeMalformed)
	var out struct{ Received, Duplicate bool }
	r := h.do(http.MethodPost, path+tok, "", strings.NewReader(body))
	if r.status != 200 {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	r.json(t, &out)
	if !out.Received || out.Duplicate {
		t.Fatalf("first delivery %+v", out)
	}
	h.do(http.MethodPost, path+tok, "", strings.NewReader(body)).json(t, &out)
	if !out.Duplicate {
		t.Fatalf("second delivery %+v", out)
	}
	if n := h.count(`SELECT count(*) FROM upload_pipeline.webhook_log`); n != 1 {
		t.Fatalf("webhook_log rows %d", n)
	}
}
