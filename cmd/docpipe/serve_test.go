package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/dbtest"
)

// `docpipe serve --with-worker` as wired by the command: API keys from `keys create`,
// an upload over HTTP on loopback processed by the in-process worker, search, key
// revocation, and a graceful stop when the context ends.
func TestServeWithWorker(t *testing.T) {
	t.Parallel()
	_, dbURL := dbtest.Pool(t)
	tmp := t.TempDir()
	env := map[string]string{
		"DATABASE_URL":      dbURL,
		"DOCPIPE_DATA_DIR":  filepath.Join(tmp, "data"),
		"DOCPIPE_CACHE_DIR": filepath.Join(os.TempDir(), "docpipe-test-cache"),
		"DOCPIPE_LOG_LEVEL": "warn",
	}
	cfg, problems := config.Load(func(k string) string { return env[k] })
	if len(problems) > 0 {
		t.Fatalf("config: %v", problems)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := newApp(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dbtest.Must(t, err, "newApp")
	defer a.Close()

	keys := auth.NewKeys(a.pool)
	var out bytes.Buffer
	user := uuid.MustParse(cfg.UserID)
	dbtest.Must(t, createKey(ctx, keys, auth.NewKey{Name: "ci", UserID: &user}, &out), "create key")
	key := strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0])
	if !auth.IsAPIKey(key) || !strings.Contains(out.String(), "only time") {
		t.Fatalf("keys create printed %q", out.String())
	}
	out.Reset()
	dbtest.Must(t, listKeys(ctx, keys, false, &out), "list keys")
	if !strings.Contains(out.String(), key[:12]) || strings.Contains(out.String(), key) {
		t.Fatalf("keys list shows %q (want the prefix, never the key)", out.String())
	}

	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- runServe(ctx, a, serveOptions{addr: "127.0.0.1:0", withWorker: true}, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	dbtest.Must(t, err, "read listen line")
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	fields := strings.Fields(line)
	base := ""
	for _, f := range fields {
		if strings.HasPrefix(f, "http://") {
			base = f
			break
		}
	}
	if base == "" {
		t.Fatalf("no URL in %q", line)
	}
	client := &http.Client{Timeout: time.Minute}
	call := func(method, path string, body io.Reader, ct string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, body)
		dbtest.Must(t, err, "request")
		req.Header.Set("Authorization", "Bearer "+key)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := client.Do(req)
		dbtest.Must(t, err, "%s %s", method, path)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	if code, body := call(http.MethodGet, "/readyz", nil, ""); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	form, ctype := multipartFile(t, "../../samples/plan-summary.md")
	code, body := call(http.MethodPost, "/v1/documents", form, ctype)
	if code != http.StatusAccepted {
		t.Fatalf("upload: %d %s", code, body)
	}
	var up struct {
		DocumentID string `json:"document_id"`
	}
	_ = json.Unmarshal(body, &up)
	deadline := time.Now().Add(time.Minute)
	for {
		_, body = call(http.MethodGet, "/v1/documents/"+up.DocumentID, nil, "")
		var doc struct{ Status string }
		_ = json.Unmarshal(body, &doc)
		if doc.Status == "complete" {
			break
		}
		if strings.HasPrefix(doc.Status, "failed") || time.Now().After(deadline) {
			t.Fatalf("document: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body = call(http.MethodPost, "/v1/search", strings.NewReader(`{"query":"deductible","k":3}`), "application/json")
	if code != 200 || !strings.Contains(strings.ToLower(string(body)), "deductible") {
		t.Fatalf("search: %d %s", code, body)
	}

	// /metrics parses as Prometheus text and (within a few scrapes: counters read
	// events in commit order) agrees with the database; /v1/alerts answers.
	var completed float64
	for i := 0; i < 100 && completed != 1; i++ {
		code, body = call(http.MethodGet, "/metrics", nil, "")
		if code != 200 {
			t.Fatalf("metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		dbtest.Must(t, err, "parse /metrics")
		if f := families["docpipe_documents_completed_total"]; f != nil && len(f.GetMetric()) > 0 {
			completed = f.GetMetric()[0].GetCounter().GetValue()
		}
		if completed != 1 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if completed != 1 {
		t.Errorf("docpipe_documents_completed_total = %v, want 1", completed)
	}
	if code, body := call(http.MethodGet, "/", nil, ""); code != 200 || !strings.Contains(string(body), "/ui/app.js") {
		t.Errorf("dashboard: %d %.200s", code, body)
	}
	if code, body := call(http.MethodGet, "/v1/alerts", nil, ""); code != 200 || !strings.Contains(string(body), `"alerts"`) {
		t.Errorf("alerts: %d %s", code, body)
	}

	_, err = keys.Revoke(ctx, key[:12])
	dbtest.Must(t, err, "revoke")
	if code, _ := call(http.MethodGet, "/v1/documents", nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d", code)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("the server still answers after shutdown")
	}
}
