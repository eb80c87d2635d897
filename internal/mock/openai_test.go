package mock

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiktoken-go/tokenizer"

	"github.com/docpipe/docpipe/internal/embed"
)

type oaResp struct {
	status int
	header http.Header
	body   []byte
}

func (r oaResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// errorField returns error.<k> of an error body.
func (r oaResp) errorField(t *testing.T, k string) any {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	return e[k]
}

func oaStartTwin(t *testing.T, opts OpenAIOptions) (*OpenAIServer, string) {
	t.Helper()
	s := NewOpenAIServer(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func oaDo(t *testing.T, method, u, key string, body any) oaResp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return oaResp{resp.StatusCode, resp.Header, b}
}

func oaLocalVec(t *testing.T, dims int, text string) []float32 {
	t.Helper()
	l, err := embed.NewLocal(dims)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := l.Embed(context.Background(), []string{text})
	return v[0]
}

// oaVectors decodes data[].embedding (float arrays or base64), by index.
func oaVectors(t *testing.T, r oaResp) [][]float32 {
	t.Helper()
	var out struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Object != "list" {
		t.Fatalf("body %.200s: %v", r.body, err)
	}
	vecs := make([][]float32, len(out.Data))
	for _, d := range out.Data {
		if d.Object != "embedding" {
			t.Fatalf("object %q", d.Object)
		}
		var v []float32
		if d.Embedding[0] == '"' {
			var s string
			_ = json.Unmarshal(d.Embedding, &s)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			v = make([]float32, len(b)/4)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		} else if err := json.Unmarshal(d.Embedding, &v); err != nil {
			t.Fatal(err)
		}
		vecs[d.Index] = v
	}
	return vecs
}

func oaSame(t *testing.T, got, want []float32) {
	t.Helper()
	if embed.VectorSHA(got) != embed.VectorSHA(want) {
		t.Fatalf("vector differs from embed.Local (dims %d vs %d)", len(got), len(want))
	}
}

// TestOpenAISDKStyleRequest: what openai-go sends (encoding_format omitted →
// float) and a single string input, as the raw API accepts it.
func TestOpenAISDKStyleRequest(t *testing.T) {
	twin, u := oaStartTwin(t, OpenAIOptions{APIKey: "sk-k"})
	r := oaDo(t, "POST", u+"/v1/embeddings", "sk-k", `{"model":"text-embedding-3-small","input":"hello world"}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	d := m["data"].([]any)[0].(map[string]any)
	if _, isArray := d["embedding"].([]any); !isArray {
		t.Fatalf("embedding is %T, want a float array by default", d["embedding"])
	}
	if m["model"] != "text-embedding-3-small" || d["index"].(float64) != 0 {
		t.Fatalf("%v", m)
	}
	usage := m["usage"].(map[string]any)
	if usage["prompt_tokens"].(float64) != 2 || usage["total_tokens"].(float64) != 2 {
		t.Fatalf("usage %v", usage)
	}
	oaSame(t, oaVectors(t, r)[0], oaLocalVec(t, 1536, "hello world"))
	if r.header.Get("x-request-id") == "" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.header)
	}
	// What the Node/Python SDKs send: base64 and an array.
	r = oaDo(t, "POST", u+"/v1/embeddings", "sk-k", map[string]any{"model": "text-embedding-3-small", "input": []string{"a cat", "a dog"}, "encoding_format": "base64"})
	vs := oaVectors(t, r)
	if _, isString := r.json(t)["data"].([]any)[0].(map[string]any)["embedding"].(string); !isString || len(vs) != 2 {
		t.Fatalf("%.200s", r.body)
	}
	oaSame(t, vs[1], oaLocalVec(t, 1536, "a dog"))
	if twin.Requests() != 2 || twin.StatusCount(200) != 2 {
		t.Fatal(twin.Stats())
	}
}

func TestOpenAITwinInputsAndDims(t *testing.T) {
	twin, u := oaStartTwin(t, OpenAIOptions{Dims: 64})
	codec, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, _ := codec.Encode("the deductible is five hundred dollars")
	post := func(body any) oaResp { return oaDo(t, "POST", u+"/embeddings", "", body) } // no /v1 prefix

	// Token ids, alone and in arrays, embed like their text.
	r := post(map[string]any{"model": "text-embedding-3-small", "input": ids, "dimensions": 256})
	oaSame(t, oaVectors(t, r)[0], oaLocalVec(t, 256, "the deductible is five hundred dollars"))
	r = post(map[string]any{"model": "text-embedding-3-small", "input": [][]uint{ids, ids[:2]}})
	if got := r.json(t)["usage"].(map[string]any)["prompt_tokens"].(float64); got != float64(len(ids)+2) {
		t.Fatalf("prompt_tokens %v", got)
	}
	oaSame(t, oaVectors(t, r)[1], oaLocalVec(t, 1536, "the deductible"))

	for _, tc := range []struct {
		model string
		dims  any
		want  int
	}{
		{"text-embedding-3-large", nil, 3072},
		{"text-embedding-3-large", 1024, 1024},
		{"text-embedding-ada-002", nil, 1536},
		{"nomic-embed-text", nil, 64}, // unknown: OpenAIOptions.Dims
	} {
		body := map[string]any{"model": tc.model, "input": "x y z"}
		if tc.dims != nil {
			body["dimensions"] = tc.dims
		}
		r := post(body)
		if r.status != 200 || len(oaVectors(t, r)[0]) != tc.want {
			t.Fatalf("%s %v: %d %.200s", tc.model, tc.dims, r.status, r.body)
		}
	}
	st := twin.Stats()
	if st.Inputs != 7 || st.Status[200] != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenAITwinRejections(t *testing.T) {
	_, u := oaStartTwin(t, OpenAIOptions{})
	post := func(body any) oaResp { return oaDo(t, "POST", u+"/v1/embeddings", "", body) }
	big := strings.TrimSpace(strings.Repeat(" apple", 8000))
	over := strings.TrimSpace(strings.Repeat(" apple", 8193))
	many := make([]string, 2049)
	for i := range many {
		many[i] = "x"
	}
	forty := make([]string, 38)
	for i := range forty {
		forty[i] = big
	}
	cases := []struct {
		name      string
		body      any
		typ, code any
		msg       string
	}{
		{"bad json", `{"model":`, "invalid_request_error", nil, "We could not parse the JSON body"},
		{"no model", map[string]any{"input": "x"}, "invalid_request_error", nil, "you must provide a model parameter"},
		{"empty string", map[string]any{"model": "text-embedding-3-small", "input": ""}, "invalid_request_error", nil, "'$.input' is invalid"},
		{"empty item", map[string]any{"model": "text-embedding-3-small", "input": []string{"a", ""}}, "invalid_request_error", nil, "'$.input' is invalid"},
		{"empty array", map[string]any{"model": "text-embedding-3-small", "input": []string{}}, "invalid_request_error", nil, "'$.input' is invalid"},
		{"no input", map[string]any{"model": "text-embedding-3-small"}, "invalid_request_error", nil, "'input' is a required property"},
		{"2049 inputs", map[string]any{"model": "text-embedding-3-small", "input": many}, "invalid_request_error", "array_above_max_length", "maximum length 2048, but got an array with length 2049"},
		{"8193 tokens", map[string]any{"model": "text-embedding-3-small", "input": over}, "invalid_request_error", nil, "maximum context length is 8192 tokens, however you requested 8193 tokens"},
		{"304k tokens", map[string]any{"model": "text-embedding-3-small", "input": forty}, "max_tokens_per_request", "max_tokens_per_request", "Requested 304000 tokens, max 300000 tokens per request"},
		{"format", map[string]any{"model": "text-embedding-3-small", "input": "x", "encoding_format": "utf8"}, "invalid_request_error", "invalid_value", "'encoding_format'"},
		{"ada dims", map[string]any{"model": "text-embedding-ada-002", "input": "x", "dimensions": 512}, "invalid_request_error", nil, "This model does not support specifying dimensions."},
		{"dims 0", map[string]any{"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "invalid_request_error", "integer_below_min_value", "Expected a value >= 1"},
		{"dims too big", map[string]any{"model": "text-embedding-3-small", "input": "x", "dimensions": 1537}, "invalid_request_error", nil, "larger than 1536"},
		{"bad token id", map[string]any{"model": "text-embedding-3-small", "input": []int{-5}}, "invalid_request_error", nil, "'$.input' is invalid"},
	}
	for _, tc := range cases {
		r := post(tc.body)
		if r.status != 400 {
			t.Errorf("%s: status %d %.200s", tc.name, r.status, r.body)
			continue
		}
		if r.errorField(t, "type") != tc.typ || r.errorField(t, "code") != tc.code ||
			!strings.Contains(fmt.Sprint(r.errorField(t, "message")), tc.msg) {
			t.Errorf("%s: %s", tc.name, r.body)
		}
		if _, ok := r.json(t)["error"].(map[string]any)["param"]; !ok {
			t.Errorf("%s: no param field", tc.name)
		}
	}
	// Routes.
	if r := oaDo(t, "GET", u+"/v1/nope", "", nil); r.status != 404 || !strings.Contains(fmt.Sprint(r.errorField(t, "message")), "Invalid URL") {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
}

func TestOpenAITwinAuth(t *testing.T) {
	twin, u := oaStartTwin(t, OpenAIOptions{APIKey: "sk-right-key-1234"})
	r := oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": "x"})
	if r.status != 401 || !strings.HasPrefix(fmt.Sprint(r.errorField(t, "message")), "You didn't provide an API key") || r.errorField(t, "code") != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = oaDo(t, "POST", u+"/v1/embeddings", "sk-wrong-secret-5678", map[string]any{"model": "text-embedding-3-small", "input": "x"})
	msg := fmt.Sprint(r.errorField(t, "message"))
	if r.status != 401 || r.errorField(t, "code") != "invalid_api_key" || !strings.Contains(msg, "sk-*************5678") || strings.Contains(msg, "secret") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", u+"/v1/models", nil)
	req.Header.Set("api-key", "sk-right-key-1234") // Azure style
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || twin.StatusCount(401) != 2 {
		t.Fatalf("api-key header: %d", resp.StatusCode)
	}
}

func TestOpenAITwinModels(t *testing.T) {
	_, u := oaStartTwin(t, OpenAIOptions{})
	for _, p := range []string{"/v1/models", "/models"} {
		r := oaDo(t, "GET", u+p, "", nil)
		m := r.json(t)
		if r.status != 200 || m["object"] != "list" || len(m["data"].([]any)) != 3 {
			t.Fatalf("%s: %s", p, r.body)
		}
	}
	r := oaDo(t, "GET", u+"/v1/models/text-embedding-3-large", "", nil)
	if r.status != 200 || r.json(t)["id"] != "text-embedding-3-large" || r.json(t)["owned_by"] != "system" {
		t.Fatalf("%s", r.body)
	}
	if r := oaDo(t, "GET", u+"/v1/models/gpt-9", "", nil); r.status != 404 || r.errorField(t, "code") != "model_not_found" {
		t.Fatalf("%s", r.body)
	}
}

// oaFakeClock is a settable clock for the twin's rate limits.
type oaFakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *oaFakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *oaFakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOpenAITwinRPM(t *testing.T) {
	clk := &oaFakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, u := oaStartTwin(t, OpenAIOptions{RPM: 3, TPM: 1000, Now: clk.Now})
	post := func() oaResp {
		return oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": "hello world"})
	}
	for i := range 3 {
		r := post()
		if r.status != 200 || r.header.Get("x-ratelimit-remaining-requests") != fmt.Sprint(2-i) ||
			r.header.Get("x-ratelimit-limit-requests") != "3" || r.header.Get("x-ratelimit-limit-tokens") != "1000" ||
			r.header.Get("x-ratelimit-remaining-tokens") != fmt.Sprint(1000-2*(i+1)) {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	// 3 per minute refill one every 20 s; the bucket is full again after 60 s.
	r := post()
	msg := fmt.Sprint(r.errorField(t, "message"))
	if r.status != 429 || r.errorField(t, "code") != "rate_limit_exceeded" || r.errorField(t, "type") != "requests" ||
		msg != "Rate limit reached for text-embedding-3-small in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more." {
		t.Fatalf("%d %s", r.status, r.body)
	}
	h := r.header
	if h.Get("retry-after-ms") != "20000" || h.Get("retry-after") != "20" || h.Get("x-ratelimit-remaining-requests") != "0" ||
		h.Get("x-ratelimit-reset-requests") != "1m0s" {
		t.Fatalf("headers %v", h)
	}
	clk.Add(19 * time.Second)
	if r := post(); r.status != 429 || !strings.Contains(string(r.body), "try again in 1s.") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	clk.Add(time.Second)
	if r := post(); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestOpenAITwinTPM(t *testing.T) {
	clk := &oaFakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	twin, u := oaStartTwin(t, OpenAIOptions{TPM: 100, Now: clk.Now, NoRetryAfterHeaders: true})
	sixty := strings.TrimSpace(strings.Repeat(" apple", 60))
	post := func(in string) oaResp {
		return oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": in})
	}
	if r := post(sixty); r.status != 200 || r.header.Get("x-ratelimit-remaining-tokens") != "40" || r.header.Get("x-ratelimit-reset-tokens") != "36s" {
		t.Fatalf("%d %v", r.status, r.header)
	}
	// 20 tokens short at 100/60 per second: 12 s.
	r := post(sixty)
	if r.status != 429 || r.errorField(t, "type") != "tokens" ||
		!strings.Contains(fmt.Sprint(r.errorField(t, "message")), "on tokens per min (TPM): Limit 100, Used 60, Requested 60. Please try again in 12s.") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r.header.Get("retry-after-ms") != "" || r.header.Get("retry-after") != "" {
		t.Fatalf("retry-after sent with NoRetryAfterHeaders: %v", r.header)
	}
	// More than the whole budget: "Request too large".
	r = post(strings.TrimSpace(strings.Repeat(" apple", 101)))
	if r.status != 429 || !strings.HasPrefix(fmt.Sprint(r.errorField(t, "message")), "Request too large for text-embedding-3-small in organization org-mock on tokens per min (TPM): Limit 100, Requested 101.") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	clk.Add(12 * time.Second)
	if r := post(sixty); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Headers come with errors too.
	r = oaDo(t, "POST", u+"/v1/embeddings", "", `{`)
	if r.status != 400 || r.header.Get("x-ratelimit-limit-tokens") != "100" {
		t.Fatalf("%d %v", r.status, r.header)
	}
	if twin.StatusCount(429) != 2 {
		t.Fatal(twin.Stats())
	}
}

func TestOpenAITwinInjectedErrorsDeterministic(t *testing.T) {
	run := func() ([]int, []string) {
		_, u := oaStartTwin(t, OpenAIOptions{ErrorRates: map[int]float64{500: 0.2, 503: 0.1, 502: 0.05}, RateLimit429: 0.15, Seed: 42})
		var codes []int
		var bodies []string
		for range 60 {
			r := oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": "x"})
			codes = append(codes, r.status)
			bodies = append(bodies, string(r.body)+r.header.Get("x-request-id"))
			switch r.status {
			case 500:
				if r.errorField(t, "type") != "server_error" {
					t.Fatalf("%s", r.body)
				}
			case 503:
				if r.errorField(t, "code") != "server_is_overloaded" || r.header.Get("retry-after-ms") != "20" {
					t.Fatalf("%s %v", r.body, r.header)
				}
			case 502:
				if r.errorField(t, "type") != "cf_bad_gateway" {
					t.Fatalf("%s", r.body)
				}
			case 429:
				if r.errorField(t, "code") != "rate_limit_exceeded" || !strings.Contains(string(r.body), "Please try again in 20ms.") ||
					r.header.Get("retry-after-ms") != "20" || r.header.Get("retry-after") != "1" {
					t.Fatalf("%s %v", r.body, r.header)
				}
			}
		}
		return codes, bodies
	}
	c1, b1 := run()
	c2, b2 := run()
	seen := map[int]int{}
	for i := range c1 {
		seen[c1[i]]++
		if c1[i] != c2[i] || b1[i] != b2[i] {
			t.Fatalf("request %d differs between runs with the same seed", i)
		}
	}
	if seen[200] == 0 || seen[500] == 0 || seen[429] == 0 || seen[503] == 0 {
		t.Fatalf("statuses %v", seen)
	}
}

func TestOpenAITwinInsufficientQuota(t *testing.T) {
	_, u := oaStartTwin(t, OpenAIOptions{InsufficientQuota: true})
	r := oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": "x"})
	if r.status != 429 || r.errorField(t, "type") != "insufficient_quota" || r.errorField(t, "code") != "insufficient_quota" ||
		!strings.HasPrefix(fmt.Sprint(r.errorField(t, "message")), "You exceeded your current quota") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestOpenAITwinLatency(t *testing.T) {
	_, u := oaStartTwin(t, OpenAIOptions{Latency: 30 * time.Millisecond, LatencyJitter: 10 * time.Millisecond, Seed: 1})
	start := time.Now()
	r := oaDo(t, "POST", u+"/v1/embeddings", "", map[string]any{"model": "text-embedding-3-small", "input": "x"})
	if r.status != 200 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("%d after %v", r.status, time.Since(start))
	}
}
