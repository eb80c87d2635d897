package mock

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// lpWebhookUserAgent is the User-Agent LlamaCloud documents for webhooks.
const lpWebhookUserAgent = "llamaindex-webhook-service/1.0"

// lpEventFor maps a final job status to its webhook event type.
func lpEventFor(status string) string {
	switch strings.ToUpper(status) {
	case "SUCCESS":
		return "parse.success"
	case "ERROR":
		return "parse.error"
	case "PARTIAL_SUCCESS":
		return "parse.partial_success"
	case "CANCELLED", "CANCELED":
		return "parse.cancelled"
	}
	return "parse.pending"
}

// sendResultWebhook posts the v1 webhook_url payload, the whole result:
// {"txt", "md", "json": [pages], "images": []}. It is sent only for finished
// jobs with a result.
func (s *LlamaParseServer) sendResultWebhook(j *lpJob) {
	if j.webhookURL == "" {
		return
	}
	s.mu.Lock()
	md := s.joined(j)
	body, _ := json.Marshal(map[string]any{
		"txt":    md,
		"md":     md,
		"json":   s.jsonPages(j),
		"images": []string{},
	})
	s.mu.Unlock()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", lpWebhookUserAgent)
	s.deliverMaybe(j.webhookURL, h, body)
}

// sendEvents posts a webhook_configurations event to every configuration
// subscribed to it (all events when webhook_events is omitted). The pending
// event is sent from its own goroutine so a slow receiver does not hold up
// the parse.
func (s *LlamaParseServer) sendEvents(j *lpJob, event string) {
	for _, c := range j.configs {
		if len(c.Events) > 0 && !slices.Contains(c.Events, event) {
			continue
		}
		s.mu.Lock()
		eventID := s.newID()
		s.mu.Unlock()
		ts := float64(time.Now().UnixMicro()) / 1e6
		body, _ := json.Marshal(map[string]any{
			"event_id":   eventID,
			"event_type": event,
			"timestamp":  ts,
			"data":       map[string]any{"id": j.id, "job_id": j.id},
		})
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", lpWebhookUserAgent)
		h.Set("X-Webhook-Event-ID", eventID)
		h.Set("X-Webhook-Event-Type", event)
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		if event == "parse.pending" {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			s.wg.Add(1)
			s.mu.Unlock()
			go func(u string) {
				defer s.wg.Done()
				s.deliverMaybe(u, h, body)
			}(c.URL)
			continue
		}
		s.deliverMaybe(c.URL, h, body)
	}
}

// deliverMaybe applies WebhookDrop and WebhookDuplicate, then delivers.
func (s *LlamaParseServer) deliverMaybe(u string, h http.Header, body []byte) {
	s.mu.Lock()
	drop := s.opts.WebhookDrop > 0 && s.rng.Float64() < s.opts.WebhookDrop
	s.mu.Unlock()
	if drop {
		s.whDropped.Add(1)
		return
	}
	copies := 1
	if s.opts.WebhookDuplicate {
		copies = 3
	}
	for range copies {
		if s.ctx.Err() != nil {
			return
		}
		s.deliver(u, h, body)
	}
}

// deliver makes up to WebhookAttempts tries, waiting WebhookRetryDelays
// between them, until the receiver answers 2xx.
func (s *LlamaParseServer) deliver(u string, h http.Header, body []byte) {
	for attempt := 1; ; attempt++ {
		if s.post(u, h, body) {
			s.whDelivered.Add(1)
			return
		}
		if attempt >= s.opts.WebhookAttempts {
			s.whFailed.Add(1)
			return
		}
		d := s.opts.WebhookRetryDelays[min(attempt-1, len(s.opts.WebhookRetryDelays)-1)]
		t := time.NewTimer(d)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *LlamaParseServer) post(u string, h http.Header, body []byte) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		s.whSent.Add(1)
		return false
	}
	req.Header = h.Clone()
	s.whSent.Add(1)
	resp, err := s.hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}
