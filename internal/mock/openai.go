package mock

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiktoken-go/tokenizer"
	"golang.org/x/time/rate"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/embed"
)

// OpenAIOptions configure the OpenAI embeddings twin.
type OpenAIOptions struct {
	// Dims is the vector size for models the twin does not know (say an
	// Ollama model name) when the request has no `dimensions`; 0 = 1536.
	// Known models use their native size: 1536 for text-embedding-3-small
	// and ada-002, 3072 for text-embedding-3-large.
	Dims int
	// RPM and TPM are the organization's requests and tokens per minute,
	// enforced with token buckets of that size refilled continuously (so
	// "try again in" hints are short, as with the real API). 0 = unlimited
	// (and no x-ratelimit-* headers for that dimension).
	RPM, TPM int
	// Latency is added to every request, plus a uniform random 0..LatencyJitter.
	Latency, LatencyJitter time.Duration
	// ErrorRates injects errors: HTTP status → probability per embeddings
	// request (after auth), e.g. {500: 0.2, 503: 0.05}. Each status gets the
	// real API's body (429 = rate_limit_exceeded).
	ErrorRates map[int]float64
	// RateLimit429 adds this probability of an injected 429
	// rate_limit_exceeded (on top of ErrorRates[429]).
	RateLimit429 float64
	// RetryAfter is the wait suggested by injected 429s and 503s (in
	// retry-after-ms, retry-after and the "try again in" message); 0 = 20ms.
	RetryAfter time.Duration
	// NoRetryAfterHeaders leaves retry-after-ms and retry-after off 429s (the
	// real API does not always send them); the message hint and the
	// x-ratelimit-reset-* headers remain.
	NoRetryAfterHeaders bool
	// InsufficientQuota answers every embeddings request (after auth) with
	// 429 insufficient_quota.
	InsufficientQuota bool
	// Seed makes fault injection, latency jitter and request ids
	// reproducible (for requests made in the same order).
	Seed int64
	// APIKey, when set, is required as "Authorization: Bearer <key>" (or an
	// Azure-style "api-key" header); anything else gets the real 401 bodies.
	APIKey string
	// Now is the twin's clock for the rate limits (nil = time.Now).
	Now func() time.Time
}

// OpenAIServerStats are the twin's counters.
type OpenAIServerStats struct {
	Requests int64         // HTTP requests, any path
	Status   map[int]int64 // responses by HTTP status
	Inputs   int64         // inputs embedded (200s only)
	Tokens   int64         // prompt tokens embedded (200s only)
}

// OpenAIServer is an http.Handler twin of the OpenAI embeddings API:
// POST /v1/embeddings, GET /v1/models and GET /v1/models/{id}, also without the
// /v1 prefix. Vectors are embed.Local vectors of the requested size, so they
// equal what the local embedder gives for the same dims.
type OpenAIServer struct {
	opts OpenAIOptions
	mux  *http.ServeMux

	mu       sync.Mutex
	rng      *rand.Rand
	reqLim   *rate.Limiter // nil = unlimited
	tokLim   *rate.Limiter
	status   map[int]int64
	inputs   int64
	tokens   int64
	requests atomic.Int64
}

// oaModels are the embedding models the twin knows, with native dims.
var oaModels = []struct {
	id      string
	dims    int
	created int64
}{
	{"text-embedding-3-small", 1536, 1705948997},
	{"text-embedding-3-large", 3072, 1705953180},
	{"text-embedding-ada-002", 1536, 1671217299},
}

// Limits of the real endpoint (external-apis.md §2.3).
const (
	oaMaxInputs     = 2048
	oaMaxInputTok   = 8192
	oaMaxRequestTok = 300000
	oaOrg           = "org-mock"
)

