package embed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/mock"
)

// oaClock is a fake clock: Sleep records the wait and moves Now forward by it.
type oaClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newOAClock() *oaClock {
	return &oaClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
}

func (c *oaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *oaClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *oaClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// oaCanned is one scripted answer.
type oaCanned struct {
	status int
	header map[string]string
	body   string
}

// oaScript answers with its canned responses in order, then passes requests
// to next. It records every request body and the (fake) time it arrived.
type oaScript struct {
	mu     sync.Mutex
	canned []oaCanned
	next   http.Handler
	now    func() time.Time
	bodies [][]byte
	times  []time.Time
	hdrs   []http.Header
	urls   []string
}

func (s *oaScript) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.hdrs = append(s.hdrs, r.Header.Clone())
	s.urls = append(s.urls, r.URL.String())
	if s.now != nil {
		s.times = append(s.times, s.now())
	}
	var c *oaCanned
	if len(s.canned) > 0 {
		c = &s.canned[0]
		s.canned = s.canned[1:]
	}
	next := s.next
	s.mu.Unlock()
	if c != nil {
		for k, v := range c.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(c.status)
		_, _ = io.WriteString(w, c.body)
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	next.ServeHTTP(w, r)
}

func (s *oaScript) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func (s *oaScript) inputs(t *testing.T, i int) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var req struct {
		Input []string `json:"input"`
	}
	if err := json.Unmarshal(s.bodies[i], &req); err != nil {
		t.Fatalf("request %d body: %v", i, err)
	}
	return req.Input
}

func oaServe(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func oaNew(t *testing.T, o embed.OpenAIOptions) *embed.OpenAI {
	t.Helper()
	c, err := embed.NewOpenAI(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oaWithClock installs a fresh fake clock in o.
func oaWithClock(o embed.OpenAIOptions) (embed.OpenAIOptions, *oaClock) {
	c := newOAClock()
	o.Now, o.Sleep = c.Now, c.Sleep
	return o, c
}

func oaLocal(t *testing.T, dims int, texts []string) [][]float32 {
	t.Helper()
	l, err := embed.NewLocal(dims)
	if err != nil {
		t.Fatal(err)
	}
	v, err := l.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func oaSameVectors(t *testing.T, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d vectors, want %d", len(got), len(want))
	}
	for i := range want {
		if embed.VectorSHA(got[i]) != embed.VectorSHA(want[i]) {
			t.Fatalf("vector %d differs from the local embedder's", i)
		}
	}
}

func oaFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *fault.Error %s", err, err, code)
	}
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("err = %s %s (%v), want %s %s", fe.Kind, fe.Code, fe, kind, code)
	}
	return fe
}

func oaRateLimitBody(msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": "requests", "param": nil, "code": "rate_limit_exceeded",
	}})
	return string(b)
}

const oaServerError = `{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`

var oaTexts = []string{
	"The annual deductible is $500 per member.",
	"Pharmacy copay for generic drugs is $10.",
	"Out-of-network care is not covered except emergencies.",
	"Preventive visits are covered in full.",
	"Claims must be filed within 90 days.",
}

func TestOpenAITwinRoundTrip(t *testing.T) {
	cases := []struct {
		model, enc string
		dims, want int
	}{
		{"", "", 0, 1536},
		{"", "float", 0, 1536},
		{"text-embedding-3-small", "base64", 256, 256},
		{"text-embedding-3-small", "float", 512, 512},
		{"text-embedding-3-large", "base64", 0, 3072},
		{"text-embedding-ada-002", "float", 0, 1536},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.model, tc.enc, tc.dims), func(t *testing.T) {
			twin := mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: "sk-test-key-1234"})
			rec := &oaScript{next: twin}
			c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), APIKey: "sk-test-key-1234", Model: tc.model, Dims: tc.dims, Encoding: tc.enc})
			if c.Dims() != tc.want || c.Version() != "1" {
				t.Fatalf("Dims %d Version %q", c.Dims(), c.Version())
			}
			if tc.model == "" && c.Model() != "text-embedding-3-small" {
				t.Fatalf("Model = %q", c.Model())
			}
			got, err := c.Embed(context.Background(), oaTexts)
			if err != nil {
				t.Fatal(err)
			}
			oaSameVectors(t, got, oaLocal(t, tc.want, oaTexts))
			var body map[string]any
			_ = json.Unmarshal(rec.bodies[0], &body)
			wantEnc := tc.enc
			if wantEnc == "" {
				wantEnc = "base64"
			}
			if body["encoding_format"] != wantEnc {
				t.Errorf("encoding_format = %v", body["encoding_format"])
			}
			if _, ok := body["dimensions"]; ok != (tc.dims != 0) {
				t.Errorf("dimensions sent = %v, want %v", body["dimensions"], tc.dims != 0)
			}
		})
	}
}

