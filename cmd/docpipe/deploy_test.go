package main

import (
	"encoding/json"
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
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/embed"
	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/storage"
	"github.com/docpipe/docpipe/internal/validate"
)

// validateDeploy runs the real binary's `validate deploy --json` and returns its exit
// code and checks.
func validateDeploy(t *testing.T, root string, args ...string) (int, []validate.Check, string) {
	t.Helper()
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH")}}
	out, errOut, code := c.run(append([]string{"validate", "deploy", "--json", "--root", root}, args...)...)
	var rep struct {
		OK     bool             `json:"ok"`
		Checks []validate.Check `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("validate deploy %v: exit %d, not JSON (%v):\n%s\n%s", args, code, err, out, errOut)
	}
	if rep.OK != (code == 0) {
		t.Errorf("validate deploy %v: exit %d but ok=%v", args, code, rep.OK)
	}
	return code, rep.Checks, out
}

// failed finds the failed check with that name.
func failed(checks []validate.Check, name string) (validate.Check, bool) {
	i := slices.IndexFunc(checks, func(c validate.Check) bool { return c.Name == name && !c.OK })
	if i < 0 {
		return validate.Check{}, false
	}
	return checks[i], true
}

func summary(checks []validate.Check) string {
	var b strings.Builder
	for _, c := range checks {
		if !c.OK {
			b.WriteString("FAIL " + c.Name + ": " + c.Reason + "\n")
		}
	}
	return b.String()
}

// The repository's deploy files pass, as text and as JSON, and name every target.
func TestValidateDeployPassesOnTheDeployFiles(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH")}}
	out, _, code := c.run("validate", "deploy", "--root", "../..")
	if code != 0 || !strings.Contains(out, " 0 failed") {
		t.Fatalf("validate deploy on the repository: exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"PASS  deploy/k8s: shared blob store: 2 processes agree: DOCPIPE_STORAGE=supabase (ConfigMap docpipe-config)",
		"PASS  deploy/k8s: migrations first: initContainers run `docpipe migrate up`",
		"PASS  deploy/render/render.yaml: shared blob store",
		"PASS  docker-compose.yml: shared blob store",
		"PASS  deploy/docker/Dockerfile: pdfium warm-up",
		"PASS  deploy/k8s/worker.yaml: Deployment/docpipe-worker container worker: probes: readinessProbe GET /readyz → --health-addr 0.0.0.0:8081",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, checks, _ := validateDeploy(t, "../..")
	if code != 0 || len(checks) < 60 {
		t.Errorf("--json: exit %d, %d checks", code, len(checks))
	}
}

// The deploy files as they were before issue 12 fail, naming the storage problem: the
// API and the workers each had their own disk, so every upload was accepted and then
// dead-lettered with STORAGE_OBJECT_MISSING.
func TestValidateDeployFailsOnThePreFixFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ path, name, reason, fix string }{
		{"testdata/deploy/prefix-k8s", "testdata/deploy/prefix-k8s: shared blob store",
			"testdata/deploy/prefix-k8s/api.yaml and testdata/deploy/prefix-k8s/worker.yaml run in separate pods with DOCPIPE_STORAGE=local (the default) and no shared volume: every upload the API accepts is missing for the worker (STORAGE_OBJECT_MISSING)",
			"set DOCPIPE_STORAGE=s3 or supabase in ConfigMap docpipe-config (testdata/deploy/prefix-k8s/configmap.yaml)"},
		{"testdata/deploy/prefix-render/render.yaml", "testdata/deploy/prefix-render/render.yaml: shared blob store",
			"service docpipe-api and service docpipe-worker in testdata/deploy/prefix-render/render.yaml are separate Render services with DOCPIPE_STORAGE=local (the default) and no shared volume: every upload the API accepts is missing for the worker (STORAGE_OBJECT_MISSING)",
			"set DOCPIPE_STORAGE=s3 or supabase in env group docpipe-settings"},
	} {
		code, checks, _ := validateDeploy(t, "../..", c.path)
		got, ok := failed(checks, c.name)
		if code != 1 || !ok || got.Reason != c.reason || !strings.HasPrefix(got.Fix, c.fix) {
			t.Errorf("%s: exit %d, want a failed %q with reason\n  %s\nand a fix starting %q; got %+v\n%s", c.path, code, c.name, c.reason, c.fix, got, summary(checks))
		}
	}
}

// deployCopy copies the deploy files into a temporary repository root.
func deployCopy(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	var files []string
	for _, glob := range []string{"deploy/k8s/*.yaml", "deploy/render/render.yaml", "deploy/docker/Dockerfile", "docker-compose.yml"} {
		m, err := filepath.Glob(filepath.Join("../..", glob))
		dbtest.Must(t, err, "glob")
		files = append(files, m...)
	}
	for _, f := range files {
		rel, _ := filepath.Rel("../..", f)
		b, err := os.ReadFile(f)
		dbtest.Must(t, err, "read %s", f)
		dbtest.Must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755), "mkdir")
		dbtest.Must(t, os.WriteFile(filepath.Join(root, rel), b, 0o644), "write")
	}
	return root
}

// edit changes one file of a deploy copy: replace old by new (every occurrence when
// all), cut from old up to (not including) until, or remove the file (old == "").
type edit struct {
	file, old, new, until string
	all                   bool
}

func (e edit) apply(t *testing.T, root string) {
	t.Helper()
	path := filepath.Join(root, e.file)
	if e.old == "" {
		dbtest.Must(t, os.Remove(path), "remove")
		return
	}
	b, err := os.ReadFile(path)
	dbtest.Must(t, err, "read")
	s := string(b)
	i := strings.Index(s, e.old)
	if i < 0 {
		t.Fatalf("%s has no %q", e.file, e.old)
	}
	switch {
	case e.until != "":
		j := strings.Index(s[i:], e.until)
		if j < 0 {
			t.Fatalf("%s has no %q after %q", e.file, e.until, e.old)
		}
		s = s[:i] + s[i+j:]
	case e.all:
		s = strings.ReplaceAll(s, e.old, e.new)
	default:
		s = strings.Replace(s, e.old, e.new, 1)
	}
	dbtest.Must(t, os.WriteFile(path, []byte(s), 0o644), "write")
}

const (
	k8sAPIContainer    = "deploy/k8s/api.yaml: Deployment/docpipe-api container api"
	k8sWorkerContainer = "deploy/k8s/worker.yaml: Deployment/docpipe-worker container worker"
	workerInit         = "      # Migrations run to completion before a worker of a new release starts.\n"
	sharedPVC          = "      volumes:\n        - name: data\n          persistentVolumeClaim: {claimName: docpipe-data}\n      containers:\n"
	mountData          = "          volumeMounts:\n            - {name: data, mountPath: /data}\n          resources:\n            requests: {cpu: "
)

// Each broken variant of the fixed files fails, and the failure names the check, the
// file and the process, and says what is wrong.
func TestValidateDeployCatchesBrokenVariants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target string
		edits        []edit
		check        string // the failed check's name
		reason       string // a part of its reason
		pass         bool   // the check must pass instead (a variant that is fine)
	}{
		// Kubernetes
		{name: "k8s no worker", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml"}},
			check: "deploy/k8s: API and workers", reason: "no worker runs"},
		{name: "k8s mismatched webhook secret", target: "deploy/k8s", edits: []edit{
			{file: "deploy/k8s/secret.example.yaml", old: "  SUPABASE_SERVICE_ROLE_KEY: CHANGE-ME\n", new: "  SUPABASE_SERVICE_ROLE_KEY: CHANGE-ME\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: worker-secrets}\nstringData:\n  DOCPIPE_WEBHOOK_SECRET: CHANGE-ME\n"},
			{file: "deploy/k8s/worker.yaml", old: "            - secretRef: {name: docpipe-secrets}\n          readinessProbe", new: "            - secretRef: {name: docpipe-secrets}\n          env:\n            - name: DOCPIPE_WEBHOOK_SECRET\n              valueFrom: {secretKeyRef: {name: worker-secrets, key: DOCPIPE_WEBHOOK_SECRET}}\n          readinessProbe"}},
			check: "deploy/k8s: shared webhook secret", reason: "DOCPIPE_WEBHOOK_SECRET differs: " + k8sAPIContainer + " DOCPIPE_WEBHOOK_SECRET from Secret docpipe-secrets; " + k8sWorkerContainer + " DOCPIPE_WEBHOOK_SECRET from Secret worker-secrets key DOCPIPE_WEBHOOK_SECRET: the API rejects"},
		{name: "k8s unknown variable", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/configmap.yaml", old: "  DOCPIPE_PARSER: llamaparse\n", new: "  DOCPIPE_PARSER: llamaparse\n  DOCPIPE_WORKERS_COUNT: \"3\"\n"}},
			check: k8sAPIContainer + ": environment", reason: "sets DOCPIPE_WORKERS_COUNT (ConfigMap docpipe-config), which is not a docpipe setting"},
		{name: "k8s missing required", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/secret.example.yaml", old: "  DATABASE_URL: ", until: "  OPENAI_API_KEY"}},
			check: k8sWorkerContainer + ": environment", reason: "DATABASE_URL: required but not set"},
		{name: "k8s probe on a missing route", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: "path: /readyz", new: "path: /ready"}},
			check: k8sAPIContainer + ": probes", reason: "readinessProbe GET /ready on port 8080: not a route of the API (serve --addr) (routes a probe can use: /healthz, /readyz)"},
		{name: "k8s probe on the wrong port", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "path: /readyz, port: 8081", new: "path: /readyz, port: 8080"}},
			check: k8sWorkerContainer + ": probes", reason: "readinessProbe on port 8080: nothing listens there (`docpipe worker` listens on --health-addr 0.0.0.0:8081)"},
		{name: "k8s probe on loopback", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: `args: ["serve", "--addr", "0.0.0.0:8080"]`, new: `args: ["serve"]`}},
			check: k8sAPIContainer + ": probes", reason: "readinessProbe on port 8080: --addr 127.0.0.1:8080 accepts connections from inside the container only"},
		{name: "k8s worker without health server", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: `args: ["worker", "--health-addr", "0.0.0.0:8081"]`, new: `args: ["worker"]`}},
			check: k8sWorkerContainer + ": probes", reason: "`docpipe worker` serves /healthz and /readyz only with --health-addr"},
		{name: "k8s :latest", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "docpipe:1.0.0", new: "docpipe:latest", all: true}},
			check: "deploy/k8s: images pinned", reason: "deploy/k8s/worker.yaml: Deployment/docpipe-worker container worker: ghcr.io/docpipe/docpipe:latest is :latest"},
		{name: "k8s untagged", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: "docpipe:1.0.0", new: "docpipe", all: true}},
			check: "deploy/k8s: images pinned", reason: "ghcr.io/docpipe/docpipe has no tag (it means :latest)"},
		{name: "k8s two releases", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "docpipe:1.0.0", new: "docpipe:0.9.0", all: true}},
			check: "deploy/k8s: images pinned", reason: "docpipe processes run different images"},
		{name: "k8s migrations not ordered first", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: workerInit, until: "      containers:"}},
			check: "deploy/k8s: migrations first", reason: k8sWorkerContainer + " can start before `docpipe migrate up` has finished"},
		{name: "k8s Job alone", target: "deploy/k8s", edits: []edit{
			{file: "deploy/k8s/worker.yaml", old: workerInit, until: "      containers:"},
			{file: "deploy/k8s/api.yaml", old: "      # Migrations run to completion", until: "      containers:"},
			{file: "deploy/k8s/job.yaml", old: "", new: ""}}, // replaced below
			check: "deploy/k8s: migrations first", reason: "Job/docpipe-migrate (deploy/k8s/job.yaml) runs the migrations, but a Job alone orders nothing"},
		{name: "k8s inline secret", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: "            - secretRef: {name: docpipe-secrets}\n          readinessProbe", new: "            - secretRef: {name: docpipe-secrets}\n          env:\n            - {name: OPENAI_API_KEY, value: sk-live-0123456789}\n          readinessProbe"}},
			check: "deploy/k8s: secrets not inline", reason: k8sAPIContainer + " sets OPENAI_API_KEY to a literal value in deploy/k8s/api.yaml"},
		{name: "k8s secret in a ConfigMap", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/configmap.yaml", old: "  DOCPIPE_PARSER: llamaparse\n", new: "  DOCPIPE_PARSER: llamaparse\n  DOCPIPE_JWT_SECRET: 0123456789abcdef0123456789abcdef\n"}},
			check: "deploy/k8s: secrets not inline", reason: "ConfigMap docpipe-config (deploy/k8s/configmap.yaml) holds DOCPIPE_JWT_SECRET, a secret setting, in plain text"},
		{name: "k8s unknown subcommand", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: `args: ["migrate", "up"]`, new: `args: ["migrate", "upp"]`}},
			check: "deploy/k8s/api.yaml: Deployment/docpipe-api initContainer migrate: command", reason: `"migrate upp" is not a runnable docpipe command`},
		{name: "k8s unknown flag", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: `"--health-addr", "0.0.0.0:8081"]`, new: `"--health-addr", "0.0.0.0:8081", "--nope"]`}},
			check: k8sWorkerContainer + ": command", reason: "unknown flag: --nope"},
		{name: "k8s no resource requests", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: "            requests: {cpu: 100m, memory: 128Mi}\n", new: ""}},
			check: "deploy/k8s: resource requests", reason: "Deployment/docpipe-api container api (deploy/k8s/api.yaml) has no CPU or memory request"},
		{name: "k8s misspelt field", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "readinessProbe:", new: "readinesProbe:"}},
			check: "deploy/k8s: files", reason: `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{name: "k8s local store", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/configmap.yaml", old: "DOCPIPE_STORAGE: supabase", new: "DOCPIPE_STORAGE: local"}},
			check: "deploy/k8s: shared blob store", reason: "deploy/k8s/api.yaml and deploy/k8s/worker.yaml run in separate pods with DOCPIPE_STORAGE=local (ConfigMap docpipe-config) and no shared volume"},
		{name: "k8s local store on one shared claim is fine", target: "deploy/k8s", pass: true, edits: []edit{
			{file: "deploy/k8s/configmap.yaml", old: "DOCPIPE_STORAGE: supabase", new: "DOCPIPE_STORAGE: local"},
			{file: "deploy/k8s/api.yaml", old: "      containers:\n", new: sharedPVC},
			{file: "deploy/k8s/api.yaml", old: "          resources:\n            requests: {cpu: 100m", new: strings.Replace(mountData, "cpu: ", "cpu: 100m", 1)},
			{file: "deploy/k8s/worker.yaml", old: "      containers:\n", new: sharedPVC},
			{file: "deploy/k8s/worker.yaml", old: "          resources:\n            requests: {cpu: 500m", new: strings.Replace(mountData, "cpu: ", "cpu: 500m", 1)}},
			check: "deploy/k8s: shared blob store"},
		{name: "k8s different bucket", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "            - secretRef: {name: docpipe-secrets}\n          readinessProbe", new: "            - secretRef: {name: docpipe-secrets}\n          env:\n            - {name: SUPABASE_STORAGE_BUCKET, value: other}\n          readinessProbe"}},
			check: "deploy/k8s: shared blob store", reason: "SUPABASE_STORAGE_BUCKET differs"},
		{name: "k8s embedding dims differ", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "            - secretRef: {name: docpipe-secrets}\n          readinessProbe", new: "            - secretRef: {name: docpipe-secrets}\n          env:\n            - {name: DOCPIPE_EMBED_DIMS, value: \"3072\"}\n          readinessProbe"}},
			check: "deploy/k8s: shared embedding", reason: "DOCPIPE_EMBED_DIMS differs: " + k8sAPIContainer + " DOCPIPE_EMBED_DIMS=1536 (the default); " + k8sWorkerContainer + " DOCPIPE_EMBED_DIMS=3072 (env in deploy/k8s/worker.yaml)"},
		{name: "k8s grace shorter than the shutdown timeout", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/worker.yaml", old: "terminationGracePeriodSeconds: 45", new: "terminationGracePeriodSeconds: 20"}},
			check: "deploy/k8s: graceful shutdown", reason: k8sWorkerContainer + ": terminationGracePeriodSeconds is 20s, not more than DOCPIPE_SHUTDOWN_TIMEOUT=30s"},
		{name: "k8s Service to the wrong port", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/api.yaml", old: "targetPort: 8080", new: "targetPort: 9090"}},
			check: "deploy/k8s: Service ports", reason: "Service docpipe-api port 80 → Deployment/docpipe-api container api port 9090: nothing listens there"},
		{name: "k8s missing ConfigMap", target: "deploy/k8s", edits: []edit{{file: "deploy/k8s/configmap.yaml"}},
			check: k8sAPIContainer + ": environment", reason: "envFrom ConfigMap docpipe-config is not defined here"},

		// docker-compose.yml
		{name: "compose no worker", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "replicas: 2", new: "replicas: 0"}},
			check: "docker-compose.yml: API and workers", reason: "no worker runs"},
		{name: "compose worker only in a profile", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "    deploy:\n      replicas: 2\n", new: "    profiles: [workers]\n    deploy:\n      replicas: 2\n"}},
			check: "docker-compose.yml: API and workers", reason: "no worker runs (no `docpipe worker` or `serve --with-worker` with at least one replica) (not started without a profile: worker)"},
		{name: "compose unknown variable", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "  DOCPIPE_LOG_FORMAT: json\n", new: "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_TURBO_MODE: \"on\"\n"}},
			check: "docker-compose.yml: service api: environment", reason: "sets DOCPIPE_TURBO_MODE (environment in docker-compose.yml), which is not a docpipe setting"},
		{name: "compose mismatched webhook secret", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "    command: [\"worker\", \"--health-addr\", \"0.0.0.0:8081\"]\n    environment: *docpipe-env\n", new: "    command: [\"worker\", \"--health-addr\", \"0.0.0.0:8081\"]\n    environment:\n      <<: *docpipe-env\n      DOCPIPE_WEBHOOK_SECRET: another-local-webhook-secret\n"}},
			check: "docker-compose.yml: shared webhook secret", reason: "DOCPIPE_WEBHOOK_SECRET differs: docker-compose.yml: service api DOCPIPE_WEBHOOK_SECRET from environment in docker-compose.yml; docker-compose.yml: service worker DOCPIPE_WEBHOOK_SECRET from environment in docker-compose.yml"},
		{name: "compose migrations not ordered first", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml",
			old: "8081/readyz\"]\n      interval: 5s\n      timeout: 4s\n      retries: 12\n    depends_on:\n      migrate:\n        condition: service_completed_successfully\n",
			new: "8081/readyz\"]\n      interval: 5s\n      timeout: 4s\n      retries: 12\n    depends_on:\n"}},
			check: "docker-compose.yml: migrations first", reason: "docker-compose.yml: service worker can start before `docpipe migrate up` has finished"},
		{name: "compose started is not completed", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "      migrate:\n        condition: service_completed_successfully", new: "      migrate:\n        condition: service_started", all: true}},
			check: "docker-compose.yml: start order", reason: "api depends on migrate with condition service_started"},
		{name: "compose probe on the wrong port", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "http://127.0.0.1:8081/readyz", new: "http://127.0.0.1:8082/readyz"}},
			check: "docker-compose.yml: service worker: probes", reason: "healthcheck on port 8082: nothing listens there"},
		{name: "compose shell healthcheck", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: `test: ["CMD", "/docpipe", "probe", "http://127.0.0.1:8080/readyz"]`, new: `test: ["CMD-SHELL", "curl -f http://127.0.0.1:8080/readyz"]`}},
			check: "docker-compose.yml: service api: probes", reason: "runs a shell, and docpipe's image has none"},
		{name: "compose inline secret", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "  DOCPIPE_LOG_FORMAT: json\n", new: "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_JWT_SECRET: 0123456789abcdef0123456789abcdef\n"}},
			check: "docker-compose.yml: secrets not inline", reason: "docker-compose.yml: service api sets DOCPIPE_JWT_SECRET to a literal value in docker-compose.yml"},
		{name: "compose twin key sent to the real service", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "OPENAI_BASE_URL: http://mock-openai:8002/v1", new: "OPENAI_BASE_URL: https://api.openai.com/v1"}},
			check: "docker-compose.yml: secrets not inline", reason: "sets OPENAI_API_KEY to a literal value in docker-compose.yml"},
		{name: "compose secret from .env is fine", target: "docker-compose.yml", pass: true, edits: []edit{
			{file: "docker-compose.yml", old: "  DOCPIPE_LOG_FORMAT: json\n", new: "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_JWT_SECRET: ${JWT_SECRET}\n"},
			{file: ".env", old: "", new: ""}}, // written below
			check: "docker-compose.yml: secrets not inline"},
		{name: "compose secret from the shell is fine", target: "docker-compose.yml", pass: true, edits: []edit{
			{file: "docker-compose.yml", old: "  DOCPIPE_LOG_FORMAT: json\n", new: "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_JWT_SECRET: ${JWT_SECRET}\n"}},
			check: "docker-compose.yml: files"},
		{name: "compose unset interpolation", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "  DOCPIPE_LOG_FORMAT: json\n", new: "  DOCPIPE_LOG_FORMAT: json\n  DOCPIPE_LOG_LEVEL: ${LOG_LEVEL}\n"}},
			check: "docker-compose.yml: files", reason: "interpolates ${LOG_LEVEL}, which is set neither in .env nor with a default"},
		{name: "compose local store", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "DOCPIPE_STORAGE: supabase", new: "DOCPIPE_STORAGE: local"}},
			check: "docker-compose.yml: shared blob store", reason: "service api and service worker in docker-compose.yml run in separate containers with DOCPIPE_STORAGE=local (environment in docker-compose.yml) and no shared volume"},
		{name: "compose grace", target: "docker-compose.yml", edits: []edit{{file: "docker-compose.yml", old: "    stop_grace_period: 45s # above DOCPIPE_SHUTDOWN_TIMEOUT (30s): uploads in flight finish\n", new: ""}},
			check: "docker-compose.yml: graceful shutdown", reason: "docker-compose.yml: service api: stop_grace_period (not set: 10s) is 10s, not more than DOCPIPE_SHUTDOWN_TIMEOUT=30s"},

		// deploy/render/render.yaml
		{name: "render no worker", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "  - type: worker\n", until: "§"}},
			check: "deploy/render/render.yaml: API and workers", reason: "no worker runs"},
		{name: "render mismatched webhook secret", target: "deploy/render/render.yaml", edits: []edit{
			{file: "deploy/render/render.yaml", old: "      - key: DOCPIPE_WEBHOOK_SECRET\n        generateValue: true\n", new: ""},
			{file: "deploy/render/render.yaml", old: "      - fromGroup: docpipe-secrets\n", new: "      - fromGroup: docpipe-secrets\n      - key: DOCPIPE_WEBHOOK_SECRET\n        generateValue: true\n", all: true}},
			check: "deploy/render/render.yaml: shared webhook secret", reason: "DOCPIPE_WEBHOOK_SECRET differs: deploy/render/render.yaml: service docpipe-api DOCPIPE_WEBHOOK_SECRET from a value Render generates for service docpipe-api; deploy/render/render.yaml: service docpipe-worker DOCPIPE_WEBHOOK_SECRET from a value Render generates for service docpipe-worker"},
		{name: "render unknown variable", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "      - key: DOCPIPE_PARSER\n", new: "      - key: DOCPIPE_TURBO_MODE\n        value: \"on\"\n      - key: DOCPIPE_PARSER\n"}},
			check: "deploy/render/render.yaml: service docpipe-worker: environment", reason: "sets DOCPIPE_TURBO_MODE (env group docpipe-settings), which is not a docpipe setting"},
		{name: "render probe on a missing route", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "healthCheckPath: /readyz", new: "healthCheckPath: /health"}},
			check: "deploy/render/render.yaml: service docpipe-api: probes", reason: "healthCheckPath GET /health on port 10000: not a route of the API"},
		{name: "render migrations not ordered first", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "    dockerCommand: /docpipe worker\n    preDeployCommand: /docpipe migrate up\n", new: "    dockerCommand: /docpipe worker\n"}},
			check: "deploy/render/render.yaml: migrations first", reason: "deploy/render/render.yaml: service docpipe-worker can start before `docpipe migrate up` has finished"},
		{name: "render inline secret", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "      - key: OPENAI_API_KEY\n        sync: false\n", new: "      - key: OPENAI_API_KEY\n        value: sk-live-0123456789\n"}},
			check: "deploy/render/render.yaml: secrets not inline", reason: "deploy/render/render.yaml: service docpipe-api sets OPENAI_API_KEY to a literal value in deploy/render/render.yaml"},
		{name: "render local store", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "      - key: DOCPIPE_STORAGE\n        value: supabase\n", new: ""}},
			check: "deploy/render/render.yaml: shared blob store", reason: "are separate Render services with DOCPIPE_STORAGE=local (the default) and no shared volume"},
		{name: "render storage URL prompted per service", target: "deploy/render/render.yaml", edits: []edit{
			{file: "deploy/render/render.yaml", old: "      - key: SUPABASE_URL\n        sync: false\n", new: ""},
			{file: "deploy/render/render.yaml", old: "      - fromGroup: docpipe-secrets\n", new: "      - fromGroup: docpipe-secrets\n      - key: SUPABASE_URL\n        sync: false\n", all: true}},
			check: "deploy/render/render.yaml: shared blob store", reason: "SUPABASE_URL differs"},
		{name: "render missing env group", target: "deploy/render/render.yaml", edits: []edit{{file: "deploy/render/render.yaml", old: "      - fromGroup: docpipe-settings\n", new: "      - fromGroup: docpipe-setings\n"}},
			check: "deploy/render/render.yaml: service docpipe-api: environment", reason: "fromGroup docpipe-setings is not an envVarGroup of this Blueprint"},

		// deploy/docker/Dockerfile
		{name: "Dockerfile without warm-up", target: "deploy/docker/Dockerfile", edits: []edit{{file: "deploy/docker/Dockerfile", old: " \\\n && DOCPIPE_CACHE_DIR=/out/cache /out/docpipe parse --warmup", new: ""}},
			check: "deploy/docker/Dockerfile: pdfium warm-up", reason: "no RUN runs `docpipe parse --warmup`"},
		{name: "Dockerfile warm cache left behind", target: "deploy/docker/Dockerfile", edits: []edit{{file: "deploy/docker/Dockerfile", old: "COPY --from=build --chown=65532:65532 /out/cache /cache\n", new: ""}},
			check: "deploy/docker/Dockerfile: pdfium warm-up", reason: "the warm-up writes /out/cache in stage \"build\", and the final stage does not copy it to DOCPIPE_CACHE_DIR=/cache"},
		{name: "Dockerfile warm cache owned by root", target: "deploy/docker/Dockerfile", edits: []edit{{file: "deploy/docker/Dockerfile", old: "COPY --from=build --chown=65532:65532 /out/cache /cache", new: "COPY --from=build /out/cache /cache"}},
			check: "deploy/docker/Dockerfile: pdfium warm-up", reason: "owned by \"\", not the image's user \"65532:65532\""},
		{name: "Dockerfile runs as root", target: "deploy/docker/Dockerfile", edits: []edit{{file: "deploy/docker/Dockerfile", old: "USER 65532:65532", new: "USER root"}},
			check: "deploy/docker/Dockerfile: image", reason: "the final stage runs as \"root\""},
		{name: "Dockerfile unpinned base", target: "deploy/docker/Dockerfile", edits: []edit{{file: "deploy/docker/Dockerfile", old: "golang:1.26-bookworm", new: "golang:latest"}},
			check: "deploy/docker/Dockerfile: image", reason: "base image golang:latest is :latest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := deployCopy(t)
			for _, e := range c.edits {
				switch {
				case e.until == "§": // cut to the end of the file
					b, err := os.ReadFile(filepath.Join(root, e.file))
					dbtest.Must(t, err, "read")
					i := strings.Index(string(b), e.old)
					if i < 0 {
						t.Fatalf("no %q", e.old)
					}
					dbtest.Must(t, os.WriteFile(filepath.Join(root, e.file), b[:i], 0o644), "write")
				case e.file == "deploy/k8s/job.yaml":
					dbtest.Must(t, os.WriteFile(filepath.Join(root, e.file), []byte(migrateJob), 0o644), "write")
				case e.file == ".env":
					dbtest.Must(t, os.WriteFile(filepath.Join(root, e.file), []byte("JWT_SECRET=not-in-git-0123456789abcdef0123\n"), 0o644), "write")
				default:
					e.apply(t, root)
				}
			}
			code, checks, _ := validateDeploy(t, root, c.target)
			if c.pass {
				i := slices.IndexFunc(checks, func(x validate.Check) bool { return x.Name == c.check })
				if i < 0 || !checks[i].OK {
					t.Errorf("want %q to pass:\n%s", c.check, summary(checks))
				}
				return
			}
			got, ok := failed(checks, c.check)
			if code != 1 || !ok || !strings.Contains(got.Reason, c.reason) || got.Fix == "" {
				t.Errorf("exit %d; want a failed %q whose reason contains\n  %s\ngot:\n%s", code, c.check, c.reason, summary(checks))
			}
		})
	}
}

