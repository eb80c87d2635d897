package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/redact"
)

func TestPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/webhooks/llamaparse/0199-job/abcdef0123": "/v1/webhooks/llamaparse/0199-job/REDACTED",
		"/v1/webhooks/llamaparse/0199-job/":           "/v1/webhooks/llamaparse/0199-job/",
		"/v1/webhooks/llamaparse/0199-job":            "/v1/webhooks/llamaparse/0199-job",
		"/v1/documents/0199":                          "/v1/documents/0199",
	} {
		if got := redact.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"POST https://docpipe.example/v1/webhooks/llamaparse/0199-job/deadbeefcafe: EOF": "POST https://docpipe.example/v1/webhooks/llamaparse/0199-job/REDACTED: EOF",
		"postgres://app:s3cr3t-pw@db:5432/docpipe?sslmode=disable":                       "postgres://app:REDACTED@db:5432/docpipe?sslmode=disable",
		"host=/tmp user=app password='a b\\'c' dbname=x":                                 "host=/tmp user=app password=REDACTED dbname=x",
		"host=/tmp password=hunter22 dbname=x":                                           "host=/tmp password=REDACTED dbname=x",
		"http://h/v1/blobs/raw/u/d?expires=170&signature=abcdef0123":                     "http://h/v1/blobs/raw/u/d?expires=170&signature=REDACTED",
		"https://s3/b/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=ff00":                   "https://s3/b/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED",
		"https://x.supabase.co/storage/v1/object/upload/sign/b/k?token=abc.def":          "https://x.supabase.co/storage/v1/object/upload/sign/b/k?token=REDACTED",
		"key dpk_ABCDEFGHijklmnopqrstuvwxyz0123456789-_xyz used":                         "key dpk_ABCDEFGHREDACTED used",
		"Authorization: Bearer sk-abcdefghijkl":                                          "Authorization: Bearer REDACTED",
		"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl ok":                     "token REDACTED ok",
		"http://127.0.0.1:8080/v1/documents/0199 took 3ms":                               "http://127.0.0.1:8080/v1/documents/0199 took 3ms",
		"many documents, any stage":                                                      "many documents, any stage",
	} {
		if got := redact.Text(in); got != want {
			t.Errorf("Text(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

// Every line through the Handler is masked: message, attributes (strings, errors,
// formatted values), attributes from With and inside groups; configured values
// shorter than MinSecretLen are not matched by value.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	r := redact.New("super-secret-value-1", "postgres://u:pw-in-url@h/db", "pw-in-url", "any")
	log := slog.New(r.Handler(slog.NewJSONHandler(&buf, nil)))
	id := uuid.New()
	log.With("dsn", "postgres://u:pw-in-url@h/db").WithGroup("g").Info("calling with super-secret-value-1",
		"err", errors.New("dial: super-secret-value-1 refused"),
		"url", "http://h/v1/webhooks/llamaparse/j/tok123456",
		"any", fmt.Errorf("wrapped: %w", errors.New("x super-secret-value-1")),
		"strs", []string{"super-secret-value-1"},
		"id", id,
		slog.Group("inner", "k", "super-secret-value-1"),
		"word", "many anything")
	out := buf.String()
	for _, secret := range []string{"super-secret-value-1", "pw-in-url", "tok123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q in %s", secret, out)
		}
	}
	for _, keep := range []string{id.String(), "many anything", `"g":{`, `"inner":{`} {
		if !strings.Contains(out, keep) {
			t.Errorf("%q missing from %s", keep, out)
		}
	}
}
