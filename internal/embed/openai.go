package embed

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/fault"
)

// Limits of the OpenAI embeddings endpoint (external-apis.md §2.3).
const (
	OpenAIMaxBatchInputs = 2048    // inputs per request
	OpenAIMaxBatchTokens = 300_000 // tokens summed over one request
	OpenAIMaxInputTokens = 8192    // tokens per input
)

// Defaults of NewOpenAI.
const (
	DefaultOpenAIBaseURL = "https://api.openai.com/v1"
	DefaultOpenAIModel   = "text-embedding-3-small"
)

// openAIModelDims are the native dimensions of the OpenAI embedding models.
var openAIModelDims = map[string]int{
	"text-embedding-3-small": 1536,
	"text-embedding-3-large": 3072,
	"text-embedding-ada-002": 1536,
}

// OpenAIOptions configure an OpenAI-compatible embeddings client. Only the
// zero values have defaults; see each field.
type OpenAIOptions struct {
	// BaseURL is the API root the client appends "/embeddings" to (a query
	// string is kept, so an Azure deployment URL with ?api-version= works).
	// "" = https://api.openai.com/v1. Ollama: http://localhost:11434/v1;
	// vLLM and TEI: http://host:port/v1.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>" (or in APIKeyHeader).
	// "" sends no credentials (local servers). It never appears in errors.
	APIKey string
	// APIKeyHeader, when set, carries the bare key in that header instead of
	// Authorization (Azure OpenAI: "api-key").
	APIKeyHeader string
	// Headers are added to every request (OpenAI-Organization, OpenAI-Project…).
	Headers map[string]string

	// Model is the model (or Azure deployment) name; "" = text-embedding-3-small.
	Model string
	// Dims is the vector size. For text-embedding-3-* it is sent as
	// `dimensions` (shortening the vectors) and must be ≤ the native size;
	// 0 = the native size (1536 small, 3072 large). ada-002 only has 1536.
	// Other models (Ollama, vLLM, TEI) need Dims set: it is not sent, only
	// checked against the vectors that come back.
	Dims int
	// Encoding is the wire format asked for: "base64" (default; 4 bytes per
	// dimension, what the official Node and Python SDKs send) or "float".
	// Either answer is decoded whatever was asked, for servers that ignore it.
	Encoding string

	// MaxBatchInputs caps the inputs per request (0 or > 2048 = 2048).
	MaxBatchInputs int
	// MaxBatchTokens caps the cl100k tokens per request (0 or > 300000 =
	// 300000; also at most TPM when TPM is set, or no batch could ever pass).
	MaxBatchTokens int
	// Concurrency is how many requests one Embed call keeps in flight
	// (0 = 1). Limits and the breaker are shared by all calls anyway.
	Concurrency int

	// RPM and TPM are client-side requests and tokens per minute (0 = no
	// limit of our own; the server's x-ratelimit-* headers are still obeyed).
	RPM, TPM int

	// MaxRetries is the number of retries per request after the first
	// attempt (0 = 6; negative = none).
	MaxRetries int
	// BackoffBase and BackoffMax shape the exponential backoff used when the
	// server gives no hint: min(base·2ⁿ, max) minus up to 25 % jitter
	// (0 = 500 ms and 30 s). A 429 "slow_down" waits twice as long.
	BackoffBase, BackoffMax time.Duration
	// MaxRetryDelay is the longest server-requested wait the client sleeps
	// through; a longer one ends the call with a transient RATE_LIMITED error
	// (so the job queue retries later instead of holding a worker). 0 = 2 min.
	MaxRetryDelay time.Duration
	// RequestTimeout bounds each HTTP attempt; a timeout is retried
	// (0 = 2 min).
	RequestTimeout time.Duration

	// BreakerFailures is the number of consecutive failed batches (after
	// their retries) that opens the circuit breaker (0 = 5). BreakerTimeout is
	// how long it stays open before letting one probe through (0 = 30 s).
	BreakerFailures int
	BreakerTimeout  time.Duration

	// HTTPClient sends the requests (nil = a new client without a global
	// timeout; RequestTimeout applies per attempt).
	HTTPClient *http.Client
	// Now and Sleep replace the clock for the limiter and the retry waits in
	// tests (nil = time.Now and a timer that stops on ctx). Give both: a fake
	// Sleep must advance the fake Now. The breaker's open timeout uses the
	// real clock (gobreaker has no clock hook).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// Prices are USD per 1M tokens by model, overlaid on
	// DefaultOpenAIPrices (set the price of a deployment or local model here;
	// an unknown model costs 0).
	Prices map[string]float64
	// OnUsage is called after each successful request, from the goroutine
	// that made it (keep it fast; it may be called concurrently).
	OnUsage func(Usage)
	// Logger, when set, gets the circuit breaker's state changes.
	Logger *slog.Logger
}