// NewOpenAIServer returns the twin.
func NewOpenAIServer(opts OpenAIOptions) *OpenAIServer {
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 20 * time.Millisecond
	}
	if opts.Dims <= 0 {
		opts.Dims = 1536
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seed := uint64(opts.Seed)
	s := &OpenAIServer{
		opts:   opts,
		rng:    rand.New(rand.NewPCG(seed, seed^0x6f70656e6169)),
		status: map[int]int64{},
	}
	if opts.RPM > 0 {
		s.reqLim = rate.NewLimiter(rate.Limit(float64(opts.RPM)/60), opts.RPM)
	}
	if opts.TPM > 0 {
		s.tokLim = rate.NewLimiter(rate.Limit(float64(opts.TPM)/60), opts.TPM)
	}
	// Buckets start full at the twin's "now".
	now := opts.Now()
	if s.reqLim != nil {
		s.reqLim.AllowN(now, 0)
	}
	if s.tokLim != nil {
		s.tokLim.AllowN(now, 0)
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/v1", ""} {
		mux.HandleFunc("POST "+p+"/embeddings", s.embeddings)
		mux.HandleFunc("GET "+p+"/models", s.models)
		mux.HandleFunc("GET "+p+"/models/{id}", s.model)
	}
	// Not a route of the real service: the twin's own health check for orchestrators.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.headers(w)
		oaError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", nil, nil)
	})
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *OpenAIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	rw := &statusWriter{ResponseWriter: w, record: func(code int) {
		s.mu.Lock()
		s.status[code]++
		s.mu.Unlock()
	}}
	defer func() {
		if !rw.wrote { // nothing written (the client went away)
			rw.count(http.StatusOK)
		}
	}()
	s.mu.Lock()
	id := fmt.Sprintf("req_%016x%08x", s.rng.Uint64(), s.rng.Uint32())
	s.mu.Unlock()
	rw.Header().Set("x-request-id", id)
	s.mux.ServeHTTP(rw, r)
}

// Requests returns the number of HTTP requests received (any path).
func (s *OpenAIServer) Requests() int64 { return s.requests.Load() }

// StatusCount returns how many responses had the given HTTP status.
func (s *OpenAIServer) StatusCount(code int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[code]
}

// Stats returns a snapshot of the counters.
func (s *OpenAIServer) Stats() OpenAIServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := OpenAIServerStats{Requests: s.requests.Load(), Status: map[int]int64{}, Inputs: s.inputs, Tokens: s.tokens}
	for k, v := range s.status {
		st.Status[k] = v
	}
	return st
}

// statusWriter counts each response's status (once) before it goes on the wire,
// so a client that has its answer sees it counted. The twins share it.
type statusWriter struct {
	http.ResponseWriter
	record func(code int)
	wrote  bool
}

func (w *statusWriter) count(code int) {
	w.wrote = true
	w.record(code)
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.count(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// api runs the checks every API route shares: latency, then auth. It reports
// whether the handler should go on.
func (s *OpenAIServer) api(w http.ResponseWriter, r *http.Request) bool {
	if d := s.latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	s.headers(w)
	if s.opts.APIKey == "" {
		return true
	}
	got, ok := "", false
	const pre = "bearer "
	if a := r.Header.Get("Authorization"); len(a) >= len(pre) && strings.EqualFold(a[:len(pre)], pre) {
		got, ok = strings.TrimSpace(a[len(pre):]), true
	} else if k := r.Header.Get("api-key"); k != "" {
		got, ok = strings.TrimSpace(k), true
	}
	if !ok || got == "" {
		oaError(w, http.StatusUnauthorized, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", "invalid_request_error", nil, nil)
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) != 1 {
		oaError(w, http.StatusUnauthorized, "Incorrect API key provided: "+oaMaskKey(got)+". You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", nil, "invalid_api_key")
		return false
	}
	return true
}

func (s *OpenAIServer) latency() time.Duration {
	d := s.opts.Latency
	if s.opts.LatencyJitter > 0 {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(s.opts.LatencyJitter) + 1))
		s.mu.Unlock()
	}
	return d
}

// headers sets the x-ratelimit-* headers from the current buckets.
func (s *OpenAIServer) headers(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headersLocked(w.Header(), s.opts.Now())
}

func (s *OpenAIServer) headersLocked(h http.Header, now time.Time) {
	set := func(kind string, lim *rate.Limiter) {
		if lim == nil {
			return
		}
		have := lim.TokensAt(now)
		h.Set("x-ratelimit-limit-"+kind, strconv.Itoa(lim.Burst()))
		h.Set("x-ratelimit-remaining-"+kind, strconv.Itoa(max(0, int(math.Floor(have)))))
		// Time until the bucket is full again ("resets to its initial state").
		h.Set("x-ratelimit-reset-"+kind, oaDuration(oaWait(float64(lim.Burst())-have, lim.Limit())).String())
	}
	set("requests", s.reqLim)
	set("tokens", s.tokLim)
}

// oaWait is how long a bucket refilling at r per second takes to gain n.
func oaWait(n float64, r rate.Limit) time.Duration {
	if n <= 0 || r <= 0 {
		return 0
	}
	return time.Duration(n / float64(r) * float64(time.Second))
}

// oaDuration formats a wait the way the API does: "20ms", "1.5s", "6m0s".
func oaDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// oaMaskKey masks a key as the real API does: a short prefix, stars, the last 4.
func oaMaskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// oaError writes {"error":{"message","type","param","code"}}; param and code
// are null when nil.
func oaError(w http.ResponseWriter, code int, msg, typ string, param, errCode any) {
	oaJSON(w, code, map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": param, "code": errCode,
	}})
}

