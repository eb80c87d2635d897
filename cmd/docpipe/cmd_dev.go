package main

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
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/client"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/devenv"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/pipeline"
)

type devOptions struct {
	dir, addr, policy string
	samples           []string
	pgPort, workers   int
	once, reset, real bool
	query             string
}

// devCmd runs the whole of docpipe in one process, the same shape as production:
// a private Postgres, the three twins, the API with webhooks, two workers.
func devCmd() *cobra.Command {
	var o devOptions
	c := &cobra.Command{
		Use:   "dev",
		Short: "Everything locally in one process: private Postgres, the LlamaParse/OpenAI/Storage twins, the API and two workers; ingests samples/",
		Long: `dev starts a private PostgreSQL cluster under --dir (kept between runs; --reset wipes it),
migrates it, starts the LlamaParse, OpenAI and Supabase Storage twins on loopback, the API
(with the LlamaParse webhook route) and two workers, prints every URL, ingests --samples
(plus --policy) through the API with progress bars, prints a per-document table and an example
search, then serves until Ctrl-C. --once exits after the ingest: 0 only if every sample completed.
As root, when the postgres user cannot enter --dir (a home folder of mode 0700), the cluster
lives in /var/tmp/docpipe-pg-<hash of the folder> instead, printed at start.
--real uses the real LlamaParse and OpenAI (LLAMA_CLOUD_API_KEY and OPENAI_API_KEY must be set)
and the local blob store. The twins keep their state in memory.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd.Context(), o, cmd.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.dir, "dir", ".docpipe", "folder for the cluster, blobs and caches")
	f.IntVar(&o.pgPort, "pg-port", 54320, "private Postgres port")
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "API listen address (port 0 picks a free one)")
	f.StringSliceVar(&o.samples, "samples", []string{"samples"}, "files or folders to ingest")
	f.StringVar(&o.policy, "policy", "testdata/corpus/sample-policy.pdf", "also ingest this file when it exists (\"\" = no)")
	f.StringVar(&o.query, "query", "what is the deductible", "example search after the ingest")
	f.IntVar(&o.workers, "workers", 2, "worker (River client) count")
	f.BoolVar(&o.once, "once", false, "exit after the ingest: 0 if every sample completed")
	f.BoolVar(&o.reset, "reset", false, "wipe the cluster and blobs first")
	f.BoolVar(&o.real, "real", false, "use the real LlamaParse and OpenAI (keys from the environment)")
	return c
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

func runDev(ctx context.Context, o devOptions, out io.Writer) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	if o.real && (os.Getenv("LLAMA_CLOUD_API_KEY") == "" || os.Getenv("OPENAI_API_KEY") == "") {
		return errors.New("docpipe dev --real uses the real LlamaParse and OpenAI: set LLAMA_CLOUD_API_KEY and OPENAI_API_KEY " +
			"(or run without --real to use the local twins)")
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	// As root the server runs as the postgres user, which may not enter the clone
	// (a home folder of mode 0700): then the cluster lives in a folder of its own
	// under /var/tmp, the same one for this clone on every run.
	pgDir, closed, err := devenv.ReachableDir(filepath.Join(dir, "pg"))
	if err != nil {
		return err
	}
	if closed != "" {
		say("postgres data in %s (the postgres user cannot enter %s; kept between runs, --reset wipes it)", pgDir, closed)
	}
	cl := &devenv.Cluster{Dir: pgDir, Port: o.pgPort, Fsync: true}
	if o.reset {
		say("--reset: removing %s, %s and %s", cl.Dir, filepath.Join(dir, "data"), filepath.Join(dir, "twins"))
		if err := cl.Remove(ctx); err != nil {
			return err
		}
		for _, sub := range []string{"data", "twins"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return err
			}
		}
	}
	reused := cl.Initialized()
	if err := cl.Start(ctx); err != nil {
		return err
	}
	// The cluster stops however we leave (its data stays for the next run).
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.Stop(sctx); err != nil {
			say("stopping postgres: %v", err)
		} else {
			say("postgres stopped (data kept in %s; --reset wipes it)", cl.Dir)
		}
	}()
	dbURL := cl.URL("postgres")
	if reused {
		say("postgres   %s (reusing the cluster in %s)", dbURL, cl.Dir)
	} else {
		say("postgres   %s (new cluster in %s)", dbURL, cl.Dir)
	}
	if err := db.Migrate(ctx, dbURL, nil); err != nil {
		return err
	}

	// Bind every listener first: the configuration needs their URLs.
	apiL, err := listen("API", o.addr)
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
	type twin struct {
		name string
		l    net.Listener
		h    http.Handler
	}
	var twins []*twin
	if !o.real {
		for _, name := range []string{"llamaparse", "openai", "storage"} {
			l, err := listen(name+" twin", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer l.Close()
			twins = append(twins, &twin{name: name, l: l})
		}
		base := func(i int) string { return "http://" + twins[i].l.Addr().String() }
		key := "dev-" + randomHex(8)
		env["LLAMAPARSE_BASE_URL"], env["LLAMA_CLOUD_API_KEY"] = base(0), key
		env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"] = base(1)+"/v1", key
		env["DOCPIPE_STORAGE"], env["SUPABASE_URL"], env["SUPABASE_SERVICE_ROLE_KEY"] = "supabase", base(2)+"/storage/v1", key
	}
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
		return fmt.Errorf("configuration problems:%s", b.String())
	}
	log := newLogger(cfg)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()

	// The twins parse with the app's own parser and answer with the local embedder's vectors.
	if !o.real {
		key := env["OPENAI_API_KEY"]
		twins[0].h = mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: key, Parser: a.parser, Delay: 300 * time.Millisecond, Seed: 1})
		twins[1].h = mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: key, RPM: 3000, TPM: 1_000_000, Seed: 1})
		st := mock.NewStorageServer(mock.StorageOptions{APIKey: key, Buckets: []string{cfg.SupabaseBucket}, Seed: 1})
		// Stored bytes outlive the process: documents interrupted by Ctrl-C resume next run.
		snapshot := filepath.Join(dir, "twins", "storage.gob")
		if err := st.LoadFrom(snapshot); err != nil {
			return err
		}
		defer func() {
			if err := st.SaveTo(snapshot); err != nil {
				say("saving the storage twin: %v", err)
			}
		}()
		twins[2].h = st
		for _, tw := range twins {
			srv := &http.Server{Handler: tw.h, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(tw.l) }()
			defer srv.Close()
			say("%-10s http://%s (twin)", tw.name, tw.l.Addr())
		}
	}

	// The API with the first worker; more workers as extra River clients.
	sctx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- runServe(sctx, a, serveOptions{withWorker: true, listener: apiL}, io.Discard) }()
	defer func() { stopServe(); <-served }()
	for i := 1; i < o.workers; i++ {
		p, err := pipeline.New(a.deps, a.opts)
		if err != nil {
			return err
		}
		if err := p.Start(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		defer func() { _ = p.Stop(context.Background()) }()
	}
	if err := waitReady(ctx, apiURL+"/readyz", 30*time.Second); err != nil {
		return err
	}
	userID := uuid.MustParse(cfg.UserID)
	token, _, err := auth.NewKeys(a.pool).Create(ctx, auth.NewKey{Name: "docpipe dev " + time.Now().UTC().Format(time.RFC3339), UserID: &userID})
	if err != nil {
		return fmt.Errorf("create an API key: %w", err)
	}
	say("api        %s   (OpenAPI %s/v1/openapi.json; %d workers)", apiURL, apiURL, o.workers)
	say("api key    %s   (user %s)", token, userID)
	say("")

	paths, err := client.ExpandPaths(o.samples)
	if err != nil {
		return err
	}
	if o.policy != "" {
		_, statErr := os.Stat(o.policy)
		have := slices.ContainsFunc(paths, func(p string) bool { return filepath.Base(p) == filepath.Base(o.policy) })
		if statErr == nil && !have {
			paths = append(paths, o.policy)
		}
	}
	c := client.New(apiURL, token)
	failed, err := apiIngest(ctx, c, paths, out, false, false)
	if err != nil {
		return err
	}
	if o.query != "" {
		say("")
		if err := devSearch(ctx, c, o.query, out); err != nil {
			say("search: %v", err)
		}
	}
	if o.once {
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

// waitReady polls a readiness URL until it answers 200.
func waitReady(ctx context.Context, url string, within time.Duration) error {
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
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiIngest ingests files through the API with the client's Uploader. An
// interruption (ctx done) is not an error here: the caller winds down by itself.
func apiIngest(ctx context.Context, c *client.Client, files []string, w io.Writer, noWait, asJSON bool) (failed int, err error) {
	failed, err = client.Uploader{Backend: c, Out: w, NoWait: noWait, JSON: asJSON}.Run(ctx, files)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	return failed, err
}

// devSearch prints the top hybrid results for query.
func devSearch(ctx context.Context, c *client.Client, query string, w io.Writer) error {
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
