// Package client is a small typed client for docpipe's HTTP API (docs/API.md), on
// the API's wire types (internal/api/apitypes), never the server. Every method returns
// a *Problem for an RFC 9457 error answer (branch on its Code), and retries a 429
// after its Retry-After a few times (MaxRetries) before giving up.
//
// It also holds the bodies of the CLI's client commands, written against Backend,
// which *Client implements through the API and internal/client/direct on the
// database: Uploader (`docpipe ingest`, also `docpipe dev`'s samples) and CLI
// (`status`, `jobs`, `search`).
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

// Client calls one docpipe API with one credential (an API key or a JWT).
type Client struct {
	// BaseURL is the API root, e.g. http://127.0.0.1:8080 (no /v1).
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>" (none when empty).
	Token string
	// CorrelationID, when set (a UUID), is sent as X-Correlation-Id with every
	// request: the runs that uploads start get it as their correlation id (every log
	// line and event of the run carries it), and the server's request log lines
	// carry it.
	CorrelationID string
	// HTTP does the requests; it has no overall timeout (uploads can be long),
	// Timeout bounds every other call.
	HTTP *http.Client
	// Timeout bounds each call except uploads (default 1 minute; 0 = none).
	Timeout time.Duration
	// MaxRetries is how often an answer 429 is retried after its Retry-After (default 3).
	MaxRetries int
	// MaxRetryWait caps one Retry-After wait (default 1 minute): a daily upload limit
	// that resets at midnight is reported, not waited for.
	MaxRetryWait time.Duration
}

// New returns a client for the API at baseURL that authenticates with token.
func New(baseURL, token string) *Client {
	return &Client{
		BaseURL:      strings.TrimRight(baseURL, "/"),
		Token:        token,
		HTTP:         &http.Client{},
		Timeout:      time.Minute,
		MaxRetries:   3,
		MaxRetryWait: time.Minute,
	}
}

// Problem is an RFC 9457 error answer (application/problem+json) with docpipe's
// stable code (docs/API.md, "Errors"; the codes are apitypes.Code*), and what the
// client knows about the request that got it.
type Problem struct {
	apitypes.Problem
	// RequestID is the answer's X-Request-Id (it names the server's log line).
	RequestID string `json:"-"`
	// RetryAfter is the answer's Retry-After, if any.
	RetryAfter time.Duration `json:"-"`
	// Method and URL are the request that failed.
	Method string `json:"-"`
	URL    string `json:"-"`
}

// Error reads like "POST /v1/documents: 422 CHECKSUM_MISMATCH: the declared sha256 …".
func (p *Problem) Error() string {
	var b strings.Builder
	if p.Method != "" {
		fmt.Fprintf(&b, "%s %s: ", p.Method, p.URL)
	}
	fmt.Fprintf(&b, "%d", p.Status)
	if p.Code != "" {
		b.WriteString(" " + p.Code)
	}
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	if msg == "" {
		msg = http.StatusText(p.Status)
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	for _, e := range p.Errors {
		b.WriteString("; " + e.Message)
		if e.Location != "" {
			b.WriteString(" (" + e.Location + ")")
		}
	}
	if p.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", p.RetryAfter)
	}
	return b.String()
}

// IsCode reports whether err is a *Problem with this code.
func IsCode(err error, code string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code == code
}

// StatusOf is the HTTP status of a *Problem error, else 0.
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// request is one call; body makes a fresh request body for every attempt.
type request struct {
	method, path, contentType string
	body                      func() (io.ReadCloser, int64, error)
	noTimeout                 bool
}

