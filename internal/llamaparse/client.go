// Package llamaparse is a client for the LlamaCloud Parsing API v1
// (LlamaParse): submit a file, poll its job status, fetch the result as
// markdown, and the helpers a webhook receiver needs.
//
// Every error is a *fault.Error: Transient for rate limits (429), server errors
// (5xx), timeouts and lost connections; Permanent for rejected requests (400,
// 401, 403, 413, 422), unknown jobs (404) and failed jobs. Errors never contain
// the API key. RetryAfter extracts a server-requested wait from an error.
//
// Results come back in the same shape as the local parser (internal/parse):
// when the API returns pages, they are joined with "<!-- page N -->" marker
// lines so downstream page attribution works the same for both parsers.
package llamaparse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
)

// Base URLs of the hosted API. API keys are region-scoped: an NA key fails on EU.
const (
	DefaultBaseURL = "https://api.cloud.llamaindex.ai"
	EUBaseURL      = "https://api.cloud.eu.llamaindex.ai"
)

// Route prefixes. The documented one is versioned; the Python SDK still uses
// the legacy unversioned one. Servers answer both.
const (
	RoutePrefix       = "/api/v1/parsing"
	LegacyRoutePrefix = "/api/parsing"
)

// Job states as normalized by this package (Status.State).
const (
	StatePending        = "PENDING"
	StateSuccess        = "SUCCESS"
	StateError          = "ERROR"
	StatePartialSuccess = "PARTIAL_SUCCESS"
	StateCancelled      = "CANCELLED"
)

// Webhook modes for Options.WebhookMode.
const (
	// WebhookModeURL sends the v1 "webhook_url" form field: the API posts the
	// whole result ({txt, md, json, images}) at job end.
	WebhookModeURL = "url"
	// WebhookModeConfigurations sends "webhook_configurations": the API posts
	// small event payloads ({event_id, event_type, timestamp, data{job_id}}).
	WebhookModeConfigurations = "configurations"
)

// MaxFileBytes is the documented upload limit (300 MB).
const MaxFileBytes = 300 << 20

const (
	defaultTimeout     = 60 * time.Second
	maxErrorBodyBytes  = 64 << 10
	maxStatusBodyBytes = 1 << 20
	maxResultBodyBytes = 512 << 20
)

// Options configure a Client.
type Options struct {
	BaseURL    string       // "" = DefaultBaseURL; EUBaseURL for the EU region
	APIKey     string       // sent as "Authorization: Bearer <key>"; never put in errors
	HTTPClient *http.Client // nil = a new client without a global timeout (Timeout applies per call)
	// ParseOptions are extra multipart form fields sent with every upload
	// (parse_mode, language, max_pages, page_separator, ...). Values are sent
	// as given ("true"/"false" for booleans). "file" is ignored; a webhook URL
	// passed to Submit replaces webhook_url/webhook_configurations.
	ParseOptions map[string]string
	Timeout      time.Duration // per HTTP call; 0 = 60 s (the official SDK default)

	// LegacyRoutes uses /api/parsing/... instead of /api/v1/parsing/....
	LegacyRoutes bool
	// OrganizationID and ProjectID are sent as query parameters when set.
	OrganizationID, ProjectID string

	// WebhookMode selects how Submit passes its webhook URL: WebhookModeURL
	// ("" too) or WebhookModeConfigurations.
	WebhookMode string
	// WebhookEvents limits the events in WebhookModeConfigurations (nil = all
	// events, including parse.pending).
	WebhookEvents []string
	// WebhookHeaders are added to each webhook request in
	// WebhookModeConfigurations (e.g. a shared secret).
	WebhookHeaders map[string]string

	UserAgent string // "" = "docpipe-llamaparse/1"
}

// Client talks to the LlamaParse v1 API. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	prefix string
	opts   Options
	hc     *http.Client
	eu     bool
}

// New returns a client. It fails only on an invalid BaseURL or WebhookMode.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llamaparse: invalid base URL %q", opts.BaseURL)
	}
	u.RawQuery, u.Fragment = "", ""
	switch opts.WebhookMode {
	case "", WebhookModeURL, WebhookModeConfigurations:
	default:
		return nil, fmt.Errorf("llamaparse: unknown webhook mode %q", opts.WebhookMode)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "docpipe-llamaparse/1"
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	prefix := RoutePrefix
	if opts.LegacyRoutes {
		prefix = LegacyRoutePrefix
	}
	return &Client{
		base: u, prefix: prefix, opts: opts, hc: hc,
		eu: strings.Contains(strings.ToLower(u.Hostname()), ".eu."),
	}, nil
}

