package mock_test

// The official client SDKs (Node.js: openai, llama-cloud-services and
// @llamaindex/cloud, @supabase/storage-js), unchanged, against the local twins:
// each test starts a twin on httptest, runs scripts/sdk/<name>.mjs against it
// and checks the facts that script prints as JSON. scripts/bootstrap (via
// scripts/sdk/install) installs Node.js and the pinned SDKs; without them these
// tests fail, unless DOCPIPE_SKIP_SDK_TESTS=1.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pdfgen"
)

// sdkPackages must be installed in scripts/sdk/node_modules.
var sdkPackages = []string{"openai", "@supabase/storage-js", "llama-cloud-services", "@llamaindex/cloud"}

// sdkDir returns scripts/sdk, failing the test when Node.js or the SDKs are not
// installed (or are stale), unless DOCPIPE_SKIP_SDK_TESTS=1.
func sdkDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("DOCPIPE_SKIP_SDK_TESTS") == "1" {
		t.Skip("DOCPIPE_SKIP_SDK_TESTS=1")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "scripts", "sdk")) // go test runs in the package directory
	if err != nil {
		t.Fatal(err)
	}
	const fix = "run scripts/bootstrap (or scripts/sdk/install) to install Node.js and the SDKs, or set DOCPIPE_SKIP_SDK_TESTS=1 to skip the SDK tests"
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: %s", fix)
	}
	for _, p := range sdkPackages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("SDK package %s is not installed in %s/node_modules: %s", p, dir, fix)
		}
	}
	// The install stamp must match the current package.json + package-lock.json.
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	stamp, _ := os.ReadFile(filepath.Join(dir, "node_modules", ".docpipe-sdk-stamp"))
	if strings.TrimSpace(string(stamp)) != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("%s/node_modules was not installed from the current package.json and package-lock.json: %s", dir, fix)
	}
	return dir
}

