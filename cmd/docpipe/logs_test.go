package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/llamaparse"
)

// Issue 6, "must show" 5: the logs of a document's journey. `docpipe serve`, a
// `docpipe worker` and the LlamaParse and OpenAI twins run as processes with JSON
// logs at debug level, configured with known secrets (a Postgres password, the
// webhook, JWT and blob-signing secrets, the OpenAI and LlamaCloud keys, an alert
// webhook URL). One document is uploaded as multipart with an API key and a known
// X-Correlation-Id, another through a signed URL with a JWT and its own id; LlamaParse
// calls the webhook. Then:
//   - every log line of every process that mentions a run's job id or document id
//     (in any attribute) carries that run's correlation id;
//   - the known id is on the start and finish of every stage, the submission, the
//     upload request and the webhook, so the check cannot pass on an empty log;
//   - no log file contains any secret: configured values, the API key, the signed
//     JWT, the runs' webhook tokens, the signed URL's signature.
func TestLogsCarryCorrelationIDAndNoSecrets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logDir := t.TempDir()
	if keep := os.Getenv("DOCPIPE_TEST_LOG_DIR"); keep != "" { // to read the logs afterwards
		logDir = keep
		dbtest.Must(t, os.MkdirAll(logDir, 0o755), "log dir")
	}

	random := func(prefix string) string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return prefix + hex.EncodeToString(b)
	}
	secrets := map[string]string{
		"postgres password":           random("pgpw-"),
		"DOCPIPE_WEBHOOK_SECRET":      random("whsec-"),
		"DOCPIPE_JWT_SECRET":          random("jwtsecret-") + random("-"),
		"DOCPIPE_STORAGE_SIGN_SECRET": random("blobsign-"),
		"OPENAI_API_KEY":              random("sk-logs-"),
		"LLAMA_CLOUD_API_KEY":         random("llx-logs-"),
		"alert webhook token":         random("T0-B0-"),
	}

	// A login role with a password, so DATABASE_URL holds one.
	pool, adminURL := dbtest.Pool(t)
	role := "docpipe_logs_" + random("")[:12]
	_, err := pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'`, role, secrets["postgres password"]))
	dbtest.Must(t, err, "create role")
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	u, err := url.Parse(adminURL)
	dbtest.Must(t, err, "database URL")
	u.User = url.UserPassword(role, secrets["postgres password"])
	dbURL := u.String()

	llama := startLoggedTwin(t, ctx, logDir, "llamaparse", "--api-key", secrets["LLAMA_CLOUD_API_KEY"], "--delay", "300ms")
	oai := startLoggedTwin(t, ctx, logDir, "openai", "--api-key", secrets["OPENAI_API_KEY"])
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"DOCPIPE_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		"DOCPIPE_CACHE_DIR="+filepath.Join(os.TempDir(), "docpipe-test-cache"),
		"DOCPIPE_LOG_FORMAT=json", "DOCPIPE_LOG_LEVEL=debug",
		"DOCPIPE_RETRY_BASE=50ms", "DOCPIPE_RETRY_MAX=1s", "DOCPIPE_WORKER_CONCURRENCY=2",
		"DOCPIPE_PARSER=llamaparse", "LLAMAPARSE_BASE_URL="+llama, "LLAMA_CLOUD_API_KEY="+secrets["LLAMA_CLOUD_API_KEY"],
		"DOCPIPE_EMBED_PROVIDER=openai", "OPENAI_BASE_URL="+oai+"/v1", "OPENAI_API_KEY="+secrets["OPENAI_API_KEY"],
		"DOCPIPE_PUBLIC_URL="+base, "DOCPIPE_WEBHOOK_SECRET="+secrets["DOCPIPE_WEBHOOK_SECRET"],
		"DOCPIPE_JWT_SECRET="+secrets["DOCPIPE_JWT_SECRET"],
		"DOCPIPE_STORAGE_SIGN_SECRET="+secrets["DOCPIPE_STORAGE_SIGN_SECRET"],
		"DOCPIPE_ALERT_WEBHOOK_URL=http://127.0.0.1:9/services/"+secrets["alert webhook token"],
	)

	// Commands that end: their stderr is a log file too.
	runLogged := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = &out
		f, err := os.Create(filepath.Join(logDir, name+".log"))
		dbtest.Must(t, err, "log file")
		defer f.Close()
		cmd.Stderr = f
		_ = cmd.Run() // `config check` exits 1 for warnings; its output is what is checked
		return out.String()
	}
	user := uuid.MustParse("00000000-0000-4000-8000-0000000000a1")
	key := strings.TrimSpace(strings.SplitN(runLogged("keys", "keys", "create", "--name", "logs", "--user", user.String()), "\n", 2)[0])
	if !strings.HasPrefix(key, "dpk_") {
		t.Fatalf("keys create printed %q", key)
	}
	secrets["API key"] = key
	// config check prints every setting: it is checked like a log.
	_ = os.WriteFile(filepath.Join(logDir, "config-check.stdout"), []byte(runLogged("config-check", "config", "check")), 0o644)

	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: user.String(),
		Audience: jwt.ClaimStrings{"authenticated"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).
		SignedString([]byte(secrets["DOCPIPE_JWT_SECRET"]))
	dbtest.Must(t, err, "sign JWT")
	secrets["signed JWT"] = signed

	serve := startLogged(t, ctx, logDir, "serve", env, "serve", "--addr", "127.0.0.1:"+strconv.Itoa(port))
	worker := startLogged(t, ctx, logDir, "worker", env, "worker")

	client := &http.Client{Timeout: time.Minute}
	call := func(method, path, credential string, body io.Reader, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		target := path
		if !strings.HasPrefix(path, "http") {
			target = base + path
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		dbtest.Must(t, err, "request")
		if credential != "" {
			req.Header.Set("Authorization", "Bearer "+credential)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		dbtest.Must(t, err, "%s %s", method, path)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	type run struct {
		name, credential      string
		corr, jobID, document uuid.UUID
	}
	var runs []*run

	// 1. Multipart with the API key and a known correlation id.
	known := uuid.MustParse("0195f0c0-1111-7000-8000-00000000c0de")
	form, ctype := multipartFile(t, "../../samples/plan-summary.md")
	resp, body := call(http.MethodPost, "/v1/documents", key, form, "Content-Type", ctype, "X-Correlation-Id", known.String())
	type uploadResult struct {
		DocumentID    uuid.UUID `json:"document_id"`
		JobID         uuid.UUID `json:"job_id"`
		CorrelationID uuid.UUID `json:"correlation_id"`
	}
	var up uploadResult
	_ = json.Unmarshal(body, &up)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	if up.CorrelationID != known || resp.Header.Get("X-Correlation-Id") != known.String() {
		t.Errorf("upload answered correlation id %s (header %q), want the one sent, %s", up.CorrelationID, resp.Header.Get("X-Correlation-Id"), known)
	}
	runs = append(runs, &run{name: "multipart", credential: key, corr: known, jobID: up.JobID, document: up.DocumentID})

	// 2. Signed URL with a JWT: declare, PUT (the URL carries a signature), complete.
	other := uuid.New()
	doc2 := []byte("# Pharmacy\n\nGeneric drugs cost less at preferred pharmacies. Mail order covers 90 days.\n")
	sum := sha256.Sum256(doc2)
	decl, _ := json.Marshal(map[string]any{"filename": "pharmacy.md", "bytes_len": len(doc2), "sha256": hex.EncodeToString(sum[:])})
	resp, body = call(http.MethodPost, "/v1/uploads", signed, bytes.NewReader(decl), "Content-Type", "application/json")
	var tk struct {
		DocumentID uuid.UUID `json:"document_id"`
		UploadURL  string    `json:"upload_url"`
	}
	_ = json.Unmarshal(body, &tk)
	if resp.StatusCode != http.StatusCreated || tk.UploadURL == "" {
		t.Fatalf("POST /v1/uploads: %d %s", resp.StatusCode, body)
	}
	pu, err := url.Parse(tk.UploadURL)
	dbtest.Must(t, err, "upload URL")
	if sig := pu.Query().Get("signature"); sig != "" {
		secrets["signed URL signature"] = sig
	} else {
		t.Errorf("upload URL %s has no signature", tk.UploadURL)
	}
	// The client sends its correlation id with every request of the flow.
	if resp, body := call(http.MethodPut, tk.UploadURL, "", bytes.NewReader(doc2), "X-Correlation-Id", other.String()); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	resp, body = call(http.MethodPost, "/v1/uploads/"+tk.DocumentID.String()+"/complete", signed, nil, "X-Correlation-Id", other.String())
	up = uploadResult{}
	_ = json.Unmarshal(body, &up)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("complete: %d %s", resp.StatusCode, body)
	}
	if up.CorrelationID != other {
		t.Errorf("complete answered correlation id %s, want %s", up.CorrelationID, other)
	}
	runs = append(runs, &run{name: "signed URL", credential: signed, corr: other, jobID: up.JobID, document: up.DocumentID})

	// 3. `docpipe ingest --correlation-id` through the API (its progress output is
	// checked for secrets like the logs).
	third := uuid.New()
	file := filepath.Join(t.TempDir(), "dental.md")
	dbtest.Must(t, os.WriteFile(file, []byte("# Dental\n\nTwo cleanings a year are covered in full.\n"), 0o644), "write")
	ingest := exec.CommandContext(ctx, binary, "ingest", "--server", base, "--token", key, "--json", "--correlation-id", third.String(), file)
	ingest.Env = env
	var ingestOut, ingestErr bytes.Buffer
	ingest.Stdout, ingest.Stderr = &ingestOut, &ingestErr
	if err := ingest.Run(); err != nil {
		t.Fatalf("docpipe ingest: %v\n%s\n%s", err, ingestOut.String(), ingestErr.String())
	}
	_ = os.WriteFile(filepath.Join(logDir, "ingest.stderr"), ingestErr.Bytes(), 0o644)
	var ingested []struct {
		Document struct {
			ID  uuid.UUID `json:"id"`
			Job struct {
				ID            uuid.UUID `json:"id"`
				CorrelationID uuid.UUID `json:"correlation_id"`
			} `json:"job"`
		} `json:"document"`
	}
	dbtest.Must(t, json.Unmarshal(ingestOut.Bytes(), &ingested), "ingest --json output %s", ingestOut.String())
	if len(ingested) != 1 || ingested[0].Document.Job.CorrelationID != third {
		t.Errorf("ingest --correlation-id %s: %s", third, ingestOut.String())
	}
	if len(ingested) == 1 {
		d := ingested[0].Document
		runs = append(runs, &run{name: "CLI", credential: key, corr: third, jobID: d.Job.ID, document: d.ID})
	}

	// Both complete; the webhook reached serve for both (so its token had its chance
	// to be logged).
	for _, r := range runs {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			_, body := call(http.MethodGet, "/v1/documents/"+r.document.String(), r.credential, nil)
			var d struct{ Status string }
			_ = json.Unmarshal(body, &d)
			if d.Status == "complete" {
				break
			}
			if strings.HasPrefix(d.Status, "failed") || time.Now().After(deadline) {
				t.Fatalf("%s document: %s", r.name, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if resp, body := call(http.MethodGet, "/v1/jobs/"+r.jobID.String(), signed, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET job with the JWT: %d %s", resp.StatusCode, body)
		}
		deadline = time.Now().Add(30 * time.Second)
		var hooks int
		for hooks == 0 && time.Now().Before(deadline) {
			dbtest.Must(t, pool.QueryRow(ctx, `SELECT count(*) FROM upload_pipeline.webhook_log WHERE job_id = $1`, r.jobID).Scan(&hooks), "webhooks")
			time.Sleep(100 * time.Millisecond)
		}
		if hooks == 0 {
			t.Errorf("%s: no LlamaParse webhook reached serve", r.name)
		}
		secrets["webhook token of the "+r.name+" run"] = llamaparse.WebhookToken([]byte(secrets["DOCPIPE_WEBHOOK_SECRET"]), r.jobID.String())
	}
	// The runs have the ids the client sent (checked against the database, so the
	// log checks below use each run's real id even when that is wrong).
	for _, r := range runs {
		var dbCorr uuid.UUID
		dbtest.Must(t, pool.QueryRow(ctx, `SELECT correlation_id FROM upload_pipeline.upload_jobs WHERE job_id = $1`, r.jobID).Scan(&dbCorr), "run")
		if dbCorr != r.corr {
			t.Errorf("%s run: correlation id %s, want the X-Correlation-Id sent, %s", r.name, dbCorr, r.corr)
			r.corr = dbCorr
		}
	}

	// Stop everything (shutdown lines are part of the journey), then read the logs.
	for _, p := range []*exec.Cmd{serve, worker} {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	files, err := filepath.Glob(filepath.Join(logDir, "*"))
	dbtest.Must(t, err, "logs")

	type line struct {
		file, text string
		rec        map[string]any
	}
	var lines []line
	raw := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		dbtest.Must(t, err, "read %s", f)
		name := filepath.Base(f)
		raw[name] = b
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			l := line{file: name, text: sc.Text()}
			if json.Unmarshal(sc.Bytes(), &l.rec) != nil {
				l.rec = nil
			}
			lines = append(lines, l)
		}
	}
	if len(lines) < 50 {
		t.Fatalf("only %d log lines in %v", len(lines), files)
	}
	t.Logf("%d log lines from %d files", len(lines), len(files))

	// job_id always means a run (River's own row id is river_job_id).
	for _, l := range lines {
		if v, ok := l.rec["job_id"]; ok {
			if s, _ := v.(string); uuid.Validate(s) != nil {
				t.Errorf("%s: job_id %v is not a run id: %.300s", l.file, v, l.text)
			}
		}
	}

	// Every line about a run carries the run's correlation id.
	for _, r := range runs {
		var bad []string
		for _, l := range lines {
			if !strings.Contains(l.text, r.jobID.String()) && !strings.Contains(l.text, r.document.String()) {
				continue
			}
			if l.rec == nil {
				bad = append(bad, fmt.Sprintf("%s: not JSON: %.300s", l.file, l.text))
				continue
			}
			mentions := false
			walkValues(l.rec, func(s string) {
				mentions = mentions || strings.Contains(s, r.jobID.String()) || strings.Contains(s, r.document.String())
			})
			if got, _ := l.rec["correlation_id"].(string); mentions && got != r.corr.String() {
				bad = append(bad, fmt.Sprintf("%s: %q (correlation_id %q): %.400s", l.file, l.rec["msg"], got, l.text))
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s run (correlation id %s): %d log lines about it without its correlation id:\n  %s",
				r.name, r.corr, len(bad), strings.Join(bad[:min(len(bad), 25)], "\n  "))
		}
	}

	// The journey is there: the known id is on each step.
	has := func(file, msg string, attrs ...string) bool {
		for _, l := range lines {
			if l.rec == nil || l.file != file || l.rec["correlation_id"] != known.String() || !strings.HasPrefix(fmt.Sprint(l.rec["msg"]), msg) {
				continue
			}
			ok := true
			for i := 0; i+1 < len(attrs); i += 2 {
				ok = ok && fmt.Sprint(l.rec[attrs[i]]) == attrs[i+1]
			}
			if ok {
				return true
			}
		}
		return false
	}
	want := [][]string{
		{"serve.log", "http request", "method", "POST", "path", "/v1/documents"},
		{"serve.log", "document submitted"},
		{"serve.log", "llamaparse webhook"},
		{"worker.log", "submitted to remote parser"},
		{"worker.log", "parsed"},
		{"worker.log", "embedding"},
	}
	for _, st := range []string{"parse", "validate", "chunk", "embed", "finalize"} {
		want = append(want, []string{"worker.log", "stage started", "stage", st}, []string{"worker.log", "stage done", "stage", st})
	}
	for _, w := range want {
		if !has(w[0], w[1], w[2:]...) {
			t.Errorf("%s: no line %q %v with correlation_id %s", w[0], w[1], w[2:], known)
		}
	}

	// No secret in any log (raw bytes, every file).
	names := make([]string, 0, len(secrets))
	for k := range secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v := secrets[name]
		for file, b := range raw {
			if i := bytes.Index(b, []byte(v)); i >= 0 {
				start, end := max(0, i-200), min(len(b), i+len(v)+100)
				t.Errorf("%s (%s) appears in %s: …%s…", name, v, file, b[start:end])
			}
		}
	}
}

// walkValues calls f with every string and number in a decoded JSON value.
func walkValues(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			walkValues(e, f)
		}
	case []any:
		for _, e := range x {
			walkValues(e, f)
		}
	case nil:
	default:
		f(fmt.Sprint(x))
	}
}