// migrateJob is the pre-fix migration Job, with requests so only the ordering fails.
const migrateJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: docpipe-migrate
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: migrate
          image: ghcr.io/docpipe/docpipe:1.0.0
          args: ["migrate", "up"]
          envFrom:
            - configMapRef: {name: docpipe-config}
            - secretRef: {name: docpipe-secrets}
          resources:
            requests: {cpu: 50m, memory: 64Mi}
`

// The routes validate deploy lets a probe use are real: each answers 200 without
// credentials on the real API, the real worker health server and each twin, and a
// route that is not in the table does not exist.
func TestProbeRoutesAreReal(t *testing.T) {
	pool, _ := dbtest.Pool(t)
	store, err := storage.NewLocal(t.TempDir())
	dbtest.Must(t, err, "store")
	emb, err := embed.NewLocal(8)
	dbtest.Must(t, err, "embedder")
	pipe, err := pipeline.New(pipeline.Deps{Pool: pool, Store: store, Parser: parse.NewLocal(parse.Options{}), Embedder: emb}, pipeline.Options{})
	dbtest.Must(t, err, "pipeline")
	srv, err := api.New(api.Deps{Pool: pool, Pipe: pipe, Store: store, Embedder: emb}, api.Options{})
	dbtest.Must(t, err, "api")
	stop, addr, err := serveWorkerHealth("127.0.0.1:0", &app{pool: pool, log: slog.New(slog.DiscardHandler)})
	dbtest.Must(t, err, "worker health")
	defer stop()
	workerMux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get("http://" + addr + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	servers := map[validate.Role][]http.Handler{
		validate.RoleAPI:    {srv},
		validate.RoleWorker: {workerMux},
		validate.RoleTwin: {mock.NewOpenAIServer(mock.OpenAIOptions{APIKey: "k"}), mock.NewLlamaParseServer(mock.LlamaParseOptions{APIKey: "k"}),
			mock.NewStorageServer(mock.StorageOptions{APIKey: "k"})},
	}
	for role, hs := range servers {
		for i, h := range hs {
			for _, path := range append(slices.Clone(probeRoutes[role]), "/ready") {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if want := http.StatusOK; path == "/ready" {
					if rec.Code != http.StatusNotFound {
						t.Errorf("%s server %d: GET %s: HTTP %d, want 404 (the route must not exist for the negative case to mean anything)", role, i, path, rec.Code)
					}
				} else if rec.Code != want {
					t.Errorf("%s server %d: GET %s without credentials: HTTP %d, want 200", role, i, path, rec.Code)
				}
			}
		}
	}
}

// The command line parser is the real command tree: defaults come from it (serve
// listens on loopback unless told otherwise), and unknown commands and flags fail.
func TestParseCommandLineUsesTheRealCommandTree(t *testing.T) {
	t.Parallel()
	inv, err := parseCommandLine([]string{"serve"})
	if err != nil || inv.Path != "serve" || inv.Flags["addr"] != "127.0.0.1:8080" || inv.Flags["with-worker"] != "false" {
		t.Errorf("serve: %+v, %v", inv, err)
	}
	inv, err = parseCommandLine([]string{"mock", "openai", "--addr", "0.0.0.0:8002", "--api-key", "k"})
	if err != nil || inv.Path != "mock openai" || inv.Flags["api-key"] != "k" {
		t.Errorf("mock openai: %+v, %v", inv, err)
	}
	for _, bad := range [][]string{{"worker", "--nope"}, {"migrate", "upp"}, {"probe"}, {}} {
		if _, err := parseCommandLine(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