func TestOpenAIOptionsChecked(t *testing.T) {
	for _, o := range []embed.OpenAIOptions{
		{BaseURL: "ftp://x"},
		{Model: "text-embedding-ada-002", Dims: 512},
		{Model: "text-embedding-3-small", Dims: 2000},
		{Model: "nomic-embed-text"},
		{Encoding: "utf8"},
	} {
		if _, err := embed.NewOpenAI(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	c := oaNew(t, embed.OpenAIOptions{Model: "nomic-embed-text", Dims: 768})
	if c.Dims() != 768 || c.Model() != "nomic-embed-text" || c.BreakerState() != "closed" {
		t.Fatal(c.Dims(), c.Model(), c.BreakerState())
	}
}

func TestOpenAIBatchesByCount(t *testing.T) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{})
	rec := &oaScript{next: twin}
	var usage []embed.Usage
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), MaxBatchInputs: 2, OnUsage: func(u embed.Usage) { usage = append(usage, u) }})
	got, err := c.Embed(context.Background(), oaTexts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, oaTexts))
	if rec.requests() != 3 {
		t.Fatalf("%d requests, want 3", rec.requests())
	}
	var all []string
	for i, want := range []int{2, 2, 1} {
		in := rec.inputs(t, i)
		if len(in) != want {
			t.Errorf("request %d: %d inputs, want %d", i, len(in), want)
		}
		all = append(all, in...)
	}
	if strings.Join(all, "|") != strings.Join(oaTexts, "|") {
		t.Errorf("inputs out of order: %q", all)
	}
	// Usage and cost per request, from the server's usage block.
	tokens := 0
	for _, tx := range oaTexts {
		tokens += chunk.CountTokens(tx)
	}
	sum := 0
	for _, u := range usage {
		sum += u.PromptTokens
		if u.Model != "text-embedding-3-small" || u.Attempts != 1 || math.Abs(u.CostUSD-float64(u.PromptTokens)*0.02/1e6) > 1e-15 {
			t.Errorf("usage %+v", u)
		}
	}
	st := c.Stats()
	if len(usage) != 3 || sum != tokens || st.Tokens != int64(tokens) || st.Requests != 3 || st.Batches != 3 ||
		math.Abs(st.CostUSD-float64(tokens)*0.02/1e6) > 1e-12 {
		t.Errorf("usage %d calls %d tokens (want %d); stats %+v", len(usage), sum, tokens, st)
	}
}

var oaWords = []string{"apple", "river", "house", "green", "table", "music", "paper", "stone", "light", "water", "cloud", "bread"}

// oaText returns a text of exactly n cl100k tokens.
func oaText(t *testing.T, n int, word string) string {
	t.Helper()
	s := strings.TrimSpace(strings.Repeat(" "+word, n))
	if got := chunk.CountTokens(s); got != n {
		t.Fatalf("oaText(%d, %q) has %d tokens", n, word, got)
	}
	return s
}

func TestOpenAIBatchesByTokens(t *testing.T) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{})
	rec := &oaScript{next: twin}
	const budget = 100
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), MaxBatchTokens: budget})
	sizes := []int{40, 40, 30, 90, 10, 100, 1}
	texts := make([]string, len(sizes))
	for i, n := range sizes {
		texts[i] = oaText(t, n, "apple")
	}
	got, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, texts))
	// Greedy in order: [40 40] [30] … no: 40+40=80, +30=110 > 100 → [40 40] [30 …]
	want := [][]int{{40, 40}, {30}, {90, 10}, {100}, {1}}
	if rec.requests() != len(want) {
		t.Fatalf("%d requests, want %d", rec.requests(), len(want))
	}
	for i, w := range want {
		in := rec.inputs(t, i)
		sum := 0
		for _, s := range in {
			sum += chunk.CountTokens(s)
		}
		if len(in) != len(w) || sum > budget {
			t.Errorf("request %d: %d inputs, %d tokens; want %v", i, len(in), sum, w)
		}
	}
}

