package config

import (
	"slices"
	"testing"
)

// SecretValues lists every secret that is set, and the password inside DATABASE_URL
// (URL or key=value form), for the log redactor; nothing that is not a secret.
func TestSecretValues(t *testing.T) {
	c, problems := Load(env(map[string]string{
		"DATABASE_URL":           "postgres://app:p%40ss-word@db:5432/docpipe",
		"DOCPIPE_WEBHOOK_SECRET": "webhook-secret-value",
		"DOCPIPE_PUBLIC_URL":     "http://public.example",
		"OPENAI_API_KEY":         "sk-test-key",
		"DOCPIPE_JWT_SECRET":     "jwt-secret-at-least-32-bytes-long-0000",
	}))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	got := c.SecretValues()
	for _, want := range []string{"postgres://app:p%40ss-word@db:5432/docpipe", "p@ss-word", "p%40ss-word", "webhook-secret-value",
		"sk-test-key", "jwt-secret-at-least-32-bytes-long-0000"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretValues lacks %q: %q", want, got)
		}
	}
	if slices.Contains(got, "http://public.example") {
		t.Errorf("SecretValues lists a setting that is not secret: %q", got)
	}
	for dsn, want := range map[string]string{
		"host=/tmp port=5432 user=app password='quoted-pw' dbname=x": "quoted-pw",
		"host=/tmp password=plain-pw dbname=x":                       "plain-pw",
		`host=/tmp password='with space\'q' dbname=x`:                "with space'q",
		"postgres://app@db/x?password=query-pw":                      "query-pw",
		"postgres://app@db/x":                                        "",
	} {
		if got := dsnPassword(dsn); got != want {
			t.Errorf("dsnPassword(%q) = %q, want %q", dsn, got, want)
		}
	}
}
