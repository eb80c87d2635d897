package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// Transport wraps next (nil = http.DefaultTransport) so that every request through it
// is counted by ObserveExternalCall as a call to service (latency up to the response
// headers), and the service's x-ratelimit-remaining-requests/-tokens headers are
// exported. Give the clients of external services an http.Client with it.
func Transport(service string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{service: service, next: next}
}

type transport struct {
	service string
	next    http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	d := time.Since(start)
	if err != nil {
		outcome := OutcomeNetwork
		if req.Context().Err() == context.Canceled {
			outcome = OutcomeCanceled
		}
		ObserveExternalCall(t.service, outcome, 0, d)
		return resp, err
	}
	ObserveExternalCall(t.service, outcomeOf(resp.StatusCode), resp.StatusCode, d)
	for _, r := range []string{"requests", "tokens"} {
		if v, err := strconv.ParseFloat(resp.Header.Get("x-ratelimit-remaining-"+r), 64); err == nil {
			serverLimitGauge.WithLabelValues(t.service, r).Set(v)
		}
	}
	return resp, nil
}

// outcomeOf classifies an HTTP status.
func outcomeOf(status int) string {
	switch {
	case status >= 200 && status < 400:
		return OutcomeOK
	case status == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case status >= 500:
		return OutcomeServerError
	default:
		return OutcomeClientError
	}
}

// TrackBreaker reports state() (e.g. (*embed.OpenAI).BreakerState) as service's
// breaker state every second until ctx ends, so the breaker needs no hook of its own.
func TrackBreaker(ctx context.Context, service string, state func() string) {
	SetBreakerState(service, state())
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				SetBreakerState(service, state())
			}
		}
	}()
}
