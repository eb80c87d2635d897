// Package redact keeps secrets out of docpipe's logs.
//
// Two layers: patterns that are secret wherever they appear (the per-run token in
// LlamaParse webhook URLs, signatures and tokens in URL queries, passwords in
// connection strings and URLs, docpipe API keys, Bearer credentials, JWTs), and the
// exact values of the configured secrets (Redactor, built from config.SecretValues).
// A Redactor's Handler masks every attribute (and the message) of every log line
// of the process, so a secret that reaches a log line by accident (an error
// text, a URL, a wrapped request) is masked there too.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/llamaparse"
)

// Mask replaces what is removed.
const Mask = "REDACTED"

// MinSecretLen is the shortest configured value Redactor masks by value: shorter
// values ("any", "test") would mask ordinary words; the patterns still apply.
const MinSecretLen = 8

// Path returns an HTTP request path fit for a log line: the token of a LlamaParse
// webhook path (/v1/webhooks/llamaparse/{job_id}/{token}) is replaced by REDACTED.
func Path(p string) string {
	i := strings.Index(p, llamaparse.WebhookRoute)
	if i < 0 {
		return p
	}
	rest := p[i+len(llamaparse.WebhookRoute):]
	j := strings.IndexByte(rest, '/')
	if j < 0 || j == len(rest)-1 {
		return p
	}
	return p[:i+len(llamaparse.WebhookRoute)+j+1] + Mask
}

var (
	// /v1/webhooks/llamaparse/{job_id}/{token} anywhere in a text.
	webhookToken = regexp.MustCompile(`(` + regexp.QuoteMeta(llamaparse.WebhookRoute) + `[^/\s?#"']+/)[A-Za-z0-9._~%\-]+`)
	// scheme://user:password@ (connection strings, URLs with credentials).
	userinfoPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@"']*:)[^@\s/"']+@`)
	// ?signature=…, &token=…, X-Amz-Signature=… (signed URLs: local, Supabase, S3).
	queryParam = regexp.MustCompile(`(?i)([?&](?:signature|sig|token|access_token|api_key|apikey|key|password|secret|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s"'#]+`)
	// password=… in libpq key=value connection strings.
	kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&"]+)`)
	// docpipe API keys: the display prefix (dpk_ + 8, shown by `keys list`) stays.
	apiKey = regexp.MustCompile(`(dpk_[A-Za-z0-9_\-]{8})[A-Za-z0-9_\-]{8,}`)
	// Authorization: Bearer …
	bearer = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}`)
	// JWTs (also Supabase service keys): header.payload.signature, base64url.
	jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+`)
)

// Text masks the secret patterns in s (not configured values: see Redactor).
func Text(s string) string {
	if strings.Contains(s, llamaparse.WebhookRoute) {
		s = webhookToken.ReplaceAllString(s, "${1}"+Mask)
	}
	if strings.Contains(s, "://") {
		s = userinfoPassword.ReplaceAllString(s, "${1}"+Mask+"@")
	}
	if strings.Contains(s, "=") {
		s = queryParam.ReplaceAllString(s, "${1}"+Mask)
		s = kvPassword.ReplaceAllString(s, "${1}"+Mask)
	}
	if strings.Contains(s, "dpk_") {
		s = apiKey.ReplaceAllString(s, "${1}"+Mask)
	}
	if strings.Contains(s, "earer") || strings.Contains(s, "EARER") {
		s = bearer.ReplaceAllString(s, "${1}"+Mask)
	}
	if strings.Contains(s, "eyJ") {
		s = jwt.ReplaceAllString(s, Mask)
	}
	return s
}

// URL is Text for a URL: credentials, signatures, tokens and the webhook token masked.
func URL(u string) string { return Text(u) }

// Redactor masks the patterns and a fixed set of secret values.
type Redactor struct {
	values *strings.Replacer // nil: no values
}

// New returns a Redactor for the given secret values; values shorter than
// MinSecretLen, and duplicates, are ignored.
func New(secrets ...string) *Redactor {
	var vs []string
	for _, s := range secrets {
		if len(s) >= MinSecretLen && !slices.Contains(vs, s) {
			vs = append(vs, s)
		}
	}
	// Longest first, so a URL is masked whole before a password inside it.
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	r := &Redactor{}
	if len(vs) > 0 {
		pairs := make([]string, 0, 2*len(vs))
		for _, v := range vs {
			pairs = append(pairs, v, Mask)
		}
		r.values = strings.NewReplacer(pairs...)
	}
	return r
}

// String masks the secret values, then the patterns.
func (r *Redactor) String(s string) string {
	if r != nil && r.values != nil {
		s = r.values.Replace(s)
	}
	return Text(s)
}

// attr masks secrets in a string, error or other formatted value.
func (r *Redactor) attr(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		if m := r.String(s); m != s {
			a.Value = slog.StringValue(m)
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case nil, uuid.UUID, time.Time, []byte, bool, int, int32, int64, uint, uint64, float64, time.Duration:
			// Nothing to mask (and ids are the most common attribute).
		case error:
			s := v.Error()
			if m := r.String(s); m != s {
				a.Value = slog.StringValue(m)
			}
		default:
			s := fmt.Sprint(v)
			if m := r.String(s); m != s {
				a.Value = slog.StringValue(m)
			}
		}
	}
	return a
}

// Handler wraps h so that everything it writes is masked: the message and every
// attribute (also those added with Logger.With and inside groups).
func (r *Redactor) Handler(h slog.Handler) slog.Handler { return &handler{h: h, r: r} }

type handler struct {
	h slog.Handler
	r *Redactor
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		masked := make([]slog.Attr, len(g))
		for i, x := range g {
			masked[i] = h.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(masked...)}
	}
	return h.r.attr(a)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = h.attr(a)
	}
	return &handler{h: h.h.WithAttrs(masked), r: h.r}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), r: h.r}
}