// runSDK runs `node scripts/sdk/<script> args...` and decodes the JSON object
// on the last line of its stdout into v.
func runSDK(t *testing.T, script string, v any, args ...string) {
	t.Helper()
	dir := sdkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("node %s: %v", script, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("node %s %s: %v\nstderr:\n%s\nstdout:\n%s", script, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	if strings.HasPrefix(strings.TrimSpace(stdout.String()), "{") && !strings.HasPrefix(last, "{") {
		last = strings.TrimSpace(stdout.String()) // pretty-printed over several lines
	}
	if err := json.Unmarshal([]byte(last), v); err != nil {
		t.Fatalf("node %s: output is not the expected JSON: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	if testing.Verbose() {
		t.Logf("node %s stdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
	}
}

// sdkError is what the scripts report of an error the SDK threw.
type sdkError struct {
	Class                 string            `json:"class"`
	IsAPIError            bool              `json:"isAPIError"`
	IsRateLimitError      bool              `json:"isRateLimitError"`
	IsAuthenticationError bool              `json:"isAuthenticationError"`
	Status                any               `json:"status"` // number (OpenAI) or string (storage-js statusCode)
	Code                  any               `json:"code"`
	Type                  any               `json:"type"`
	Param                 any               `json:"param"`
	Message               string            `json:"message"`
	Name                  string            `json:"name"`
	StatusCode            any               `json:"statusCode"`
	IsStorageError        bool              `json:"isStorageError"`
	IsStorageAPIError     bool              `json:"isStorageApiError"`
	Headers               map[string]string `json:"headers"`
	Thrown                any               `json:"thrown"`
	Cause                 *sdkError         `json:"cause"`
}

func (e *sdkError) String() string {
	if e == nil {
		return "<no error>"
	}
	b, _ := json.Marshal(e)
	return string(b)
}

// ---------------------------------------------------------------- OpenAI

type oaEmbFacts struct {
	Error      *sdkError `json:"error"`
	Unexpected string    `json:"unexpected"`
	Object     string    `json:"object"`
	Model      string    `json:"model"`
	Usage      struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
	N                  int       `json:"n"`
	Indexes            []int     `json:"indexes"`
	Objects            []string  `json:"objects"`
	Dims               []int     `json:"dims"`
	AllNumbers         bool      `json:"all_numbers"`
	Norms              []float64 `json:"norms"`
	RequestID          string    `json:"request_id"`
	SentEncodingFormat any       `json:"sent_encoding_format"`
	SentDimensions     any       `json:"sent_dimensions"`
	WireEmbeddingTypes []string  `json:"wire_embedding_types"`
	SameAsBase64       bool      `json:"same_as_base64"`
	Status             int       `json:"status"`
	Path               string    `json:"path"`
	ElapsedMS          int64     `json:"elapsed_ms"`
	Attempts           int       `json:"attempts"`
	IDs                []string  `json:"ids"`
	Retrieved          string    `json:"retrieved"`
}

type oaFacts struct {
	Node          string            `json:"node"`
	SDK           map[string]string `json:"sdk"`
	Base64Default oaEmbFacts        `json:"base64_default"`
	Float         oaEmbFacts        `json:"float"`
	Dimensions    oaEmbFacts        `json:"dimensions"`
	TokenIDs      oaEmbFacts        `json:"token_ids"`
	Models        oaEmbFacts        `json:"models"`
	ModelNotFound oaEmbFacts        `json:"model_not_found"`
	BadRequest    oaEmbFacts        `json:"bad_request"`
	Auth          oaEmbFacts        `json:"auth"`
	RateLimited   oaEmbFacts        `json:"rate_limited"`
	Quota         oaEmbFacts        `json:"quota"`
	WirePaths     []string          `json:"wire_paths"`
}

func TestSDKOpenAI(t *testing.T) {
	t.Parallel()
	sdkDir(t)
	const key = "sk-docpipe-test-0123456789abcdef"
	start := func(o mock.OpenAIOptions) (*mock.OpenAIServer, string) {
		o.APIKey = key
		s := mock.NewOpenAIServer(o)
		ts := httptest.NewServer(s)
		t.Cleanup(ts.Close)
		return s, ts.URL + "/v1"
	}
	_, okURL := start(mock.OpenAIOptions{Seed: 1})
	rl, rlURL := start(mock.OpenAIOptions{Seed: 2, RateLimit429: 1, RetryAfter: 20 * time.Millisecond})
	quota, quotaURL := start(mock.OpenAIOptions{Seed: 3, InsufficientQuota: true})

	var f oaFacts
	runSDK(t, "openai.mjs", &f, okURL, key, rlURL, quotaURL)
	t.Logf("node %s, openai %s", f.Node, f.SDK["openai"])

	embOK := func(name string, e oaEmbFacts, model string, n, dims int, format string) {
		t.Helper()
		if e.Error != nil || e.Unexpected != "" {
			t.Errorf("%s: embeddings.create failed: %s %s", name, e.Error, e.Unexpected)
			return
		}
		if e.Status != 200 || e.Path != "/v1/embeddings" {
			t.Errorf("%s: wire = %s %d, want /v1/embeddings 200", name, e.Path, e.Status)
		}
		if e.SentEncodingFormat != format {
			t.Errorf("%s: the SDK sent encoding_format %v, want %q", name, e.SentEncodingFormat, format)
		}
		wantWire := "string"
		if format == "float" {
			wantWire = "object" // a JSON array
		}
		for i, ty := range e.WireEmbeddingTypes {
			if ty != wantWire {
				t.Errorf("%s: data[%d].embedding on the wire is a %s, want %s (encoding_format %s)", name, i, ty, wantWire, format)
			}
		}
		if e.Object != "list" || e.Model != model || e.N != n || len(e.WireEmbeddingTypes) != n {
			t.Errorf("%s: object=%q model=%q n=%d (wire %d), want list %q %d", name, e.Object, e.Model, e.N, len(e.WireEmbeddingTypes), model, n)
		}
		for i := range e.Indexes {
			if e.Indexes[i] != i {
				t.Errorf("%s: indexes %v, want 0..%d in order", name, e.Indexes, n-1)
				break
			}
		}
		if !slices.Equal(e.Objects, []string{"embedding"}) {
			t.Errorf("%s: data[].object = %v, want embedding", name, e.Objects)
		}
		for i, d := range e.Dims {
			if d != dims {
				t.Errorf("%s: data[%d] has %d dims, want %d", name, i, d, dims)
			}
		}
		if !e.AllNumbers {
			t.Errorf("%s: the SDK did not hand back finite numbers", name)
		}
		for i, nm := range e.Norms {
			if nm < 0.99 || nm > 1.01 {
				t.Errorf("%s: data[%d] has norm %v, want ≈1 (the local embedder's unit vectors)", name, i, nm)
			}
		}
		if e.Usage.PromptTokens <= 0 || e.Usage.TotalTokens != e.Usage.PromptTokens {
			t.Errorf("%s: usage = %+v, want prompt_tokens > 0 = total_tokens", name, e.Usage)
		}
		if !strings.HasPrefix(e.RequestID, "req_") {
			t.Errorf("%s: _request_id = %q, want the twin's x-request-id (req_…)", name, e.RequestID)
		}
	}
	embOK("default (base64)", f.Base64Default, "text-embedding-3-small", 3, 1536, "base64")
	embOK("encoding_format float", f.Float, "text-embedding-3-small", 3, 1536, "float")
	if !f.Float.SameAsBase64 {
		t.Errorf("float and base64 answers decode to different vectors")
	}
	embOK("dimensions 256", f.Dimensions, "text-embedding-3-large", 1, 256, "base64")
	if f.Dimensions.SentDimensions != float64(256) {
		t.Errorf("dimensions: sent %v", f.Dimensions.SentDimensions)
	}
	embOK("token ids", f.TokenIDs, "text-embedding-3-small", 2, 1536, "float")
	if f.TokenIDs.Usage.PromptTokens != 3 {
		t.Errorf("token ids: usage.prompt_tokens = %d, want 3 (the ids sent)", f.TokenIDs.Usage.PromptTokens)
	}

	if f.Models.Error != nil || !slices.Contains(f.Models.IDs, "text-embedding-3-small") || f.Models.Retrieved != "text-embedding-3-small" {
		t.Errorf("models.list/retrieve: %+v", f.Models)
	}

	apiErr := func(name string, e oaEmbFacts, class string, status int, code, typ any) {
		t.Helper()
		if e.Error == nil {
			t.Errorf("%s: no error (%s)", name, e.Unexpected)
			return
		}
		if e.Error.Class != class || e.Error.Status != float64(status) || !e.Error.IsAPIError {
			t.Errorf("%s: the SDK threw %s, want %s with status %d", name, e.Error, class, status)
		}
		if code != nil && e.Error.Code != code {
			t.Errorf("%s: error.code = %v, want %v (%s)", name, e.Error.Code, code, e.Error)
		}
		if typ != nil && e.Error.Type != typ {
			t.Errorf("%s: error.type = %v, want %v (%s)", name, e.Error.Type, typ, e.Error)
		}
		if !strings.HasPrefix(e.Error.Headers["x-request-id"], "req_") {
			t.Errorf("%s: the error carries no x-request-id header: %v", name, e.Error.Headers)
		}
	}
	apiErr("model not found", f.ModelNotFound, "NotFoundError", 404, "model_not_found", "invalid_request_error")
	apiErr("dimensions 0", f.BadRequest, "BadRequestError", 400, nil, "invalid_request_error")
	if f.BadRequest.Error != nil && f.BadRequest.Error.Param != "dimensions" {
		t.Errorf("dimensions 0: error.param = %v, want dimensions", f.BadRequest.Error.Param)
	}
	apiErr("wrong key", f.Auth, "AuthenticationError", 401, "invalid_api_key", "invalid_request_error")
	if f.Auth.Error != nil && !f.Auth.Error.IsAuthenticationError {
		t.Errorf("wrong key: not an instance of AuthenticationError: %s", f.Auth.Error)
	}

	// 429 rate_limit_exceeded: retried by the SDK (2 retries by default) on the
	// twin's retry-after-ms hint (20 ms, far below the SDK's own ≥0.5 s
	// backoff), then RateLimitError.
	apiErr("rate limited", f.RateLimited, "RateLimitError", 429, "rate_limit_exceeded", "requests")
	if f.RateLimited.Error != nil {
		if !f.RateLimited.Error.IsRateLimitError {
			t.Errorf("rate limited: not an instance of RateLimitError: %s", f.RateLimited.Error)
		}
		h := f.RateLimited.Error.Headers
		if h["retry-after-ms"] == "" || h["retry-after"] == "" {
			t.Errorf("rate limited: no retry-after(-ms) headers: %v", h)
		}
		if !strings.Contains(f.RateLimited.Error.Message, "Please try again in") {
			t.Errorf("rate limited: message %q has no retry hint", f.RateLimited.Error.Message)
		}
	}
	if f.RateLimited.Attempts != 3 || rl.StatusCount(429) != 3 {
		t.Errorf("rate limited: %d attempts by the SDK, %d 429s by the twin, want 3 (1 + 2 retries)", f.RateLimited.Attempts, rl.StatusCount(429))
	}
	if f.RateLimited.ElapsedMS > 1000 {
		t.Errorf("rate limited: the SDK took %d ms for 3 attempts: it did not follow retry-after-ms (20 ms)", f.RateLimited.ElapsedMS)
	}

	apiErr("insufficient quota", f.Quota, "RateLimitError", 429, "insufficient_quota", "insufficient_quota")
	if quota.StatusCount(429) != 1 {
		t.Errorf("insufficient quota: the twin answered %d 429s, want 1 (maxRetries 0)", quota.StatusCount(429))
	}
}

// ---------------------------------------------------------------- LlamaParse

type lpSDKFacts struct {
	Node          string            `json:"node"`
	SDK           map[string]string `json:"sdk"`
	ReaderMD      lpSDKStep         `json:"reader_markdown"`
	ReaderTextOld lpSDKStep         `json:"reader_text_old_base"`
	ReaderJSON    lpSDKStep         `json:"reader_json"`
	ReaderBadKey  lpSDKStep         `json:"reader_bad_key"`
	Legacy        lpSDKStep         `json:"legacy"`
	LegacyMissing lpSDKStep         `json:"legacy_missing_job"`
	Wire          []string          `json:"wire"`
}

type lpSDKStep struct {
	Error      *sdkError `json:"error"`
	Unexpected string    `json:"unexpected"`
	Wire       []string  `json:"wire"`
	Documents  []string  `json:"documents"`
	Results    []struct {
		JobID string `json:"job_id"`
		Pages []struct {
			Page int    `json:"page"`
			MD   string `json:"md"`
			Text string `json:"text"`
		} `json:"pages"`
		JobMetadata map[string]any `json:"job_metadata"`
		IsCompleted bool           `json:"is_completed"`
	} `json:"results"`
	JobID          string         `json:"job_id"`
	Statuses       []string       `json:"statuses"`
	Markdown       string         `json:"markdown"`
	Text           string         `json:"text"`
	JSONPages      int            `json:"json_pages"`
	JobMetadata    map[string]any `json:"job_metadata"`
	RawContentType string         `json:"raw_content_type"`
	RawMarkdown    string         `json:"raw_markdown"`
	Status         int            `json:"status"`
	Body           any            `json:"body"`
}

func TestSDKLlamaParse(t *testing.T) {
	t.Parallel()
	sdkDir(t)
	const key = "llx-docpipe-test"
	p := parse.NewLocal(parse.Options{CacheDir: filepath.Join(os.TempDir(), "docpipe-mock-llamaparse-test-wazero-cache")})
	t.Cleanup(func() { _ = p.Close() })
	s := mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: key, Parser: p, Delay: 100 * time.Millisecond, Seed: 7})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = s.Close() })

	pdfBytes := pdfgen.Build([][]string{{"First page text."}, {"Second page, line one.", "Line two."}})
	pdf := filepath.Join(t.TempDir(), "two-pages.pdf")
	if err := os.WriteFile(pdf, pdfBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	// Start the PDF engine while node loads the SDKs (about a second each).
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		_, _ = p.Parse(context.Background(), pdfBytes, "warm-up.pdf")
	}()
	t.Cleanup(func() { <-warm })

	var f lpSDKFacts
	runSDK(t, "llamaparse.mjs", &f, ts.URL, pdf, key)
	t.Logf("node %s, llama-cloud-services %s, @llamaindex/cloud %s", f.Node, f.SDK["llama-cloud-services"], f.SDK["@llamaindex/cloud"])

	onlyPrefix := func(name string, wire []string, prefix string) {
		t.Helper()
		if len(wire) == 0 {
			t.Errorf("%s: no HTTP requests recorded", name)
		}
		for _, w := range wire {
			if parts := strings.Fields(w); len(parts) < 2 || !strings.HasPrefix(parts[1], prefix) {
				t.Errorf("%s: request %q is not under %s", name, w, prefix)
			}
		}
	}
	hasReq := func(name string, wire []string, want string) {
		t.Helper()
		if !slices.Contains(wire, want) {
			t.Errorf("%s: no %q among the requests %v", name, want, wire)
		}
	}
	pages := func(name string, docs []string) {
		t.Helper()
		if len(docs) != 2 || !strings.Contains(docs[0], "First page text.") || !strings.Contains(docs[1], "Second page, line one.") {
			t.Errorf("%s: documents = %q, want the two pages split on the default separator", name, docs)
		}
	}

	// The current SDK (llama-cloud-services LlamaParseReader): /api/v1/parsing.
	if st := f.ReaderMD; st.Error != nil {
		t.Errorf("reader markdown: %s (requests %v)", st.Error, st.Wire)
	} else {
		pages("reader markdown", st.Documents)
		onlyPrefix("reader markdown", st.Wire, "/api/v1/parsing/")
		hasReq("reader markdown", st.Wire, "POST /api/v1/parsing/upload 200")
		if !slices.ContainsFunc(st.Wire, func(w string) bool {
			return strings.HasPrefix(w, "GET /api/v1/parsing/job/") && strings.HasSuffix(w, "/result/markdown 200")
		}) {
			t.Errorf("reader markdown: no result/markdown request in %v", st.Wire)
		}
	}
	if st := f.ReaderTextOld; st.Error != nil {
		t.Errorf("reader text (base URL …/api/parsing): %s (requests %v)", st.Error, st.Wire)
	} else {
		pages("reader text (base URL …/api/parsing)", st.Documents)
		onlyPrefix("reader text (base URL …/api/parsing)", st.Wire, "/api/v1/parsing/")
	}
	if st := f.ReaderJSON; st.Error != nil || len(st.Results) != 1 {
		t.Errorf("reader json: %s, %d results", st.Error, len(st.Results))
	} else {
		r := st.Results[0]
		if len(r.Pages) != 2 || r.Pages[0].Page != 1 || r.Pages[1].Page != 2 || !strings.Contains(r.Pages[1].MD, "Line two.") {
			t.Errorf("reader json: pages = %+v", r.Pages)
		}
		if r.JobMetadata["job_pages"] != float64(2) || !r.IsCompleted || r.JobID == "" {
			t.Errorf("reader json: job_id %q, job_metadata %v, is_completed %v", r.JobID, r.JobMetadata, r.IsCompleted)
		}
		onlyPrefix("reader json", st.Wire, "/api/v1/parsing/")
	}
	if st := f.ReaderBadKey; st.Error == nil {
		t.Errorf("reader with a wrong key: no error (%s)", st.Unexpected)
	} else {
		if !slices.Contains(st.Wire, "POST /api/v1/parsing/upload 401") || len(st.Wire) != 1 {
			t.Errorf("reader with a wrong key: requests %v, want one upload answered 401", st.Wire)
		}
		if !strings.Contains(st.Error.String(), "Invalid authentication token") {
			t.Errorf("reader with a wrong key: the error does not carry the twin's detail: %s", st.Error)
		}
	}

	// The legacy routes (/api/parsing/...) through @llamaindex/cloud's generated client.
	if st := f.Legacy; st.Error != nil {
		t.Errorf("legacy client: %s (requests %v)", st.Error, st.Wire)
	} else {
		onlyPrefix("legacy client", st.Wire, "/api/parsing/")
		hasReq("legacy client", st.Wire, "POST /api/parsing/upload 200")
		if len(st.Statuses) < 2 || st.Statuses[0] != "PENDING" || st.Statuses[len(st.Statuses)-1] != "SUCCESS" {
			t.Errorf("legacy client: statuses %v, want PENDING … SUCCESS", st.Statuses)
		}
		want := "First page text. ===PAGE 2=== Second page, line one."
		if !strings.Contains(st.Markdown, want) || !strings.Contains(st.Text, want) || !strings.Contains(st.RawMarkdown, want) {
			t.Errorf("legacy client: markdown %q / text %q / raw %q, want the pages joined by the custom page_separator (%q)", st.Markdown, st.Text, st.RawMarkdown, want)
		}
		if st.JSONPages != 2 || st.JobMetadata["job_pages"] != float64(2) {
			t.Errorf("legacy client: %d json pages, job_metadata %v", st.JSONPages, st.JobMetadata)
		}
		if !strings.HasPrefix(st.RawContentType, "text/markdown") {
			t.Errorf("legacy client: raw markdown content type %q", st.RawContentType)
		}
	}
	if st := f.LegacyMissing; st.Status != 404 || !reflect.DeepEqual(st.Body, map[string]any{"detail": "Job not found"}) {
		t.Errorf("legacy client, unknown job: status %d, body %v, want 404 {\"detail\": \"Job not found\"} (%s)", st.Status, st.Body, st.Error)
	}
}