// startLogged starts `docpipe ARGS…` with env, its stderr in logDir/NAME.log, until
// the test ends (SIGTERM). It waits for the first stdout line of `serve` (the
// listening line).
func startLogged(t *testing.T, ctx context.Context, logDir, name string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	dbtest.Must(t, err, "log file")
	t.Cleanup(func() { f.Close() })
	cmd.Stderr = f
	stdout, err := cmd.StdoutPipe()
	dbtest.Must(t, err, "pipe")
	dbtest.Must(t, cmd.Start(), "start %s", name)
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	br := bufio.NewReader(stdout)
	if args[0] == "serve" {
		if _, err := br.ReadString('\n'); err != nil {
			b, _ := os.ReadFile(f.Name())
			t.Fatalf("%s did not start: %v\n%s", name, err, b)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	return cmd
}

// startLoggedTwin runs `docpipe mock NAME ARGS…` with JSON debug logs in logDir and
// returns its base URL.
func startLoggedTwin(t *testing.T, ctx context.Context, logDir, name string, args ...string) string {
	t.Helper()
	f, err := os.Create(filepath.Join(logDir, name+"-twin.log"))
	dbtest.Must(t, err, "log file")
	t.Cleanup(func() { f.Close() })
	return startTwinWith(t, ctx, []string{"DOCPIPE_LOG_FORMAT=json", "DOCPIPE_LOG_LEVEL=debug"}, f, append([]string{name}, args...)...)
}
