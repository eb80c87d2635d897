package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testSpec stands in for the real command tree (cmd/docpipe's tests use the real one):
// a few commands with their flags' defaults.
var testSpec = DeploySpec{
	Command: func(args []string) (Invocation, error) {
		defaults := map[string]map[string]string{
			"serve":        {"addr": "127.0.0.1:8080", "with-worker": "false"},
			"worker":       {"health-addr": ""},
			"migrate up":   {},
			"mock storage": {"addr": "127.0.0.1:8003", "api-key": ""},
		}
		var words []string
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			words, args = append(words, args[0]), args[1:]
		}
		path := strings.Join(words, " ")
		d, ok := defaults[path]
		if !ok {
			return Invocation{}, fmt.Errorf("%q is not a command", path)
		}
		inv := Invocation{Path: path, Flags: map[string]string{}}
		for k, v := range d {
			inv.Flags[k] = v
		}
		for len(args) > 0 {
			name := strings.TrimPrefix(args[0], "--")
			if _, ok := d[name]; !ok {
				return Invocation{}, fmt.Errorf("unknown flag: %s", args[0])
			}
			if name == "with-worker" {
				inv.Flags[name], args = "true", args[1:]
				continue
			}
			inv.Flags[name], args = args[1], args[2:]
		}
		return inv, nil
	},
	Routes: map[Role][]string{RoleAPI: {"/healthz", "/readyz"}, RoleWorker: {"/healthz", "/readyz"}, RoleTwin: {"/healthz"}},
}

const testDockerfile = `ARG GO_IMAGE=golang:1.26
FROM ${GO_IMAGE} AS build
WORKDIR /src
RUN go build -o /out/docpipe . \
 && DOCPIPE_CACHE_DIR=/out/cache /out/docpipe parse --warmup
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build --chown=65532:65532 /out/cache /cache
ENV DOCPIPE_CACHE_DIR=/cache DOCPIPE_LOG_FORMAT="json"
ENV DOCPIPE_DATA_DIR /data
USER 65532:65532
ENTRYPOINT ["/docpipe"]
CMD ["serve", "--addr", "0.0.0.0:8080"]
`

// writeFiles writes name → content under a new root.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newRun(root string) *deployRun {
	return &deployRun{spec: testSpec, opts: DeployOptions{Root: root, Dockerfile: "Dockerfile"}, dockerfiles: map[string]*dockerfile{}}
}

func unitNamed(t *testing.T, l loaded, name string) *unit {
	t.Helper()
	for _, u := range l.units {
		if u.name == name {
			return u
		}
	}
	t.Fatalf("no unit %q in %v", name, unitNames(l.units))
	return nil
}

func TestDockerfileStagesEnvAndWarmup(t *testing.T) {
	stages, err := parseDockerfile(testDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].from != "golang:1.26" || stages[0].name != "build" || stages[0].workdir != "/src" {
		t.Fatalf("stages: %+v", stages[0])
	}
	final := stages[1]
	want := map[string]string{"DOCPIPE_CACHE_DIR": "/cache", "DOCPIPE_LOG_FORMAT": "json", "DOCPIPE_DATA_DIR": "/data"}
	if fmt.Sprint(final.env) != fmt.Sprint(want) || final.user != "65532:65532" || !slices.Equal(final.entrypoint, []string{"/docpipe"}) ||
		!slices.Equal(final.cmd, []string{"serve", "--addr", "0.0.0.0:8080"}) {
		t.Errorf("final stage: %+v", final)
	}
	root := writeFiles(t, map[string]string{"Dockerfile": testDockerfile})
	d := newRun(root)
	checks := d.checkDockerfile(d.dockerfile(filepath.Join(root, "Dockerfile")))
	if countFailed(checks) != 0 {
		t.Errorf("%+v", checks)
	}
	// The warm-up's default cache folder is relative to WORKDIR.
	if got := cacheDir(&stage{workdir: "/src", env: map[string]string{}}, ""); got != "/src/.docpipe/cache" {
		t.Errorf("default cache dir: %s", got)
	}
}

func TestImageReferences(t *testing.T) {
	for ref, ok := range map[string]bool{"ghcr.io/docpipe/docpipe:1.0.0": true, "docpipe@sha256:ab": true, "scratch": true,
		"docpipe": false, "docpipe:latest": false, "localhost:5000/docpipe": false, "localhost:5000/docpipe:2": true} {
		if got, _ := pinned(ref); got != ok {
			t.Errorf("pinned(%s) = %v", ref, got)
		}
	}
	for ref, ok := range map[string]bool{"ghcr.io/docpipe/docpipe:1.0.0": true, "docpipe:local": true, "localhost:5000/docpipe": true,
		"postgres:16": false, "ghcr.io/docpipe/docpipe-ui:1": false} {
		if docpipeImage(ref) != ok {
			t.Errorf("docpipeImage(%s) = %v", ref, !ok)
		}
	}
}

