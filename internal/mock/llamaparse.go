package mock

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/parse"
)

// LlamaParseOptions configure the LlamaParse twin.
type LlamaParseOptions struct {
	// APIKey, when set, is required as "Authorization: Bearer <key>"; anything
	// else gets 401 {"detail":"Invalid authentication token"}.
	APIKey string
	// Parser does the real parsing. nil = the twin creates its own (and closes
	// it in Close).
	Parser *parse.Local
	// Delay is the minimum time a job stays PENDING after upload (it also
	// stays PENDING while the parse runs).
	Delay time.Duration
	// NeverFinish keeps every job PENDING forever (jobs stuck for hours are a
	// reported failure mode).
	NeverFinish bool
	// FinalStatus forces the final status of jobs whose parse succeeded:
	// "SUCCESS", "PARTIAL_SUCCESS", "ERROR", "CANCELLED" or "CANCELED" (sent
	// with that spelling). A cancelled status also applies to failed parses.
	// "" = SUCCESS, or ERROR when the parse fails.
	FinalStatus string
	// ErrorRates injects HTTP errors: status code → probability per API
	// request (after the auth check), e.g. {429: 0.2, 500: 0.1}.
	ErrorRates map[int]float64
	// RetryAfter, when > 0, is sent as Retry-After (seconds, rounded up) with
	// every 429. LlamaParse documents no rate-limit headers, so the default
	// sends none.
	RetryAfter time.Duration
	// UploadRateLimit is the number of uploads allowed per 10 s window
	// (LlamaParse: 50 QPS over 10 s per organization); beyond it, 429.
	// 0 = unlimited.
	UploadRateLimit int
	// Seed makes job ids, event ids, error injection and webhook drops
	// reproducible (for requests made in the same order).
	Seed int64

	// WebhookDrop is the probability that a webhook is never sent.
	WebhookDrop float64
	// WebhookDuplicate delivers each webhook 3 times (same payload and
	// event id), as the real service may on retries.
	WebhookDuplicate bool
	// WebhookAttempts is the number of tries per delivery when the receiver
	// does not answer 2xx; 0 = 3 (documented default).
	WebhookAttempts int
	// WebhookRetryDelays[i] is the wait before retry i+1 (the last one repeats);
	// nil = 1 s, 2 s, 4 s (documented exponential backoff).
	WebhookRetryDelays []time.Duration
	// WebhookTimeout bounds each attempt; 0 = 30 s (documented).
	WebhookTimeout time.Duration
	// HTTPClient delivers webhooks and fetches input_url; nil = a new client.
	HTTPClient *http.Client
	// StrictWebhookURL enforces the documented webhook_url rules (https, a
	// host name, < 200 characters) with a 422. Off by default so local
	// receivers (http://127.0.0.1:port) work.
	StrictWebhookURL bool
	// MaxFileBytes limits uploads; 0 = 300 MB (documented).
	MaxFileBytes int64
}

// LlamaParseStats are the twin's counters.
type LlamaParseStats struct {
	Uploads           int64 // upload requests received (including rejected and injected-error ones)
	JobsCreated       int64
	StatusCalls       int64 // GET job status requests received (all outcomes)
	ResultCalls       int64 // GET result requests received (all outcomes)
	InjectedErrors    int64 // responses from ErrorRates / UploadRateLimit
	WebhooksSent      int64 // webhook HTTP attempts made (every retry and duplicate counts)
	WebhooksDelivered int64 // attempts answered 2xx
	WebhooksFailed    int64 // deliveries that used up their attempts without a 2xx
	WebhooksDropped   int64 // webhooks not sent because of WebhookDrop
}

