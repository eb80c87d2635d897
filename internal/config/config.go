// Package config is the single definition of docpipe's environment variables.
//
// Every variable lives in one declarative table (see [Vars]). Every command loads
// its settings through [Load] / [FromEnv], `docpipe config check` prints
// [Config.Report], the README table comes from [MarkdownTable], and deploy-file
// linters read [Vars] to learn which variables exist, which are required and
// which are secret. Nothing else in the module should call os.Getenv for a
// docpipe setting.
//
// Values are trimmed of surrounding white space; an empty (or all-blank) value
// counts as "not set" and the default applies.
//
// Kinds:
//
//   - string: any text.
//   - int: a base-10 integer.
//   - duration: a Go duration such as 90s, 2m, 1h30m (time.ParseDuration).
//   - bool: true/false/1/0 (strconv.ParseBool).
//   - bytes: a whole number of bytes, optionally followed by a unit: B;
//     KB, MB, GB, TB are powers of 1000 (10^3, 10^6, ...); KiB, MiB, GiB, TiB
//     are powers of 1024 (2^10, 2^20, ...). Units are case-insensitive and may
//     be separated from the number by a space: "52428800", "50MB", "50MiB", "1GB".
//   - enum:a|b|c: exactly one of the listed words (case-insensitive).
//   - url: a Postgres connection string, either a postgres:// or postgresql://
//     URL or a libpq key=value string such as "host=/tmp port=5432 dbname=x".
//   - uuid: a UUID in the 8-4-4-4-12 hex form.
//
// Order of [Vars]: database, local storage, logging, worker and retries,
// chunking, embedding, limits, CLI identity, third-party API keys — the order
// of the table below. It only changes when variables are added.
package config

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Var describes one environment variable.
type Var struct {
	Name     string // env var name
	Default  string // "" = no default
	Required bool   // must be set (non-empty); Load reports it as a Problem otherwise
	Secret   bool   // never printed; config check shows "set"/"not set" only
	Doc      string // one line for README/docs
	Kind     string // "string","int","duration","bool","bytes","enum:a|b|c","url","uuid"
	Min, Max string // optional bounds for int/duration/bytes, "" = none (parsed with the same parser as the value)
}

// Problem is one thing wrong with the environment. Message is a complete,
// printable line that starts with the variable name ("DOCPIPE_CHUNK_TOKENS: 10
// is below the minimum 64"); Var names the variable so callers can filter.
// Message never contains a secret's value.
type Problem struct{ Var, Message string }

// Config is the typed, validated result of [Load].
type Config struct {
	DatabaseURL string // DATABASE_URL (secret)

	DataDir  string // DOCPIPE_DATA_DIR
	CacheDir string // DOCPIPE_CACHE_DIR

	LogFormat string // DOCPIPE_LOG_FORMAT: "text" or "json"
	LogLevel  string // DOCPIPE_LOG_LEVEL: "debug", "info", "warn" or "error"

	WorkerConcurrency int           // DOCPIPE_WORKER_CONCURRENCY
	MaxAttempts       int           // DOCPIPE_MAX_ATTEMPTS
	RetryBase         time.Duration // DOCPIPE_RETRY_BASE
	RetryMax          time.Duration // DOCPIPE_RETRY_MAX
	JobTimeout        time.Duration // DOCPIPE_JOB_TIMEOUT
	RescueAfter       time.Duration // DOCPIPE_RESCUE_AFTER
	ShutdownTimeout   time.Duration // DOCPIPE_SHUTDOWN_TIMEOUT

	ChunkTokens  int // DOCPIPE_CHUNK_TOKENS
	ChunkOverlap int // DOCPIPE_CHUNK_OVERLAP

	Parser             string        // DOCPIPE_PARSER: "local" or "llamaparse"
	LlamaParseBaseURL  string        // LLAMAPARSE_BASE_URL
	LlamaParseDeadline time.Duration // DOCPIPE_LLAMAPARSE_DEADLINE
	LlamaParsePartial  string        // DOCPIPE_LLAMAPARSE_PARTIAL: accept or fail

	EmbedProvider   string        // DOCPIPE_EMBED_PROVIDER: "local" or "openai"
	EmbedDims       int           // DOCPIPE_EMBED_DIMS
	EmbedBatch      int           // DOCPIPE_EMBED_BATCH
	EmbedBatchDelay time.Duration // DOCPIPE_EMBED_BATCH_DELAY
	EmbedModel      string        // DOCPIPE_EMBED_MODEL
	OpenAIBaseURL   string        // OPENAI_BASE_URL
	OpenAIRPM       int           // OPENAI_RPM
	OpenAITPM       int           // OPENAI_TPM
	OpenAIMaxBatch  int           // OPENAI_MAX_BATCH_TOKENS
	OpenAIConc      int           // OPENAI_CONCURRENCY

	BudgetOpenAIUSD     float64 // DOCPIPE_BUDGET_OPENAI_USD
	BudgetLlamaParseUSD float64 // DOCPIPE_BUDGET_LLAMAPARSE_USD

	PublicURL     string // DOCPIPE_PUBLIC_URL
	WebhookSecret string // DOCPIPE_WEBHOOK_SECRET (secret)

	AlertWebhookURL string // DOCPIPE_ALERT_WEBHOOK_URL (secret)
	ScratchURL      string // DOCPIPE_SCRATCH_DATABASE_URL (secret)

	JWTSecret        string        // DOCPIPE_JWT_SECRET (secret)
	JWKSURL          string        // DOCPIPE_JWKS_URL
	JWTAudience      string        // DOCPIPE_JWT_AUDIENCE
	JWTIssuer        string        // DOCPIPE_JWT_ISSUER
	APIRatePerMinute int           // DOCPIPE_API_RATE_PER_MINUTE
	APIRateBurst     int           // DOCPIPE_API_RATE_BURST
	UploadsPerDay    int           // DOCPIPE_UPLOADS_PER_DAY
	MaxActiveJobs    int           // DOCPIPE_MAX_ACTIVE_JOBS
	AllowedTypes     string        // DOCPIPE_ALLOWED_TYPES
	UploadURLTTL     time.Duration // DOCPIPE_UPLOAD_URL_TTL

	Storage           string // DOCPIPE_STORAGE: local, s3 or supabase
	StorageSignSecret string // DOCPIPE_STORAGE_SIGN_SECRET (secret)
	S3Endpoint        string // S3_ENDPOINT
	S3Region          string // S3_REGION
	S3Bucket          string // S3_BUCKET
	S3AccessKey       string // S3_ACCESS_KEY_ID (secret)
	S3SecretKey       string // S3_SECRET_ACCESS_KEY (secret)
	S3SessionToken    string // S3_SESSION_TOKEN (secret)
	S3VirtualHosted   bool   // S3_VIRTUAL_HOSTED
	SupabaseURL       string // SUPABASE_URL
	SupabaseKey       string // SUPABASE_SERVICE_ROLE_KEY (secret)
	SupabaseBucket    string // SUPABASE_STORAGE_BUCKET

	MaxUploadBytes int64 // DOCPIPE_MAX_UPLOAD_BYTES
	MaxPages       int   // DOCPIPE_MAX_PAGES
	ParseWorkers   int   // DOCPIPE_PARSE_WORKERS

	UserID string // DOCPIPE_USER_ID

	OpenAIAPIKey     string // OPENAI_API_KEY (secret)
	LlamaCloudAPIKey string // LLAMA_CLOUD_API_KEY (secret)
}