// TestOpenAIBatchesAtTheAPILimits sends more than 2048 inputs and more than
// 300k tokens through the defaults: the twin would answer 400 to an oversized
// request.
func TestOpenAIBatchesAtTheAPILimits(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs")
	}
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{Dims: 16})
	rec := &oaScript{next: twin}
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), Model: "local-compatible", Dims: 16, Encoding: "float"})

	many := make([]string, 2050)
	for i := range many {
		many[i] = fmt.Sprintf("item %d", i)
	}
	got, err := c.Embed(context.Background(), many)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 16, many))
	if rec.requests() != 2 || len(rec.inputs(t, 0)) != 2048 || len(rec.inputs(t, 1)) != 2 {
		t.Fatalf("%d requests", rec.requests())
	}

	big := make([]string, 40) // 40 × 8000 = 320k tokens
	for i := range big {
		big[i] = oaText(t, 8000, oaWords[i%len(oaWords)])
	}
	if _, err := c.Embed(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if rec.requests() != 4 || len(rec.inputs(t, 2)) != 37 || len(rec.inputs(t, 3)) != 3 {
		t.Fatalf("%d requests: %d + %d inputs", rec.requests(), len(rec.inputs(t, 2)), len(rec.inputs(t, 3)))
	}
	if twin.StatusCount(400) != 0 {
		t.Fatal("the twin rejected a request")
	}
}

func TestOpenAIRejectsBadInputsBeforeSending(t *testing.T) {
	rec := &oaScript{next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec)})
	long := oaText(t, 8193, "apple")
	_, err := c.Embed(context.Background(), []string{"a", "b", long, long})
	fe := oaFault(t, err, fault.Permanent, "INPUT_TOO_LONG")
	if !strings.Contains(fe.Message, "input 2 ") || !strings.Contains(fe.Message, "8193") {
		t.Errorf("message %q", fe.Message)
	}
	_, err = c.Embed(context.Background(), []string{"a", ""})
	fe = oaFault(t, err, fault.Permanent, "EMPTY_INPUT")
	if !strings.Contains(fe.Message, "input 1 ") {
		t.Errorf("message %q", fe.Message)
	}
	if got, err := c.Embed(context.Background(), []string{oaText(t, 8192, "apple")}); err != nil || len(got) != 1 {
		t.Fatalf("8192 tokens: %v", err)
	}
	if got, err := c.Embed(context.Background(), nil); err != nil || len(got) != 0 {
		t.Fatalf("no texts: %v %v", got, err)
	}
	if rec.requests() != 1 {
		t.Fatalf("%d requests, want 1", rec.requests())
	}
}

