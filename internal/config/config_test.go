package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testDSN = "postgres://docpipe:pw@localhost:5432/docpipe"

// env returns a getenv backed by m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// withDB returns m plus a valid DATABASE_URL (unless m sets one).
func withDB(m map[string]string) map[string]string {
	out := map[string]string{"DATABASE_URL": testDSN}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func problemVars(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Var)
	}
	return out
}

func TestDefaults(t *testing.T) {
	c, ps := Load(env(withDB(nil)))
	if len(ps) != 0 {
		t.Fatalf("problems with only DATABASE_URL set: %v", ps)
	}
	want := Config{
		DatabaseURL:        testDSN,
		DataDir:            ".docpipe/data",
		CacheDir:           ".docpipe/cache",
		LogFormat:          "text",
		LogLevel:           "info",
		WorkerConcurrency:  4,
		MaxAttempts:        5,
		RetryBase:          time.Second,
		RetryMax:           5 * time.Minute,
		JobTimeout:         time.Minute,
		RescueAfter:        90 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		ChunkTokens:        512,
		ChunkOverlap:       64,
		Parser:             "local",
		LlamaParseBaseURL:  "https://api.cloud.llamaindex.ai",
		LlamaParseDeadline: 30 * time.Minute,
		LlamaParsePartial:  "accept",
		EmbedProvider:      "local",
		EmbedDims:          1536,
		EmbedBatch:         64,
		EmbedModel:         "text-embedding-3-small",
		OpenAIBaseURL:      "https://api.openai.com/v1",
		OpenAIRPM:          3000,
		OpenAITPM:          1_000_000,
		OpenAIMaxBatch:     300_000,
		OpenAIConc:         2,
		Storage:            "local",
		JWTAudience:        "authenticated",
		APIRatePerMinute:   1200,
		APIRateBurst:       40,
		UploadsPerDay:      1000,
		MaxActiveJobs:      100,
		AllowedTypes:       "pdf,docx,html,markdown,text",
		UploadURLTTL:       15 * time.Minute,
		S3Region:           "us-east-1",
		SupabaseBucket:     "docpipe",
		MaxUploadBytes:     50 << 20,
		MaxPages:           5000,
		ParseWorkers:       1,
		UserID:             "00000000-0000-4000-8000-000000000001",
	}
	if c != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestSetValues(t *testing.T) {
	c, ps := Load(env(withDB(map[string]string{
		"DOCPIPE_LOG_FORMAT":         "JSON",
		"DOCPIPE_WORKER_CONCURRENCY": " 16 ",
		"DOCPIPE_RETRY_MAX":          "1h",
		"DOCPIPE_SHUTDOWN_TIMEOUT":   "0",
		"DOCPIPE_MAX_UPLOAD_BYTES":   "1GB",
		"DOCPIPE_USER_ID":            "AAAAAAAA-0000-4000-8000-000000000002",
		"DOCPIPE_EMBED_PROVIDER":     "openai",
		"OPENAI_API_KEY":             "sk-test",
	})))
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	if c.LogFormat != "json" || c.WorkerConcurrency != 16 || c.RetryMax != time.Hour ||
		c.ShutdownTimeout != 0 || c.MaxUploadBytes != 1e9 ||
		c.UserID != "aaaaaaaa-0000-4000-8000-000000000002" ||
		c.EmbedProvider != "openai" || c.OpenAIAPIKey != "sk-test" {
		t.Fatalf("unexpected config %+v", c)
	}
}

func TestMissingRequired(t *testing.T) {
	_, ps := Load(env(nil))
	if len(ps) != 1 || ps[0].Var != "DATABASE_URL" || ps[0].Message != "DATABASE_URL: required but not set" {
		t.Fatalf("got %v", ps)
	}
	// Blank counts as not set.
	_, ps = Load(env(map[string]string{"DATABASE_URL": "  "}))
	if len(ps) != 1 || ps[0].Var != "DATABASE_URL" {
		t.Fatalf("blank: got %v", ps)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, ps := Load(env(map[string]string{
		// DATABASE_URL missing
		"DOCPIPE_LOG_LEVEL":        "verbose",
		"DOCPIPE_CHUNK_TOKENS":     "10",
		"DOCPIPE_JOB_TIMEOUT":      "abc",
		"DOCPIPE_MAX_UPLOAD_BYTES": "20GiB",
	}))
	got := problemVars(ps)
	want := []string{"DATABASE_URL", "DOCPIPE_LOG_LEVEL", "DOCPIPE_JOB_TIMEOUT", "DOCPIPE_CHUNK_TOKENS", "DOCPIPE_MAX_UPLOAD_BYTES"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v\n%v", got, want, ps)
	}
}

func TestMessages(t *testing.T) {
	cases := map[string]struct{ val, want string }{
		"DOCPIPE_CHUNK_TOKENS":       {"10", `DOCPIPE_CHUNK_TOKENS: 10 is below the minimum 64`},
		"DOCPIPE_EMBED_DIMS":         {"20000", `DOCPIPE_EMBED_DIMS: 20000 is above the maximum 16000`},
		"DOCPIPE_JOB_TIMEOUT":        {"abc", `DOCPIPE_JOB_TIMEOUT: "abc" is not a duration (examples: 90s, 2m, 1h)`},
		"DOCPIPE_RETRY_BASE":         {"1ms", `DOCPIPE_RETRY_BASE: 1ms is below the minimum 10ms`},
		"DOCPIPE_WORKER_CONCURRENCY": {"four", `DOCPIPE_WORKER_CONCURRENCY: "four" is not an integer`},
		"DOCPIPE_LOG_FORMAT":         {"xml", `DOCPIPE_LOG_FORMAT: "xml" is not one of text|json`},
		"DOCPIPE_USER_ID":            {"nope", `DOCPIPE_USER_ID: "nope" is not a UUID (example: 00000000-0000-4000-8000-000000000001)`},
		"DOCPIPE_MAX_UPLOAD_BYTES":   {"0", `DOCPIPE_MAX_UPLOAD_BYTES: 0 is below the minimum 1`},
		"DOCPIPE_CHUNK_OVERLAP":      {"-1", `DOCPIPE_CHUNK_OVERLAP: -1 is below the minimum 0`},
	}
	for name, tc := range cases {
		_, ps := Load(env(withDB(map[string]string{name: tc.val})))
		if len(ps) != 1 || ps[0].Var != name || ps[0].Message != tc.want {
			t.Errorf("%s=%q: got %v, want [%s]", name, tc.val, ps, tc.want)
		}
	}
}

func TestMalformedKeepsDefault(t *testing.T) {
	c, ps := Load(env(withDB(map[string]string{"DOCPIPE_MAX_PAGES": "lots"})))
	if len(ps) != 1 || c.MaxPages != 5000 {
		t.Fatalf("got %d, %v", c.MaxPages, ps)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	const pw = "Hunter2-s3cr3t-PW"
	badDSNs := []string{
		"mysql://app:" + pw + "@db:3306/x",
		"postgres://app:" + pw + "@db:notaport/x",
		"postgres://app:" + pw + "#frag@db/x",
		"host=db password='" + pw,
		"host=db password " + pw,
		pw,
	}
	for _, dsn := range badDSNs {
		m := map[string]string{
			"DATABASE_URL":           dsn,
			"DOCPIPE_EMBED_PROVIDER": "openai",
			"OPENAI_API_KEY":         "sk-" + pw,
			"LLAMA_CLOUD_API_KEY":    "llx-" + pw,
			"DOCPIPE_CHUNK_TOKENS":   "1", // a non-secret problem alongside
		}
		c, ps := Load(env(m))
		if len(ps) != 2 || ps[0].Var != "DATABASE_URL" {
			t.Errorf("%q: want a DATABASE_URL and a chunk problem, got %v", dsn, ps)
		}
		for _, p := range ps {
			if strings.Contains(p.Message, pw) || strings.Contains(p.Var, pw) {
				t.Errorf("problem leaks the secret: %q", p.Message)
			}
		}
		for _, line := range c.Report(env(m)) {
			if strings.Contains(line, pw) {
				t.Errorf("report leaks the secret: %q", line)
			}
		}
	}

	// Valid secrets are not printed either.
	m := map[string]string{
		"DATABASE_URL":        "postgres://app:" + pw + "@db/x",
		"OPENAI_API_KEY":      "sk-" + pw,
		"LLAMA_CLOUD_API_KEY": "llx-" + pw,
	}
	c, ps := Load(env(m))
	if len(ps) != 0 {
		t.Fatal(ps)
	}
	report := strings.Join(c.Report(env(m)), "\n")
	if strings.Contains(report, pw) {
		t.Fatalf("report leaks the secret:\n%s", report)
	}
	for _, want := range []string{"DATABASE_URL=*** (set)", "OPENAI_API_KEY=*** (set)", "LLAMA_CLOUD_API_KEY=*** (set)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(MarkdownTable(), pw) {
		t.Fatal("impossible, but cheap to check")
	}
}

func TestReport(t *testing.T) {
	m := withDB(map[string]string{
		"DOCPIPE_WORKER_CONCURRENCY": "8",
		"DOCPIPE_MAX_UPLOAD_BYTES":   "52428800",
		"DOCPIPE_RETRY_MAX":          "90s",
		"DOCPIPE_MAX_PAGES":          "lots",
	})
	c, _ := Load(env(m))
	lines := c.Report(env(m))
	if len(lines) != len(Vars()) {
		t.Fatalf("%d lines for %d vars", len(lines), len(Vars()))
	}
	for i, v := range Vars() {
		if !strings.HasPrefix(lines[i], v.Name+"=") {
			t.Errorf("line %d = %q, want it to start with %s=", i, lines[i], v.Name)
		}
	}
	report := strings.Join(lines, "\n")
	for _, want := range []string{
		"DATABASE_URL=*** (set)",
		"DOCPIPE_DATA_DIR=.docpipe/data (default)",
		"DOCPIPE_WORKER_CONCURRENCY=8 (set)",
		"DOCPIPE_MAX_ATTEMPTS=5 (default)",
		"DOCPIPE_RETRY_BASE=1s (default)",
		"DOCPIPE_RETRY_MAX=1m30s (set)",
		"DOCPIPE_RESCUE_AFTER=1m30s (default)",
		"DOCPIPE_MAX_UPLOAD_BYTES=50MiB (set)",
		`DOCPIPE_MAX_PAGES="lots" (set, invalid)`,
		"OPENAI_API_KEY=(not set)",
		"LLAMA_CLOUD_API_KEY=(not set)",
	} {
		if !strings.Contains(report, want+"\n") && !strings.HasSuffix(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}

	// Every default shown in a report parses back to the default's value.
	c, _ = Load(env(withDB(nil)))
	for i, line := range c.Report(env(withDB(nil))) {
		v := Vars()[i]
		if v.Secret || v.Default == "" {
			continue
		}
		shown := strings.TrimSuffix(strings.TrimPrefix(line, v.Name+"="), " (default)")
		a, _ := parseKind(v.Kind, shown)
		b, _ := parseKind(v.Kind, v.Default)
		if a != b {
			t.Errorf("%s: report shows %q, default %q", v.Name, shown, v.Default)
		}
	}
}

func TestParseBytes(t *testing.T) {
	good := map[string]int64{
		"0":        0,
		"52428800": 52428800,
		"1B":       1,
		"50MB":     50_000_000,
		"50MiB":    50 << 20,
		"50 MiB":   50 << 20,
		"50mib":    50 << 20,
		"1GB":      1_000_000_000,
		"1GiB":     1 << 30,
		"10GiB":    10 << 30,
		"2KB":      2000,
		"2KiB":     2048,
		"1TB":      1e12,
		"1TiB":     1 << 40,
	}
	for s, want := range good {
		got, ok := parseBytes(s)
		if !ok || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", s, got, ok, want)
		}
		if back, _ := parseBytes(formatBytes(want)); back != want {
			t.Errorf("formatBytes(%d) = %q does not round-trip", want, formatBytes(want))
		}
	}
	for _, s := range []string{"", "MB", "-1", "1.5GB", "50M", "50 M B", "1e6", "abc", "99999999999999999999", "9000000000TiB", "+5"} {
		if n, ok := parseBytes(s); ok {
			t.Errorf("parseBytes(%q) = %d, want failure", s, n)
		}
	}
	// Bounds, through Load.
	for val, wantProblem := range map[string]bool{"10GiB": false, "10737418241": true, "11GB": true, "1": false, "0": true} {
		_, ps := Load(env(withDB(map[string]string{"DOCPIPE_MAX_UPLOAD_BYTES": val})))
		if (len(ps) > 0) != wantProblem {
			t.Errorf("DOCPIPE_MAX_UPLOAD_BYTES=%s: problems %v", val, ps)
		}
	}
}

func TestCrossField(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string // problem vars
	}{
		{"retry base == max ok", map[string]string{"DOCPIPE_RETRY_BASE": "1m", "DOCPIPE_RETRY_MAX": "1m"}, nil},
		{"retry base > max", map[string]string{"DOCPIPE_RETRY_BASE": "10m", "DOCPIPE_RETRY_MAX": "1m"}, []string{"DOCPIPE_RETRY_BASE"}},
		{"retry base > default max", map[string]string{"DOCPIPE_RETRY_BASE": "1h"}, []string{"DOCPIPE_RETRY_BASE"}},
		{"rescue == timeout", map[string]string{"DOCPIPE_JOB_TIMEOUT": "3m"}, []string{"DOCPIPE_RESCUE_AFTER"}},
		{"rescue < timeout", map[string]string{"DOCPIPE_RESCUE_AFTER": "1m"}, []string{"DOCPIPE_RESCUE_AFTER"}},
		{"rescue > timeout ok", map[string]string{"DOCPIPE_JOB_TIMEOUT": "1h", "DOCPIPE_RESCUE_AFTER": "61m"}, nil},
		{"overlap just below half ok", map[string]string{"DOCPIPE_CHUNK_OVERLAP": "255"}, nil},
		{"overlap == half", map[string]string{"DOCPIPE_CHUNK_OVERLAP": "256"}, []string{"DOCPIPE_CHUNK_OVERLAP"}},
		{"overlap vs small chunks", map[string]string{"DOCPIPE_CHUNK_TOKENS": "64", "DOCPIPE_CHUNK_OVERLAP": "40"}, []string{"DOCPIPE_CHUNK_OVERLAP"}},
		{"openai without key", map[string]string{"DOCPIPE_EMBED_PROVIDER": "openai"}, []string{"OPENAI_API_KEY"}},
		{"openai with key", map[string]string{"DOCPIPE_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": "sk-x"}, nil},
		{"llamaparse without key", map[string]string{"DOCPIPE_PARSER": "llamaparse"}, []string{"LLAMA_CLOUD_API_KEY"}},
		{"llamaparse with key", map[string]string{"DOCPIPE_PARSER": "llamaparse", "LLAMA_CLOUD_API_KEY": "llx-x"}, nil},
		{"local without key ok", map[string]string{"DOCPIPE_EMBED_PROVIDER": "local"}, nil},
		// A cross-field check is skipped when one side is itself invalid, so
		// one mistake yields one problem.
		{"invalid side skipped", map[string]string{"DOCPIPE_RETRY_BASE": "2h", "DOCPIPE_RETRY_MAX": "1m"}, []string{"DOCPIPE_RETRY_BASE"}},
		{"invalid chunk tokens", map[string]string{"DOCPIPE_CHUNK_TOKENS": "10"}, []string{"DOCPIPE_CHUNK_TOKENS"}},
		{"invalid provider", map[string]string{"DOCPIPE_EMBED_PROVIDER": "cohere"}, []string{"DOCPIPE_EMBED_PROVIDER"}},
		{"all four at once", map[string]string{
			"DOCPIPE_RETRY_BASE": "10m", "DOCPIPE_RETRY_MAX": "1m",
			"DOCPIPE_RESCUE_AFTER": "1m", "DOCPIPE_CHUNK_OVERLAP": "300", "DOCPIPE_EMBED_PROVIDER": "openai",
		}, []string{"DOCPIPE_RETRY_BASE", "DOCPIPE_RESCUE_AFTER", "DOCPIPE_CHUNK_OVERLAP", "OPENAI_API_KEY"}},
	}
	for _, tc := range cases {
		_, ps := Load(env(withDB(tc.env)))
		if got := problemVars(ps); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v\n%v", tc.name, got, tc.want, ps)
		}
		for _, p := range ps {
			if !strings.HasPrefix(p.Message, p.Var+": ") {
				t.Errorf("%s: message %q does not start with its var", tc.name, p.Message)
			}
		}
	}
	_, ps := Load(env(withDB(map[string]string{"DOCPIPE_CHUNK_OVERLAP": "300"})))
	if want := "DOCPIPE_CHUNK_OVERLAP: 300 must be less than half of DOCPIPE_CHUNK_TOKENS (512/2 = 256)"; len(ps) != 1 || ps[0].Message != want {
		t.Errorf("got %v, want %q", ps, want)
	}
}

func TestConnStrings(t *testing.T) {
	good := []string{
		"postgres://u:p@localhost:5432/db",
		"postgresql://u:p@localhost/db?sslmode=disable",
		"postgres:///db?host=/tmp",
		"postgres://h1:5432,h2:5432/db",
		"postgres://[::1]:5432/db",
		"POSTGRES://u@h/db",
		"host=/tmp port=5432 dbname=x",
		"host = localhost  dbname=x\tuser=u",
		"dbname=x password='with space \\' quote'",
		"password=''",
		"dbname=a\\ b",
	}
	bad := []string{
		"localhost",
		"mysql://u:p@h/db",
		"postgres://u:p@h:notaport/db",
		"postgres://u:p@h:70000/db",
		"postgres:db",
		"host=",
		"=x",
		"host=x dbname",
		"host='unterminated",
		"host='a'b",
		"host=a\\",
		"-host=x",
	}
	for _, s := range good {
		if !validConnString(s) {
			t.Errorf("rejected %q", s)
		}
	}
	for _, s := range bad {
		if validConnString(s) {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestLookup(t *testing.T) {
	v, ok := Lookup("DOCPIPE_CHUNK_TOKENS")
	if !ok || v.Default != "512" || v.Min != "64" || v.Max != "8192" || v.Kind != "int" {
		t.Fatalf("got %+v, %v", v, ok)
	}
	if v, ok := Lookup("DATABASE_URL"); !ok || !v.Required || !v.Secret {
		t.Fatalf("DATABASE_URL: %+v", v)
	}
	if _, ok := Lookup("NOPE"); ok {
		t.Fatal("found NOPE")
	}
}

var kindRE = regexp.MustCompile(`^(string|int|duration|bool|bytes|usd|url|uuid|enum:[a-z0-9_-]+(\|[a-z0-9_-]+)+)$`)

func TestSchema(t *testing.T) {
	vars := Vars()
	seen := map[string]bool{}
	for _, v := range vars {
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(v.Name) {
			t.Errorf("bad name %q", v.Name)
		}
		if seen[v.Name] {
			t.Errorf("duplicate %s", v.Name)
		}
		seen[v.Name] = true
		if strings.TrimSpace(v.Doc) == "" || strings.Contains(v.Doc, "\n") {
			t.Errorf("%s: Doc must be one non-empty line", v.Name)
		}
		if !kindRE.MatchString(v.Kind) {
			t.Errorf("%s: bad Kind %q", v.Name, v.Kind)
		}
		if (v.Min != "" || v.Max != "") && !isNumeric(v.Kind) {
			t.Errorf("%s: bounds on kind %s", v.Name, v.Kind)
		}
		if v.Required && v.Default != "" {
			t.Errorf("%s: required with a default", v.Name)
		}
		if v.Secret && v.Default != "" {
			t.Errorf("%s: secret with a default", v.Name)
		}
		var lo, hi value
		for _, b := range []struct{ name, s string }{{"Min", v.Min}, {"Max", v.Max}} {
			if b.s == "" {
				continue
			}
			p, msg := parseKind(v.Kind, b.s)
			if msg != "" {
				t.Errorf("%s: %s %q %s", v.Name, b.name, b.s, msg)
			}
			if b.name == "Min" {
				lo = p
			} else {
				hi = p
			}
		}
		if v.Min != "" && v.Max != "" && lo.n > hi.n {
			t.Errorf("%s: Min > Max", v.Name)
		}
		if v.Default != "" {
			if _, msg := check(v, v.Default); msg != "" {
				t.Errorf("%s: default %s", v.Name, msg)
			}
		}
	}

	// Vars returns a copy.
	vars[0].Name = "CHANGED"
	if Vars()[0].Name == "CHANGED" {
		t.Error("Vars exposes the schema")
	}

	// Every Config field is filled by exactly one Var, with a Go type that fits
	// its Kind.
	var c Config
	cv := reflect.ValueOf(&c).Elem()
	owner := map[uintptr]string{}
	for _, f := range schema {
		p := f.ptr(&c)
		addr := reflect.ValueOf(p).Pointer()
		if prev, dup := owner[addr]; dup {
			t.Errorf("%s and %s fill the same field", prev, f.Name)
		}
		owner[addr] = f.Name
		var ok bool
		switch p.(type) {
		case *string:
			ok = f.Kind == "string" || f.Kind == "url" || f.Kind == "uuid" || strings.HasPrefix(f.Kind, "enum:")
		case *int, *int64:
			ok = f.Kind == "int" || f.Kind == "bytes"
		case *time.Duration:
			ok = f.Kind == "duration"
		case *bool:
			ok = f.Kind == "bool"
		case *float64:
			ok = f.Kind == "usd"
		}
		if !ok {
			t.Errorf("%s: field type %T does not fit kind %s", f.Name, p, f.Kind)
		}
	}
	for i := 0; i < cv.NumField(); i++ {
		if _, ok := owner[cv.Field(i).Addr().Pointer()]; !ok {
			t.Errorf("Config.%s is filled by no Var", cv.Type().Field(i).Name)
		}
	}
}

func TestMarkdownTable(t *testing.T) {
	md := MarkdownTable()
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	if len(lines) != 2+len(Vars()) {
		t.Fatalf("%d lines for %d vars:\n%s", len(lines), len(Vars()), md)
	}
	if lines[0] != "| Name | Default | Required | Description |" {
		t.Errorf("header %q", lines[0])
	}
	cells := func(line string) int {
		return strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
	}
	for i, v := range Vars() {
		line := lines[i+2]
		if !strings.Contains(line, "`"+v.Name+"`") {
			t.Errorf("row %d lacks %s: %q", i, v.Name, line)
		}
		if cells(line) != 5 {
			t.Errorf("row for %s has a stray pipe: %q", v.Name, line)
		}
		if v.Secret != strings.Contains(line, "**Secret.**") {
			t.Errorf("row for %s: secret marking wrong: %q", v.Name, line)
		}
	}
	if !strings.Contains(md, "| `DATABASE_URL` |  | yes | **Secret.**") {
		t.Errorf("DATABASE_URL row:\n%s", md)
	}
}

func TestFromEnv(t *testing.T) {
	for _, v := range Vars() {
		t.Setenv(v.Name, "")
	}
	t.Setenv("DATABASE_URL", "host=/tmp dbname=x")
	t.Setenv("DOCPIPE_EMBED_BATCH", "128")
	c, ps := FromEnv()
	if len(ps) != 0 || c.EmbedBatch != 128 || c.DatabaseURL != "host=/tmp dbname=x" {
		t.Fatalf("%+v %v", c, ps)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 10 * time.Millisecond: "10ms", 10 * time.Second: "10s", 90 * time.Second: "1m30s",
		5 * time.Minute: "5m", 10 * time.Minute: "10m", time.Hour: "1h", 70 * time.Minute: "1h10m",
		time.Hour + time.Second: "1h0m1s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestUSDKind(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://u:p@h/db", "DOCPIPE_BUDGET_OPENAI_USD": "$12.5", "DOCPIPE_BUDGET_LLAMAPARSE_USD": "-1"}
	c, problems := Load(func(k string) string { return env[k] })
	if c.BudgetOpenAIUSD != 12.5 {
		t.Errorf("budget = %v, want 12.5", c.BudgetOpenAIUSD)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "DOCPIPE_BUDGET_LLAMAPARSE_USD") || !strings.Contains(problems[0].Message, "US dollars") {
		t.Errorf("problems = %v", problems)
	}
	if got := formatField(field{Var: Var{Kind: "usd"}, ptr: func(c *Config) any { return &c.BudgetOpenAIUSD }}, &c); got != "12.5" {
		t.Errorf("formatted %q", got)
	}
}

// The README's configuration table is generated (`docpipe config docs`); this
// fails when the schema changed and the README was not regenerated.
func TestREADMETableMatchesSchema(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), MarkdownTable()) {
		t.Error("README.md's configuration table differs from the schema: run `make build && bin/docpipe config docs` and paste it into README.md")
	}
}

// Value gives the effective value, normalised, so equal settings written differently
// compare equal (validate deploy relies on it) and unknown names are refused.
func TestValue(t *testing.T) {
	a, _ := Load(env(withDB(map[string]string{"DOCPIPE_STORAGE": "Supabase", "DOCPIPE_MAX_UPLOAD_BYTES": "52428800"})))
	b, _ := Load(env(withDB(nil)))
	for _, c := range []struct {
		cfg        Config
		name, want string
	}{
		{a, "DOCPIPE_STORAGE", "supabase"}, {b, "DOCPIPE_STORAGE", "local"},
		{a, "DOCPIPE_MAX_UPLOAD_BYTES", "50MiB"}, {b, "DOCPIPE_MAX_UPLOAD_BYTES", "50MiB"},
		{b, "DOCPIPE_SHUTDOWN_TIMEOUT", "30s"}, {b, "DOCPIPE_RETRY_MAX", "5m"},
	} {
		if got, ok := c.cfg.Value(c.name); !ok || got != c.want {
			t.Errorf("Value(%s) = %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
	if _, ok := b.Value("DOCPIPE_NOPE"); ok {
		t.Error("an unknown name has a value")
	}
}