// Names used by the cross-field checks.
const (
	envDatabaseURL   = "DATABASE_URL"
	envRetryBase     = "DOCPIPE_RETRY_BASE"
	envRetryMax      = "DOCPIPE_RETRY_MAX"
	envJobTimeout    = "DOCPIPE_JOB_TIMEOUT"
	envRescueAfter   = "DOCPIPE_RESCUE_AFTER"
	envChunkTokens   = "DOCPIPE_CHUNK_TOKENS"
	envChunkOverlap  = "DOCPIPE_CHUNK_OVERLAP"
	envEmbedProvider = "DOCPIPE_EMBED_PROVIDER"
	envParser        = "DOCPIPE_PARSER"
	envLlamaKey      = "LLAMA_CLOUD_API_KEY"
	envOpenAIKey     = "OPENAI_API_KEY"
)

// field ties a Var to the Config field it fills. ptr returns a pointer to that
// field: *string, *int, *int64, *time.Duration or *bool.
type field struct {
	Var
	ptr func(c *Config) any
}

// schema is THE table. Keep it in the documented order.
var schema = []field{
	{Var{Name: envDatabaseURL, Required: true, Secret: true, Kind: "url",
		Doc: "Postgres connection string: postgres://user:password@host:5432/db or libpq key=value form (host=/tmp port=5432 dbname=docpipe)."},
		func(c *Config) any { return &c.DatabaseURL }},

	{Var{Name: "DOCPIPE_DATA_DIR", Default: ".docpipe/data", Kind: "string",
		Doc: "Folder of the local blob store (uploaded originals and derived artifacts)."},
		func(c *Config) any { return &c.DataDir }},
	{Var{Name: "DOCPIPE_CACHE_DIR", Default: ".docpipe/cache", Kind: "string",
		Doc: "Folder for caches that can be rebuilt, such as the pdfium compilation cache."},
		func(c *Config) any { return &c.CacheDir }},

	{Var{Name: "DOCPIPE_LOG_FORMAT", Default: "text", Kind: "enum:text|json",
		Doc: "Log output format: human-readable text or one JSON object per line."},
		func(c *Config) any { return &c.LogFormat }},
	{Var{Name: "DOCPIPE_LOG_LEVEL", Default: "info", Kind: "enum:debug|info|warn|error",
		Doc: "Lowest log level written."},
		func(c *Config) any { return &c.LogLevel }},

	{Var{Name: "DOCPIPE_WORKER_CONCURRENCY", Default: "4", Kind: "int", Min: "1", Max: "256",
		Doc: "Jobs a worker process runs at the same time."},
		func(c *Config) any { return &c.WorkerConcurrency }},
	{Var{Name: "DOCPIPE_MAX_ATTEMPTS", Default: "5", Kind: "int", Min: "1", Max: "25",
		Doc: "Attempts per pipeline stage before the document is dead-lettered."},
		func(c *Config) any { return &c.MaxAttempts }},
	{Var{Name: envRetryBase, Default: "1s", Kind: "duration", Min: "10ms", Max: "1h",
		Doc: "Delay before the first retry; later retries back off exponentially. Must be <= DOCPIPE_RETRY_MAX."},
		func(c *Config) any { return &c.RetryBase }},
	{Var{Name: envRetryMax, Default: "5m", Kind: "duration", Min: "100ms", Max: "24h",
		Doc: "Longest delay between two retries."},
		func(c *Config) any { return &c.RetryMax }},
	{Var{Name: envJobTimeout, Default: "1m", Kind: "duration", Min: "1s", Max: "6h",
		Doc: "A stage attempt is cancelled after running this long (long embedding continues in a new attempt instead)."},
		func(c *Config) any { return &c.JobTimeout }},
	{Var{Name: envRescueAfter, Default: "90s", Kind: "duration", Min: "1s", Max: "24h",
		Doc: "A running job whose worker died is picked up again after this long. Must be > DOCPIPE_JOB_TIMEOUT."},
		func(c *Config) any { return &c.RescueAfter }},
	{Var{Name: "DOCPIPE_SHUTDOWN_TIMEOUT", Default: "30s", Kind: "duration", Min: "0", Max: "10m",
		Doc: "On SIGTERM, how long running jobs may finish before they are cancelled."},
		func(c *Config) any { return &c.ShutdownTimeout }},

	{Var{Name: envChunkTokens, Default: "512", Kind: "int", Min: "64", Max: "8192",
		Doc: "Target chunk size in tokens."},
		func(c *Config) any { return &c.ChunkTokens }},
	{Var{Name: envChunkOverlap, Default: "64", Kind: "int", Min: "0",
		Doc: "Tokens shared by consecutive chunks. Must be < DOCPIPE_CHUNK_TOKENS/2."},
		func(c *Config) any { return &c.ChunkOverlap }},

	{Var{Name: envParser, Default: "local", Kind: "enum:local|llamaparse",
		Doc: "Parser: local (in-process) or llamaparse (LlamaCloud parsing API; needs LLAMA_CLOUD_API_KEY)."},
		func(c *Config) any { return &c.Parser }},
	{Var{Name: "LLAMAPARSE_BASE_URL", Default: "https://api.cloud.llamaindex.ai", Kind: "string",
		Doc: "LlamaParse API base URL (EU: https://api.cloud.eu.llamaindex.ai; a local twin: http://127.0.0.1:PORT)."},
		func(c *Config) any { return &c.LlamaParseBaseURL }},
	{Var{Name: "DOCPIPE_LLAMAPARSE_DEADLINE", Default: "30m", Kind: "duration", Min: "1s", Max: "24h",
		Doc: "A remote parse not finished after this long fails as LLAMAPARSE_EXPIRED."},
		func(c *Config) any { return &c.LlamaParseDeadline }},
	{Var{Name: "DOCPIPE_LLAMAPARSE_PARTIAL", Default: "accept", Kind: "enum:accept|fail",
		Doc: "A LlamaParse job that ends PARTIAL_SUCCESS: accept it (with a LLAMAPARSE_PARTIAL_SUCCESS warning event) or fail the stage."},
		func(c *Config) any { return &c.LlamaParsePartial }},

	{Var{Name: envEmbedProvider, Default: "local", Kind: "enum:local|openai",
		Doc: "Embedding backend: local (in-process, no network) or openai (needs OPENAI_API_KEY)."},
		func(c *Config) any { return &c.EmbedProvider }},
	{Var{Name: "DOCPIPE_EMBED_DIMS", Default: "1536", Kind: "int", Min: "8", Max: "16000",
		Doc: "Embedding vector dimensions; must match the database vector column."},
		func(c *Config) any { return &c.EmbedDims }},
	{Var{Name: "DOCPIPE_EMBED_BATCH", Default: "64", Kind: "int", Min: "1", Max: "2048",
		Doc: "Texts per embedding micro-batch."},
		func(c *Config) any { return &c.EmbedBatch }},
	{Var{Name: "DOCPIPE_EMBED_BATCH_DELAY", Default: "0s", Kind: "duration", Min: "0", Max: "1m",
		Doc: "Pause after each committed embedding micro-batch (crude throttling; tests use it to kill a worker mid-stage)."},
		func(c *Config) any { return &c.EmbedBatchDelay }},

	{Var{Name: "DOCPIPE_EMBED_MODEL", Default: "text-embedding-3-small", Kind: "string",
		Doc: "Embedding model (openai provider): text-embedding-3-small/-large, ada-002, or the model name of an OpenAI-compatible server."},
		func(c *Config) any { return &c.EmbedModel }},
	{Var{Name: "OPENAI_BASE_URL", Default: "https://api.openai.com/v1", Kind: "string",
		Doc: "OpenAI-compatible API root (Azure deployment URL, Ollama http://localhost:11434/v1, vLLM, TEI, or the local twin `docpipe mock openai`)."},
		func(c *Config) any { return &c.OpenAIBaseURL }},
	{Var{Name: "OPENAI_RPM", Default: "3000", Kind: "int", Min: "0", Max: "1000000",
		Doc: "Embedding requests per minute this process allows itself (0 = no own limit; server headers still obeyed)."},
		func(c *Config) any { return &c.OpenAIRPM }},
	{Var{Name: "OPENAI_TPM", Default: "1000000", Kind: "int", Min: "0", Max: "1000000000",
		Doc: "Embedding tokens per minute this process allows itself (0 = no own limit)."},
		func(c *Config) any { return &c.OpenAITPM }},
	{Var{Name: "OPENAI_MAX_BATCH_TOKENS", Default: "300000", Kind: "int", Min: "1000", Max: "300000",
		Doc: "Most tokens in one embeddings request."},
		func(c *Config) any { return &c.OpenAIMaxBatch }},
	{Var{Name: "OPENAI_CONCURRENCY", Default: "2", Kind: "int", Min: "1", Max: "64",
		Doc: "Embedding requests one micro-batch keeps in flight."},
		func(c *Config) any { return &c.OpenAIConc }},
	{Var{Name: "DOCPIPE_BUDGET_OPENAI_USD", Default: "0", Kind: "usd",
		Doc: "Daily (UTC) spending limit on embeddings; when reached, embedding pauses (jobs wait, nothing fails) until the next day. Logged at 80% and 100%."},
		func(c *Config) any { return &c.BudgetOpenAIUSD }},
	{Var{Name: "DOCPIPE_BUDGET_LLAMAPARSE_USD", Default: "0", Kind: "usd",
		Doc: "Daily (UTC) spending limit on LlamaParse; when reached, remote parsing pauses until the next day."},
		func(c *Config) any { return &c.BudgetLlamaParseUSD }},
	{Var{Name: "DOCPIPE_PUBLIC_URL", Kind: "string",
		Doc: "docpipe's URL as external services reach it (LlamaParse webhooks go to {this}/v1/webhooks/llamaparse/...); empty = poll only."},
		func(c *Config) any { return &c.PublicURL }},
	{Var{Name: "DOCPIPE_WEBHOOK_SECRET", Secret: true, Kind: "string",
		Doc: "Key for the per-job webhook tokens (HMAC-SHA256); needed with DOCPIPE_PUBLIC_URL. Same value on every API and worker process."},
		func(c *Config) any { return &c.WebhookSecret }},

	{Var{Name: "DOCPIPE_ALERT_WEBHOOK_URL", Secret: true, Kind: "string",
		Doc: "Slack-compatible incoming webhook for alerts (firing and resolved, once each); alerts also go to the log and GET /v1/alerts."},
		func(c *Config) any { return &c.AlertWebhookURL }},
	{Var{Name: "DOCPIPE_SCRATCH_DATABASE_URL", Secret: true, Kind: "url",
		Doc: "A PostgreSQL (with pgvector) where the schema drift check (`docpipe validate db`, alert DocpipeSchemaDrift) may create a short-lived scratch database; empty = DATABASE_URL's server (its role needs CREATEDB)."},
		func(c *Config) any { return &c.ScratchURL }},
	{Var{Name: "DOCPIPE_JWT_SECRET", Secret: true, Kind: "string",
		Doc: "HS256 secret for Bearer JWTs, at least 32 bytes (Supabase: Settings → API → JWT secret); without it and DOCPIPE_JWKS_URL only API keys are accepted."},
		func(c *Config) any { return &c.JWTSecret }},
	{Var{Name: "DOCPIPE_JWKS_URL", Kind: "string",
		Doc: "JWKS URL for RS256/ES256 JWTs, e.g. https://<ref>.supabase.co/auth/v1/.well-known/jwks.json (cached, refreshed)."},
		func(c *Config) any { return &c.JWKSURL }},
	{Var{Name: "DOCPIPE_JWT_AUDIENCE", Default: "authenticated", Kind: "string", Doc: "Required JWT `aud`."},
		func(c *Config) any { return &c.JWTAudience }},
	{Var{Name: "DOCPIPE_JWT_ISSUER", Kind: "string", Doc: "Required JWT `iss` when set."},
		func(c *Config) any { return &c.JWTIssuer }},
	{Var{Name: "DOCPIPE_API_RATE_PER_MINUTE", Default: "1200", Kind: "int", Min: "0", Max: "1000000",
		Doc: "API requests per credential per minute, per API process (token bucket; 429 with Retry-After); 0 = no limit."},
		func(c *Config) any { return &c.APIRatePerMinute }},
	{Var{Name: "DOCPIPE_API_RATE_BURST", Default: "40", Kind: "int", Min: "1", Max: "100000", Doc: "Token bucket burst of the API rate limit."},
		func(c *Config) any { return &c.APIRateBurst }},
	{Var{Name: "DOCPIPE_UPLOADS_PER_DAY", Default: "1000", Kind: "int", Min: "0", Max: "100000000", Doc: "New uploads per user per UTC day; 0 = no limit."},
		func(c *Config) any { return &c.UploadsPerDay }},
	{Var{Name: "DOCPIPE_MAX_ACTIVE_JOBS", Default: "100", Kind: "int", Min: "0", Max: "1000000", Doc: "Queued or running runs per user; 0 = no limit."},
		func(c *Config) any { return &c.MaxActiveJobs }},
	{Var{Name: "DOCPIPE_ALLOWED_TYPES", Default: "pdf,docx,html,markdown,text", Kind: "string",
		Doc: "Accepted upload types, sniffed from the content (not the header or file name)."},
		func(c *Config) any { return &c.AllowedTypes }},
	{Var{Name: "DOCPIPE_UPLOAD_URL_TTL", Default: "15m", Kind: "duration", Min: "1m", Max: "168h", Doc: "Lifetime of signed upload URLs."},
		func(c *Config) any { return &c.UploadURLTTL }},

	{Var{Name: "DOCPIPE_STORAGE", Default: "local", Kind: "enum:local|s3|supabase",
		Doc: "Blob store for raw and parsed documents: local (DOCPIPE_DATA_DIR), s3 (any S3-compatible service, also Supabase's S3 endpoint) or supabase (Storage REST API)."},
		func(c *Config) any { return &c.Storage }},
	{Var{Name: "DOCPIPE_STORAGE_SIGN_SECRET", Secret: true, Kind: "string",
		Doc: "Local store only: key (16+ bytes) for the signed upload/download URLs docpipe serves under /v1/blobs/ on DOCPIPE_PUBLIC_URL."},
		func(c *Config) any { return &c.StorageSignSecret }},
	{Var{Name: "S3_ENDPOINT", Kind: "string",
		Doc: "S3 endpoint URL (MinIO, Supabase https://<ref>.supabase.co/storage/v1/s3, R2…); empty = AWS."},
		func(c *Config) any { return &c.S3Endpoint }},
	{Var{Name: "S3_REGION", Default: "us-east-1", Kind: "string", Doc: "S3 region."},
		func(c *Config) any { return &c.S3Region }},
	{Var{Name: "S3_BUCKET", Kind: "string", Doc: "S3 bucket; required when DOCPIPE_STORAGE=s3."},
		func(c *Config) any { return &c.S3Bucket }},
	{Var{Name: "S3_ACCESS_KEY_ID", Secret: true, Kind: "string", Doc: "S3 access key id."},
		func(c *Config) any { return &c.S3AccessKey }},
	{Var{Name: "S3_SECRET_ACCESS_KEY", Secret: true, Kind: "string", Doc: "S3 secret access key."},
		func(c *Config) any { return &c.S3SecretKey }},
	{Var{Name: "S3_SESSION_TOKEN", Secret: true, Kind: "string", Doc: "S3 session token (temporary credentials)."},
		func(c *Config) any { return &c.S3SessionToken }},
	{Var{Name: "S3_VIRTUAL_HOSTED", Default: "false", Kind: "bool", Doc: "Address the bucket virtual-host style instead of path style."},
		func(c *Config) any { return &c.S3VirtualHosted }},
	{Var{Name: "SUPABASE_URL", Kind: "string",
		Doc: "Supabase project URL (https://<ref>.supabase.co) or a storage-api base; required when DOCPIPE_STORAGE=supabase."},
		func(c *Config) any { return &c.SupabaseURL }},
	{Var{Name: "SUPABASE_SERVICE_ROLE_KEY", Secret: true, Kind: "string", Doc: "Supabase service_role key for Storage; required when DOCPIPE_STORAGE=supabase."},
		func(c *Config) any { return &c.SupabaseKey }},
	{Var{Name: "SUPABASE_STORAGE_BUCKET", Default: "docpipe", Kind: "string", Doc: "Supabase Storage bucket."},
		func(c *Config) any { return &c.SupabaseBucket }},

	{Var{Name: "DOCPIPE_MAX_UPLOAD_BYTES", Default: "50MiB", Kind: "bytes", Min: "1", Max: "10GiB",
		Doc: "Largest accepted upload; KB/MB/GB = 1000^n bytes, KiB/MiB/GiB = 1024^n bytes."},
		func(c *Config) any { return &c.MaxUploadBytes }},
	{Var{Name: "DOCPIPE_MAX_PAGES", Default: "5000", Kind: "int", Min: "1", Max: "100000",
		Doc: "Documents with more pages are rejected."},
		func(c *Config) any { return &c.MaxPages }},
	{Var{Name: "DOCPIPE_PARSE_WORKERS", Default: "1", Kind: "int", Min: "1", Max: "16",
		Doc: "pdfium instances per worker process."},
		func(c *Config) any { return &c.ParseWorkers }},

	{Var{Name: "DOCPIPE_USER_ID", Default: "00000000-0000-4000-8000-000000000001", Kind: "uuid",
		Doc: "User the CLI's direct mode ingests documents as."},
		func(c *Config) any { return &c.UserID }},

	{Var{Name: envOpenAIKey, Secret: true, Kind: "string",
		Doc: "OpenAI API key; required when DOCPIPE_EMBED_PROVIDER=openai."},
		func(c *Config) any { return &c.OpenAIAPIKey }},
	{Var{Name: envLlamaKey, Secret: true, Kind: "string",
		Doc: "LlamaCloud API key; required when DOCPIPE_PARSER=llamaparse."},
		func(c *Config) any { return &c.LlamaCloudAPIKey }},
}

