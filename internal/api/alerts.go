package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/alerts"
)

// AlertSource lists the current alerts (firing, and recently resolved).
type AlertSource interface {
	Alerts(ctx context.Context) ([]alerts.Alert, error)
}

type alertsOutput struct {
	Body struct {
		Alerts []alerts.Alert `json:"alerts"`
	}
}

// registerAlerts serves GET /v1/alerts when an alert engine is configured.
func (s *Server) registerAlerts() {
	if s.d.Alerts == nil {
		return
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-alerts", Method: http.MethodGet, Path: "/v1/alerts", Tags: []string{"operations"},
		Summary: "Alerts: what is wrong now (no live worker, stuck documents, dead letters, error rates, breakers, budgets, buffers, database, storage)",
		Errors:  []int{401, 429},
	}, func(ctx context.Context, _ *struct{}) (*alertsOutput, error) {
		list, err := s.d.Alerts.Alerts(ctx)
		if err != nil {
			return nil, s.internal(ctx, "list alerts", err)
		}
		out := &alertsOutput{}
		out.Body.Alerts = list
		if out.Body.Alerts == nil {
			out.Body.Alerts = []alerts.Alert{}
		}
		return out, nil
	})
}
