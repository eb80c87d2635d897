package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

type healthOutput struct {
	Body apitypes.Health
}

type readyOutput struct {
	Status int `json:"-"`
	Body   apitypes.Readiness
}

// readyProbeKey is a key no object ever has: Stat answering "not found" proves the
// store answers.
const readyProbeKey = "health/readyz-probe"

func (s *Server) registerHealth() {
	public := []map[string][]string{}
	huma.Register(s.api, huma.Operation{
		OperationID: "healthz", Method: http.MethodGet, Path: "/healthz", Tags: []string{"health"},
		Summary: "Liveness", Description: "The process is up.", Security: public,
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "readyz", Method: http.MethodGet, Path: "/readyz", Tags: []string{"health"},
		Summary:     "Readiness",
		Description: "200 when the database answers, its migrations are at head (re-read every 10 s), and the blob store answers; 503 otherwise.",
		Security:    public,
		Responses: map[string]*huma.Response{"503": {Description: "Not ready (same body, with the failing checks).",
			Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(
				reflect.TypeFor[apitypes.Readiness](), true, "Readiness")}}}},
	}, func(ctx context.Context, _ *struct{}) (*readyOutput, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out := &readyOutput{Status: http.StatusOK}
		out.Body.Status = "ready"
		out.Body.Checks = map[string]string{}
		fail := func(check, msg string) {
			out.Status, out.Body.Status = http.StatusServiceUnavailable, "not_ready"
			out.Body.Checks[check] = msg
		}
		if err := s.d.Pool.Ping(ctx); err != nil {
			s.log.Warn("readyz: database", "error", err)
			fail("database", "unreachable")
		} else {
			out.Body.Checks["database"] = "ok"
		}
		switch pending, err := s.head.Pending(ctx); {
		case err != nil:
			s.log.Warn("readyz: migrations", "error", err)
			fail("migrations", "cannot read migration status")
		case len(pending) > 0:
			fail("migrations", fmt.Sprintf("%d pending (%s): run `docpipe migrate up`", len(pending), pending[0]))
		default:
			out.Body.Checks["migrations"] = "ok"
		}
		if _, err := s.d.Store.Stat(ctx, readyProbeKey); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("readyz: storage", "error", err)
			fail("storage", "unreachable")
		} else {
			out.Body.Checks["storage"] = "ok"
		}
		return out, nil
	})
}

// webhookPath receives LlamaParse's job notifications.
const webhookPath = llamaparse.WebhookRoute + "{job_id}/{token}"

type webhookInput struct {
	JobID   string `path:"job_id" doc:"docpipe run id."`
	Token   string `path:"token" doc:"Per-run HMAC token from the webhook URL docpipe gave LlamaParse."`
	RawBody []byte
}

type webhookOutput struct {
	Body apitypes.WebhookReceipt
}

func (s *Server) registerWebhooks() {
	huma.Register(s.api, huma.Operation{
		OperationID: "llamaparse-webhook", Method: http.MethodPost, Path: webhookPath, Tags: []string{"webhooks"},
		Summary: "LlamaParse job notification",
		Description: "Called by LlamaParse. The token in the URL is the only authentication; the body is only a hint " +
			"(the result is re-read from LlamaParse). Repeated deliveries are acknowledged and ignored.",
		Security:     []map[string][]string{},
		MaxBodyBytes: 1 << 20,
		Errors:       []int{400, 401, 404},
	}, func(ctx context.Context, in *webhookInput) (*webhookOutput, error) {
		id, err := uuid.Parse(in.JobID)
		if err != nil {
			return nil, problem(http.StatusUnauthorized, apitypes.CodeWebhookTokenBad, "webhook token does not match")
		}
		res, err := s.d.Pipe.LlamaParseWebhook(ctx, id, in.Token, remoteAddr(ctx), in.RawBody)
		noteCorrelation(ctx, res.CorrelationID)
		if err != nil {
			var fe *fault.Error
			switch {
			case errors.Is(err, pipeline.ErrWebhookToken):
				return nil, problem(http.StatusUnauthorized, apitypes.CodeWebhookTokenBad, "webhook token does not match")
			case isNotFound(err):
				return nil, notFound("job")
			case errors.As(err, &fe) && fe.Kind == fault.Permanent:
				return nil, problem(http.StatusBadRequest, apitypes.CodeMalformed, "%s", fe.Message)
			}
			return nil, s.internal(ctx, "llamaparse webhook", err)
		}
		return &webhookOutput{Body: apitypes.WebhookReceipt{Received: true, Duplicate: res.Duplicate}}, nil
	})
}

type remoteAddrKey struct{}

func remoteAddr(ctx context.Context) string {
	a, _ := ctx.Value(remoteAddrKey{}).(string)
	return a
}