// OpenAIStats are cumulative counters of one client.
type OpenAIStats struct {
	Requests        int64   // HTTP attempts sent
	Retries         int64   // attempts that were retries
	RateLimited     int64   // 429 answers (rate limits and quota)
	Failures        int64   // batches that failed after their retries
	BreakerRejected int64   // batches refused by the open breaker
	Batches         int64   // batches embedded
	Tokens          int64   // prompt tokens billed
	CostUSD         float64 // Tokens priced
}

// OpenAI is an Embedder backed by an OpenAI-compatible /embeddings endpoint.
// It is safe for concurrent use; share one value per process so that its
// rate limiter and circuit breaker see all the traffic.
//
// Each batch is one request body, sent as is on every retry (a 429 never
// splits it). Retried: 429 rate limits (rate_limit_exceeded, slow_down…),
// 5xx, 408, 409, timeouts and connection errors, waiting what the server asks
// (retry-after-ms, retry-after, "Please try again in …", then for 429s the
// x-ratelimit-reset-* of the exhausted limit), else exponential backoff with
// jitter. Errors are *fault.Error:
//
//	permanent: EMPTY_INPUT, INPUT_TOO_LONG (before sending), BAD_REQUEST (400,
//	413, 422), UNAUTHORIZED (401), FORBIDDEN (403), NOT_FOUND (404),
//	CLIENT_ERROR (other 4xx), INSUFFICIENT_QUOTA (429 insufficient_quota and
//	billing codes), REQUEST_TOO_LARGE (429 "Request too large": one request
//	over the whole TPM), DIMS_MISMATCH (vectors of another size)
//	transient: RATE_LIMITED, SERVER_ERROR, TIMEOUT, NETWORK, BAD_RESPONSE
//	(after the retries), CIRCUIT_OPEN, CANCELED
//
// The circuit breaker counts a batch as failed only when it fails after its
// retries (400s and the caller's cancellation do not count). insufficient_quota
// opens it at once: every call would fail until someone pays, and each would
// otherwise be retried by the job queue. While open, calls fail fast with
// transient CIRCUIT_OPEN; after BreakerTimeout one probe is let through.
type OpenAI struct {
	opts      OpenAIOptions // with defaults filled in
	url       string
	dims      int
	sendDims  bool
	maxInputs int
	maxTokens int
	prices    map[string]float64
	now       func() time.Time
	sleep     func(context.Context, time.Duration) error
	hc        *http.Client
	lim       *limiter
	cb        *gobreaker.CircuitBreaker[*batchResult]
	tripNow   atomic.Bool // open the breaker on the next failure (quota)

	mu    sync.Mutex
	stats OpenAIStats
}