// LlamaParseServer is a local twin of the LlamaParse v1 parsing API. It
// serves /api/v1/parsing/... and the legacy /api/parsing/..., parses uploads
// with the local parser, and delivers webhooks. It is an http.Handler.
type LlamaParseServer struct {
	opts      LlamaParseOptions
	mux       *http.ServeMux
	parser    *parse.Local
	ownParser bool
	hc        *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	rng     *rand.Rand
	jobs    map[string]*lpJob
	cache   map[string]*lpJob
	uploads []time.Time // for UploadRateLimit

	uploadsN, jobsN, statusN, resultN, injectedN atomic.Int64
	whSent, whDelivered, whFailed, whDropped     atomic.Int64
}

type lpJob struct {
	id        string
	filename  string
	created   time.Time
	cacheKey  string
	noCache   bool
	parseMode string
	form      map[string]string

	webhookURL string
	configs    []lpWebhookConfig

	// set when finished (under LlamaParseServer.mu)
	status       string
	errorCode    string
	errorMessage string
	paged        bool
	pageNums     []int
	pages        []string
	markdown     string
	jobPages     int
	cacheHit     bool
	credits      float64
	creditsKnown bool
}

type lpWebhookConfig struct {
	URL          string            `json:"webhook_url"`
	Events       []string          `json:"webhook_events,omitempty"`
	Headers      map[string]string `json:"webhook_headers,omitempty"`
	OutputFormat string            `json:"webhook_output_format,omitempty"`
}

var lpParseModes = []string{
	"parse_page_without_llm", "parse_page_with_llm", "parse_page_with_lvm", "parse_page_with_agent",
	"parse_page_with_layout_agent", "parse_document_with_llm", "parse_document_with_lvm", "parse_document_with_agent",
}

// NewLlamaParseServer returns a running twin; call Close when done.
func NewLlamaParseServer(opts LlamaParseOptions) *LlamaParseServer {
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 3
	}
	if len(opts.WebhookRetryDelays) == 0 {
		opts.WebhookRetryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 30 * time.Second
	}
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = 300 << 20
	}
	s := &LlamaParseServer{
		opts:   opts,
		parser: opts.Parser,
		hc:     opts.HTTPClient,
		rng:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x9e3779b97f4a7c15)),
		jobs:   map[string]*lpJob{},
		cache:  map[string]*lpJob{},
	}
	if s.parser == nil {
		s.parser = parse.NewLocal(parse.Options{})
		s.ownParser = true
	}
	if s.hc == nil {
		s.hc = &http.Client{}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	for _, p := range []string{"/api/v1/parsing", "/api/parsing"} {
		mux.HandleFunc("POST "+p+"/upload", s.api(&s.uploadsN, s.upload))
		mux.HandleFunc("GET "+p+"/job/{job_id}", s.api(&s.statusN, s.status))
		mux.HandleFunc("GET "+p+"/job/{job_id}/result/{kind}", s.api(&s.resultN, s.result))
		mux.HandleFunc("GET "+p+"/job/{job_id}/result/raw/{kind}", s.api(&s.resultN, s.result))
	}
	// Not a route of the real service: the twin's own health check for orchestrators.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		lpDetail(w, http.StatusNotFound, "Not Found")
	})
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *LlamaParseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops background parses and webhook deliveries and waits for them.
func (s *LlamaParseServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.ownParser {
		return s.parser.Close()
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (s *LlamaParseServer) Stats() LlamaParseStats {
	return LlamaParseStats{
		Uploads:           s.uploadsN.Load(),
		JobsCreated:       s.jobsN.Load(),
		StatusCalls:       s.statusN.Load(),
		ResultCalls:       s.resultN.Load(),
		InjectedErrors:    s.injectedN.Load(),
		WebhooksSent:      s.whSent.Load(),
		WebhooksDelivered: s.whDelivered.Load(),
		WebhooksFailed:    s.whFailed.Load(),
		WebhooksDropped:   s.whDropped.Load(),
	}
}

// Uploads is the number of upload requests received.
func (s *LlamaParseServer) Uploads() int64 { return s.uploadsN.Load() }

// StatusCalls is the number of job status requests received.
func (s *LlamaParseServer) StatusCalls() int64 { return s.statusN.Load() }

// WebhooksSent is the number of webhook HTTP attempts made.
func (s *LlamaParseServer) WebhooksSent() int64 { return s.whSent.Load() }

// JobStatus returns a job's current status as the API would spell it, and
// whether the job exists.
func (s *LlamaParseServer) JobStatus(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return "", false
	}
	return j.status, true
}

// LlamaParseJob is a job the twin created, as a caller can tell it apart.
type LlamaParseJob struct {
	ID         string
	Filename   string
	WebhookURL string // the caller's webhook URL (docpipe's names its run)
	Created    time.Time
}

// Jobs lists every job created, oldest first.
func (s *LlamaParseServer) Jobs() []LlamaParseJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LlamaParseJob, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, LlamaParseJob{ID: j.id, Filename: j.filename, WebhookURL: j.webhookURL, Created: j.created})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.Before(out[b].Created) })
	return out
}

