package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
)

// Options are `docpipe dev`'s settings.
type Options struct {
	Dir     string   // folder for the cluster, blobs and caches (kept between runs)
	PGPort  int      // private Postgres port
	Addr    string   // API listen address (port 0 picks a free one)
	Samples []string // files or folders to ingest through the API
	Policy  string   // also ingest this file when it exists ("" = no)
	Query   string   // example search after the ingest ("" = none)
	Workers int      // worker (River client) count
	Once    bool     // exit after the ingest: nil only if every sample completed
	Reset   bool     // wipe the cluster, blobs and the twins' state first
	Real    bool     // the real LlamaParse and OpenAI (keys from the environment), the local blob store
}

// Process is one docpipe process as `docpipe serve --with-worker` runs it. Run builds
// it (Build) from the configuration it assembles; how a process is wired from a
// configuration is the caller's (cmd/docpipe), Run arranges everything around it.
type Process interface {
	// Parser is the process's local parser: the LlamaParse twin parses with it, so
	// pdfium is compiled and held once.
	Parser() *parse.Local
	// Pool is the process's database pool (Run creates the API key with it).
	Pool() *pgxpool.Pool
	// Serve serves the API on l, with the given number of workers, until ctx ends.
	Serve(ctx context.Context, l net.Listener, workers int) error
	// Close releases what the process holds.
	Close()
}

// Build makes the Process for cfg.
type Build func(ctx context.Context, cfg config.Config) (Process, error)

// Run is `docpipe dev`: the whole of docpipe in one process, the same shape as
// production. It starts a private PostgreSQL cluster under o.Dir and migrates it,
// starts the LlamaParse, OpenAI and Supabase Storage twins on loopback (unless
// o.Real), the API with the LlamaParse webhook route and o.Workers workers, prints
// every URL, ingests o.Samples (and o.Policy) through the API with progress, prints a
// table and an example search, then serves until ctx ends (o.Once: returns after the
// ingest, an error if a sample did not complete). The cluster stops however Run
// returns; its data stays for the next run.
func Run(ctx context.Context, o Options, out io.Writer, build Build) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	if o.Real && (os.Getenv("LLAMA_CLOUD_API_KEY") == "" || os.Getenv("OPENAI_API_KEY") == "") {
		return errors.New("docpipe dev --real uses the real LlamaParse and OpenAI: set LLAMA_CLOUD_API_KEY and OPENAI_API_KEY " +
			"(or run without --real to use the local twins)")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	cl, dbURL, err := startCluster(ctx, o, dir, say)
	if err != nil {
		return err
	}
	defer stopCluster(cl, say)

	// Bind every listener first: the configuration needs their URLs.
	apiL, err := listen("API", o.Addr)
	if err != nil {
		return err
	}
	defer apiL.Close()
	apiURL := "http://" + apiL.Addr().String()
	env := map[string]string{
		"DATABASE_URL":           dbURL,
		"DOCPIPE_DATA_DIR":       filepath.Join(dir, "data"),
		"DOCPIPE_CACHE_DIR":      envOr("DOCPIPE_CACHE_DIR", filepath.Join(dir, "cache")),
		"DOCPIPE_PUBLIC_URL":     apiURL,
		"DOCPIPE_WEBHOOK_SECRET": randomHex(32),
		"DOCPIPE_PARSER":         "llamaparse",
		"DOCPIPE_EMBED_PROVIDER": "openai",
		"DOCPIPE_LOG_LEVEL":      envOr("DOCPIPE_LOG_LEVEL", "warn"),
	}
	tw := &twins{snapshot: filepath.Join(dir, "twins", "storage.gob")}
	if !o.Real {
		if err := tw.listen(env); err != nil {
			return err
		}
		defer tw.close(say)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	p, err := build(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		tw.close(say) // first: the LlamaParse twin parses with the process's parser
		p.Close()
	}()
	if !o.Real {
		if err := tw.serve(p.Parser(), cfg.SupabaseBucket, env["OPENAI_API_KEY"], say); err != nil {
			return err
		}
	}
	return serveAndIngest(ctx, o, p, apiL, cfg, say, out)
}

// startCluster starts (and with o.Reset first wipes) the private cluster and
// migrates it.
func startCluster(ctx context.Context, o Options, dir string, say func(string, ...any)) (*Cluster, string, error) {
	// As root the server runs as the postgres user, which may not enter the clone
	// (a home folder of mode 0700): then the cluster lives in a folder of its own
	// under /var/tmp, the same one for this clone on every run.
	pgDir, closed, err := ReachableDir(filepath.Join(dir, "pg"))
	if err != nil {
		return nil, "", err
	}
	if closed != "" {
		say("postgres data in %s (the postgres user cannot enter %s; kept between runs, --reset wipes it)", pgDir, closed)
	}
	cl := &Cluster{Dir: pgDir, Port: o.PGPort, Fsync: true}
	if o.Reset {
		say("--reset: removing %s, %s and %s", cl.Dir, filepath.Join(dir, "data"), filepath.Join(dir, "twins"))
		if err := cl.Remove(ctx); err != nil {
			return nil, "", err
		}
		for _, sub := range []string{"data", "twins"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return nil, "", err
			}
		}
	}
	reused := cl.Initialized()
	if err := cl.Start(ctx); err != nil {
		return nil, "", err
	}
	dbURL := cl.URL("postgres")
	if reused {
		say("postgres   %s (reusing the cluster in %s)", dbURL, cl.Dir)
	} else {
		say("postgres   %s (new cluster in %s)", dbURL, cl.Dir)
	}
	if err := db.Migrate(ctx, dbURL, nil); err != nil {
		stopCluster(cl, say)
		return nil, "", err
	}
	return cl, dbURL, nil
}