// NewOpenAI checks the options and returns a client. It makes no request.
func NewOpenAI(opts OpenAIOptions) (*OpenAI, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultOpenAIBaseURL
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("embed: OpenAI base URL %q is not an http(s) URL", opts.BaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/embeddings"
	u.RawPath = ""
	if opts.Model == "" {
		opts.Model = DefaultOpenAIModel
	}
	native, known := openAIModelDims[opts.Model]
	dims := opts.Dims
	sendDims := false
	switch {
	case dims < 0:
		return nil, fmt.Errorf("embed: dims %d is negative", dims)
	case strings.HasPrefix(opts.Model, "text-embedding-3"):
		if dims == 0 {
			dims = native
		}
		if known && dims > native {
			return nil, fmt.Errorf("embed: %s has at most %d dimensions, not %d", opts.Model, native, dims)
		}
		sendDims = opts.Dims > 0
	case known:
		if dims == 0 {
			dims = native
		}
		if dims != native {
			return nil, fmt.Errorf("embed: %s always returns %d dimensions (it takes no `dimensions`), not %d", opts.Model, native, dims)
		}
	case dims == 0:
		return nil, fmt.Errorf("embed: set Dims for model %q (its vector size is not known here)", opts.Model)
	}
	switch opts.Encoding {
	case "":
		opts.Encoding = "base64"
	case "base64", "float":
	default:
		return nil, fmt.Errorf("embed: encoding %q is not base64 or float", opts.Encoding)
	}
	maxInputs := opts.MaxBatchInputs
	if maxInputs <= 0 || maxInputs > OpenAIMaxBatchInputs {
		maxInputs = OpenAIMaxBatchInputs
	}
	maxTokens := opts.MaxBatchTokens
	if maxTokens <= 0 || maxTokens > OpenAIMaxBatchTokens {
		maxTokens = OpenAIMaxBatchTokens
	}
	if opts.TPM > 0 && maxTokens > opts.TPM {
		maxTokens = opts.TPM
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = 6
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.MaxRetryDelay <= 0 {
		opts.MaxRetryDelay = 2 * time.Minute
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 2 * time.Minute
	}
	if opts.BreakerFailures <= 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerTimeout <= 0 {
		opts.BreakerTimeout = 30 * time.Second
	}
	o := &OpenAI{
		url:       u.String(),
		dims:      dims,
		sendDims:  sendDims,
		maxInputs: maxInputs,
		maxTokens: maxTokens,
		prices:    mergePrices(opts.Prices),
		now:       opts.Now,
		sleep:     opts.Sleep,
		hc:        opts.HTTPClient,
		lim:       newLimiter(opts.RPM, opts.TPM),
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	if o.hc == nil {
		o.hc = &http.Client{}
	}
	failures := uint32(opts.BreakerFailures)
	o.cb = gobreaker.NewCircuitBreaker[*batchResult](gobreaker.Settings{
		Name:    "openai-embeddings",
		Timeout: opts.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return o.tripNow.Swap(false) || c.ConsecutiveFailures >= failures
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				o.tripNow.Store(false)
			}
			if opts.Logger != nil {
				level := slog.LevelInfo
				if to == gobreaker.StateOpen {
					level = slog.LevelWarn
				}
				opts.Logger.Log(context.Background(), level, "embeddings circuit breaker "+to.String(),
					"from", from.String(), "open_for", opts.BreakerTimeout)
			}
		},
		IsSuccessful: breakerSuccess,
		IsExcluded:   breakerExcluded,
	})
	o.opts = opts
	return o, nil
}

// Model returns the model name.
func (o *OpenAI) Model() string { return o.opts.Model }

// Version is "1": vectors for the same text, model and Dims do not depend on
// this client (base64 and float decode to the same float32 values). Bump it
// if the client ever changes them (normalizing, truncating…).
func (o *OpenAI) Version() string { return "1" }

// Dims returns the configured vector size (or the model's native size).
func (o *OpenAI) Dims() int { return o.dims }

// BreakerState is "closed", "half-open" or "open".
func (o *OpenAI) BreakerState() string { return o.cb.State().String() }

// Service names the billed service for usage and budgets.
func (o *OpenAI) Service() string { return "openai" }

// Stats returns a snapshot of the counters.
func (o *OpenAI) Stats() OpenAIStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

func (o *OpenAI) count(f func(s *OpenAIStats)) {
	o.mu.Lock()
	f(&o.stats)
	o.mu.Unlock()
}

type span struct{ lo, hi, tokens int }

// Embed embeds texts, in order. It splits them into requests of at most
// MaxBatchInputs inputs and MaxBatchTokens tokens. An empty text or one over
// 8192 tokens fails the whole call (permanent EMPTY_INPUT / INPUT_TOO_LONG,
// naming the first such index) before anything is sent. Errors are
// *fault.Error.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	var spans []span
	cur := span{}
	for i, t := range texts {
		if t == "" {
			return nil, fault.Permanentf("EMPTY_INPUT", "input %d is empty; the embeddings API rejects empty strings", i)
		}
		n := chunk.CountTokens(t)
		if n > OpenAIMaxInputTokens {
			return nil, fault.Permanentf("INPUT_TOO_LONG", "input %d has %d tokens; the embeddings API takes at most %d per input", i, n, OpenAIMaxInputTokens)
		}
		if cur.hi > cur.lo && (cur.hi-cur.lo >= o.maxInputs || cur.tokens+n > o.maxTokens) {
			spans = append(spans, cur)
			cur = span{lo: i, hi: i}
		}
		cur.hi = i + 1
		cur.tokens += n
	}
	spans = append(spans, cur)

	if o.opts.Concurrency == 1 || len(spans) == 1 {
		for _, s := range spans {
			if err := o.embedSpan(ctx, texts, s, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		sem      = make(chan struct{}, o.opts.Concurrency)
	)
	for _, s := range spans {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := o.embedSpan(ctx, texts, s, out); err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fault.Classify(err)
	}
	return out, nil
}

func (o *OpenAI) embedSpan(ctx context.Context, texts []string, s span, out [][]float32) error {
	vecs, err := o.embedBatch(ctx, texts[s.lo:s.hi], s.tokens)
	if err != nil {
		return err
	}
	copy(out[s.lo:s.hi], vecs)
	return nil
}

type embeddingsRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
	Dimensions     int      `json:"dimensions,omitempty"`
}

type batchResult struct {
	vecs     [][]float32
	tokens   int // prompt tokens billed
	total    int
	attempts int
}

// embedBatch sends one request, with retries, through the breaker.
func (o *OpenAI) embedBatch(ctx context.Context, inputs []string, tokens int) ([][]float32, error) {
	req := embeddingsRequest{Model: o.opts.Model, Input: inputs, EncodingFormat: o.opts.Encoding}
	if o.sendDims {
		req.Dimensions = o.dims
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, "BAD_REQUEST", err, "cannot encode the embeddings request")
	}
	res, err := o.cb.Execute(func() (*batchResult, error) {
		return o.send(ctx, body, len(inputs), tokens)
	})
	if err != nil {
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			o.count(func(s *OpenAIStats) { s.BreakerRejected++ })
			return nil, fault.Wrap(fault.Transient, "CIRCUIT_OPEN", err,
				"the embeddings API failed repeatedly; calls are paused for up to %s", o.opts.BreakerTimeout)
		}
		var ce *ctxDoneError
		if errors.As(err, &ce) {
			return nil, ce.err
		}
		var we *WaitError
		if errors.As(err, &we) {
			return nil, err
		}
		o.count(func(s *OpenAIStats) { s.Failures++ })
		return nil, err
	}
	cost := OpenAICost(o.opts.Model, res.tokens, o.prices)
	o.count(func(s *OpenAIStats) {
		s.Batches++
		s.Tokens += int64(res.tokens)
		s.CostUSD += cost
	})
	u := Usage{Model: o.opts.Model, Inputs: len(inputs), PromptTokens: res.tokens, TotalTokens: res.total,
		Attempts: res.attempts, CostUSD: cost}
	if o.opts.OnUsage != nil {
		o.opts.OnUsage(u)
	}
	reportUsage(ctx, u)
	return res.vecs, nil
}