// TestOpenAIRetryHints checks the wait chosen for each kind of server hint
// (the fake clock records it; nothing really sleeps).
func TestOpenAIRetryHints(t *testing.T) {
	base := newOAClock().Now()
	rl := func(msg string) string { return oaRateLimitBody(msg) }
	noHint := rl("Rate limit reached for text-embedding-3-small in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.")
	cases := []struct {
		name     string
		canned   oaCanned
		opts     embed.OpenAIOptions
		want     time.Duration
		lo, hi   time.Duration // a backoff range instead of an exact want
		attempts int
	}{
		{name: "retry-after-ms", canned: oaCanned{429, map[string]string{"retry-after-ms": "1500"}, noHint}, want: 1500 * time.Millisecond},
		{name: "retry-after seconds", canned: oaCanned{429, map[string]string{"retry-after": "3"}, noHint}, want: 3 * time.Second},
		{name: "retry-after date", canned: oaCanned{429, map[string]string{"retry-after": base.Add(5 * time.Second).Format(http.TimeFormat)}, noHint}, want: 5 * time.Second},
		{name: "ms beats seconds beats message", canned: oaCanned{429, map[string]string{"retry-after-ms": "250", "retry-after": "1"}, rl("Please try again in 9s.")}, want: 250 * time.Millisecond},
		{name: "message 1.5s", canned: oaCanned{429, nil, rl("Rate limit reached for text-embedding-3-small in organization org-x on tokens per min (TPM): Limit 1000000, Used 976163, Requested 70716. Please try again in 1.5s. Visit https://platform.openai.com/account/rate-limits to learn more.")}, want: 1500 * time.Millisecond},
		{name: "message 20ms", canned: oaCanned{429, nil, rl("Rate limit reached. Please try again in 20ms.")}, want: 20 * time.Millisecond},
		{name: "message 6m0s", canned: oaCanned{429, nil, rl("Please try again in 6m0s.")}, opts: embed.OpenAIOptions{MaxRetryDelay: 10 * time.Minute}, want: 6 * time.Minute},
		{name: "reset-requests", canned: oaCanned{429, map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s", "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "6m0s"}, noHint}, want: time.Second},
		{name: "reset-tokens", canned: oaCanned{429, map[string]string{"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "20ms"}, `{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`}, want: 20 * time.Millisecond},
		{name: "503 retry-after", canned: oaCanned{503, map[string]string{"retry-after": "2"}, `{"error":{"message":"The server is currently overloaded with other requests.","type":"server_error","param":null,"code":"server_is_overloaded"}}`}, want: 2 * time.Second},
		{name: "no hint: backoff", canned: oaCanned{429, nil, noHint}, lo: 375 * time.Millisecond, hi: 500 * time.Millisecond},
		{name: "slow_down: slower backoff", canned: oaCanned{429, nil, `{"error":{"message":"Please slow down.","type":"rate_limit_error","param":null,"code":"slow_down"}}`}, lo: 750 * time.Millisecond, hi: time.Second},
		{name: "500: backoff", canned: oaCanned{500, nil, oaServerError}, lo: 375 * time.Millisecond, hi: 500 * time.Millisecond},
		{name: "connection reset: backoff", canned: oaCanned{-1, nil, ""}, lo: 375 * time.Millisecond, hi: 500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			twin := mock.NewOpenAIServer(mock.OpenAIOptions{})
			var h http.Handler = &oaScript{canned: []oaCanned{tc.canned}, next: twin}
			if tc.canned.status == -1 { // hang up without answering
				first := true
				var mu sync.Mutex
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					f := first
					first = false
					mu.Unlock()
					if f {
						conn, _, _ := w.(http.Hijacker).Hijack()
						_ = conn.Close()
						return
					}
					twin.ServeHTTP(w, r)
				})
			}
			o, clk := oaWithClock(tc.opts)
			o.BaseURL = oaServe(t, h)
			c := oaNew(t, o)
			got, err := c.Embed(context.Background(), oaTexts[:2])
			if err != nil {
				t.Fatal(err)
			}
			oaSameVectors(t, got, oaLocal(t, 1536, oaTexts[:2]))
			sl := clk.Sleeps()
			if len(sl) != 1 {
				t.Fatalf("sleeps %v, want one", sl)
			}
			if tc.want != 0 && sl[0] != tc.want {
				t.Fatalf("waited %v, want %v", sl[0], tc.want)
			}
			if tc.want == 0 && (sl[0] < tc.lo || sl[0] > tc.hi) {
				t.Fatalf("waited %v, want %v..%v", sl[0], tc.lo, tc.hi)
			}
			if st := c.Stats(); st.Requests != 2 || st.Retries != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestOpenAILongServerWaitEndsTheCall(t *testing.T) {
	rec := &oaScript{canned: []oaCanned{{429, map[string]string{"retry-after": "600"}, oaRateLimitBody("Please try again in 10m0s.")}}, next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	o, clk := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec)})
	c := oaNew(t, o)
	_, err := c.Embed(context.Background(), oaTexts[:1])
	fe := oaFault(t, err, fault.Transient, "RATE_LIMITED")
	if !strings.Contains(fe.Message, "10m0s") || len(clk.Sleeps()) != 0 || rec.requests() != 1 {
		t.Fatalf("%v; sleeps %v; %d requests", fe, clk.Sleeps(), rec.requests())
	}
}

func TestOpenAIRetriesTheSameBatch(t *testing.T) {
	hint := map[string]string{"retry-after-ms": "10"}
	rec := &oaScript{canned: []oaCanned{
		{429, hint, oaRateLimitBody("Please try again in 10ms.")},
		{429, hint, oaRateLimitBody("Please try again in 10ms.")},
		{500, nil, oaServerError},
	}, next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	o, clk := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec)})
	c := oaNew(t, o)
	got, err := c.Embed(context.Background(), oaTexts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, oaTexts))
	if rec.requests() != 4 {
		t.Fatalf("%d requests, want 4", rec.requests())
	}
	for i := 1; i < 4; i++ {
		if string(rec.bodies[i]) != string(rec.bodies[0]) {
			t.Fatalf("request %d body differs:\n%s\n%s", i, rec.bodies[i], rec.bodies[0])
		}
	}
	if n := len(rec.inputs(t, 0)); n != len(oaTexts) {
		t.Fatalf("%d inputs per request", n)
	}
	st := c.Stats()
	if st.Retries != 3 || st.RateLimited != 2 || st.Failures != 0 || st.Batches != 1 || c.BreakerState() != "closed" {
		t.Fatalf("stats %+v breaker %s", st, c.BreakerState())
	}
	if sl := clk.Sleeps(); len(sl) != 3 || sl[0] != 10*time.Millisecond || sl[1] != 10*time.Millisecond {
		t.Fatalf("sleeps %v", sl)
	}
}