// Status is a job's state.
type Status struct {
	JobID        string
	State        string // normalized: PENDING, SUCCESS, ERROR, PARTIAL_SUCCESS, CANCELLED (or the raw value, upper-cased, if unknown)
	RawState     string // as the API spelled it (e.g. "CANCELED")
	ErrorCode    string // e.g. NO_DATA_FOUND_IN_FILE, ERROR_DURING_PROCESSING, EXPIRED
	ErrorMessage string
	// Pages and Credits are filled only if the status body carries
	// job_metadata, which the documented status shape does not; use
	// Result for accounting.
	Pages   int
	Credits float64
}

// Terminal reports whether the job will not change state any more.
func (s Status) Terminal() bool {
	switch s.State {
	case StateSuccess, StateError, StatePartialSuccess, StateCancelled:
		return true
	}
	return false
}

// HasResult reports whether results can be fetched: SUCCESS, and
// PARTIAL_SUCCESS (some pages failed; the rest is usable — this package
// treats it as a result, unlike the Python SDK, which raises).
func (s Status) HasResult() bool {
	return s.State == StateSuccess || s.State == StatePartialSuccess
}

// Err classifies a finished-but-unusable job: nil while PENDING or when
// HasResult; otherwise a *fault.Error. ERROR with EXPIRED/TIMEOUT is transient
// (a new job may finish in time); other ERRORs and CANCELLED are permanent.
func (s Status) Err() error {
	switch s.State {
	case StatePending, StateSuccess, StatePartialSuccess:
		return nil
	case StateCancelled:
		return fault.Permanentf(CodeJobCancelled, "the LlamaParse job %s was cancelled", s.JobID)
	case StateError:
		msg := s.ErrorMessage
		if msg == "" {
			msg = "no reason given"
		}
		switch strings.ToUpper(s.ErrorCode) {
		case "EXPIRED", "TIMEOUT":
			return fault.Transientf(CodeJobExpired,
				"the LlamaParse job %s ran out of time (%s): %s", s.JobID, s.ErrorCode, msg)
		case "NO_DATA_FOUND_IN_FILE":
			return fault.Permanentf(CodeNoData,
				"LlamaParse found no content in the file: %s", msg)
		}
		code := s.ErrorCode
		if code == "" {
			code = "ERROR"
		}
		return fault.Permanentf(CodeJobFailed, "LlamaParse could not parse the file (%s): %s", code, msg)
	}
	return fault.Transientf(CodeBadResponse, "LlamaParse reported an unknown job status %q", s.RawState)
}

// NormalizeState maps an API status to the package's spelling: upper case,
// CANCELED → CANCELLED.
func NormalizeState(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "CANCELED" {
		return StateCancelled
	}
	return s
}

// Result is a parsed document.
type Result struct {
	JobID string
	// Markdown is the document. When the API returned pages, each page starts
	// with a line "<!-- page N -->" followed by a blank line and the page's
	// markdown, exactly like the local PDF parser; lines in the content that
	// look like markers are escaped with a backslash.
	Markdown string
	// Pages is the number of pages in the JSON result (0 when the API
	// returned the document unpaginated), like parse.Document.Pages.
	Pages int
	// JobPages is job_metadata.job_pages: the pages the job counted/billed.
	JobPages               int
	CacheHit               bool
	AutoModeTriggeredPages int
	// Credits used by the job: job_metadata.credits_used when present
	// (CreditsSource "api"), else estimated from the §1.7 price list and
	// ParseOptions (CreditsSource "estimate"; 0 on cache hits), else unknown
	// (CreditsSource "").
	Credits       float64
	CreditsSource string
	CostUSD       float64 // Credits at the region's price ($1.00 / 1,000 NA, $1.50 EU)
}

// Submit uploads data as a new parse job and returns its id. webhookURL, if
// not empty, is passed as webhook_url (or in webhook_configurations, per
// Options.WebhookMode).
func (c *Client) Submit(ctx context.Context, data []byte, filename string, webhookURL string) (string, error) {
	if len(data) == 0 {
		return "", fault.Permanentf(CodeRejected, "the file is empty; LlamaParse needs a file to parse")
	}
	if len(data) > MaxFileBytes {
		return "", fault.Permanentf(CodeFileTooLarge,
			"the file is %d MB, more than LlamaParse's limit of 300 MB", len(data)>>20)
	}
	name := filepath.Base(strings.ReplaceAll(filename, "\\", "/"))
	if name == "" || name == "." || name == "/" {
		name = "document"
	}

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": name}))
	h.Set("Content-Type", contentType(name, data))
	fw, err := w.CreatePart(h)
	if err != nil {
		return "", fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the upload")
	}
	if _, err := fw.Write(data); err != nil {
		return "", fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the upload")
	}
	keys := make([]string, 0, len(c.opts.ParseOptions))
	for k := range c.opts.ParseOptions {
		if k == "file" || (webhookURL != "" && (k == "webhook_url" || k == "webhook_configurations")) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := w.WriteField(k, c.opts.ParseOptions[k]); err != nil {
			return "", fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the upload")
		}
	}
	if webhookURL != "" {
		var err error
		if c.opts.WebhookMode == WebhookModeConfigurations {
			cfg := webhookConfiguration{URL: webhookURL, Events: c.opts.WebhookEvents, Headers: c.opts.WebhookHeaders}
			b, _ := json.Marshal([]webhookConfiguration{cfg})
			err = w.WriteField("webhook_configurations", string(b))
		} else {
			err = w.WriteField("webhook_url", webhookURL)
		}
		if err != nil {
			return "", fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the upload")
		}
	}
	if err := w.Close(); err != nil {
		return "", fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the upload")
	}

	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := c.do(ctx, http.MethodPost, "/upload", w.FormDataContentType(), body.Bytes(), opUpload, maxStatusBodyBytes, &job); err != nil {
		return "", err
	}
	if job.ID == "" {
		return "", fault.Transientf(CodeBadResponse, "LlamaParse accepted the upload but returned no job id")
	}
	return job.ID, nil
}