// WaitError is returned when the client's own rate limiter would send the
// request only after the caller's context deadline: nothing was sent and the
// slot was given back. Call again after Wait (a job queue can snooze that long
// instead of holding a worker or counting a failure).
type WaitError struct{ Wait time.Duration }

func (e *WaitError) Error() string {
	return fmt.Sprintf("RATE_LIMIT_QUEUE: the client-side rate limit allows this request in %s, after the deadline", e.Wait.Round(time.Millisecond))
}

// ctxDoneError marks a call that ended because the caller's context did; the
// breaker ignores it. It never leaves the package.
type ctxDoneError struct{ err *fault.Error }

func (e *ctxDoneError) Error() string { return e.err.Error() }
func (e *ctxDoneError) Unwrap() error { return e.err }

func ctxDone(ctx context.Context) *ctxDoneError {
	return &ctxDoneError{err: fault.Classify(ctx.Err())}
}

func breakerExcluded(err error) bool {
	var ce *ctxDoneError
	var we *WaitError
	return errors.As(err, &ce) || errors.As(err, &we)
}

// breakerSuccess: a rejected request (400) says nothing about the service's
// health, so it does not count as a failure.
func breakerSuccess(err error) bool {
	if err == nil {
		return true
	}
	var fe *fault.Error
	return errors.As(err, &fe) && fe.Code == "BAD_REQUEST"
}

