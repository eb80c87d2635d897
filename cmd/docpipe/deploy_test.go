package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/deploycheck"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
)

// validCommand checks a command line against the real command tree: the
// subcommand exists and is runnable, its flags parse and its arguments are valid.
func validCommand(args []string) error {
	root := rootCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if c == root || !c.Runnable() {
		return fmt.Errorf("%q is not a runnable docpipe command", strings.Join(args, " "))
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	return c.ValidateArgs(c.Flags().Args())
}

// deploySpec is what the code offers to deploy files.
func deploySpec() deploycheck.Spec {
	spec := deploycheck.Spec{Vars: map[string]bool{}, Command: validCommand,
		Routes: map[deploycheck.Role][]string{
			deploycheck.RoleAPI:    {"/healthz", "/readyz"},
			deploycheck.RoleWorker: {"/healthz", "/readyz"},
			deploycheck.RoleMock:   {"/healthz"},
		}}
	for _, v := range config.Vars() {
		spec.Vars[v.Name] = true
		if v.Required {
			spec.Required = append(spec.Required, v.Name)
		}
	}
	return spec
}

// apiGETRoutes are the API server's real GET routes (its health routes among them).
func apiGETRoutes(t *testing.T) []string {
	pool, _ := dbtest.Pool(t)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	emb, err := embed.NewLocal(8)
	dbtest.Must(t, err, "embedder")
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parse.NewLocal(parse.Options{}), Chunker: nil, Embedder: emb}, pipeline.Options{})
	dbtest.Must(t, err, "pipeline")
	srv, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: emb}, api.Options{})
	dbtest.Must(t, err, "api")
	var out []string
	for _, r := range srv.Routes() {
		if path, ok := strings.CutPrefix(r, "GET "); ok {
			out = append(out, path)
		}
	}
	return out
}

// The deploy files (compose, Render, Kubernetes, Dockerfile) agree with the code.
func TestDeployFilesMatchTheCode(t *testing.T) {
	set, err := deploycheck.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	spec := deploySpec()
	spec.Routes[deploycheck.RoleAPI] = apiGETRoutes(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if !slices.Contains(spec.Routes[deploycheck.RoleAPI], path) {
			t.Errorf("the API has no GET %s", path)
		}
	}
	for f, units := range set.Files {
		if len(units) == 0 {
			t.Errorf("%s: no docpipe units found", f)
		}
	}
	for _, p := range deploycheck.Check(spec, set) {
		t.Error(p)
	}
}

// The checker catches what the earlier system shipped: no worker, a made-up
// variable, a missing secret, a command and a health path that do not exist.
func TestDeployCheckCatchesMistakes(t *testing.T) {
	set, err := deploycheck.Load("../..")
	dbtest.Must(t, err, "load")
	units := set.Files["docker-compose.yml"]
	var broken []deploycheck.Unit
	for _, u := range units {
		switch u.Role() {
		case deploycheck.RoleWorker:
			continue // the worker is missing
		case deploycheck.RoleAPI:
			u.Env = map[string]string{"DOCPIPE_WORKERS_COUNT": "3"} // unknown, and DATABASE_URL gone
			u.Health = []deploycheck.Probe{{Path: "/health", Port: 8080}}
		case deploycheck.RoleMigrate:
			u.Args = []string{"migrate", "upp"}
		}
		broken = append(broken, u)
	}
	set.Files = map[string][]deploycheck.Unit{"docker-compose.yml": broken}
	var got []string
	for _, p := range deploycheck.Check(deploySpec(), set) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"must run both an API", "DOCPIPE_WORKERS_COUNT", "needs DATABASE_URL", "/health is not a route", "migrate upp"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem mentions %q; got:\n%s", want, all)
		}
	}
}

// The health routes the deploy spec names are real: the worker's and the twins'.
func TestHealthRoutesExist(t *testing.T) {
	pool, _ := dbtest.Pool(t)
	stop, addr, err := serveWorkerHealth("127.0.0.1:0", &app{pool: pool, log: slog.New(slog.DiscardHandler)})
	dbtest.Must(t, err, "worker health")
	defer stop()
	for _, path := range deploySpec().Routes[deploycheck.RoleWorker] {
		resp, err := http.Get("http://" + addr + path)
		dbtest.Must(t, err, "get")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("worker %s: HTTP %d", path, resp.StatusCode)
		}
	}
	twins := map[string]http.Handler{
		"openai":     mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: "k"}),
		"llamaparse": mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: "k"}),
		"storage":    mock.NewStorageServer(mock.StorageOptions{APIKey: "k"}),
	}
	for name, h := range twins {
		for _, path := range deploySpec().Routes[deploycheck.RoleMock] {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("%s twin %s: HTTP %d", name, path, rec.Code)
			}
		}
	}
	if err := validCommand([]string{"worker", "--nope"}); err == nil {
		t.Error("an unknown flag was accepted")
	}
}