func TestOpenAIGivesUpAfterMaxRetries(t *testing.T) {
	canned := make([]oaCanned, 10)
	for i := range canned {
		canned[i] = oaCanned{500, nil, oaServerError}
	}
	rec := &oaScript{canned: canned, next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	o, clk := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec)})
	c := oaNew(t, o)
	_, err := c.Embed(context.Background(), oaTexts[:1])
	fe := oaFault(t, err, fault.Transient, "SERVER_ERROR")
	if rec.requests() != 7 || !strings.Contains(fe.Message, "7 attempts") || !strings.Contains(fe.Message, "The server had an error") {
		t.Fatalf("%d requests; %v", rec.requests(), fe)
	}
	// Exponential: ~0.5, 1, 2, 4, 8, 16 s, each minus up to 25 %.
	for i, d := range clk.Sleeps() {
		hi := 500 * time.Millisecond << i
		if d > hi || d < hi*3/4 {
			t.Errorf("backoff %d = %v, want %v..%v", i, d, hi*3/4, hi)
		}
	}
	if st := c.Stats(); st.Failures != 1 || st.Retries != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenAIInsufficientQuotaOpensTheBreaker(t *testing.T) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{InsufficientQuota: true})
	o, clk := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, twin)})
	c := oaNew(t, o)
	_, err := c.Embed(context.Background(), oaTexts[:2])
	fe := oaFault(t, err, fault.Permanent, "INSUFFICIENT_QUOTA")
	if !strings.Contains(fe.Message, "You exceeded your current quota") {
		t.Errorf("message %q", fe.Message)
	}
	if twin.Requests() != 1 || len(clk.Sleeps()) != 0 {
		t.Fatalf("%d requests, sleeps %v: quota must not be retried", twin.Requests(), clk.Sleeps())
	}
	if c.BreakerState() != "open" {
		t.Fatalf("breaker %s after insufficient_quota", c.BreakerState())
	}
	_, err = c.Embed(context.Background(), oaTexts[:2])
	oaFault(t, err, fault.Transient, "CIRCUIT_OPEN")
	if twin.Requests() != 1 {
		t.Fatal("an open breaker let a request through")
	}
	if st := c.Stats(); st.RateLimited != 1 || st.Failures != 1 || st.BreakerRejected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenAIServerErrorsThenSuccess(t *testing.T) {
	rec := &oaScript{canned: []oaCanned{
		{500, nil, oaServerError},
		{503, nil, `{"error":{"message":"The server is currently overloaded with other requests.","type":"server_error","param":null,"code":"server_is_overloaded"}}`},
		{502, nil, `<html><body>bad gateway</body></html>`},
	}, next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	o, _ := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec), BreakerFailures: 1})
	c := oaNew(t, o)
	got, err := c.Embed(context.Background(), oaTexts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, oaTexts))
	// Retried-then-succeeded is a success for the breaker, even at threshold 1.
	if st := c.Stats(); st.Retries != 3 || st.Failures != 0 || c.BreakerState() != "closed" {
		t.Fatalf("stats %+v breaker %s", st, c.BreakerState())
	}
}

// oaSwitch answers 500 while failing is set, else passes to next.
type oaSwitch struct {
	mu      sync.Mutex
	failing bool
	n       int
	next    http.Handler
}

func (s *oaSwitch) set(f bool) { s.mu.Lock(); s.failing = f; s.mu.Unlock() }

func (s *oaSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.failing
	s.n++
	s.mu.Unlock()
	if f {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, oaServerError)
		return
	}
	s.next.ServeHTTP(w, r)
}

func TestOpenAIBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	sw := &oaSwitch{failing: true, next: mock.NewOpenAIServer(mock.OpenAIOptions{})}
	o, _ := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, sw), MaxRetries: -1, BreakerFailures: 3, BreakerTimeout: 100 * time.Millisecond})
	c := oaNew(t, o)
	ctx := context.Background()
	// fail, fail, success, fail, fail: never 3 in a row.
	for i, fail := range []bool{true, true, false, true, true} {
		sw.set(fail)
		_, err := c.Embed(ctx, oaTexts[:1])
		if (err != nil) != fail || c.BreakerState() != "closed" {
			t.Fatalf("call %d: err %v, breaker %s", i, err, c.BreakerState())
		}
	}
	sw.set(true)
	_, err := c.Embed(ctx, oaTexts[:1])
	oaFault(t, err, fault.Transient, "SERVER_ERROR")
	if c.BreakerState() != "open" {
		t.Fatalf("breaker %s after 3 consecutive failures", c.BreakerState())
	}
	before := sw.n
	_, err = c.Embed(ctx, oaTexts[:1])
	oaFault(t, err, fault.Transient, "CIRCUIT_OPEN")
	if sw.n != before {
		t.Fatal("request sent while open")
	}
	// After the timeout one probe goes through; success closes the breaker.
	sw.set(false)
	time.Sleep(150 * time.Millisecond)
	if c.BreakerState() != "half-open" {
		t.Fatalf("breaker %s after the timeout", c.BreakerState())
	}
	if _, err := c.Embed(ctx, oaTexts[:1]); err != nil {
		t.Fatal(err)
	}
	if c.BreakerState() != "closed" {
		t.Fatalf("breaker %s after a good probe", c.BreakerState())
	}
}

func TestOpenAIPermanentErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		code   string
	}{
		{400, `{"error":{"message":"'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.","type":"invalid_request_error","param":null,"code":null}}`, "BAD_REQUEST"},
		{403, `{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}`, "FORBIDDEN"},
		{404, "{\"error\":{\"message\":\"The model `x` does not exist or you do not have access to it.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}", "NOT_FOUND"},
		{400, `{"error":"input is empty"}`, "BAD_REQUEST"},                                                  // Ollama/TEI style
		{400, `{"object":"error","message":"too long","type":"BadRequestError","code":400}`, "BAD_REQUEST"}, // vLLM style
	}
	for _, tc := range cases {
		rec := &oaScript{canned: []oaCanned{{tc.status, nil, tc.body}}}
		o, clk := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec)})
		c := oaNew(t, o)
		_, err := c.Embed(context.Background(), oaTexts[:1])
		fe := oaFault(t, err, fault.Permanent, tc.code)
		if rec.requests() != 1 || len(clk.Sleeps()) != 0 {
			t.Errorf("%d: retried", tc.status)
		}
		if !strings.Contains(fe.Message, fmt.Sprint(tc.status)) {
			t.Errorf("message %q", fe.Message)
		}
	}
	// A bad request does not count against the breaker.
	canned := make([]oaCanned, 8)
	for i := range canned {
		canned[i] = oaCanned{400, nil, cases[0].body}
	}
	rec := &oaScript{canned: canned}
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), BreakerFailures: 2})
	for range 8 {
		_, _ = c.Embed(context.Background(), oaTexts[:1])
	}
	if c.BreakerState() != "closed" || rec.requests() != 8 {
		t.Fatalf("breaker %s after 400s", c.BreakerState())
	}
}

func TestOpenAIUnauthorizedDoesNotLeakTheKey(t *testing.T) {
	const secret = "sk-proj-SECRETsecret0123456789wxyz"
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: "sk-the-right-key-0000"})
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), APIKey: secret})
	_, err := c.Embed(context.Background(), oaTexts[:1])
	fe := oaFault(t, err, fault.Permanent, "UNAUTHORIZED")
	if !strings.Contains(fe.Message, "Incorrect API key provided") || twin.Requests() != 1 {
		t.Fatalf("%v; %d requests", fe, twin.Requests())
	}
	for _, leak := range []string{secret, "SECRET", "wxyz"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error %q contains %q", err, leak)
		}
	}
	// A server that echoes the whole key.
	echo := &oaScript{canned: []oaCanned{{401, nil, `{"error":{"message":"bad key ` + secret + `","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`}}}
	c = oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, echo), APIKey: secret})
	_, err = c.Embed(context.Background(), oaTexts[:1])
	oaFault(t, err, fault.Permanent, "UNAUTHORIZED")
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %q leaks the key", err)
	}
	if got := echo.hdrs[0].Get("Authorization"); got != "Bearer "+secret {
		t.Fatalf("Authorization %q", got)
	}
}

func TestOpenAIAzureStyle(t *testing.T) {
	rec := &oaScript{next: http.StripPrefix("/openai/deployments/emb", mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: "azkey"}))}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := oaNew(t, embed.OpenAIOptions{
		BaseURL: srv.URL + "/openai/deployments/emb?api-version=2024-10-21", APIKey: "azkey", APIKeyHeader: "api-key",
		Model: "text-embedding-3-small", Headers: map[string]string{"OpenAI-Project": "proj_1"},
	})
	if _, err := c.Embed(context.Background(), oaTexts[:1]); err != nil {
		t.Fatal(err)
	}
	if rec.urls[0] != "/openai/deployments/emb/embeddings?api-version=2024-10-21" ||
		rec.hdrs[0].Get("api-key") != "azkey" || rec.hdrs[0].Get("Authorization") != "" || rec.hdrs[0].Get("OpenAI-Project") != "proj_1" {
		t.Fatalf("url %s headers %v", rec.urls[0], rec.hdrs[0])
	}
}

func TestOpenAIChecksTheAnswer(t *testing.T) {
	vec := func(n int) string {
		b, _ := json.Marshal(make([]float32, n))
		return string(b)
	}
	// Wrong dims: permanent. Wrong count or shuffled indexes: handled.
	rec := &oaScript{canned: []oaCanned{{200, nil, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":` + vec(8) + `}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`}}}
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), Dims: 16, Model: "m"})
	_, err := c.Embed(context.Background(), oaTexts[:1])
	oaFault(t, err, fault.Permanent, "DIMS_MISMATCH")

	rec = &oaScript{canned: []oaCanned{
		{200, nil, `{"object":"list","data":[],"model":"m"}`},
		{200, nil, `{"object":"list","data":[{"index":1,"embedding":[1,0,0,0,0,0,0,0]},{"index":0,"embedding":"AAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"model":"m"}`},
	}}
	o, _ := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec), Dims: 8, Model: "m", Encoding: "float"})
	c = oaNew(t, o)
	got, err := c.Embed(context.Background(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0][0] != 2 || got[1][0] != 1 || rec.requests() != 2 {
		t.Fatalf("got %v after %d requests", got, rec.requests())
	}
	// No usage block: the local token count is billed.
	if st := c.Stats(); st.Tokens != 2 {
		t.Fatalf("tokens %d", st.Tokens)
	}
}