func TestClassify(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"prometheus.yml": "global: {scrape_interval: 15s}\nscrape_configs: []\n",
		"k8s/a.yaml":     "# comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n",
		"render.yaml":    "services:\n  - type: web\n    name: x\n",
		"stack.yml":      "services:\n  x: {image: y}\n",
		"Dockerfile":     "FROM scratch\n",
	})
	for name, want := range map[string]string{"prometheus.yml": "", "k8s/a.yaml": "kubernetes", "render.yaml": "render", "stack.yml": "compose", "Dockerfile": "dockerfile"} {
		if got, err := classify(filepath.Join(root, name)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
}

// The kubelet's order: the image's ENV, then envFrom sources in order (with prefixes),
// then env; Secrets supply their template's keys as values supplied at deploy time.
func TestKubernetesEnvironment(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"Dockerfile": testDockerfile,
		"k8s/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {DOCPIPE_LOG_FORMAT: text, DOCPIPE_CHUNK_TOKENS: "256", STORAGE: s3}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
data: {DOCPIPE_CHUNK_TOKENS: "1024"}
`,
		"k8s/secret.example.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {DATABASE_URL: CHANGE-ME}\n",
		"k8s/app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: api
          image: docpipe:1
          envFrom:
            - configMapRef: {name: a}
            - configMapRef: {name: a}
              prefix: DOCPIPE_
            - configMapRef: {name: b}
            - configMapRef: {name: missing, optional: true}
            - secretRef: {name: s}
          env:
            - {name: DOCPIPE_LOG_FORMAT, value: json}
`,
	})
	d := newRun(root)
	l := d.loadKubernetes(target{name: "k8s", platform: kubernetes, files: []string{filepath.Join(root, "k8s/app.yaml"), filepath.Join(root, "k8s/cm.yaml"), filepath.Join(root, "k8s/secret.example.yaml")}})
	u := unitNamed(t, l, "Deployment/app container api")
	for k, want := range map[string]string{"DOCPIPE_LOG_FORMAT": "json", "DOCPIPE_CHUNK_TOKENS": "1024", "DOCPIPE_STORAGE": "s3", "DOCPIPE_CACHE_DIR": "/cache"} {
		if got := u.env[k].Value; got != want {
			t.Errorf("%s = %q (%s), want %q", k, got, u.env[k].From, want)
		}
	}
	db := u.env["DATABASE_URL"]
	if !db.Supplied || db.Same != "secret:s/DATABASE_URL" || db.Inline {
		t.Errorf("DATABASE_URL: %+v", db)
	}
	if len(u.refErrs) != 0 || !slices.Equal(u.argv, []string{"/docpipe", "serve", "--addr", "0.0.0.0:8080"}) || !u.has(RoleAPI) {
		t.Errorf("refErrs %v, argv %v, roles %v", u.refErrs, u.argv, u.roles)
	}
	if l.checks[0].Name != "k8s: files" || !l.checks[0].OK {
		t.Errorf("files: %+v", l.checks[0])
	}
}