// ---------------------------------------------------------------- Supabase Storage

type sbSDKFetched struct {
	Status             int    `json:"status"`
	Text               string `json:"text"`
	ContentDisposition string `json:"contentDisposition"`
	ContentType        string `json:"contentType"`
}

type sbSDKStep struct {
	Error      *sdkError      `json:"error"`
	Thrown     *sdkError      `json:"thrown"`
	Wire       []string       `json:"wire"`
	Bodies     []any          `json:"bodies"`
	Data       map[string]any `json:"data"`
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Public     *bool          `json:"public"`
	Names      []string       `json:"names"`
	Text       string         `json:"text"`
	Type       string         `json:"type"`
	Size       int            `json:"size"`
	CType      string         `json:"contentType"`
	BucketID   string         `json:"bucketId"`
	Yes, No    *bool
	SignedURL  string        `json:"signedUrl"`
	Fetched    *sbSDKFetched `json:"fetched"`
	Rows       []sbSDKRow    `json:"rows"`
	Uploaded   string        `json:"uploaded"`
	Downloaded string        `json:"downloaded"`
	Path       string        `json:"path"`
	FullPath   string        `json:"fullPath"`
	Token      bool          `json:"token"`
	Stage      string        `json:"stage"`
}

type sbSDKRow struct {
	Path    string        `json:"path"`
	Error   any           `json:"error"`
	Fetched *sbSDKFetched `json:"fetched"`
}