type webhookConfiguration struct {
	URL     string            `json:"webhook_url"`
	Events  []string          `json:"webhook_events,omitempty"`
	Headers map[string]string `json:"webhook_headers,omitempty"`
}

// Status returns the job's current state.
func (c *Client) Status(ctx context.Context, jobID string) (Status, error) {
	p, err := jobPath(jobID, "")
	if err != nil {
		return Status{}, err
	}
	var body struct {
		ID           string       `json:"id"`
		Status       string       `json:"status"`
		ErrorCode    *string      `json:"error_code"`
		ErrorMessage *string      `json:"error_message"`
		JobMetadata  *jobMetadata `json:"job_metadata"`
	}
	if err := c.do(ctx, http.MethodGet, p, "", nil, opStatus, maxStatusBodyBytes, &body); err != nil {
		return Status{}, err
	}
	if body.Status == "" {
		return Status{}, fault.Transientf(CodeBadResponse, "LlamaParse returned a job without a status")
	}
	st := Status{JobID: body.ID, State: NormalizeState(body.Status), RawState: body.Status}
	if st.JobID == "" {
		st.JobID = jobID
	}
	if body.ErrorCode != nil {
		st.ErrorCode = *body.ErrorCode
	}
	if body.ErrorMessage != nil {
		st.ErrorMessage = redact(*body.ErrorMessage, c.opts.APIKey)
	}
	if m := body.JobMetadata; m != nil {
		st.Pages = m.JobPages
		if m.CreditsUsed != nil {
			st.Credits = *m.CreditsUsed
		}
	}
	return st, nil
}

type jobMetadata struct {
	JobPages               int      `json:"job_pages"`
	JobIsCacheHit          bool     `json:"job_is_cache_hit"`
	AutoModeTriggeredPages *int     `json:"job_auto_mode_triggered_pages"`
	CreditsUsed            *float64 `json:"credits_used"`
}

type jsonPage struct {
	Page int    `json:"page"`
	MD   string `json:"md"`
	Text string `json:"text"`
}

// Markdown fetches the finished job's result. It reads /result/json; when that
// has pages, their markdown is joined with page markers, otherwise the
// document comes from /result/markdown as is. A 404 (result not ready yet) is
// transient: call it after Status reports HasResult.
func (c *Client) Markdown(ctx context.Context, jobID string) (Result, error) {
	p, err := jobPath(jobID, "/result/json")
	if err != nil {
		return Result{}, err
	}
	var js struct {
		Pages       []jsonPage  `json:"pages"`
		JobMetadata jobMetadata `json:"job_metadata"`
	}
	if err := c.do(ctx, http.MethodGet, p, "", nil, opResult, maxResultBodyBytes, &js); err != nil {
		return Result{}, err
	}
	res := Result{JobID: jobID, Pages: len(js.Pages)}
	meta := js.JobMetadata
	if len(js.Pages) > 0 {
		res.Markdown = joinPages(js.Pages)
	} else {
		var md struct {
			Markdown    *string     `json:"markdown"`
			JobMetadata jobMetadata `json:"job_metadata"`
		}
		p, _ := jobPath(jobID, "/result/markdown")
		if err := c.do(ctx, http.MethodGet, p, "", nil, opResult, maxResultBodyBytes, &md); err != nil {
			return Result{}, err
		}
		if md.Markdown == nil {
			return Result{}, fault.Transientf(CodeBadResponse, "LlamaParse returned a markdown result without markdown")
		}
		res.Markdown = escapeMarkers(normalizeNewlines(*md.Markdown))
		meta = md.JobMetadata
	}
	res.JobPages = meta.JobPages
	res.CacheHit = meta.JobIsCacheHit
	if meta.AutoModeTriggeredPages != nil {
		res.AutoModeTriggeredPages = *meta.AutoModeTriggeredPages
	}
	switch {
	case meta.CreditsUsed != nil:
		res.Credits, res.CreditsSource = *meta.CreditsUsed, "api"
	case res.CacheHit:
		res.Credits, res.CreditsSource = 0, "estimate"
	default:
		pages := res.JobPages
		if pages == 0 {
			pages = max(res.Pages, 1)
		}
		if cr, ok := EstimateCredits(c.opts.ParseOptions, pages); ok {
			res.Credits, res.CreditsSource = cr, "estimate"
		}
	}
	res.CostUSD = CostUSD(res.Credits, c.eu)
	return res, nil
}