// send makes up to 1+MaxRetries attempts with the same body.
func (o *OpenAI) send(ctx context.Context, body []byte, n, tokens int) (*batchResult, error) {
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil, ctxDone(ctx)
		}
		now := o.now()
		at := o.lim.reserve(now, tokens)
		if d := at.Sub(now); d > 0 {
			if dl, ok := ctx.Deadline(); ok && at.After(dl) {
				// The caller cannot wait that long: give the slot back, say how long.
				o.lim.cancel(at, tokens)
				return nil, &WaitError{Wait: d}
			}
			if err := o.sleep(ctx, d); err != nil {
				o.lim.cancel(at, tokens)
				return nil, ctxDone(ctx)
			}
		}
		if attempt > 0 {
			o.count(func(s *OpenAIStats) { s.Retries++ })
		}
		res, ae := o.attempt(ctx, body, n)
		if ae == nil {
			if res.tokens <= 0 {
				res.tokens, res.total = tokens, tokens // the server reported no usage
			}
			res.attempts = attempt + 1
			return res, nil
		}
		if ae.ctxDone {
			return nil, ctxDone(ctx)
		}
		if ae.quota {
			o.tripNow.Store(true)
		}
		if !ae.retry {
			return nil, ae.err
		}
		if attempt >= o.opts.MaxRetries {
			ae.err.Message += fmt.Sprintf(" (gave up after %d attempts)", attempt+1)
			return nil, ae.err
		}
		wait := ae.wait
		if wait <= 0 {
			wait = o.backoff(attempt, ae.slowDown)
		} else if wait > o.opts.MaxRetryDelay {
			ae.err.Code = "RATE_LIMITED"
			ae.err.Message += fmt.Sprintf(" (the server asked to wait %s, more than MaxRetryDelay %s)", wait, o.opts.MaxRetryDelay)
			return nil, ae.err
		}
		if ae.rateLimited {
			o.lim.pause(o.now().Add(wait))
		}
		if err := o.sleep(ctx, wait); err != nil {
			return nil, ctxDone(ctx)
		}
	}
}

// backoff is min(base·2ⁿ, max) minus up to 25 % jitter, doubled for slow_down.
func (o *OpenAI) backoff(attempt int, slow bool) time.Duration {
	d := o.opts.BackoffBase << min(attempt, 30)
	if d <= 0 || d > o.opts.BackoffMax {
		d = o.opts.BackoffMax
	}
	if slow {
		d *= 2
	}
	return time.Duration(float64(d) * (1 - 0.25*randFloat()))
}

// attemptError is the outcome of one failed HTTP attempt.
type attemptError struct {
	err         *fault.Error
	retry       bool
	wait        time.Duration // the server's hint; 0 = none
	rateLimited bool          // a 429 rate limit: pause everyone
	slowDown    bool          // 429 slow_down: back off harder
	quota       bool          // insufficient_quota: open the breaker now
	ctxDone     bool          // the caller's context ended
}

