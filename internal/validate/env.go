package validate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/fault"
	"github.com/docpipe/docpipe/internal/llamaparse"
	"github.com/docpipe/docpipe/internal/storage"
)

// EnvTarget is one environment, built from its configuration by the caller:
// what `docpipe validate env` talks to.
type EnvTarget struct {
	DatabaseURL string
	// Drift configures the schema drift check (ScratchURL).
	Drift db.DriftOptions
	// Store is the configured blob store, or StoreErr why it could not be opened;
	// StoreName says which ("supabase bucket documents", "local /data").
	Store     storage.Store
	StoreErr  error
	StoreName string
	// LlamaParse is the remote parser's client; nil when documents parse locally.
	LlamaParse LlamaParseStatus
	// OpenAI is the embeddings client; nil when the local embedder is configured.
	OpenAI Embedder
	// PublicURL and WebhookSecret: where LlamaParse's webhooks go, and the key of
	// their tokens ("" = no webhooks).
	PublicURL     string
	WebhookSecret string
	// HTTPClient makes the webhook request (nil = 15 s timeout).
	HTTPClient *http.Client
	// WorkerStale: a worker whose heartbeat is older is not live (default 20 s,
	// as in the metrics and the alert DocpipeNoLiveWorker).
	WorkerStale time.Duration
}

// LlamaParseStatus is the call the LlamaParse check makes (llamaparse.Client).
type LlamaParseStatus interface {
	Status(ctx context.Context, jobID string) (llamaparse.Status, error)
}

// Embedder is the call the OpenAI check makes (embed.OpenAI).
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Model() string
}

// skipped starts the reason of a check that does not apply to this configuration.
const skipped = "skipped: "

// checkTimeout bounds each live check; driftTimeout the schema drift check.
const (
	checkTimeout = 20 * time.Second
	driftTimeout = 2 * time.Minute
)

// Env is `docpipe validate env`: a live preflight of one environment. Each check
// makes the cheapest real call that proves its part works and reports its latency.
// Checks that need the database are left out when it does not answer (the
// postgres check says why).
func Env(ctx context.Context, t EnvTarget) []Check {
	if t.WorkerStale <= 0 {
		t.WorkerStale = 20 * time.Second
	}
	if t.HTTPClient == nil {
		t.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	var out []Check
	timeout := checkTimeout
	run := func(f func(context.Context) Check) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		c := f(cctx)
		if !strings.HasPrefix(c.Reason, skipped) {
			c.Latency = time.Since(start)
		}
		out = append(out, c)
	}
	var pool *pgxpool.Pool
	run(func(ctx context.Context) Check {
		var c Check
		pool, c = postgresCheck(ctx, t.DatabaseURL)
		return c
	})
	if pool != nil {
		defer pool.Close()
		run(func(ctx context.Context) Check { return pgvectorCheck(ctx, pool) })
		run(func(ctx context.Context) Check { return envMigrationsCheck(ctx, pool) })
		timeout = driftTimeout // it may wait for a migration, then build a scratch database
		run(func(ctx context.Context) Check { return envDriftCheck(ctx, pool, t.Drift) })
		timeout = checkTimeout
	}
	run(func(ctx context.Context) Check { return storeCheck(ctx, t) })
	run(func(ctx context.Context) Check { return llamaParseCheck(ctx, t.LlamaParse) })
	run(func(ctx context.Context) Check { return openAICheck(ctx, t.OpenAI) })
	run(func(ctx context.Context) Check { return webhookCheck(ctx, t) })
	if pool != nil {
		run(func(ctx context.Context) Check { return workersCheck(ctx, pool, t.WorkerStale) })
	}
	return out
}

