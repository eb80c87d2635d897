package llamaparse

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
)

// LlamaParse webhooks are not signed. Authenticate them with an unguessable
// per-job token in the webhook URL (WebhookToken), treat the body only as a
// hint (ParseWebhook), and re-read the status and result through the API.

// WebhookRoute is the path under docpipe's public URL where LlamaParse delivers a
// run's notifications; the run's id and its token follow it
// (WebhookRoute + "{job_id}/{token}"). It is spelled once, here: the API serves it,
// the pipeline hands out URLs to it (WebhookURL), and the log redactor masks the
// token that follows it.
const WebhookRoute = "/v1/webhooks/llamaparse/"

// WebhookURL is the notification URL for the run jobID under docpipe's public
// baseURL, with the run's token (WebhookToken under secret) as its last segment.
func WebhookURL(baseURL string, secret []byte, jobID string) string {
	return strings.TrimRight(baseURL, "/") + WebhookRoute + url.PathEscape(jobID) + "/" + WebhookToken(secret, jobID)
}

// WebhookToken is the hex HMAC-SHA256 of jobID under secret: put it in the
// webhook URL given to Submit and check it with VerifyWebhookToken.
func WebhookToken(secret []byte, jobID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(jobID))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhookToken reports whether token is WebhookToken(secret, jobID). The
// comparison takes the same time wherever the first difference is
// (hmac.Equal). An empty secret never verifies.
func VerifyWebhookToken(secret []byte, jobID, token string) bool {
	if len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(token)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(jobID))
	return hmac.Equal(got, m.Sum(nil))
}

// Webhook payload styles recognized by ParseWebhook.
const (
	// WebhookStyleResult is the v1 "webhook_url" payload: the whole result,
	// {"txt", "md", "json": [pages], "images"}, without a job id or status.
	WebhookStyleResult = "result"
	// WebhookStyleEvent is the "webhook_configurations" payload:
	// {"event_id", "event_type": "parse.success", "timestamp", "data": {"id", "job_id"}}.
	WebhookStyleEvent = "event"
	// WebhookStyleStatus is a bare {"job_id"|"id", "status"} body (what users
	// asked for in run-llama/llama_cloud_services#639; also older mocks).
	WebhookStyleStatus = "status"
)

// Webhook is what a webhook body says. It is a hint only: never use its
// content, re-read status and result from the API.
type Webhook struct {
	Style string // WebhookStyle*
	// JobID is the LlamaParse job id when the body has one (event and status
	// styles); "" for the result style — identify the job by the URL.
	JobID string
	// Status is the normalized job state the body implies: from the event type
	// (parse.success → SUCCESS, parse.error → ERROR, parse.partial_success →
	// PARTIAL_SUCCESS, parse.cancelled/canceled → CANCELLED, parse.pending →
	// PENDING); SUCCESS for the result style (it is sent only with a result);
	// "" if unknown.
	Status    string
	EventType string // event style only, e.g. "parse.success"
	// DeliveryKey identifies the delivery for deduplication: "event:" +
	// event_id (or job id + event type), else "sha256:" + hex digest of the
	// body, so redeliveries of the same payload share a key.
	DeliveryKey string
	Timestamp   time.Time // event style: the event time, if given
}

// ParseWebhook reads a webhook body of either documented style (and the bare
// status style). It fails with a permanent LLAMAPARSE_WEBHOOK_INVALID error on
// anything else.
func ParseWebhook(body []byte) (Webhook, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Webhook{}, fault.Permanentf(CodeWebhookInvalid, "the webhook body is not a JSON object")
	}
	sum := sha256.Sum256(body)
	bodyKey := "sha256:" + hex.EncodeToString(sum[:])
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if v, ok := m[k]; ok && json.Unmarshal(v, &s) == nil {
			return strings.TrimSpace(s)
		}
		return ""
	}

	if et := str(raw, "event_type"); et != "" {
		w := Webhook{Style: WebhookStyleEvent, EventType: et, Status: eventStatus(et)}
		var data map[string]json.RawMessage
		if v, ok := raw["data"]; ok {
			_ = json.Unmarshal(v, &data)
		}
		if data != nil {
			w.JobID = str(data, "job_id")
			if w.JobID == "" {
				w.JobID = str(data, "id")
			}
		}
		if w.JobID == "" {
			w.JobID = str(raw, "job_id")
		}
		if id := str(raw, "event_id"); id != "" {
			w.DeliveryKey = "event:" + id
		} else if w.JobID != "" {
			w.DeliveryKey = "event:" + w.JobID + ":" + et
		} else {
			w.DeliveryKey = bodyKey
		}
		var ts json.Number
		if v, ok := raw["timestamp"]; ok && json.Unmarshal(v, &ts) == nil {
			if f, err := ts.Float64(); err == nil && f > 0 {
				w.Timestamp = time.Unix(0, int64(f*1e9)).UTC()
			}
		}
		return w, nil
	}

	_, hasMD := raw["md"]
	_, hasTxt := raw["txt"]
	_, hasJSON := raw["json"]
	if hasMD || hasTxt || hasJSON {
		w := Webhook{Style: WebhookStyleResult, Status: StateSuccess, DeliveryKey: bodyKey}
		for _, k := range []string{"job_id", "jobId", "id"} {
			if w.JobID = str(raw, k); w.JobID != "" {
				break
			}
		}
		return w, nil
	}

	if st := str(raw, "status"); st != "" {
		w := Webhook{Style: WebhookStyleStatus, Status: NormalizeState(st), DeliveryKey: bodyKey}
		w.JobID = str(raw, "job_id")
		if w.JobID == "" {
			w.JobID = str(raw, "id")
		}
		if w.JobID != "" {
			w.DeliveryKey = "status:" + w.JobID + ":" + w.Status
		}
		return w, nil
	}
	return Webhook{}, fault.Permanentf(CodeWebhookInvalid,
		"the webhook body is neither a LlamaParse result nor a LlamaParse event")
}

// eventStatus maps "parse.success" etc. to a normalized state.
func eventStatus(et string) string {
	_, ev, ok := strings.Cut(strings.ToLower(et), ".")
	if !ok {
		return ""
	}
	switch ev {
	case "pending":
		return StatePending
	case "success":
		return StateSuccess
	case "error":
		return StateError
	case "partial_success":
		return StatePartialSuccess
	case "cancelled", "canceled":
		return StateCancelled
	}
	return ""
}

// PollInterval is how long to wait (snooze) before status check number
// attempt (1-based): 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s.
func PollInterval(attempt int) time.Duration {
	const ceiling = 30 * time.Second
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 6 {
		return ceiling
	}
	return min(time.Second<<(attempt-1), ceiling)
}

// ValidateWebhookURL checks the documented rules for webhook_url: HTTPS, a
// host name (not an IP address), shorter than 200 characters. The local twin
// does not enforce them unless told to, so dev setups can use http://localhost.
func ValidateWebhookURL(raw string) error {
	if len(raw) >= 200 {
		return fmt.Errorf("webhook URL is %d characters; LlamaParse accepts fewer than 200", len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("webhook URL is not a valid URL")
	}
	if u.Scheme != "https" {
		return fmt.Errorf("webhook URL must use https")
	}
	h := u.Hostname()
	if h == "" {
		return fmt.Errorf("webhook URL has no host")
	}
	if net.ParseIP(h) != nil {
		return fmt.Errorf("webhook URL must use a host name, not an IP address")
	}
	return nil
}
