package apitypes

// Health is the answer to GET /healthz: the process is up.
type Health struct {
	Status string `json:"status" example:"ok"`
}

// Readiness is the answer to GET /readyz, with status 200 or 503.
type Readiness struct {
	Status string            `json:"status" enum:"ready,not_ready"`
	Checks map[string]string `json:"checks" doc:"database, migrations, storage: ok or what is wrong."`
}

// WebhookReceipt acknowledges a LlamaParse notification.
type WebhookReceipt struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate" doc:"This delivery was seen before and ignored."`
}

// Session is the answer to POST /v1/session (the cookie itself is in Set-Cookie).
type Session struct {
	RiverUI bool `json:"riverui" doc:"The credential has admin scope, so the cookie opens River UI at /riverui/."`
}