func postgresCheck(ctx context.Context, url string) (*pgxpool.Pool, Check) {
	const name = "env: postgres"
	fix := "check DATABASE_URL, and that the server runs and accepts connections from here (network, firewall, pg_hba.conf, TLS)"
	if url == "" {
		return nil, Fail(name, "DATABASE_URL is not set", "set DATABASE_URL to the database docpipe uses")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, Fail(name, "DATABASE_URL is not a valid connection string", fix)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, Fail(name, fmt.Sprintf("%s:%d does not answer: %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, oneLine(err)), fix)
	}
	var version, user, dbname string
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_user, current_database()`).Scan(&version, &user, &dbname); err != nil {
		pool.Close()
		return nil, Fail(name, "connected but cannot query: "+oneLine(err), fix)
	}
	return pool, Pass(name, fmt.Sprintf("PostgreSQL %s at %s:%d, database %s as %s", version, cfg.ConnConfig.Host, cfg.ConnConfig.Port, dbname, user))
}

func pgvectorCheck(ctx context.Context, pool *pgxpool.Pool) Check {
	const name = "env: pgvector"
	var installed, available *string
	err := pool.QueryRow(ctx, `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
		(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')`).Scan(&installed, &available)
	switch {
	case err != nil:
		return Fail(name, "cannot read the extensions: "+oneLine(err), "check the database role's privileges")
	case installed != nil:
		reason := "pgvector " + *installed + " installed"
		if available != nil && *available != *installed {
			reason += fmt.Sprintf(" (the server has %s: ALTER EXTENSION vector UPDATE)", *available)
		}
		return Pass(name, reason)
	case available != nil:
		return Fail(name, "pgvector "+*available+" is available on the server but not installed in this database",
			"run `docpipe migrate up` (it creates the extension; hosted Postgres: enable the vector extension)")
	}
	return Fail(name, "the server has no pgvector extension",
		"install pgvector for this PostgreSQL (Debian: postgresql-<major>-pgvector, or scripts/bootstrap); hosted Postgres: enable the vector extension")
}

func envMigrationsCheck(ctx context.Context, pool *pgxpool.Pool) Check {
	const name = "env: migrations"
	st, err := db.StatusOf(ctx, pool)
	if err != nil {
		return Fail(name, "cannot read the migration status: "+oneLine(err), "check DATABASE_URL's role can read public.docpipe_goose_version and river_migration")
	}
	if pending := db.Pending(st); len(pending) > 0 {
		return Fail(name, fmt.Sprintf("%d pending: %s", len(pending), names(pending)),
			"run `docpipe migrate up` before starting docpipe (a migration job or pre-deploy command that runs first)")
	}
	var docpipe, river int64
	for _, s := range st {
		if s.Component == db.Schema {
			docpipe = max(docpipe, s.Version)
		} else {
			river = max(river, s.Version)
		}
	}
	return Pass(name, fmt.Sprintf("at head: %s version %d, River version %d", db.Schema, docpipe, river))
}

func envDriftCheck(ctx context.Context, pool *pgxpool.Pool, opts db.DriftOptions) Check {
	const name = "env: schema drift"
	rep, err := db.NewDriftChecker(pool, opts).Check(ctx)
	switch {
	case err != nil:
		return driftError(name, err)
	case rep.Ahead != "":
		return Fail(name, rep.Ahead, "validate with the docpipe release that migrated this database")
	case len(rep.Differences) > 0:
		return Fail(name, fmt.Sprintf("%d differences from the migrations: %s", len(rep.Differences), rep.Summary(5)),
			"run `docpipe validate db` for the SQL that restores each object")
	}
	return Pass(name, fmt.Sprintf("none (%d objects compared)", rep.Objects))
}

// storeCheck writes, reads back and deletes a probe object under preflight/.
func storeCheck(ctx context.Context, t EnvTarget) Check {
	name := "env: blob store"
	fix := storeFix(t.StoreName)
	if t.StoreErr != nil {
		return Fail(name, t.StoreName+": cannot open: "+oneLine(t.StoreErr), fix)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := "preflight/validate-env-" + hex.EncodeToString(b)
	body := []byte("docpipe validate env probe " + key + "\n")
	obj, err := t.Store.Put(ctx, key, bytes.NewReader(body))
	if err != nil {
		return Fail(name, fmt.Sprintf("%s: put %s failed: %s", t.StoreName, key, oneLine(err)), fix)
	}
	defer func() { _ = t.Store.Delete(context.WithoutCancel(ctx), key) }()
	got, err := storage.ReadAll(ctx, t.Store, key, 1<<20)
	switch {
	case err != nil:
		return Fail(name, fmt.Sprintf("%s: put %s, but get failed: %s", t.StoreName, key, oneLine(err)), fix)
	case !bytes.Equal(got, body) || obj.Size != int64(len(body)):
		return Fail(name, fmt.Sprintf("%s: read back %d bytes that differ from the %d written", t.StoreName, len(got), len(body)), fix)
	}
	if err := t.Store.Delete(ctx, key); err != nil {
		return Fail(name, fmt.Sprintf("%s: put and get worked, delete %s failed: %s", t.StoreName, key, oneLine(err)), fix)
	}
	if _, err := t.Store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		return Fail(name, fmt.Sprintf("%s: %s is still there after delete (%v)", t.StoreName, key, err), fix)
	}
	return Pass(name, fmt.Sprintf("%s: put, got back and deleted a %d-byte probe object (%s)", t.StoreName, len(body), key))
}

func storeFix(storeName string) string {
	switch {
	case strings.HasPrefix(storeName, "s3"):
		return "check S3_ENDPOINT, S3_REGION, S3_BUCKET (it must exist), S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY and the network to the endpoint"
	case strings.HasPrefix(storeName, "supabase"):
		return "check SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, that bucket SUPABASE_STORAGE_BUCKET exists, and the network to Supabase"
	}
	return "check that DOCPIPE_DATA_DIR exists and is writable; every API and worker process must see the same folder (a shared volume), or use DOCPIPE_STORAGE=s3/supabase"
}

// llamaParseCheck asks for the status of a job that does not exist: a valid key
// gets 404, a refused one 401/403. It costs nothing and starts no job.
func llamaParseCheck(ctx context.Context, lp LlamaParseStatus) Check {
	const name = "env: llamaparse"
	if lp == nil {
		return Pass(name, skipped+"DOCPIPE_PARSER=local parses in-process, no LlamaParse credentials are used")
	}
	_, err := lp.Status(ctx, uuid.NewString())
	var fe *fault.Error
	errors.As(err, &fe)
	switch {
	case err == nil, fe != nil && fe.Code == llamaparse.CodeJobNotFound:
		return Pass(name, "LLAMA_CLOUD_API_KEY accepted (status of an unknown job: 404)")
	case fe != nil && (fe.Code == llamaparse.CodeUnauthorized || fe.Code == llamaparse.CodeForbidden):
		return Fail(name, "credential refused: "+oneLine(err),
			"set LLAMA_CLOUD_API_KEY to a valid key of this project and region (an EU key needs LLAMAPARSE_BASE_URL=https://api.cloud.eu.llamaindex.ai)")
	}
	return Fail(name, "LlamaParse did not answer as expected: "+oneLine(err), "check LLAMAPARSE_BASE_URL and the network to it")
}

// openAICheck embeds one short input with the configured model: the cheapest call
// that proves the key, the model and the vector size (a few tokens, well under
// $0.000001).
func openAICheck(ctx context.Context, e Embedder) Check {
	const name = "env: openai"
	if e == nil {
		return Pass(name, skipped+"DOCPIPE_EMBED_PROVIDER=local embeds in-process, no OpenAI credentials are used")
	}
	vecs, err := e.Embed(ctx, []string{"docpipe preflight"})
	if err == nil {
		return Pass(name, fmt.Sprintf("OPENAI_API_KEY accepted: %s returned a %d-dimension vector for a 1-input request", e.Model(), len(vecs[0])))
	}
	var fe *fault.Error
	errors.As(err, &fe)
	code := ""
	if fe != nil {
		code = fe.Code
	}
	switch code {
	case "UNAUTHORIZED", "FORBIDDEN":
		return Fail(name, "credential refused: "+oneLine(err), "set OPENAI_API_KEY to a valid key (and OPENAI_BASE_URL to the API it belongs to)")
	case "INSUFFICIENT_QUOTA":
		return Fail(name, "the key has no quota left: "+oneLine(err), "add credit or raise the project's usage limit")
	case "NOT_FOUND", "BAD_REQUEST":
		return Fail(name, "the request was refused: "+oneLine(err), "check DOCPIPE_EMBED_MODEL, DOCPIPE_EMBED_DIMS and OPENAI_BASE_URL")
	}
	return Fail(name, "embeddings API did not answer as expected: "+oneLine(err), "check OPENAI_BASE_URL, DOCPIPE_EMBED_DIMS and the network to it")
}

// webhookCheck posts a well-formed LlamaParse event for a run that does not exist,
// with a token made from this environment's DOCPIPE_WEBHOOK_SECRET. docpipe's route
// answers 404 (token accepted, unknown run, nothing recorded); a 401 from docpipe
// means the server uses another secret; anything else is not docpipe's route.
func webhookCheck(ctx context.Context, t EnvTarget) Check {
	const name = "env: webhook route"
	if t.PublicURL == "" {
		return Pass(name, skipped+"DOCPIPE_PUBLIC_URL is not set, so LlamaParse results are polled (no webhooks)")
	}
	id := uuid.NewString()
	u := llamaparse.WebhookURL(t.PublicURL, []byte(t.WebhookSecret), id)
	shown := strings.TrimRight(t.PublicURL, "/") + llamaparse.WebhookRoute + "…"
	fixRoute := "DOCPIPE_PUBLIC_URL must be where LlamaParse reaches `docpipe serve` from the internet; its proxy or ingress must pass /v1/webhooks/ to it"
	body := `{"event_id": "docpipe-validate-env", "event_type": "parse.pending", "data": {"job_id": "docpipe-validate-env"}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return Fail(name, "DOCPIPE_PUBLIC_URL is not a valid URL", fixRoute)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.HTTPClient.Do(req)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil { // *url.Error: drop the URL, it holds a token
			err = inner
		}
		return Fail(name, "POST "+shown+" failed: "+oneLine(err), fixRoute)
	}
	defer resp.Body.Close()
	var p struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
	switch {
	case resp.StatusCode == http.StatusNotFound && p.Code == apitypes.CodeNotFound:
		return Pass(name, "POST "+shown+" reached docpipe, which accepted this DOCPIPE_WEBHOOK_SECRET's token (404 for an unknown run; nothing recorded)")
	case resp.StatusCode == http.StatusUnauthorized && p.Code == apitypes.CodeWebhookTokenBad:
		return Fail(name, "POST "+shown+" reached docpipe, which refused a token made with this DOCPIPE_WEBHOOK_SECRET",
			"give every API and worker process (and this environment) the same DOCPIPE_WEBHOOK_SECRET")
	}
	return Fail(name, fmt.Sprintf("POST %s answered HTTP %d, not as docpipe's webhook route does", shown, resp.StatusCode), fixRoute)
}

func workersCheck(ctx context.Context, pool *pgxpool.Pool, stale time.Duration) Check {
	const name = "env: workers"
	fix := "start `docpipe worker` (or scale the worker deployment up): uploads are accepted, but nothing is processed without a worker"
	rows, err := pool.Query(ctx, `SELECT hostname, pid, extract(epoch FROM now() - heartbeat_at)::float8,
		stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)
		FROM upload_pipeline.workers ORDER BY heartbeat_at DESC LIMIT 20`, stale.Seconds())
	if err != nil {
		return Fail(name, "cannot read the workers' heartbeats: "+oneLine(err), "run `docpipe migrate up`")
	}
	defer rows.Close()
	var live []string
	freshest, last := -1.0, ""
	for rows.Next() {
		var host string
		var pid int
		var age float64
		var ok bool
		if err := rows.Scan(&host, &pid, &age, &ok); err != nil {
			return Fail(name, "cannot read the workers' heartbeats: "+oneLine(err), "run `docpipe migrate up`")
		}
		if freshest < 0 {
			freshest, last = age, fmt.Sprintf("%s pid %d", host, pid)
		}
		if ok {
			live = append(live, fmt.Sprintf("%s pid %d", host, pid))
		}
	}
	if err := rows.Err(); err != nil {
		return Fail(name, "cannot read the workers' heartbeats: "+oneLine(err), "run `docpipe migrate up`")
	}
	switch {
	case len(live) > 0:
		return Pass(name, fmt.Sprintf("%d live (%s); the freshest heartbeat %.1fs ago", len(live), strings.Join(live, ", "), freshest))
	case freshest >= 0:
		return Fail(name, fmt.Sprintf("no worker has sent a heartbeat in the last %s (the last: %s, %s ago)", stale, last, time.Duration(freshest*float64(time.Second)).Round(time.Second)), fix)
	}
	return Fail(name, "no worker has ever sent a heartbeat to this database", fix)
}