// api wraps a route with its request counter, the auth check and error
// injection.
func (s *LlamaParseServer) api(counter *atomic.Int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		counter.Add(1)
		if s.opts.APIKey != "" {
			const pre = "bearer "
			a := r.Header.Get("Authorization")
			if len(a) < len(pre) || !strings.EqualFold(a[:len(pre)], pre) ||
				subtle.ConstantTimeCompare([]byte(strings.TrimSpace(a[len(pre):])), []byte(s.opts.APIKey)) != 1 {
				lpDetail(w, http.StatusUnauthorized, "Invalid authentication token")
				return
			}
		}
		if code := s.injectedError(); code != 0 {
			s.injectedN.Add(1)
			s.writeInjected(w, code)
			return
		}
		h(w, r)
	}
}

func (s *LlamaParseServer) injectedError() int {
	if len(s.opts.ErrorRates) == 0 {
		return 0
	}
	codes := make([]int, 0, len(s.opts.ErrorRates))
	for c := range s.opts.ErrorRates {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	acc := 0.0
	for _, c := range codes {
		acc += s.opts.ErrorRates[c]
		if x < acc {
			return c
		}
	}
	return 0
}

func (s *LlamaParseServer) writeInjected(w http.ResponseWriter, code int) {
	if code == http.StatusTooManyRequests && s.opts.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
	}
	msg := http.StatusText(code)
	switch code {
	case http.StatusUnauthorized:
		msg = "Invalid authentication token"
	case http.StatusTooManyRequests:
		msg = "Rate limit exceeded"
	}
	lpDetail(w, code, msg)
}

// lpDetail writes a FastAPI-style {"detail": "..."} error.
func lpDetail(w http.ResponseWriter, code int, detail string) {
	lpJSON(w, code, map[string]any{"detail": detail})
}

// lpValidation writes a FastAPI-style 422 {"detail": [{type, loc, msg, input}]}.
func lpValidation(w http.ResponseWriter, field, typ, msg string, input any) {
	lpJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{
		"type": typ, "loc": []string{"body", field}, "msg": msg, "input": input,
	}}})
}

func lpJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *LlamaParseServer) newID() string {
	// caller holds s.mu
	var b [16]byte
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// upload is POST /api/v1/parsing/upload.
func (s *LlamaParseServer) upload(w http.ResponseWriter, r *http.Request) {
	if s.rateLimited() {
		s.injectedN.Add(1)
		s.writeInjected(w, http.StatusTooManyRequests)
		return
	}
	if !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/form-data") {
		lpValidation(w, "file", "missing", "Field required", nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			lpDetail(w, http.StatusRequestEntityTooLarge, "File size exceeds the maximum allowed size of 300MB")
			return
		}
		lpDetail(w, http.StatusBadRequest, "There was an error parsing the body")
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()

	form := map[string]string{}
	for k, v := range r.MultipartForm.Value {
		if len(v) > 0 {
			form[k] = v[0]
		}
	}
	if m := form["parse_mode"]; m != "" && !slices.Contains(lpParseModes, m) {
		lpValidation(w, "parse_mode", "enum", "Input should be "+strings.Join(lpParseModes, ", "), m)
		return
	}
	var configs []lpWebhookConfig
	if raw := form["webhook_configurations"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &configs); err != nil {
			var one lpWebhookConfig
			if err2 := json.Unmarshal([]byte(raw), &one); err2 != nil || one.URL == "" {
				lpValidation(w, "webhook_configurations", "value_error", "Value error, webhook_configurations must be a JSON list of webhook configurations", raw)
				return
			}
			configs = []lpWebhookConfig{one}
		}
		for _, c := range configs {
			if c.URL == "" {
				lpValidation(w, "webhook_configurations", "value_error", "Value error, webhook_url is required", raw)
				return
			}
		}
	}
	if s.opts.StrictWebhookURL {
		urls := []string{}
		if u := form["webhook_url"]; u != "" {
			urls = append(urls, u)
		}
		for _, c := range configs {
			urls = append(urls, c.URL)
		}
		for _, u := range urls {
			if err := lpCheckWebhookURL(u); err != nil {
				lpValidation(w, "webhook_url", "value_error", "Value error, "+err.Error(), u)
				return
			}
		}
	}

	var (
		data     []byte
		filename string
		inputURL = form["input_url"]
		s3Path   = form["input_s3_path"]
	)
	if fhs := r.MultipartForm.File["file"]; len(fhs) > 0 {
		fh := fhs[0]
		if fh.Size > s.opts.MaxFileBytes {
			lpDetail(w, http.StatusRequestEntityTooLarge, "File size exceeds the maximum allowed size of 300MB")
			return
		}
		f, err := fh.Open()
		if err != nil {
			lpDetail(w, http.StatusBadRequest, "There was an error reading the file")
			return
		}
		data, err = io.ReadAll(f)
		_ = f.Close()
		if err != nil {
			lpDetail(w, http.StatusBadRequest, "There was an error reading the file")
			return
		}
		filename = fh.Filename
	} else if inputURL == "" && s3Path == "" {
		lpDetail(w, http.StatusBadRequest, "Either file, input_url or input_s3_path must be provided")
		return
	}

	j := &lpJob{
		filename:   filename,
		created:    time.Now(),
		parseMode:  form["parse_mode"],
		form:       form,
		webhookURL: form["webhook_url"],
		configs:    configs,
		status:     "PENDING",
		noCache:    lpTrue(form["do_not_cache"]),
	}
	if data != nil {
		j.cacheKey = lpCacheKey(data, filename, form)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lpDetail(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	j.id = s.newID()
	s.jobs[j.id] = j
	var cached *lpJob
	if j.cacheKey != "" && !lpTrue(form["invalidate_cache"]) && !j.noCache {
		cached = s.cache[j.cacheKey]
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.jobsN.Add(1)

	go s.run(j, data, inputURL, s3Path, cached)

	lpJSON(w, http.StatusOK, map[string]any{"id": j.id, "status": "PENDING", "error_code": nil, "error_message": nil})
}

func (s *LlamaParseServer) rateLimited() bool {
	if s.opts.UploadRateLimit <= 0 {
		return false
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.uploads[:0]
	for _, t := range s.uploads {
		if now.Sub(t) < 10*time.Second {
			keep = append(keep, t)
		}
	}
	s.uploads = keep
	if len(s.uploads) >= s.opts.UploadRateLimit {
		return true
	}
	s.uploads = append(s.uploads, now)
	return false
}

func lpTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// lpCacheKey identifies identical parses: same bytes, name and parsing
// options (webhook settings excluded).
func lpCacheKey(data []byte, filename string, form map[string]string) string {
	h := sha256.New()
	h.Write(data)
	fmt.Fprintf(h, "\x00%s", filename)
	keys := make([]string, 0, len(form))
	for k := range form {
		switch k {
		case "webhook_url", "webhook_configurations", "invalidate_cache", "do_not_cache":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, form[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func lpCheckWebhookURL(raw string) error {
	if len(raw) >= 200 {
		return errors.New("webhook_url must be shorter than 200 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return errors.New("webhook_url is not a valid URL")
	}
	if u.Scheme != "https" {
		return errors.New("webhook_url must use HTTPS")
	}
	if lpIsIP(u.Hostname()) {
		return errors.New("webhook_url must use a hostname, not an IP address")
	}
	return nil
}

func lpIsIP(h string) bool { return net.ParseIP(h) != nil }

// run parses the job in the background, finishes it after Delay and sends
// its webhooks.
func (s *LlamaParseServer) run(j *lpJob, data []byte, inputURL, s3Path string, cached *lpJob) {
	defer s.wg.Done()
	s.sendEvents(j, "parse.pending")
	if s.opts.NeverFinish {
		<-s.ctx.Done()
		return
	}

	var (
		doc    parse.Document
		err    error
		cacheH bool
	)
	s.mu.Lock()
	if cached != nil && cached.status == "SUCCESS" {
		doc = parse.Document{Markdown: cached.markdown, Pages: len(cached.pages)}
		if cached.paged {
			doc.Markdown = lpJoinLocal(cached.pageNums, cached.pages)
		}
		cacheH = true
	}
	s.mu.Unlock()
	if !cacheH {
		switch {
		case data == nil && inputURL != "":
			data, err = s.fetch(inputURL)
			if err == nil {
				name := lpURLName(inputURL)
				s.mu.Lock()
				j.filename = name
				s.mu.Unlock()
				doc, err = s.parser.Parse(s.ctx, data, name)
			}
		case data == nil:
			err = fault.Permanentf("ERROR_DURING_PROCESSING", "the local twin cannot read %s (input_s3_path is not supported)", s3Path)
		default:
			doc, err = s.parser.Parse(s.ctx, data, j.filename)
		}
	}
	if s.ctx.Err() != nil {
		return
	}

	if wait := time.Until(j.created.Add(s.opts.Delay)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}

	s.mu.Lock()
	s.finish(j, doc, err, cacheH)
	event := lpEventFor(j.status)
	s.mu.Unlock()

	if j.status == "SUCCESS" || j.status == "PARTIAL_SUCCESS" {
		s.sendResultWebhook(j)
	}
	s.sendEvents(j, event)
}

// finish records the outcome; caller holds s.mu.
func (s *LlamaParseServer) finish(j *lpJob, doc parse.Document, err error, cacheHit bool) {
	forced := strings.ToUpper(s.opts.FinalStatus)
	if err != nil {
		if forced == "CANCELLED" || forced == "CANCELED" {
			j.status = s.opts.FinalStatus
			return
		}
		fe := fault.Classify(err)
		j.status = "ERROR"
		j.errorCode = "ERROR_DURING_PROCESSING"
		switch fe.Code {
		case parse.CodeEmptyFile, parse.CodeNoText, parse.CodePDFNoText:
			j.errorCode = "NO_DATA_FOUND_IN_FILE"
		}
		j.errorMessage = fe.Message
		return
	}
	j.cacheHit = cacheHit
	if doc.Pages > 0 && strings.HasPrefix(doc.Markdown, "<!-- page ") {
		j.paged = true
		j.pageNums, j.pages = lpSplitLocal(doc.Markdown)
		j.jobPages = len(j.pages)
	} else {
		j.markdown = doc.Markdown
		j.jobPages = 1
	}
	if per, ok := llamaparse.CreditsPerPage(j.parseMode); ok {
		j.creditsKnown = true
		if !cacheHit {
			j.credits = per * float64(j.jobPages)
		}
	}
	switch forced {
	case "":
		j.status = "SUCCESS"
	case "CANCELLED", "CANCELED", "SUCCESS", "PARTIAL_SUCCESS", "ERROR":
		j.status = s.opts.FinalStatus
		if forced == "ERROR" {
			j.errorCode, j.errorMessage = "ERROR_DURING_PROCESSING", "the job failed (forced by the twin)"
		}
	default:
		j.status = forced
	}
	if j.status == "SUCCESS" && j.cacheKey != "" && !j.noCache {
		if _, ok := s.cache[j.cacheKey]; !ok {
			s.cache[j.cacheKey] = j
		}
	}
}

var lpMarkerRE = regexp.MustCompile(`^<!-- page (\d+) -->$`)

// lpSplitLocal splits the local parser's paged markdown into pages.
func lpSplitLocal(md string) (nums []int, pages []string) {
	var cur []string
	flush := func() {
		if nums == nil && cur == nil {
			return
		}
		start, end := 0, len(cur)
		for start < end && strings.TrimSpace(cur[start]) == "" {
			start++
		}
		for end > start && strings.TrimSpace(cur[end-1]) == "" {
			end--
		}
		pages = append(pages, strings.Join(cur[start:end], "\n"))
		cur = nil
	}
	for _, l := range strings.Split(strings.TrimSuffix(md, "\n"), "\n") {
		if m := lpMarkerRE.FindStringSubmatch(l); m != nil {
			if len(nums) > 0 {
				flush()
			}
			n, _ := strconv.Atoi(m[1])
			nums = append(nums, n)
			cur = []string{}
			continue
		}
		cur = append(cur, l)
	}
	if len(nums) > 0 {
		flush()
	}
	return nums, pages
}

// lpJoinLocal is the inverse of lpSplitLocal (the local parser's layout).
func lpJoinLocal(nums []int, pages []string) string {
	var b strings.Builder
	for i, p := range pages {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "<!-- page %d -->\n", nums[i])
		if p != "" {
			b.WriteString("\n" + p + "\n")
		}
	}
	return b.String()
}

func (s *LlamaParseServer) fetch(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fault.Permanentf("ERROR_DURING_PROCESSING", "the input_url is not valid")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fault.Permanentf("ERROR_DURING_PROCESSING", "the file at input_url could not be downloaded")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fault.Permanentf("ERROR_DURING_PROCESSING", "downloading input_url answered HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxFileBytes+1))
	if err != nil {
		return nil, fault.Permanentf("ERROR_DURING_PROCESSING", "the file at input_url could not be downloaded")
	}
	if int64(len(b)) > s.opts.MaxFileBytes {
		return nil, fault.Permanentf("ERROR_DURING_PROCESSING", "the file at input_url is larger than 300 MB")
	}
	return b, nil
}

func lpURLName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "document"
	}
	name := p.Path[strings.LastIndex(p.Path, "/")+1:]
	if name == "" {
		return "document"
	}
	return name
}

func (s *LlamaParseServer) job(r *http.Request) (*lpJob, bool) {
	id := r.PathValue("job_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	return j, ok
}

// status is GET /api/v1/parsing/job/{job_id}.
func (s *LlamaParseServer) status(w http.ResponseWriter, r *http.Request) {
	j, ok := s.job(r)
	if !ok {
		lpDetail(w, http.StatusNotFound, "Job not found")
		return
	}
	s.mu.Lock()
	body := map[string]any{"id": j.id, "status": j.status, "error_code": lpNullable(j.errorCode), "error_message": lpNullable(j.errorMessage)}
	s.mu.Unlock()
	lpJSON(w, http.StatusOK, body)
}

func lpNullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// result is GET /api/v1/parsing/job/{job_id}/result/{kind} (and raw/{kind}).
func (s *LlamaParseServer) result(w http.ResponseWriter, r *http.Request) {
	j, ok := s.job(r)
	if !ok {
		lpDetail(w, http.StatusNotFound, "Job not found")
		return
	}
	raw := strings.Contains(r.URL.Path, "/result/raw/")
	kind := r.PathValue("kind")
	s.mu.Lock()
	st := j.status
	done := st == "SUCCESS" || st == "PARTIAL_SUCCESS"
	var (
		md    = s.joined(j)
		text  = md // the local parser has no separate plain-text rendering
		pages = s.jsonPages(j)
		meta  = s.metadata(j)
		name  = j.filename
	)
	s.mu.Unlock()
	if !done {
		lpDetail(w, http.StatusNotFound, "Job result not found: the job status is "+st)
		return
	}
	switch kind {
	case "markdown":
		if raw {
			lpRaw(w, "text/markdown; charset=utf-8", md)
			return
		}
		lpJSON(w, http.StatusOK, map[string]any{"markdown": md, "job_metadata": meta})
	case "text":
		if raw {
			lpRaw(w, "text/plain; charset=utf-8", text)
			return
		}
		lpJSON(w, http.StatusOK, map[string]any{"text": text, "job_metadata": meta})
	case "json":
		if raw {
			lpJSON(w, http.StatusOK, pages)
			return
		}
		lpJSON(w, http.StatusOK, map[string]any{"pages": pages, "job_metadata": meta, "job_id": j.id, "file_path": name})
	default:
		lpDetail(w, http.StatusNotFound, "Result type "+kind+" is not available for this job")
	}
}

func lpRaw(w http.ResponseWriter, ctype, body string) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// joined renders the whole document the way the API does: pages (with
// page_prefix/page_suffix) joined by page_separator (default "\n---\n");
// "{page_number}"/"{pageNumber}" are replaced by the page's number (in the
// separator: the number of the page that follows). Caller holds s.mu.
func (s *LlamaParseServer) joined(j *lpJob) string {
	if !j.paged {
		return j.markdown
	}
	sep, ok := j.form["page_separator"]
	if !ok {
		sep = "\n---\n"
	}
	prefix, suffix := j.form["page_prefix"], j.form["page_suffix"]
	sub := func(t string, n int) string {
		ns := strconv.Itoa(n)
		return strings.NewReplacer("{page_number}", ns, "{pageNumber}", ns).Replace(t)
	}
	var b strings.Builder
	for i, p := range j.pages {
		if i > 0 {
			b.WriteString(sub(sep, j.pageNums[i]))
		}
		b.WriteString(sub(prefix, j.pageNums[i]))
		b.WriteString(p)
		b.WriteString(sub(suffix, j.pageNums[i]))
	}
	return b.String()
}

// jsonPages is the /result/json page list. Documents the local parser does not
// paginate (HTML, Markdown, text, DOCX) have none. Caller holds s.mu.
func (s *LlamaParseServer) jsonPages(j *lpJob) []map[string]any {
	out := make([]map[string]any, 0, len(j.pages))
	for i, p := range j.pages {
		out = append(out, map[string]any{
			"page": j.pageNums[i], "text": p, "md": p,
			"images": []any{}, "charts": []any{}, "tables": []any{}, "layout": []any{},
			"items": []any{}, "links": []any{}, "status": "OK",
			"width": 0, "height": 0, "triggeredAutoMode": false,
			"parsingMode": lpNullable(j.parseMode), "structuredData": nil,
			"noStructuredContent": false, "noTextContent": strings.TrimSpace(p) == "",
		})
	}
	return out
}

// metadata is job_metadata; caller holds s.mu.
func (s *LlamaParseServer) metadata(j *lpJob) map[string]any {
	m := map[string]any{
		"job_pages":                     j.jobPages,
		"job_auto_mode_triggered_pages": 0,
		"job_is_cache_hit":              j.cacheHit,
	}
	if j.creditsKnown {
		m["credits_used"] = j.credits
		m["job_credits_usage"] = int(j.credits)
	}
	return m
}