func oaInvalid(w http.ResponseWriter, msg string, param, code any) {
	oaError(w, http.StatusBadRequest, msg, "invalid_request_error", param, code)
}

func oaJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":{"message":"mock: encoding failed","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *OpenAIServer) models(w http.ResponseWriter, r *http.Request) {
	if !s.api(w, r) {
		return
	}
	data := make([]map[string]any, 0, len(oaModels))
	for _, m := range oaModels {
		data = append(data, map[string]any{"id": m.id, "object": "model", "created": m.created, "owned_by": "system"})
	}
	oaJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *OpenAIServer) model(w http.ResponseWriter, r *http.Request) {
	if !s.api(w, r) {
		return
	}
	id := r.PathValue("id")
	for _, m := range oaModels {
		if m.id == id {
			oaJSON(w, http.StatusOK, map[string]any{"id": m.id, "object": "model", "created": m.created, "owned_by": "system"})
			return
		}
	}
	oaError(w, http.StatusNotFound, fmt.Sprintf("The model '%s' does not exist", id), "invalid_request_error", "model", "model_not_found")
}

// injected draws the status of an injected error for this request (0 = none).
func (s *OpenAIServer) injected() int {
	rates := map[int]float64{}
	for c, p := range s.opts.ErrorRates {
		rates[c] += p
	}
	if s.opts.RateLimit429 > 0 {
		rates[http.StatusTooManyRequests] += s.opts.RateLimit429
	}
	if len(rates) == 0 {
		return 0
	}
	codes := make([]int, 0, len(rates))
	for c := range rates {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	acc := 0.0
	for _, c := range codes {
		acc += rates[c]
		if x < acc {
			return c
		}
	}
	return 0
}

// writeInjected answers with the real body for status.
func (s *OpenAIServer) writeInjected(w http.ResponseWriter, status int, model string) {
	switch status {
	case http.StatusTooManyRequests:
		s.rateLimited(w, model, "requests", s.opts.RetryAfter, max(s.opts.RPM, 3000), max(s.opts.RPM, 3000), 1)
	case http.StatusBadRequest:
		oaInvalid(w, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", nil, nil)
	case http.StatusUnauthorized:
		oaError(w, status, "Incorrect API key provided: sk-mock***********abcd. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", nil, "invalid_api_key")
	case http.StatusForbidden:
		oaError(w, status, "Country, region, or territory not supported", "request_forbidden", nil, "unsupported_country_region_territory")
	case http.StatusNotFound:
		oaError(w, status, fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model), "invalid_request_error", nil, "model_not_found")
	case http.StatusBadGateway:
		oaJSON(w, status, map[string]any{"error": map[string]any{"code": 502, "message": "Bad gateway.", "param": nil, "type": "cf_bad_gateway"}})
	case http.StatusServiceUnavailable:
		s.retryAfter(w, s.opts.RetryAfter)
		oaError(w, status, "The server is currently overloaded with other requests. You can retry your request, or contact us through our help center at help.openai.com if the error persists.", "server_error", nil, "server_is_overloaded")
	case http.StatusGatewayTimeout:
		oaJSON(w, status, map[string]any{"error": map[string]any{"code": 504, "message": "Gateway timeout.", "param": nil, "type": "cf_gateway_timeout"}})
	default:
		if status >= 500 {
			oaError(w, status, "The server had an error while processing your request. Sorry about that!", "server_error", nil, nil)
			return
		}
		oaError(w, status, http.StatusText(status), "invalid_request_error", nil, nil)
	}
}

func (s *OpenAIServer) retryAfter(w http.ResponseWriter, d time.Duration) {
	if s.opts.NoRetryAfterHeaders {
		return
	}
	d = oaDuration(d)
	w.Header().Set("retry-after-ms", strconv.FormatInt(max(1, d.Milliseconds()), 10))
	w.Header().Set("retry-after", strconv.Itoa(int(math.Ceil(d.Seconds()))))
}

// rateLimited writes the real 429 rate_limit_exceeded answer.
func (s *OpenAIServer) rateLimited(w http.ResponseWriter, model, kind string, wait time.Duration, limit, used, requested int) {
	if model == "" {
		model = "text-embedding-3-small"
	}
	unit := "requests per min (RPM)"
	if kind == "tokens" {
		unit = "tokens per min (TPM)"
	}
	wait = oaDuration(wait)
	s.retryAfter(w, wait)
	oaError(w, http.StatusTooManyRequests, fmt.Sprintf(
		"Rate limit reached for %s in organization %s on %s: Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
		model, oaOrg, unit, limit, used, requested, wait), kind, nil, "rate_limit_exceeded")
}

type oaEmbReq struct {
	Model          *string         `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat *string         `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           *string         `json:"user"`
}

func (s *OpenAIServer) embeddings(w http.ResponseWriter, r *http.Request) {
	if !s.api(w, r) {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		oaInvalid(w, "We could not parse the JSON body of your request.", nil, nil)
		return
	}
	var req oaEmbReq
	if err := json.Unmarshal(raw, &req); err != nil {
		oaInvalid(w, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", nil, nil)
		return
	}
	model := ""
	if req.Model != nil {
		model = *req.Model
	}
	if s.opts.InsufficientQuota {
		oaError(w, http.StatusTooManyRequests, "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "insufficient_quota", nil, "insufficient_quota")
		return
	}
	if status := s.injected(); status != 0 {
		s.writeInjected(w, status, model)
		return
	}

	if model == "" {
		oaInvalid(w, "you must provide a model parameter", nil, nil)
		return
	}
	native, known := 0, false
	for _, m := range oaModels {
		if m.id == model {
			native, known = m.dims, true
		}
	}
	if !known {
		native = s.opts.Dims
	}
	format := "float" // the raw API's default (the Node/Python SDKs send base64)
	if req.EncodingFormat != nil {
		format = *req.EncodingFormat
	}
	if format != "float" && format != "base64" {
		oaInvalid(w, fmt.Sprintf("Invalid value for 'encoding_format': expected one of 'float' or 'base64', but got %q instead.", format), "encoding_format", "invalid_value")
		return
	}
	dims := native
	if req.Dimensions != nil {
		if known && !strings.HasPrefix(model, "text-embedding-3") {
			oaInvalid(w, "This model does not support specifying dimensions.", nil, nil)
			return
		}
		d := *req.Dimensions
		if d < 1 {
			oaInvalid(w, fmt.Sprintf("Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got %d instead.", d), "dimensions", "integer_below_min_value")
			return
		}
		if known && d > native {
			oaInvalid(w, fmt.Sprintf("This model does not support specifying dimensions larger than %d.", native), "dimensions", nil)
			return
		}
		if d < 8 || d > 16000 {
			oaInvalid(w, fmt.Sprintf("mock: dimensions %d is outside the twin's range 8..16000", d), "dimensions", "invalid_value")
			return
		}
		dims = d
	}

	inputs, counts, msg := oaParseInput(req.Input)
	if msg != "" {
		oaInvalid(w, msg, nil, nil)
		return
	}
	if len(inputs) > oaMaxInputs {
		oaInvalid(w, fmt.Sprintf("Invalid 'input': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", oaMaxInputs, len(inputs)), "input", "array_above_max_length")
		return
	}
	total := 0
	for i, in := range inputs {
		n := counts[i]
		if n < 0 {
			n = chunk.CountTokens(in)
		}
		if n > oaMaxInputTok {
			oaInvalid(w, fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; 0 for the completion). Please reduce your prompt; or completion length.", oaMaxInputTok, n, n), nil, nil)
			return
		}
		total += n
	}
	if total > oaMaxRequestTok {
		oaError(w, http.StatusBadRequest, fmt.Sprintf("Requested %d tokens, max %d tokens per request", total, oaMaxRequestTok), "max_tokens_per_request", nil, "max_tokens_per_request")
		return
	}
	if !s.admit(w, model, total) {
		return
	}

	loc, err := embed.NewLocal(dims)
	if err != nil {
		oaError(w, http.StatusInternalServerError, "mock: "+err.Error(), "server_error", nil, nil)
		return
	}
	vecs, err := loc.Embed(r.Context(), inputs)
	if err != nil {
		return // client went away
	}
	data := make([]map[string]any, len(vecs))
	for i, v := range vecs {
		var e any = v
		if format == "base64" {
			b := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			e = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": e}
	}
	s.mu.Lock()
	s.inputs += int64(len(inputs))
	s.tokens += int64(total)
	s.mu.Unlock()
	w.Header().Set("openai-model", model)
	oaJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  model,
		"usage":  map[string]any{"prompt_tokens": total, "total_tokens": total},
	})
}

// admit takes one request and tokens from the buckets, or answers 429.
func (s *OpenAIServer) admit(w http.ResponseWriter, model string, tokens int) bool {
	if s.reqLim == nil && s.tokLim == nil {
		return true
	}
	s.mu.Lock()
	now := s.opts.Now()
	var (
		kind                         string
		wait                         time.Duration
		limit, used, requested       int
		tooLarge                     bool
		reqHave, tokHave             float64
		reqOK, tokOK                 = true, true
		reqLim, tokLim               = s.reqLim, s.tokLim
		reqLimitValue, tokLimitValue int
	)
	if reqLim != nil {
		reqHave = reqLim.TokensAt(now)
		reqOK = reqHave >= 1
		reqLimitValue = reqLim.Burst()
	}
	if tokLim != nil {
		tokHave = tokLim.TokensAt(now)
		tokOK = tokHave >= float64(tokens)
		tokLimitValue = tokLim.Burst()
		tooLarge = tokens > tokLimitValue
	}
	switch {
	case tooLarge:
	case !reqOK:
		kind, limit, requested = "requests", reqLimitValue, 1
		used = reqLimitValue - max(0, int(math.Floor(reqHave)))
		wait = oaWait(1-reqHave, reqLim.Limit())
	case !tokOK:
		kind, limit, requested = "tokens", tokLimitValue, tokens
		used = tokLimitValue - max(0, int(math.Floor(tokHave)))
		wait = oaWait(float64(tokens)-tokHave, tokLim.Limit())
	default:
		if reqLim != nil {
			reqLim.AllowN(now, 1)
		}
		if tokLim != nil {
			tokLim.AllowN(now, tokens)
		}
	}
	s.headersLocked(w.Header(), now)
	s.mu.Unlock()
	switch {
	case tooLarge:
		if model == "" {
			model = "text-embedding-3-small"
		}
		oaError(w, http.StatusTooManyRequests, fmt.Sprintf(
			"Request too large for %s in organization %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, oaOrg, tokLimitValue, tokens), "tokens", nil, "rate_limit_exceeded")
		return false
	case kind != "":
		s.rateLimited(w, model, kind, wait, limit, used, requested)
		return false
	}
	return true
}

var (
	oaCodecOnce sync.Once
	oaCodec     tokenizer.Codec
	oaCodecErr  error
)

// oaDecodeTokens turns cl100k token ids back into text.
func oaDecodeTokens(ids []int) (string, error) {
	oaCodecOnce.Do(func() { oaCodec, oaCodecErr = tokenizer.Get(tokenizer.Cl100kBase) })
	if oaCodecErr != nil {
		return "", oaCodecErr
	}
	u := make([]uint, len(ids))
	for i, id := range ids {
		if id < 0 || id > 100276 {
			return "", fmt.Errorf("token id %d is out of range", id)
		}
		u[i] = uint(id)
	}
	return oaCodec.Decode(u)
}

// oaParseInput accepts the four shapes of `input`: a string, an array of
// strings, an array of token ids, an array of token-id arrays. counts[i] is
// the token count of a token-id input, -1 for text (counted by the caller).
func oaParseInput(raw json.RawMessage) (inputs []string, counts []int, msg string) {
	const invalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, "'input' is a required property"
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil, invalid
		}
		return []string{one}, []int{-1}, ""
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		if len(many) == 0 {
			return nil, nil, invalid
		}
		counts = make([]int, len(many))
		for i, s := range many {
			if s == "" {
				return nil, nil, invalid
			}
			counts[i] = -1
		}
		return many, counts, ""
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		ids2 := [][]int{ids}
		return oaTokenInputs(ids2, invalid)
	}
	var idss [][]int
	if json.Unmarshal(raw, &idss) == nil {
		return oaTokenInputs(idss, invalid)
	}
	return nil, nil, invalid
}

func oaTokenInputs(idss [][]int, invalid string) ([]string, []int, string) {
	if len(idss) == 0 {
		return nil, nil, invalid
	}
	inputs := make([]string, len(idss))
	counts := make([]int, len(idss))
	for i, ids := range idss {
		if len(ids) == 0 {
			return nil, nil, invalid
		}
		if len(ids) > oaMaxInputTok {
			counts[i] = len(ids) // rejected by the caller; skip decoding
			continue
		}
		s, err := oaDecodeTokens(ids)
		if err != nil {
			return nil, nil, invalid
		}
		inputs[i], counts[i] = s, len(ids)
	}
	return inputs, counts, ""
}
