// Package client is a small typed client for docpipe's HTTP API (docs/API.md), used
// by the CLI in API mode and by `docpipe dev`.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/docpipe/docpipe/internal/api"
)

// Client calls one docpipe API with one credential (API key or JWT).
type Client struct {
	Base, Token string
	HTTP        *http.Client
	// MaxRetries429 is how often a 429 is retried after its Retry-After (default 3).
	MaxRetries429 int
}

// New returns a client for base (e.g. http://127.0.0.1:8080).
func New(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}, MaxRetries429: 3}
}

// Problem is an RFC 9457 error answer.
type Problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("HTTP %d %s", p.Status, p.Code)
	if p.Detail != "" {
		s += ": " + p.Detail
	} else if p.Title != "" {
		s += ": " + p.Title
	}
	if p.Status == http.StatusUnauthorized {
		s += " (check --token / DOCPIPE_API_TOKEN: an API key from `docpipe keys create` or a JWT)"
	}
	return s
}

// Do sends a request with body (nil for none) and decodes a JSON answer into out
// (nil to discard). Non-2xx answers become *Problem. 429s are retried after
// Retry-After.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
		if err != nil {
			return err
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w (is the API at %s running?)", method, path, err, c.Base)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && attempt < c.MaxRetries429 {
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if resp.StatusCode >= 300 {
			p := &Problem{Status: resp.StatusCode}
			_ = json.Unmarshal(data, p)
			p.Status = resp.StatusCode
			return p
		}
		if out == nil || len(data) == 0 {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
		return nil
	}
}

// Upload sends a file with POST /v1/documents (multipart), declaring its sha256 so
// the server verifies the bytes it stored.
func (c *Client) Upload(ctx context.Context, path string) (api.UploadResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return api.UploadResult{}, err
	}
	sum := sha256.Sum256(data)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("sha256", hex.EncodeToString(sum[:]))
	fw, err := mw.CreateFormFile("file", filepath.Base(path))
	if err != nil {
		return api.UploadResult{}, err
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		return api.UploadResult{}, err
	}
	var res api.UploadResult
	err = c.Do(ctx, http.MethodPost, "/v1/documents", mw.FormDataContentType(), form.Bytes(), &res)
	return res, err
}

// Document is GET /v1/documents/{id}.
func (c *Client) Document(ctx context.Context, id string) (api.Document, error) {
	var d api.Document
	return d, c.Do(ctx, http.MethodGet, "/v1/documents/"+url.PathEscape(id), "", nil, &d)
}

// Events is GET /v1/documents/{id}/events.
func (c *Client) Events(ctx context.Context, documentID string) ([]api.Event, error) {
	var out struct {
		Items []api.Event `json:"items"`
	}
	return out.Items, c.Do(ctx, http.MethodGet, "/v1/documents/"+url.PathEscape(documentID)+"/events", "", nil, &out)
}

// Job is GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (api.Job, error) {
	var j api.Job
	return j, c.Do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), "", nil, &j)
}

// Jobs is GET /v1/jobs?state= (first page).
func (c *Client) Jobs(ctx context.Context, state string, limit int) ([]api.Job, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Items []api.Job `json:"items"`
	}
	return out.Items, c.Do(ctx, http.MethodGet, "/v1/jobs?"+q.Encode(), "", nil, &out)
}

// Retry is POST /v1/jobs/{id}/retry.
func (c *Client) Retry(ctx context.Context, id string) (api.Job, error) {
	var j api.Job
	return j, c.Do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/retry", "", nil, &j)
}

// Cancel is POST /v1/jobs/{id}/cancel.
func (c *Client) Cancel(ctx context.Context, id string) (api.Job, error) {
	var j api.Job
	return j, c.Do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", "", nil, &j)
}

// Search is POST /v1/search.
func (c *Client) Search(ctx context.Context, query string, k int, mode string) ([]api.SearchHit, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "k": k, "mode": mode})
	var out struct {
		Results []api.SearchHit `json:"results"`
	}
	return out.Results, c.Do(ctx, http.MethodPost, "/v1/search", "application/json", body, &out)
}