// Vars returns the whole schema in its documented order. The slice is a copy.
func Vars() []Var {
	out := make([]Var, len(schema))
	for i, f := range schema {
		out[i] = f.Var
	}
	return out
}

// Lookup returns the Var with the given name.
func Lookup(name string) (Var, bool) {
	for _, f := range schema {
		if f.Name == name {
			return f.Var, true
		}
	}
	return Var{}, false
}

// Value returns the effective value of the named variable in c, written the way the
// environment writes it (so it parses back to the same value); ok is false for a name
// that is not in the schema. `validate deploy` compares processes' settings with it.
func (c Config) Value(name string) (value string, ok bool) {
	for _, f := range schema {
		if f.Name == name {
			return formatField(f, &c), true
		}
	}
	return "", false
}

// FromEnv is Load(os.Getenv).
func FromEnv() (Config, []Problem) { return Load(os.Getenv) }

// Load reads every variable via getenv (os.Getenv in production; a map in
// tests), applies defaults, and returns ALL problems at once: missing required,
// malformed, out of range and cross-field. A variable whose value is malformed
// or out of range keeps its default in the returned Config; cross-field checks
// are only made between variables that are individually valid.
func Load(getenv func(string) string) (Config, []Problem) {
	var c Config
	var problems []Problem
	bad := map[string]bool{}
	for _, f := range schema {
		if f.Default != "" {
			v, _ := parseKind(f.Kind, f.Default) // schema defaults are checked by tests
			assign(f.ptr(&c), v)
		}
		raw := strings.TrimSpace(getenv(f.Name))
		if raw == "" {
			if f.Required && f.Default == "" {
				problems = append(problems, problem(f.Name, "required but not set"))
				bad[f.Name] = true
			}
			continue
		}
		v, msg := check(f.Var, raw)
		if msg != "" {
			problems = append(problems, problem(f.Name, msg))
			bad[f.Name] = true
			continue
		}
		assign(f.ptr(&c), v)
	}

	ok := func(names ...string) bool {
		for _, n := range names {
			if bad[n] {
				return false
			}
		}
		return true
	}
	if ok(envRetryBase, envRetryMax) && c.RetryBase > c.RetryMax {
		problems = append(problems, problem(envRetryBase, fmt.Sprintf(
			"%s must not be greater than %s (%s)",
			formatDuration(c.RetryBase), envRetryMax, formatDuration(c.RetryMax))))
	}
	if ok(envJobTimeout, envRescueAfter) && c.RescueAfter <= c.JobTimeout {
		problems = append(problems, problem(envRescueAfter, fmt.Sprintf(
			"%s must be greater than %s (%s), or jobs that are still running would be rescued",
			formatDuration(c.RescueAfter), envJobTimeout, formatDuration(c.JobTimeout))))
	}
	if ok(envChunkTokens, envChunkOverlap) && c.ChunkOverlap >= c.ChunkTokens/2 {
		problems = append(problems, problem(envChunkOverlap, fmt.Sprintf(
			"%d must be less than half of %s (%d/2 = %d)",
			c.ChunkOverlap, envChunkTokens, c.ChunkTokens, c.ChunkTokens/2)))
	}
	if ok(envParser) && c.Parser == "llamaparse" && c.LlamaCloudAPIKey == "" {
		problems = append(problems, problem(envLlamaKey,
			"required when "+envParser+"=llamaparse but not set"))
	}
	if ok(envEmbedProvider) && c.EmbedProvider == "openai" && c.OpenAIAPIKey == "" {
		problems = append(problems, problem(envOpenAIKey,
			"required when "+envEmbedProvider+"=openai but not set"))
	}
	if c.Storage == "s3" && c.S3Bucket == "" {
		problems = append(problems, problem("S3_BUCKET", "required when DOCPIPE_STORAGE=s3 but not set"))
	}
	if c.Storage == "supabase" && (c.SupabaseURL == "" || c.SupabaseKey == "") {
		problems = append(problems, problem("SUPABASE_URL", "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are required when DOCPIPE_STORAGE=supabase"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		problems = append(problems, problem("DOCPIPE_JWT_SECRET", "must be at least 32 bytes"))
	}
	if c.StorageSignSecret != "" && len(c.StorageSignSecret) < 16 {
		problems = append(problems, problem("DOCPIPE_STORAGE_SIGN_SECRET", "must be at least 16 bytes"))
	}
	if c.PublicURL != "" && c.WebhookSecret == "" {
		problems = append(problems, problem("DOCPIPE_WEBHOOK_SECRET", "required when DOCPIPE_PUBLIC_URL is set but not set"))
	}
	return c, problems
}

func problem(name, msg string) Problem {
	return Problem{Var: name, Message: name + ": " + msg}
}

// value is a parsed value: s for string-like kinds, n for int, bytes and
// duration (nanoseconds), b for bool.
type value struct {
	s string
	n int64
	b bool
}

// check parses raw per v.Kind and checks its bounds. It returns a message
// without the variable name, or "" when raw is fine. For secrets the message
// never contains raw.
func check(v Var, raw string) (value, string) {
	val, what := parseKind(v.Kind, raw)
	if what != "" {
		if v.Secret {
			return val, "value (not shown, secret) " + what
		}
		return val, strconv.Quote(raw) + " " + what
	}
	if !isNumeric(v.Kind) {
		return val, ""
	}
	shown := raw
	if v.Secret {
		shown = "value (not shown, secret)"
	}
	if v.Min != "" {
		if lo, _ := parseKind(v.Kind, v.Min); val.n < lo.n {
			return val, fmt.Sprintf("%s is below the minimum %s", shown, v.Min)
		}
	}
	if v.Max != "" {
		if hi, _ := parseKind(v.Kind, v.Max); val.n > hi.n {
			return val, fmt.Sprintf("%s is above the maximum %s", shown, v.Max)
		}
	}
	return val, ""
}

func isNumeric(kind string) bool {
	return kind == "int" || kind == "duration" || kind == "bytes" || kind == "usd"
}

// parseKind parses s as kind. On failure it returns a description of what s
// is not, without s itself ("is not a duration (examples: ...)").
func parseKind(kind, s string) (value, string) {
	switch {
	case kind == "string":
		return value{s: s}, ""
	case kind == "int":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || int64(int(n)) != n {
			return value{}, "is not an integer"
		}
		return value{n: n}, ""
	case kind == "duration":
		d, err := time.ParseDuration(s)
		if err != nil {
			return value{}, "is not a duration (examples: 90s, 2m, 1h)"
		}
		return value{n: int64(d)}, ""
	case kind == "bool":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return value{}, "is not a boolean (true or false)"
		}
		return value{b: b}, ""
	case kind == "usd":
		f, err := strconv.ParseFloat(strings.TrimPrefix(s, "$"), 64)
		if err != nil || f < 0 || f > 1e9 {
			return value{}, "is not an amount in US dollars (examples: 5, 12.50)"
		}
		return value{n: int64(f*1e6 + 0.5)}, "" // micro-dollars, so bounds compare as integers
	case kind == "bytes":
		n, ok := parseBytes(s)
		if !ok {
			return value{}, "is not a byte size (examples: 52428800, 50MB, 50MiB, 1GB; KB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n)"
		}
		return value{n: n}, ""
	case strings.HasPrefix(kind, "enum:"):
		opts := strings.TrimPrefix(kind, "enum:")
		for _, o := range strings.Split(opts, "|") {
			if strings.EqualFold(o, s) {
				return value{s: o}, ""
			}
		}
		return value{}, "is not one of " + opts
	case kind == "url":
		if !validConnString(s) {
			return value{}, `is not a valid postgres URL; want postgres://user:password@host:5432/dbname or libpq key=value pairs like "host=/tmp port=5432 dbname=docpipe"`
		}
		return value{s: s}, ""
	case kind == "uuid":
		if !validUUID(s) {
			return value{}, "is not a UUID (example: 00000000-0000-4000-8000-000000000001)"
		}
		return value{s: strings.ToLower(s)}, ""
	}
	return value{}, "has unknown kind " + strconv.Quote(kind)
}

// assign stores v into the Config field p points to.
func assign(p any, v value) {
	switch p := p.(type) {
	case *string:
		*p = v.s
	case *int:
		*p = int(v.n)
	case *int64:
		*p = v.n
	case *time.Duration:
		*p = time.Duration(v.n)
	case *bool:
		*p = v.b
	case *float64:
		*p = float64(v.n) / 1e6
	default:
		panic(fmt.Sprintf("config: unsupported field type %T", p))
	}
}

// byteUnits maps lower-case unit suffixes to their multipliers.
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseBytes parses a whole number of bytes with an optional unit (see the
// package doc).
func parseBytes(s string) (int64, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	mult, ok := byteUnits[strings.ToLower(strings.TrimLeft(s[i:], " "))]
	if !ok || n > (1<<63-1)/mult {
		return 0, false
	}
	return n * mult, true
}

// formatBytes renders n with the largest unit that divides it exactly, so the
// result parses back to n.
func formatBytes(n int64) string {
	if n > 0 {
		for _, u := range []struct {
			name string
			mult int64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
			{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
			if n%u.mult == 0 {
				return strconv.FormatInt(n/u.mult, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration is time.Duration.String without trailing zero units
// ("5m" rather than "5m0s", "1h" rather than "1h0m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// validConnString accepts a postgres:// or postgresql:// URL, or a libpq
// key=value connection string.
func validConnString(s string) bool {
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		u, err := url.Parse(s)
		return err == nil && u.Opaque == "" && validPort(u.Port())
	}
	if strings.Contains(s, "://") {
		return false
	}
	return validKeyValue(s)
}

func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

// validKeyValue checks the libpq "keyword = value" syntax: pairs separated by
// white space, spaces around '=' allowed, values optionally single-quoted,
// backslash escapes the next character. At least one pair is required.
func validKeyValue(s string) bool {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	skip := func(i int) int {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		return i
	}
	pairs := 0
	i := skip(0)
	for i < len(s) {
		start := i
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == start {
			return false
		}
		i = skip(i)
		if i >= len(s) || s[i] != '=' {
			return false
		}
		i = skip(i + 1)
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					closed = true
					i++
					break
				}
				i++
			}
			if !closed || (i < len(s) && !isSpace(s[i])) {
				return false
			}
		} else {
			vstart := i
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i == vstart || i > len(s) {
				return false
			}
		}
		pairs++
		i = skip(i)
	}
	return pairs > 0
}

// validUUID checks the 8-4-4-4-12 hexadecimal form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// MarkdownTable renders Vars() as a Markdown table for README/docs with the
// columns Name | Default | Required | Description. Secrets are marked
// "**Secret.**" in the description; the description also states the kind and
// bounds.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Name | Default | Required | Description |\n")
	b.WriteString("|------|---------|----------|-------------|\n")
	for _, v := range Vars() {
		def := ""
		if v.Default != "" {
			def = "`" + mdEscape(v.Default) + "`"
		}
		req := "no"
		if v.Required {
			req = "yes"
		}
		desc := mdEscape(v.Doc)
		if k := kindDoc(v); k != "" {
			desc += " " + k
		}
		if v.Secret {
			desc = "**Secret.** " + desc
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, def, req, desc)
	}
	return b.String()
}

// kindDoc describes a Var's kind and bounds in words for MarkdownTable.
func kindDoc(v Var) string {
	var s string
	switch {
	case v.Kind == "int":
		s = "Integer"
	case v.Kind == "duration":
		s = "Duration (e.g. 90s, 2m, 1h)"
	case v.Kind == "bytes":
		s = "Byte size (e.g. 52428800, 50MB, 50MiB)"
	case v.Kind == "bool":
		s = "Boolean"
	case v.Kind == "usd":
		s = "US dollars (e.g. 5, 12.50; 0 = no budget)"
	case v.Kind == "uuid":
		s = "UUID"
	case strings.HasPrefix(v.Kind, "enum:"):
		opts := strings.Split(strings.TrimPrefix(v.Kind, "enum:"), "|")
		return "One of `" + strings.Join(opts, "`, `") + "`."
	default:
		return ""
	}
	switch {
	case v.Min != "" && v.Max != "":
		s += ", " + v.Min + " to " + v.Max
	case v.Min != "":
		s += ", at least " + v.Min
	case v.Max != "":
		s += ", at most " + v.Max
	}
	return s + "."
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Report returns one line per variable, in Vars() order, for `docpipe config
// check`:
//
//	NAME=value (default)   not set, the default applies
//	NAME=value (set)       set in the environment; value is the effective one
//	NAME="raw" (set, invalid)  set but malformed or out of range (see Load's problems)
//	NAME=(not set)         not set and no default
//
// Secrets are shown as "NAME=*** (set)" or "NAME=(not set)", never their value.
// Values are taken from c (normally the Config Load returned for the same getenv).
func (c Config) Report(getenv func(string) string) []string {
	lines := make([]string, 0, len(schema))
	for _, f := range schema {
		raw := strings.TrimSpace(getenv(f.Name))
		var line string
		switch {
		case raw == "" && f.Default == "":
			line = f.Name + "=(not set)"
		case f.Secret && raw == "":
			line = f.Name + "=*** (default)" // no secret has a default today
		case f.Secret:
			line = f.Name + "=*** (set)"
			if _, msg := check(f.Var, raw); msg != "" {
				line = f.Name + "=*** (set, invalid)"
			}
		case raw == "":
			line = f.Name + "=" + formatField(f, &c) + " (default)"
		default:
			if _, msg := check(f.Var, raw); msg != "" {
				line = f.Name + "=" + strconv.Quote(raw) + " (set, invalid)"
			} else {
				line = f.Name + "=" + formatField(f, &c) + " (set)"
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// formatField renders f's field in c the way its kind is written in the
// environment, so the result parses back to the same value.
func formatField(f field, c *Config) string {
	switch p := f.ptr(c).(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		if f.Kind == "bytes" {
			return formatBytes(*p)
		}
		return strconv.FormatInt(*p, 10)
	case *time.Duration:
		return formatDuration(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *float64:
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}
	return ""
}