// TestOpenAIClientLimiterKeepsUnderRPMAndTPM drives a burst through the client
// with a fake clock shared with the twin: no request is refused, and no 60 s
// window holds more than the limits.
func TestOpenAIClientLimiterKeepsUnderRPMAndTPM(t *testing.T) {
	clk := newOAClock()
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{RPM: 5, TPM: 200, Now: clk.Now})
	rec := &oaScript{next: twin, now: clk.Now}
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, rec), RPM: 5, TPM: 200, MaxBatchInputs: 1, Now: clk.Now, Sleep: clk.Sleep})
	texts := make([]string, 17)
	for i := range texts {
		texts[i] = oaText(t, 10+5*(i%4), oaWords[i%len(oaWords)])
	}
	got, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, texts))
	if twin.StatusCount(429) != 0 || rec.requests() != len(texts) {
		t.Fatalf("%d 429s, %d requests", twin.StatusCount(429), rec.requests())
	}
	for i := range rec.times {
		n, tok := 0, 0
		for j := i; j < len(rec.times) && rec.times[j].Sub(rec.times[i]) < time.Minute; j++ {
			n++
			tok += chunk.CountTokens(texts[j])
		}
		if n > 5 || tok > 200 {
			t.Fatalf("window from request %d: %d requests, %d tokens", i, n, tok)
		}
	}
	if span := rec.times[len(rec.times)-1].Sub(rec.times[0]); span < 3*time.Minute {
		t.Fatalf("17 requests at 5 RPM took only %v", span)
	}
}

// TestOpenAIAdaptsToServerHeaders: no client limit, but the twin's RPM; the
// client waits for x-ratelimit-reset-requests when remaining hits 0.
func TestOpenAIAdaptsToServerHeaders(t *testing.T) {
	clk := newOAClock()
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{RPM: 3, Now: clk.Now})
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), MaxBatchInputs: 1, Now: clk.Now, Sleep: clk.Sleep})
	if _, err := c.Embed(context.Background(), oaTexts); err != nil {
		t.Fatal(err)
	}
	if twin.StatusCount(429) != 0 {
		t.Fatalf("%d 429s", twin.StatusCount(429))
	}
	// After 3 requests the bucket is empty: reset (time to full) is 60 s.
	if sl := clk.Sleeps(); len(sl) != 1 || sl[0] != time.Minute {
		t.Fatalf("sleeps %v", sl)
	}

	// A scripted remaining=0 with a short reset.
	rec := &oaScript{canned: []oaCanned{
		{200, map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s", "x-ratelimit-remaining-tokens": "999", "x-ratelimit-reset-tokens": "1ms"},
			`{"object":"list","data":[{"index":0,"embedding":[1,0,0,0,0,0,0,0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`},
		{200, nil, `{"object":"list","data":[{"index":0,"embedding":[1,0,0,0,0,0,0,0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`},
	}}
	o, clk2 := oaWithClock(embed.OpenAIOptions{BaseURL: oaServe(t, rec), Model: "m", Dims: 8})
	c = oaNew(t, o)
	for range 2 {
		if _, err := c.Embed(context.Background(), []string{"x"}); err != nil {
			t.Fatal(err)
		}
	}
	if sl := clk2.Sleeps(); len(sl) != 1 || sl[0] != 2*time.Second {
		t.Fatalf("sleeps %v", sl)
	}
}

// TestOpenAIRateLimitedTwinWithoutClientLimits: the twin's 429s (with and
// without retry-after headers) are honoured, nothing fails.
func TestOpenAIRateLimitedTwinWithoutClientLimits(t *testing.T) {
	for _, noHdr := range []bool{false, true} {
		clk := newOAClock()
		twin := mock.NewOpenAIServer(mock.OpenAIOptions{TPM: 100, Now: clk.Now, NoRetryAfterHeaders: noHdr})
		// The client ignores the headers' remaining budget only if it never
		// sees it; a concurrent burst makes some requests hit the limit.
		c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), MaxBatchInputs: 1, Concurrency: 4, Now: clk.Now, Sleep: clk.Sleep})
		texts := make([]string, 12)
		for i := range texts {
			texts[i] = oaText(t, 30, oaWords[i%len(oaWords)])
		}
		got, err := c.Embed(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		oaSameVectors(t, got, oaLocal(t, 1536, texts))
		if twin.StatusCount(200) != 12 {
			t.Fatalf("%d successes", twin.StatusCount(200))
		}
	}
}