// markerRE matches a line that would read as a page marker (same rule as the
// local parser).
var markerRE = regexp.MustCompile(`(?i)^\s*<!--\s*page\s+\d+\s*-->\s*$`)

func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func escapeMarkers(s string) string {
	if !strings.Contains(s, "<!--") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if markerRE.MatchString(l) {
			lines[i] = `\` + strings.TrimLeft(l, " \t")
		}
	}
	return strings.Join(lines, "\n")
}

// pageBody cleans one page's markdown: newlines normalized, marker
// look-alikes escaped, no leading or trailing blank lines, no final newline.
func pageBody(md string) string {
	lines := strings.Split(escapeMarkers(normalizeNewlines(md)), "\n")
	start, end := 0, len(lines)
	for start < end && strings.TrimSpace(lines[start]) == "" {
		start++
	}
	for end > start && strings.TrimSpace(lines[end-1]) == "" {
		end--
	}
	return strings.Join(lines[start:end], "\n")
}

// joinPages renders pages exactly like the local PDF parser:
// "<!-- page N -->\n" then, for a page with text, "\n" + text + "\n";
// pages separated by "\n".
func joinPages(pages []jsonPage) string {
	var b strings.Builder
	for i, p := range pages {
		n := p.Page
		if n <= 0 {
			n = i + 1
		}
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "<!-- page %d -->\n", n)
		md := p.MD
		if strings.TrimSpace(md) == "" {
			md = p.Text
		}
		if t := pageBody(md); t != "" {
			b.WriteString("\n")
			b.WriteString(t)
			b.WriteString("\n")
		}
	}
	return b.String()
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// jobPath builds the job's path; ids are UUIDs, anything that could change
// the path is refused.
func jobPath(jobID, suffix string) (string, error) {
	if !jobIDRE.MatchString(jobID) {
		return "", fault.Permanentf(CodeJobNotFound, "%q is not a LlamaParse job id", truncate(jobID, 80))
	}
	return "/job/" + jobID + suffix, nil
}

func contentType(name string, data []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	return http.DetectContentType(data)
}

type op int

const (
	opUpload op = iota
	opStatus
	opResult
)

// do runs one API call and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, method, p, ctype string, body []byte, o op, limit int64, out any) error {
	if err := ctx.Err(); err != nil {
		return fault.Classify(err)
	}
	u := strings.TrimRight(c.base.String(), "/") + c.prefix + p
	q := url.Values{}
	if c.opts.OrganizationID != "" {
		q.Set("organization_id", c.opts.OrganizationID)
	}
	if c.opts.ProjectID != "" {
		q.Set("project_id", c.opts.ProjectID)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}

	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, u, rd)
	if err != nil {
		return fault.Wrap(fault.Permanent, CodeRejected, err, "could not build the request")
	}
	if c.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	what := describeOp(o)
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, cctx, err, what)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		return c.statusError(resp, b, o)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return c.transportError(ctx, cctx, err, what)
	}
	if int64(len(b)) > limit {
		return fault.Permanentf(CodeBadResponse, "the LlamaParse %s response is larger than %d MB", what, limit>>20)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fault.Transientf(CodeBadResponse,
			"LlamaParse answered the %s with HTTP %d but the body is not the expected JSON", what, resp.StatusCode)
	}
	return nil
}

func describeOp(o op) string {
	switch o {
	case opUpload:
		return "upload"
	case opStatus:
		return "job status request"
	}
	return "result request"
}

// transportError classifies a failed round trip. The cause is kept only as
// text with the key redacted (url.Error carries the URL, never headers, but be
// safe).
func (c *Client) transportError(parent, call context.Context, err error, what string) error {
	if perr := parent.Err(); perr != nil {
		return fault.Classify(perr)
	}
	cause := errors.New(redact(err.Error(), c.opts.APIKey))
	if call.Err() != nil || isTimeout(err) {
		return fault.Wrap(fault.Transient, CodeTimeout, cause,
			"the LlamaParse %s timed out after %s", what, c.opts.Timeout)
	}
	return fault.Wrap(fault.Transient, CodeNetwork, cause, "the LlamaParse %s failed to connect or was cut off", what)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