// stopCluster stops the cluster, whatever the caller's context says (its data stays).
func stopCluster(cl *Cluster, say func(string, ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Stop(ctx); err != nil {
		say("stopping postgres: %v", err)
	} else {
		say("postgres stopped (data kept in %s; --reset wipes it)", cl.Dir)
	}
}

// loadConfig is docpipe's configuration from env, over the process environment.
func loadConfig(env map[string]string) (config.Config, error) {
	cfg, problems := config.Load(func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	})
	if len(problems) > 0 {
		var b strings.Builder
		for _, p := range problems {
			b.WriteString("\n  " + p.Message)
		}
		return cfg, fmt.Errorf("configuration problems:%s", b.String())
	}
	return cfg, nil
}

// serveAndIngest serves the API with its workers, ingests the samples through it,
// searches, and then (unless o.Once) serves until ctx ends.
func serveAndIngest(ctx context.Context, o Options, p Process, apiL net.Listener, cfg config.Config, say func(string, ...any), out io.Writer) error {
	apiURL := "http://" + apiL.Addr().String()
	sctx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	var serveErr error
	served := make(chan struct{})
	go func() { serveErr = p.Serve(sctx, apiL, o.Workers); close(served) }()
	defer func() { stopServe(); <-served }()
	if err := waitReady(ctx, apiURL+"/readyz", 30*time.Second, served); err != nil {
		if errors.Is(err, errStopped) {
			return fmt.Errorf("the API stopped: %w", serveErr)
		}
		return err
	}
	userID := uuid.MustParse(cfg.UserID)
	token, _, err := auth.NewKeys(p.Pool()).Create(ctx, auth.NewKey{Name: "docpipe dev " + time.Now().UTC().Format(time.RFC3339), UserID: &userID})
	if err != nil {
		return fmt.Errorf("create an API key: %w", err)
	}
	say("api        %s   (OpenAPI %s/v1/openapi.json; %d workers)", apiURL, apiURL, o.Workers)
	say("api key    %s   (user %s)", token, userID)
	say("")

	paths, err := samples(o)
	if err != nil {
		return err
	}
	c := client.New(apiURL, token)
	failed, err := client.Uploader{Backend: c, Out: out}.Run(ctx, paths)
	if err != nil && !(ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return err // an interruption is not: dev winds down by itself
	}
	if o.Query != "" {
		say("")
		if err := search(ctx, c, o.Query, out); err != nil {
			say("search: %v", err)
		}
	}
	if o.Once {
		if failed > 0 {
			return fmt.Errorf("%d of %d samples did not complete", failed, len(paths))
		}
		return nil
	}
	say("")
	say("serving until Ctrl-C. In another shell:")
	say("  curl -H 'Authorization: Bearer %s' %s/v1/documents", token, apiURL)
	say("  DOCPIPE_API_URL=%s DOCPIPE_API_TOKEN=%s bin/docpipe search \"...\"", apiURL, token)
	<-ctx.Done()
	say("shutting down…")
	return nil
}