type sbSDKFacts struct {
	Node               string            `json:"node"`
	SDK                map[string]string `json:"sdk"`
	CreateBucket       sbSDKStep         `json:"create_bucket"`
	GetBucket          sbSDKStep         `json:"get_bucket"`
	ListBuckets        sbSDKStep         `json:"list_buckets"`
	Upload             sbSDKStep         `json:"upload"`
	UploadAgain        sbSDKStep         `json:"upload_again"`
	Upsert             sbSDKStep         `json:"upsert"`
	UploadBlob         sbSDKStep         `json:"upload_blob"`
	Download           sbSDKStep         `json:"download"`
	DownloadBlob       sbSDKStep         `json:"download_blob"`
	Info               sbSDKStep         `json:"info"`
	Exists             sbSDKStep         `json:"exists"`
	List               sbSDKStep         `json:"list"`
	SignedURL          sbSDKStep         `json:"signed_url"`
	SignedURLDownload  sbSDKStep         `json:"signed_url_download"`
	SignedURLs         sbSDKStep         `json:"signed_urls"`
	OddName            sbSDKStep         `json:"odd_name"`
	SignedUpload       sbSDKStep         `json:"signed_upload"`
	SignedUploadExists sbSDKStep         `json:"signed_upload_exists"`
	SignedUploadUpsert sbSDKStep         `json:"signed_upload_upsert"`
	Remove             sbSDKStep         `json:"remove"`
	DownloadMissing    sbSDKStep         `json:"download_missing"`
	MissingBucket      sbSDKStep         `json:"missing_bucket"`
	WrongKey           sbSDKStep         `json:"wrong_key"`
	WrongBearer        sbSDKStep         `json:"wrong_bearer"`
}