// do sends r (retrying 429s) and decodes a 2xx JSON answer into out (nil: discard).
func (c *Client) do(ctx context.Context, r request, out any) error {
	if c.Timeout > 0 && !r.noTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	for attempt := 0; ; attempt++ {
		var body io.ReadCloser
		length := int64(0)
		if r.body != nil {
			var err error
			if body, length, err = r.body(); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, r.method, c.BaseURL+r.path, body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return err
		}
		if body != nil {
			req.ContentLength = length
		}
		req.Header.Set("Accept", "application/json, application/problem+json")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		if c.CorrelationID != "" {
			req.Header.Set(apitypes.CorrelationHeader, c.CorrelationID)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", r.method, r.path, ctx.Err())
			}
			return fmt.Errorf("%s %s: %w (is the docpipe API at %s running?)", r.method, r.path, err, c.BaseURL)
		}
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			p := &Problem{}
			if json.Unmarshal(data, p) != nil {
				p = &Problem{Problem: apitypes.Problem{Detail: strings.TrimSpace(string(data))}}
				if len(p.Detail) > 200 || strings.HasPrefix(p.Detail, "<") {
					p.Detail = ""
				}
			}
			p.Status, p.Method, p.URL = resp.StatusCode, r.method, r.path
			p.RequestID = resp.Header.Get("X-Request-Id")
			p.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
			if resp.StatusCode == http.StatusTooManyRequests && attempt < c.MaxRetries &&
				(c.MaxRetryWait <= 0 || p.RetryAfter <= c.MaxRetryWait) {
				wait := p.RetryAfter
				if wait <= 0 && resp.Header.Get("Retry-After") == "" {
					wait = time.Duration(attempt+1) * time.Second
				}
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("%w (while waiting to retry: %w)", p, ctx.Err())
				case <-t.C:
				}
				continue
			}
			return p
		}
		if rerr != nil {
			return fmt.Errorf("%s %s: read answer: %w", r.method, r.path, rerr)
		}
		if out == nil || len(data) == 0 {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", r.method, r.path, err)
		}
		return nil
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, request{method: http.MethodGet, path: path}, out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	r := request{method: http.MethodPost, path: path}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.contentType = "application/json"
		r.body = func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
		}
	}
	return c.do(ctx, r, out)
}

// Upload sends the file at path with POST /v1/documents (multipart), streaming it
// from disk, and declares its sha256 so the server rejects bytes that differ
// (CHECKSUM_MISMATCH). progress (may be nil) is called as the file's bytes go out,
// with the bytes sent so far and the file's size. A repeat upload of the same bytes
// answers the existing document (Duplicate).
func (c *Client) Upload(ctx context.Context, path string, progress func(sent, total int64)) (apitypes.UploadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return apitypes.UploadResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return apitypes.UploadResult{}, err
	}
	if !st.Mode().IsRegular() {
		return apitypes.UploadResult{}, fmt.Errorf("%s: not a regular file", path)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return apitypes.UploadResult{}, fmt.Errorf("read %s: %w", path, err)
	}
	// The multipart envelope around the file is fixed, so the body has a known length
	// and the file streams between its head and tail.
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if err := mw.WriteField("sha256", hex.EncodeToString(h.Sum(nil))); err != nil {
		return apitypes.UploadResult{}, err
	}
	if _, err := mw.CreateFormFile("file", filepath.Base(path)); err != nil {
		return apitypes.UploadResult{}, err
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	if err := mw.Close(); err != nil {
		return apitypes.UploadResult{}, err
	}
	suffix := bytes.Clone(head.Bytes())
	r := request{
		method: http.MethodPost, path: "/v1/documents", contentType: mw.FormDataContentType(), noTimeout: true,
		body: func() (io.ReadCloser, int64, error) {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, 0, err
			}
			if progress != nil {
				progress(0, size)
			}
			file := &countingReader{r: io.LimitReader(f, size), total: size, progress: progress}
			return io.NopCloser(io.MultiReader(bytes.NewReader(prefix), file, bytes.NewReader(suffix))),
				int64(len(prefix)) + size + int64(len(suffix)), nil
		},
	}
	var res apitypes.UploadResult
	err = c.do(ctx, r, &res)
	return res, err
}

// countingReader reports how many bytes of the file have been read (sent).
type countingReader struct {
	r        io.Reader
	sent     int64
	total    int64
	progress func(sent, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.sent += int64(n)
		if c.progress != nil {
			c.progress(c.sent, c.total)
		}
	}
	return n, err
}