// samples is the files to ingest: o.Samples, and o.Policy when it exists and is not
// among them.
func samples(o Options) ([]string, error) {
	paths, err := client.ExpandPaths(o.Samples)
	if err != nil {
		return nil, err
	}
	if o.Policy != "" {
		_, statErr := os.Stat(o.Policy)
		have := slices.ContainsFunc(paths, func(p string) bool { return filepath.Base(p) == filepath.Base(o.Policy) })
		if statErr == nil && !have {
			paths = append(paths, o.Policy)
		}
	}
	return paths, nil
}

// search prints the top hybrid results for query.
func search(ctx context.Context, c *client.Client, query string, w io.Writer) error {
	hits, err := c.Search(ctx, query, 3, "hybrid")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "search (hybrid) %q:\n", query)
	for i, h := range hits {
		text := strings.Join(strings.Fields(h.Text), " ")
		if len(text) > 140 {
			text = text[:140] + "…"
		}
		fmt.Fprintf(w, "%d. %s (chunk %d, score %.4f)\n   %s\n", i+1, h.Filename, h.Ord, h.Score, text)
	}
	return nil
}

// twins are the LlamaParse, OpenAI and Supabase Storage twins on loopback.
type twins struct {
	listeners []net.Listener // llamaparse, openai, storage
	servers   []*http.Server
	storage   *mock.StorageServer
	snapshot  string // the storage twin's objects between runs
}

// listen binds the twins and points docpipe's configuration at them.
func (t *twins) listen(env map[string]string) error {
	for _, name := range []string{"llamaparse", "openai", "storage"} {
		l, err := listen(name+" twin", "127.0.0.1:0")
		if err != nil {
			t.close(func(string, ...any) {})
			return err
		}
		t.listeners = append(t.listeners, l)
	}
	base := func(i int) string { return "http://" + t.listeners[i].Addr().String() }
	key := "dev-" + randomHex(8)
	env["LLAMAPARSE_BASE_URL"], env["LLAMA_CLOUD_API_KEY"] = base(0), key
	env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"] = base(1)+"/v1", key
	env["DOCPIPE_STORAGE"], env["SUPABASE_URL"], env["SUPABASE_SERVICE_ROLE_KEY"] = "supabase", base(2)+"/storage/v1", key
	return nil
}

// serve starts the twins: LlamaParse parses with parser, OpenAI answers with the
// local embedder's vectors, and Storage starts from the last run's objects (so
// documents interrupted by Ctrl-C resume next run).
func (t *twins) serve(parser *parse.Local, bucket, key string, say func(string, ...any)) error {
	t.storage = mock.NewStorageServer(mock.StorageOptions{APIKey: key, Buckets: []string{bucket}, Seed: 1})
	if err := t.storage.LoadFrom(t.snapshot); err != nil {
		return err
	}
	handlers := []http.Handler{
		mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: key, Parser: parser, Delay: 300 * time.Millisecond, Seed: 1}),
		mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: key, RPM: 3000, TPM: 1_000_000, Seed: 1}),
		t.storage,
	}
	for i, name := range []string{"llamaparse", "openai", "storage"} {
		srv := &http.Server{Handler: handlers[i], ReadHeaderTimeout: 10 * time.Second}
		l := t.listeners[i]
		go func() { _ = srv.Serve(l) }()
		t.servers = append(t.servers, srv)
		say("%-10s http://%s (twin)", name, l.Addr())
	}
	return nil
}

// close stops the twins and saves the storage twin's objects; again, it does nothing.
func (t *twins) close(say func(string, ...any)) {
	for _, srv := range t.servers {
		_ = srv.Close()
	}
	for _, l := range t.listeners {
		_ = l.Close()
	}
	if t.storage != nil {
		if err := t.storage.SaveTo(t.snapshot); err != nil {
			say("saving the storage twin: %v", err)
		}
	}
	t.servers, t.listeners, t.storage = nil, nil, nil
}

// listen binds addr with a message that says what to do when it is taken.
func listen(what, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %s is in use (another `docpipe dev` running? stop it, or pick another address with --addr)", what, addr)
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	return l, nil
}

// errStopped is waitReady's answer when the server stopped before it was ready.
var errStopped = errors.New("stopped before it was ready")

// waitReady polls a readiness URL until it answers 200, the server stops (stopped is
// closed) or within passes.
func waitReady(ctx context.Context, url string, within time.Duration, stopped <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last: %v)", url, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errStopped
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