func TestSDKStorage(t *testing.T) {
	t.Parallel()
	sdkDir(t)
	for _, form := range []struct{ name, prefix string }{
		{"gateway", "/storage/v1"}, // hosted Supabase: https://<ref>.supabase.co/storage/v1
		{"self-hosted", ""},        // storage-api on its own
	} {
		t.Run(form.name, func(t *testing.T) {
			const key = "sb-docpipe-test"
			s := mock.NewStorageServer(mock.StorageOptions{APIKey: key, Seed: 5})
			ts := httptest.NewServer(s)
			t.Cleanup(ts.Close)
			base := ts.URL + form.prefix

			var f sbSDKFacts
			runSDK(t, "storage.mjs", &f, base, key)
			t.Logf("node %s, @supabase/storage-js %s", f.Node, f.SDK["@supabase/storage-js"])
			checkStorageSDK(t, f, base, form.prefix)
			for _, name := range []string{"raw/a.txt", "raw/b.json", "signed/c.txt"} {
				if _, ok := s.Object("sdk-docs", name); ok {
					t.Errorf("%s is still in the twin after remove()", name)
				}
			}
		})
	}
}

func checkStorageSDK(t *testing.T, f sbSDKFacts, base, prefix string) {
	t.Helper()
	const bucket = "sdk-docs"
	ok := func(name string, st sbSDKStep) bool {
		t.Helper()
		if st.Error != nil || st.Thrown != nil {
			t.Errorf("%s: %s%s (requests %v, error bodies %v)", name, st.Error, st.Thrown, st.Wire, st.Bodies)
			return false
		}
		return true
	}
	// storageErr: storage-js turned the answer into a StorageApiError with this
	// HTTP status and body statusCode (4xx answers are HTTP 400 + statusCode).
	storageErr := func(name string, st sbSDKStep, status int, statusCode, message string) {
		t.Helper()
		e := st.Error
		if e == nil {
			t.Errorf("%s: no error (requests %v)", name, st.Wire)
			return
		}
		if !e.IsStorageError || !e.IsStorageAPIError || e.Status != float64(status) || e.StatusCode != statusCode {
			t.Errorf("%s: storage-js gave %s, want a StorageApiError with status %d and statusCode %q (error bodies %v)", name, e, status, statusCode, st.Bodies)
		}
		if message != "" && e.Message != message {
			t.Errorf("%s: message %q, want %q", name, e.Message, message)
		}
	}
	wire := func(name string, st sbSDKStep, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(st.Wire, w) {
				t.Errorf("%s: no %q among the requests %v", name, w, st.Wire)
			}
		}
	}
	fetched := func(name string, fe *sbSDKFetched, text string) {
		t.Helper()
		if fe == nil || fe.Status != 200 || fe.Text != text {
			t.Errorf("%s: fetching the signed URL gave %+v, want 200 %q", name, fe, text)
		}
	}

	if ok("createBucket", f.CreateBucket) && f.CreateBucket.Data["name"] != bucket {
		t.Errorf("createBucket: data %v", f.CreateBucket.Data)
	}
	if ok("getBucket", f.GetBucket) && (f.GetBucket.ID != bucket || f.GetBucket.Name != bucket || f.GetBucket.Public == nil || *f.GetBucket.Public) {
		t.Errorf("getBucket: %+v", f.GetBucket)
	}
	if ok("listBuckets", f.ListBuckets) && !slices.Contains(f.ListBuckets.Names, bucket) {
		t.Errorf("listBuckets: %v", f.ListBuckets.Names)
	}

	// upload, duplicate, upsert, multipart.
	if ok("upload", f.Upload) {
		if f.Upload.Data["path"] != "raw/a.txt" || f.Upload.Data["fullPath"] != bucket+"/raw/a.txt" || f.Upload.Data["id"] == nil || f.Upload.Data["id"] == "" {
			t.Errorf("upload: data %v, want path raw/a.txt, fullPath %s/raw/a.txt and an id", f.Upload.Data, bucket)
		}
		wire("upload", f.Upload, "POST "+prefix+"/object/"+bucket+"/raw/a.txt 200")
	}
	storageErr("upload of an existing object", f.UploadAgain, 400, "409", "")
	ok("upload with upsert", f.Upsert)
	ok("upload of a Blob (multipart)", f.UploadBlob)

	// download, info, exists, list.
	if ok("download", f.Download) && (f.Download.Text != "docpipe version two\n" || f.Download.Type != "text/plain") {
		t.Errorf("download: %q (%s), want the upserted text (text/plain)", f.Download.Text, f.Download.Type)
	}
	if ok("download (multipart upload)", f.DownloadBlob) && (f.DownloadBlob.Text != `{"ok":true}` || f.DownloadBlob.Type != "application/json") {
		t.Errorf("download (multipart upload): %q (%s)", f.DownloadBlob.Text, f.DownloadBlob.Type)
	}
	if ok("info", f.Info) && (f.Info.Name != "raw/a.txt" || f.Info.Size != 20 || f.Info.CType != "text/plain" || f.Info.BucketID != bucket || f.Info.ID == "") {
		t.Errorf("info: %+v", f.Info)
	}
	if ok("exists", f.Exists) && (f.Exists.Yes == nil || !*f.Exists.Yes || f.Exists.No == nil || *f.Exists.No) {
		t.Errorf("exists: existing %v, missing %v (requests %v)", f.Exists.Yes, f.Exists.No, f.Exists.Wire)
	}
	if ok("list", f.List) && !slices.Equal(f.List.Names, []string{"a.txt", "b.json"}) {
		t.Errorf("list: %v", f.List.Names)
	}

	// Signed download URLs, fetched without credentials.
	if ok("createSignedUrl", f.SignedURL) {
		if !strings.HasPrefix(f.SignedURL.SignedURL, base+"/object/sign/"+bucket+"/raw/a.txt?token=") {
			t.Errorf("createSignedUrl: %q", f.SignedURL.SignedURL)
		}
		fetched("createSignedUrl", f.SignedURL.Fetched, "docpipe version two\n")
	}
	if ok("createSignedUrl with download", f.SignedURLDownload) {
		fetched("createSignedUrl with download", f.SignedURLDownload.Fetched, "docpipe version two\n")
		if fe := f.SignedURLDownload.Fetched; fe == nil || !strings.HasPrefix(fe.ContentDisposition, "attachment") || !strings.Contains(fe.ContentDisposition, "report.txt") {
			t.Errorf("createSignedUrl with download: Content-Disposition %+v", fe)
		}
	}
	if ok("createSignedUrls", f.SignedURLs) {
		if r := f.SignedURLs.Rows; len(r) != 2 || r[0].Error != nil || r[1].Error == nil || r[1].Fetched != nil {
			t.Errorf("createSignedUrls: rows %+v, want one URL and one per-path error", r)
		} else {
			fetched("createSignedUrls", r[0].Fetched, "docpipe version two\n")
		}
	}
	// Object names with spaces and non-ASCII letters: storage-api answers the
	// signedURL with the name as it is (not percent-escaped) and storage-js
	// escapes it with encodeURI; an already escaped signedURL ends up
	// double-escaped ("%2520") and the token no longer matches the path.
	if ok("name with a space and ä", f.OddName) {
		if f.OddName.Downloaded != "odd\n" || f.OddName.Uploaded != bucket+"/dir/with space ä.txt" {
			t.Errorf("name with a space and ä: uploaded %q, downloaded %q", f.OddName.Uploaded, f.OddName.Downloaded)
		}
		if fe := f.OddName.Fetched; fe == nil || fe.Status != 200 || fe.Text != "odd\n" {
			t.Errorf("name with a space and ä: createSignedUrl gave %s, and fetching it gave %+v; want 200 \"odd\\n\" "+
				"(the twin's signedURL must carry the object name unescaped, as storage-api does: storage-js applies encodeURI to it)",
				f.OddName.SignedURL, fe)
		}
	}

	// Signed upload URLs.
	if st := f.SignedUpload; ok("createSignedUploadUrl + uploadToSignedUrl", st) {
		if st.Downloaded != "uploaded via signed url\n" || st.Path != "signed/c.txt" || st.FullPath != bucket+"/signed/c.txt" || !st.Token {
			t.Errorf("signed upload: %+v", st)
		}
		wire("signed upload", st, "POST "+prefix+"/object/upload/sign/"+bucket+"/signed/c.txt 200", "PUT "+prefix+"/object/upload/sign/"+bucket+"/signed/c.txt 200")
	} else if st.Stage != "" {
		t.Logf("signed upload failed at %s", st.Stage)
	}
	storageErr("createSignedUploadUrl for an existing object", f.SignedUploadExists, 400, "409", "")
	if ok("signed upload with upsert", f.SignedUploadUpsert) && f.SignedUploadUpsert.Downloaded != "replaced\n" {
		t.Errorf("signed upload with upsert: downloaded %q", f.SignedUploadUpsert.Downloaded)
	}

	// remove, then not found.
	if ok("remove", f.Remove) && !slices.Equal(f.Remove.Names, []string{"dir/with space ä.txt", "raw/a.txt", "raw/b.json", "signed/c.txt"}) {
		t.Errorf("remove: removed %v", f.Remove.Names)
	}
	storageErr("download of a removed object", f.DownloadMissing, 400, "404", "Object not found")
	wire("download of a removed object", f.DownloadMissing, "GET "+prefix+"/object/"+bucket+"/raw/a.txt 400")
	storageErr("download from a missing bucket", f.MissingBucket, 400, "404", "Bucket not found")

	// Credentials.
	if prefix == "/storage/v1" {
		storageErr("wrong apikey (gateway)", f.WrongKey, 401, "401", "Invalid API key")
	} else {
		storageErr("wrong key (self-hosted)", f.WrongKey, 400, "403", "")
	}
	storageErr("wrong Bearer token", f.WrongBearer, 400, "403", "")
}