func (o *OpenAI) attempt(ctx context.Context, body []byte, n int) (*batchResult, *attemptError) {
	actx, cancel := context.WithTimeout(ctx, o.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return nil, &attemptError{err: fault.Wrap(fault.Permanent, "BAD_REQUEST", o.redactErr(err), "cannot build the embeddings request")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range o.opts.Headers {
		req.Header.Set(k, v)
	}
	if o.opts.APIKey != "" {
		if o.opts.APIKeyHeader != "" {
			req.Header.Set(o.opts.APIKeyHeader, o.opts.APIKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+o.opts.APIKey)
		}
	}
	o.count(func(s *OpenAIStats) { s.Requests++ })
	resp, err := o.hc.Do(req)
	if err != nil {
		return nil, o.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, o.transportError(ctx, actx, err)
	}
	o.lim.observe(o.now(), resp.Header)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return o.decode(data, n)
	}
	return nil, o.httpError(resp.StatusCode, resp.Header, data)
}

func (o *OpenAI) transportError(ctx, actx context.Context, err error) *attemptError {
	if ctx.Err() != nil {
		return &attemptError{ctxDone: true}
	}
	if actx.Err() != nil {
		return &attemptError{retry: true, err: fault.Wrap(fault.Transient, "TIMEOUT", o.redactErr(err),
			"the embeddings API did not answer within %s", o.opts.RequestTimeout)}
	}
	return &attemptError{retry: true, err: fault.Wrap(fault.Transient, "NETWORK", o.redactErr(err),
		"cannot reach the embeddings API")}
}

type embeddingsResponse struct {
	Data []struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// decode reads a 2xx body: n embeddings, ordered by index, of o.dims each.
func (o *OpenAI) decode(data []byte, n int) (*batchResult, *attemptError) {
	bad := func(format string, args ...any) (*batchResult, *attemptError) {
		return nil, &attemptError{retry: true, err: fault.Transientf("BAD_RESPONSE", "embeddings API: "+format, args...)}
	}
	var r embeddingsResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return bad("the answer is not JSON: %v", err)
	}
	if len(r.Data) != n {
		return bad("%d embeddings for %d inputs", len(r.Data), n)
	}
	vecs := make([][]float32, n)
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= n || vecs[d.Index] != nil {
			return bad("embedding index %d is out of range or repeated", d.Index)
		}
		v, err := decodeVector(d.Embedding)
		if err != nil {
			return bad("embedding %d: %v", d.Index, err)
		}
		if len(v) != o.dims {
			return nil, &attemptError{err: fault.Permanentf("DIMS_MISMATCH",
				"model %s returned %d dimensions, configured %d", o.opts.Model, len(v), o.dims)}
		}
		vecs[d.Index] = v
	}
	total := r.Usage.TotalTokens
	if total == 0 {
		total = r.Usage.PromptTokens
	}
	return &batchResult{vecs: vecs, tokens: r.Usage.PromptTokens, total: total}, nil
}

// decodeVector reads a float array or a base64 string of little-endian float32.
func decodeVector(raw json.RawMessage) ([]float32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, errors.New("missing")
	}
	if raw[0] == '[' {
		var v []float32
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("bad base64: %w", err)
		}
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("base64 holds %d bytes, not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// apiError is the error body: OpenAI's {"error":{message,type,param,code}}, or
// the shapes of compatible servers ({"error":"…"}, {"message":"…"}).
type apiError struct {
	Message string
	Type    string
	Code    string
}

func parseAPIError(data []byte) apiError {
	var top struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
	}
	var e apiError
	if json.Unmarshal(data, &top) != nil {
		return e
	}
	var obj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	var str string
	switch {
	case len(top.Error) > 0 && json.Unmarshal(top.Error, &obj) == nil:
		e.Message, e.Type = obj.Message, obj.Type
		var code string
		if json.Unmarshal(obj.Code, &code) == nil {
			e.Code = code
		}
	case len(top.Error) > 0 && json.Unmarshal(top.Error, &str) == nil:
		e.Message = str
	default:
		e.Message, e.Type = top.Message, top.Type
	}
	return e
}