// TestOpenAIFaultyTwin: 20 % 500s and 10 % 429s; 100 batches all succeed
// with at most 1.5× the requests of a fault-free run, and every extra request
// is one the twin failed on purpose (nothing is wasted or split).
//
// With a 30 % fault rate per request the expected count is 100/0.7 ≈ 143
// (sd ≈ 8), so the 1.5× bound holds for about 84 % of seeds (simulated over
// 1000); the seed is fixed, so the run is deterministic (seed 2: 138).
func TestOpenAIFaultyTwin(t *testing.T) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{
		ErrorRates: map[int]float64{500: 0.2}, RateLimit429: 0.1, Seed: 2,
		Latency: time.Millisecond, RetryAfter: 5 * time.Millisecond,
	})
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), MaxBatchInputs: 1, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	texts := make([]string, 100)
	for i := range texts {
		texts[i] = fmt.Sprintf("document %d about deductibles and copays", i)
	}
	got, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, texts))
	st := c.Stats()
	t.Logf("twin: %d requests (%d × 500, %d × 429); client %+v", twin.Requests(), twin.StatusCount(500), twin.StatusCount(429), st)
	if twin.StatusCount(500) == 0 || twin.StatusCount(429) == 0 {
		t.Fatal("no faults injected")
	}
	if twin.Requests() != 100+twin.StatusCount(500)+twin.StatusCount(429) {
		t.Fatalf("%d requests for 100 batches and %d faults", twin.Requests(), twin.StatusCount(500)+twin.StatusCount(429))
	}
	if twin.Requests() > 150 || st.Requests != twin.Requests() || st.Failures != 0 || c.BreakerState() != "closed" {
		t.Fatalf("%d requests for 100 batches; stats %+v", twin.Requests(), st)
	}

	// The same with concurrency: everything succeeds (the count varies, so the
	// order of the twin's draws does: with 6 retries one of 100 batches would
	// see 7 faults in a row in about 2 % of runs; 12 retries make it ~1e-5).
	twin = mock.NewOpenAIServer(mock.OpenAIOptions{ErrorRates: map[int]float64{500: 0.2}, RateLimit429: 0.1, Seed: 8, Latency: time.Millisecond, RetryAfter: 5 * time.Millisecond})
	c = oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), MaxBatchInputs: 1, Concurrency: 8, MaxRetries: 12, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	got, err = c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	oaSameVectors(t, got, oaLocal(t, 1536, texts))
}

func TestOpenAICancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); srv.Close() })
	c := oaNew(t, embed.OpenAIOptions{BaseURL: srv.URL, BreakerFailures: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Embed(ctx, oaTexts[:1])
	oaFault(t, err, fault.Transient, "TIMEOUT")
	if c.BreakerState() != "closed" {
		t.Fatal("a caller's cancellation counted against the breaker")
	}
}

func TestOpenAICostDefaults(t *testing.T) {
	p := embed.DefaultOpenAIPrices()
	if p["text-embedding-3-small"] != 0.02 || p["text-embedding-3-large"] != 0.13 || p["text-embedding-ada-002"] != 0.10 {
		t.Fatal(p)
	}
	if got := embed.OpenAICost("text-embedding-3-large", 2_000_000, nil); math.Abs(got-0.26) > 1e-12 {
		t.Fatal(got)
	}
	if got := embed.OpenAICost("unknown", 1000, nil); got != 0 {
		t.Fatal(got)
	}
}

// When the client's own limiter has no slot before the caller's deadline, the call
// returns a WaitError at once, sends nothing, and does not count as a failure.
func TestOpenAIWaitErrorSendsNothing(t *testing.T) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{})
	c := oaNew(t, embed.OpenAIOptions{BaseURL: oaServe(t, twin), TPM: 60_000}) // 1000 tokens/s, bucket 6000
	text := strings.Repeat("coverage ", 5000)                                  // 5000+ tokens
	if _, err := c.Embed(t.Context(), []string{text}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Embed(ctx, []string{text})
	var we *embed.WaitError
	if !errors.As(err, &we) || we.Wait < time.Second {
		t.Fatalf("err = %v, want a WaitError of seconds", err)
	}
	if twin.Requests() != 1 {
		t.Fatalf("twin got %d requests, want 1", twin.Requests())
	}
	if st := c.BreakerState(); st != "closed" || c.Stats().Failures != 0 {
		t.Errorf("breaker %s, failures %d after a WaitError", st, c.Stats().Failures)
	}
}
