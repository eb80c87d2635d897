package llamaparse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
)

func TestWebhookToken(t *testing.T) {
	secret := []byte("s3cret")
	tok := WebhookToken(secret, "job-1")
	if len(tok) != 64 || strings.ToLower(tok) != tok {
		t.Fatalf("token %q is not lowercase hex sha256", tok)
	}
	if tok != WebhookToken(secret, "job-1") {
		t.Fatal("token not deterministic")
	}
	if !VerifyWebhookToken(secret, "job-1", tok) {
		t.Fatal("own token rejected")
	}
	flip := []byte(tok)
	flip[63] ^= 1 // same length, last character differs
	for name, bad := range map[string]string{
		"other job":        WebhookToken(secret, "job-2"),
		"other secret":     WebhookToken([]byte("other"), "job-1"),
		"last char":        string(flip),
		"truncated":        tok[:62],
		"longer":           tok + "00",
		"not hex":          strings.Repeat("zz", 32),
		"empty":            "",
		"uppercase+suffix": strings.ToUpper(tok) + "x",
	} {
		if VerifyWebhookToken(secret, "job-1", bad) {
			t.Errorf("%s: wrong token accepted", name)
		}
	}
	if VerifyWebhookToken(nil, "job-1", WebhookToken(nil, "job-1")) {
		t.Fatal("empty secret must never verify")
	}
}

func TestParseWebhookStyles(t *testing.T) {
	// webhook_url style: the whole result, no job id.
	res := `{"txt":"hello","md":"# hello","json":[{"page":1,"text":"hello","md":"# hello","images":[]}],"images":["img_p0_1.png"]}`
	w, err := ParseWebhook([]byte(res))
	if err != nil {
		t.Fatal(err)
	}
	if w.Style != WebhookStyleResult || w.JobID != "" || w.Status != StateSuccess || !strings.HasPrefix(w.DeliveryKey, "sha256:") {
		t.Fatalf("%+v", w)
	}
	w2, _ := ParseWebhook([]byte(res))
	if w2.DeliveryKey != w.DeliveryKey {
		t.Fatal("same body, different delivery key")
	}

	// webhook_configurations style.
	ev := `{"event_id":"e-1","event_type":"parse.success","timestamp":1753985275.11,"data":{"id":"j-1","job_id":"j-1"}}`
	w, err = ParseWebhook([]byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	if w.Style != WebhookStyleEvent || w.JobID != "j-1" || w.Status != StateSuccess || w.EventType != "parse.success" ||
		w.DeliveryKey != "event:e-1" || w.Timestamp.Unix() != 1753985275 {
		t.Fatalf("%+v", w)
	}
	for et, want := range map[string]string{
		"parse.pending": StatePending, "parse.error": StateError, "parse.partial_success": StatePartialSuccess,
		"parse.cancelled": StateCancelled, "parse.canceled": StateCancelled, "parse.whatever": "",
	} {
		w, err := ParseWebhook([]byte(`{"event_type":"` + et + `","data":{"id":"j-9"}}`))
		if err != nil || w.Status != want || w.JobID != "j-9" || w.DeliveryKey != "event:j-9:"+et {
			t.Errorf("%s: %+v %v", et, w, err)
		}
	}

	// Bare job id + status.
	w, err = ParseWebhook([]byte(`{"job_id":"j-2","status":"CANCELED"}`))
	if err != nil || w.Style != WebhookStyleStatus || w.JobID != "j-2" || w.Status != StateCancelled {
		t.Fatalf("%+v %v", w, err)
	}

	for _, bad := range []string{``, `[]`, `"x"`, `null`, `{}`, `{"foo":1}`, `{not json`} {
		_, err := ParseWebhook([]byte(bad))
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Code != CodeWebhookInvalid || fe.Kind != fault.Permanent {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestPollInterval(t *testing.T) {
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := PollInterval(i); got != w {
			t.Errorf("PollInterval(%d) = %s, want %s", i, got, w)
		}
	}
	if PollInterval(1000) != 30*time.Second || PollInterval(-5) != time.Second {
		t.Fatal("bounds")
	}
}

func TestNormalizeState(t *testing.T) {
	for in, want := range map[string]string{
		"CANCELED": StateCancelled, "canceled": StateCancelled, "CANCELLED": StateCancelled,
		" success ": StateSuccess, "PARTIAL_SUCCESS": StatePartialSuccess, "RUNNING": "RUNNING",
	} {
		if got := NormalizeState(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestValidateWebhookURL(t *testing.T) {
	if err := ValidateWebhookURL("https://hooks.example.com/llamaparse/abc"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"http://hooks.example.com/x", "https://10.0.0.1/x", "https://[::1]/x",
		"https://example.com/" + strings.Repeat("a", 200), "https:///x",
	} {
		if ValidateWebhookURL(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEstimateCredits(t *testing.T) {
	for _, tc := range []struct {
		opts  map[string]string
		pages int
		want  float64
		ok    bool
	}{
		{map[string]string{"parse_mode": "parse_page_without_llm"}, 4, 4, true},
		{map[string]string{"parse_mode": "parse_page_with_llm"}, 4, 12, true},
		{nil, 2, 6, true},
		{map[string]string{"parse_mode": "parse_page_with_agent"}, 3, 30, true},
		{map[string]string{"parse_mode": "parse_document_with_llm"}, 1, 30, true},
		{map[string]string{"fast_mode": "true"}, 5, 5, true},
		{map[string]string{"parse_mode": "parse_page_with_lvm"}, 5, 0, false},
		{map[string]string{"premium_mode": "true"}, 5, 0, false},
	} {
		got, ok := EstimateCredits(tc.opts, tc.pages)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v × %d = %v %v, want %v %v", tc.opts, tc.pages, got, ok, tc.want, tc.ok)
		}
	}
	if CostUSD(2000, false) != 2 || CostUSD(2000, true) != 3 {
		t.Fatal("cost")
	}
}

func TestDetailAndRedaction(t *testing.T) {
	if d := detail([]byte(`{"detail":[{"loc":["body","file"],"msg":"Field required","type":"missing"}]}`)); d != "body.file: Field required" {
		t.Fatalf("%q", d)
	}
	if d := detail([]byte(`<html>Bad Gateway</html>`)); d != "<html>Bad Gateway</html>" {
		t.Fatalf("%q", d)
	}
	if got := redact("key llx-abc in text", "llx-abc"); strings.Contains(got, "llx-abc") {
		t.Fatal(got)
	}
	if parseRetryAfter("7", time.Now()) != 7*time.Second || parseRetryAfter("-1", time.Now()) != 0 || parseRetryAfter("soon", time.Now()) != 0 {
		t.Fatal("Retry-After seconds")
	}
}