var quotaCodes = map[string]bool{
	"insufficient_quota":           true,
	"credit_balance_exhausted":     true,
	"project_spend_limit_exceeded": true,
	"billing_hard_limit_reached":   true,
	"billing_not_active":           true,
}

// httpError classifies a non-2xx answer (external-apis.md §2.5, §2.7).
func (o *OpenAI) httpError(status int, h http.Header, data []byte) *attemptError {
	e := parseAPIError(data)
	msg := strings.TrimSpace(e.Message)
	if msg == "" {
		msg = strings.TrimSpace(string(data))
		if len(msg) > 200 || strings.HasPrefix(msg, "<") {
			msg = http.StatusText(status)
		}
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	msg = o.redact(msg)
	detail := ""
	switch {
	case e.Type != "" && e.Code != "" && e.Type != e.Code:
		detail = " " + e.Type + "/" + e.Code
	case e.Code != "":
		detail = " " + e.Code
	case e.Type != "":
		detail = " " + e.Type
	}
	text := fmt.Sprintf("embeddings API answered %d%s: %s", status, detail, msg)
	perm := func(code string) *attemptError {
		return &attemptError{err: fault.Permanentf(code, "%s", text)}
	}
	retry := func(code string) *attemptError {
		return &attemptError{retry: true, err: fault.Transientf(code, "%s", text)}
	}
	var ae *attemptError
	switch {
	case status == http.StatusTooManyRequests && (quotaCodes[e.Code] || quotaCodes[e.Type]):
		ae = perm("INSUFFICIENT_QUOTA")
		ae.quota = true
		o.count(func(s *OpenAIStats) { s.RateLimited++ })
		return ae // never retried, whatever x-should-retry says
	case status == http.StatusTooManyRequests && strings.HasPrefix(msg, "Request too large"):
		// One request exceeds the whole per-minute budget: waiting cannot help.
		ae = perm("REQUEST_TOO_LARGE")
		o.count(func(s *OpenAIStats) { s.RateLimited++ })
		return ae
	case status == http.StatusTooManyRequests:
		ae = retry("RATE_LIMITED")
		ae.rateLimited = true
		ae.slowDown = e.Code == "slow_down"
		o.count(func(s *OpenAIStats) { s.RateLimited++ })
	case status >= 500:
		ae = retry("SERVER_ERROR")
	case status == http.StatusRequestTimeout || status == http.StatusConflict:
		ae = retry("SERVER_ERROR")
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge, status == http.StatusUnprocessableEntity:
		ae = perm("BAD_REQUEST")
	case status == http.StatusUnauthorized:
		ae = perm("UNAUTHORIZED")
	case status == http.StatusForbidden:
		ae = perm("FORBIDDEN")
	case status == http.StatusNotFound:
		ae = perm("NOT_FOUND")
	default:
		ae = perm("CLIENT_ERROR")
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("x-should-retry"))) {
	case "true":
		if !ae.retry {
			ae.retry, ae.err.Kind = true, fault.Transient
		}
	case "false":
		ae.retry = false
	}
	if ae.retry {
		ae.wait = retryDelay(h, msg, e.Type, status == http.StatusTooManyRequests, o.now())
	}
	return ae
}

// redact removes the API key, and anything that looks like an OpenAI key
// (the 401 message echoes a masked one), from s.
func (o *OpenAI) redact(s string) string {
	if k := o.opts.APIKey; k != "" {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return keyLike.ReplaceAllString(s, "sk-[redacted]")
}

func (o *OpenAI) redactErr(err error) error {
	if err == nil {
		return nil
	}
	if r := o.redact(err.Error()); r != err.Error() {
		return errors.New(r)
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