// Document is GET /v1/documents/{id}: status, stage, percent, counts, cost, last error.
func (c *Client) Document(ctx context.Context, id string) (apitypes.Document, error) {
	var d apitypes.Document
	return d, c.getJSON(ctx, "/v1/documents/"+url.PathEscape(id), &d)
}

// DocumentsQuery selects a page of documents for DocumentsPage.
type DocumentsQuery struct {
	Limit  int    // page size, 1-500 (0: the server's default, 50)
	Cursor string // NextCursor of the previous page
}

// DocumentsPage is one page of GET /v1/documents, newest first, and the cursor of
// the next page ("" on the last).
func (c *Client) DocumentsPage(ctx context.Context, q DocumentsQuery) ([]apitypes.Document, string, error) {
	v := url.Values{}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	path := "/v1/documents"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page apitypes.DocumentList
	err := c.getJSON(ctx, path, &page)
	return page.Items, page.NextCursor, err
}

// Documents is GET /v1/documents, every page, newest first.
func (c *Client) Documents(ctx context.Context) ([]apitypes.Document, error) {
	var all []apitypes.Document
	q := DocumentsQuery{Limit: 500}
	for {
		items, next, err := c.DocumentsPage(ctx, q)
		all = append(all, items...)
		if err != nil || next == "" || len(items) == 0 {
			return all, err
		}
		q.Cursor = next
	}
}

// Events is GET /v1/documents/{id}/events: the document's audit trail, oldest first.
func (c *Client) Events(ctx context.Context, docID string) ([]apitypes.Event, error) {
	var out apitypes.EventList
	return out.Items, c.getJSON(ctx, "/v1/documents/"+url.PathEscape(docID)+"/events", &out)
}

// Job is GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (apitypes.Job, error) {
	var j apitypes.Job
	return j, c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id), &j)
}

// JobsQuery selects runs for JobsPage.
type JobsQuery struct {
	State      string // a state (queued, working, retryable, done, deadletter) or a status; empty = all
	DocumentID string // only this document's runs
	Limit      int    // page size, 1-500 (0: the server's default, 50)
	Cursor     string // NextCursor of the previous page
}

// JobsPage is one page of GET /v1/jobs, newest first, and the cursor of the next
// page ("" on the last).
func (c *Client) JobsPage(ctx context.Context, q JobsQuery) ([]apitypes.Job, string, error) {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.DocumentID != "" {
		v.Set("document_id", q.DocumentID)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	path := "/v1/jobs"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out apitypes.JobList
	err := c.getJSON(ctx, path, &out)
	return out.Items, out.NextCursor, err
}

// Jobs is GET /v1/jobs?state=…: the newest runs in that state or status (empty: all),
// one page of the server's default size.
func (c *Client) Jobs(ctx context.Context, state string) ([]apitypes.Job, error) {
	items, _, err := c.JobsPage(ctx, JobsQuery{State: state})
	return items, err
}

// Retry is POST /v1/jobs/{id}/retry: re-drive a dead-lettered run.
func (c *Client) Retry(ctx context.Context, id string) (apitypes.Job, error) {
	var j apitypes.Job
	return j, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/retry", nil, &j)
}

// Cancel is POST /v1/jobs/{id}/cancel; reason (may be empty) is recorded.
func (c *Client) Cancel(ctx context.Context, id, reason string) (apitypes.Job, error) {
	var in any
	if reason != "" {
		in = apitypes.CancelRequest{Reason: reason}
	}
	var j apitypes.Job
	return j, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/cancel", in, &j)
}

// Search is POST /v1/search; mode is vector, keyword or hybrid ("" = the server's
// default, hybrid) and k ≤ 0 the server's default.
func (c *Client) Search(ctx context.Context, query string, k int, mode string) ([]apitypes.SearchHit, error) {
	in := apitypes.SearchRequest{Query: query, K: max(k, 0), Mode: mode}
	var out apitypes.SearchResults
	return out.Results, c.postJSON(ctx, "/v1/search", in, &out)
}
