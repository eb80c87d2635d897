package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// copyDeploy copies the deploy files into a temporary root.
func copyDeploy(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, rel := range []string{"docker-compose.yml", "deploy/render/render.yaml", "deploy/docker/Dockerfile",
		"deploy/k8s/api.yaml", "deploy/k8s/worker.yaml", "deploy/k8s/configmap.yaml", "deploy/k8s/secret.example.yaml",
		"deploy/k8s/migrate-job.yaml", "deploy/k8s/policies.yaml"} {
		b, err := os.ReadFile(filepath.Join("../..", rel))
		dbtest.Must(t, err, "read %s", rel)
		dbtest.Must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755), "mkdir")
		dbtest.Must(t, os.WriteFile(filepath.Join(root, rel), b, 0o644), "write")
	}
	return root
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	dbtest.Must(t, err, "read")
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	dbtest.Must(t, os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644), "write")
}

// The check fails, naming the file and the problem, on a render.yaml without the
// worker, a compose file with an unknown variable and a k8s probe on a missing route.
func TestDeployCheckOnBrokenCopies(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"render without worker", "deploy/render/render.yaml", "  - type: worker\n", "", // and everything after it
			"deploy/render/render.yaml: must run both an API (docpipe serve) and a worker (docpipe worker); has api=true worker=false"},
		{"compose unknown variable", "docker-compose.yml", "  DOCPIPE_LOG_FORMAT: json\n", "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_TURBO_MODE: \"on\"\n",
			"docker-compose.yml: api: sets DOCPIPE_TURBO_MODE, which is not in the config schema"},
		{"k8s probe path", "deploy/k8s/api.yaml", "httpGet: {path: /readyz, port: 8080}", "httpGet: {path: /ready, port: 8080}",
			"deploy/k8s: Deployment/docpipe-api/api: health check path /ready is not a route of `serve --addr`"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := copyDeploy(t)
			if c.new == "" { // cut from old to the end of the file
				b, err := os.ReadFile(filepath.Join(root, c.file))
				dbtest.Must(t, err, "read")
				i := strings.Index(string(b), c.old)
				if i < 0 {
					t.Fatalf("no %q", c.old)
				}
				dbtest.Must(t, os.WriteFile(filepath.Join(root, c.file), b[:i], 0o644), "write")
			} else {
				editFile(t, filepath.Join(root, c.file), c.old, c.new)
			}
			set, err := deploycheck.Load(root)
			dbtest.Must(t, err, "load")
			var got []string
			for _, p := range deploycheck.Check(deploySpec(), set) {
				got = append(got, p.String())
			}
			if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, c.want) }) {
				t.Errorf("want a problem starting %q; got:\n%s", c.want, strings.Join(got, "\n"))
			}
		})
	}
}