// compose-go resolves what docker compose resolves: .env interpolation, defaults,
// env_file; a value written in the file is inline, one interpolated or from an env_file
// is not; an unset variable without a default fails the files check.
func TestComposeEnvironment(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"Dockerfile": testDockerfile,
		".env":       "STORAGE=supabase\n",
		"app.env":    "OPENAI_API_KEY=from-env-file\n",
		"compose.yaml": `services:
  api:
    build: {context: ., dockerfile: Dockerfile}
    command: ["serve", "--addr", "0.0.0.0:8080", "--with-worker"]
    env_file: [app.env]
    environment:
      DOCPIPE_STORAGE: ${STORAGE}
      DOCPIPE_LOG_LEVEL: ${LEVEL:-warn}
      DATABASE_URL: postgres://u:p@db:5432/x
      DOCPIPE_PUBLIC_URL: ${PUBLIC_URL}
      DOCPIPE_JWT_SECRET: ${JWT_SECRET}
    healthcheck:
      test: ["CMD", "/docpipe", "probe", "http://127.0.0.1:8080/readyz"]
  db:
    image: postgres:16
`,
	})
	d := newRun(root)
	l := d.loadCompose(context.Background(), target{name: "compose.yaml", platform: compose, files: []string{filepath.Join(root, "compose.yaml")}})
	u := unitNamed(t, l, "service api")
	for k, want := range map[string]string{"DOCPIPE_STORAGE": "supabase", "DOCPIPE_LOG_LEVEL": "warn", "OPENAI_API_KEY": "from-env-file"} {
		if got := u.env[k].Value; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if u.env["OPENAI_API_KEY"].Inline || u.env["DOCPIPE_STORAGE"].Inline || !u.env["DATABASE_URL"].Inline {
		t.Errorf("inline: %+v", u.env)
	}
	if !u.has(RoleAPI) || !u.has(RoleWorker) || len(u.probes) != 1 || u.probes[0].Port != 8080 || !u.probes[0].Inside {
		t.Errorf("roles %v, probes %+v", u.roles, u.probes)
	}
	if files := l.checks[0]; files.OK || !strings.Contains(files.Reason, "${PUBLIC_URL}") || strings.Contains(files.Reason, "LEVEL") || strings.Contains(files.Reason, "JWT") {
		t.Errorf("files: %+v", files)
	}
	// A secret left unset for the environment compose runs in is supplied at deploy time.
	if jwt := u.env["DOCPIPE_JWT_SECRET"]; !jwt.Supplied || jwt.Inline || jwt.Same != "shell:JWT_SECRET" || len(jwt.Value) < 32 {
		t.Errorf("DOCPIPE_JWT_SECRET: %+v", jwt)
	}
	// One process that is both API and worker may use a local store.
	if c := d.checkBlobStore(target{name: "compose.yaml"}, loaded{units: []*unit{{name: "x", roles: []Role{RoleAPI, RoleWorker}, replicas: 1, env: map[string]envVar{}}}}); !c.OK {
		t.Errorf("serve --with-worker with a local store: %+v", c)
	}
}

// A Render service's own variables win over its groups'; a group's generated or
// prompted value is shared by the services linking it, a service's own is not.
func TestRenderEnvironment(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"Dockerfile": testDockerfile,
		"render.yaml": `databases: [{name: db}]
envVarGroups:
  - name: g
    envVars:
      - {key: DOCPIPE_CHUNK_TOKENS, value: 256}
      - {key: DOCPIPE_WEBHOOK_SECRET, generateValue: true}
services:
  - type: web
    name: api
    runtime: docker
    dockerfilePath: ./Dockerfile
    dockerCommand: /docpipe serve --addr 0.0.0.0:10000
    healthCheckPath: /readyz
    envVars:
      - fromGroup: g
      - {key: DOCPIPE_CHUNK_TOKENS, value: "1024"}
      - {key: SUPABASE_URL, sync: false}
      - key: DATABASE_URL
        fromDatabase: {name: nodb, property: connectionString}
`,
	})
	d := newRun(root)
	l := d.loadRender(target{name: "render.yaml", platform: render, files: []string{filepath.Join(root, "render.yaml")}})
	u := unitNamed(t, l, "service api")
	if got := u.env["DOCPIPE_CHUNK_TOKENS"].Value; got != "1024" {
		t.Errorf("the service's own value must win: %s", got)
	}
	if s := u.env["DOCPIPE_WEBHOOK_SECRET"].Same; s != "generated:env group g/DOCPIPE_WEBHOOK_SECRET" {
		t.Errorf("webhook secret: %s", s)
	}
	if s := u.env["SUPABASE_URL"].Same; s != "prompt:service api/SUPABASE_URL" {
		t.Errorf("SUPABASE_URL: %s", s)
	}
	if len(u.refErrs) != 1 || !strings.Contains(u.refErrs[0], "fromDatabase nodb is not a database") {
		t.Errorf("refErrs: %v", u.refErrs)
	}
	if len(u.probes) != 1 || u.probes[0].Port != 0 || u.needsProbe != "healthCheckPath" {
		t.Errorf("probes: %+v", u.probes)
	}
}

func TestProbeCommand(t *testing.T) {
	for _, c := range []struct {
		cmd  []string
		path string
		port int
		bad  string
	}{
		{[]string{"/docpipe", "probe", "http://127.0.0.1:8081/readyz"}, "/readyz", 8081, ""},
		{[]string{"/docpipe", "probe", "--timeout", "2s", "http://localhost/healthz"}, "/healthz", 80, ""},
		{[]string{"/docpipe", "probe", "http://api:8080/readyz"}, "", 0, "not this container"},
		{[]string{"curl", "-f", "http://127.0.0.1:8080/readyz"}, "", 0, "no shell or curl"},
	} {
		path, port, bad := probeCommand(c.cmd, "/docpipe")
		if path != c.path || port != c.port || !strings.Contains(bad, c.bad) || (c.bad == "") != (bad == "") {
			t.Errorf("%v: %q %d %q", c.cmd, path, port, bad)
		}
	}
}
