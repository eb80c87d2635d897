package validate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// `validate deploy` reads deploy files (Kubernetes manifests, docker-compose.yml, a
// Render Blueprint, the Dockerfile they run) with the ecosystem's own loaders, works
// out every docpipe process they start (its command line, its environment as that
// process would see it, its probes, volumes, replicas and start order), and checks
// what would break once deployed: a setting config.Load rejects, an API and workers
// that do not share a blob store, database, webhook secret, embedding or chunking,
// no worker at all, migrations that nothing orders before the app, probes on routes
// or ports nobody serves, unpinned images, secrets written into the files, pods
// without resource requests. The earlier system shipped a deploy file without a
// worker and one whose API and workers each had their own disk; both fail here.

// Role is what a docpipe process does in a deployment.
type Role string

// The roles a docpipe command line can have.
const (
	RoleAPI     Role = "api"     // docpipe serve
	RoleWorker  Role = "worker"  // docpipe worker, or serve --with-worker
	RoleMigrate Role = "migrate" // docpipe migrate up
	RoleTwin    Role = "twin"    // docpipe mock …: a local stand-in for an external service
)

// Invocation is a docpipe command line as the real command tree parses it.
type Invocation struct {
	// Path is the subcommand without the binary, e.g. "serve", "migrate up", "mock openai".
	Path string
	// Flags holds every flag's value after parsing, defaults included.
	Flags map[string]string
}

// DeploySpec is what the code offers deploy files; cmd/docpipe builds it from the real
// command tree and the real muxes, so the checks cannot drift from the code.
type DeploySpec struct {
	// Command parses a command line (without the binary): the subcommand must exist and
	// be runnable, its flags and arguments must parse.
	Command func(args []string) (Invocation, error)
	// Routes lists the GET routes a probe may use, per role of the listener: the API's
	// address (serve --addr), a worker's health address (worker --health-addr) and a
	// twin's address (mock … --addr).
	Routes map[Role][]string
}

// DeployOptions says which files `validate deploy` reads.
type DeployOptions struct {
	// Root is the repository root: Render's dockerfilePath and Dockerfile are relative
	// to it, and names in the report are printed relative to it.
	Root string
	// Dockerfile builds the image the Kubernetes manifests run (relative to Root).
	Dockerfile string
	// Paths are files or folders to check; empty means DefaultDeployPaths.
	Paths []string
}

// DefaultDockerfile is the image every deploy file runs.
const DefaultDockerfile = "deploy/docker/Dockerfile"

// DefaultDeployPaths are what `validate deploy` checks without arguments: every deploy
// file under deploy/ plus the compose file at the root.
func DefaultDeployPaths(root string) []string {
	out := []string{"deploy"}
	for _, name := range []string{"docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"} {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil {
			out = append(out, name)
		}
	}
	return out
}

// Deploy reads the deploy files and returns one check per finding, passing or failing.
func Deploy(ctx context.Context, spec DeploySpec, o DeployOptions) []Check {
	if o.Root == "" {
		o.Root = "."
	}
	if o.Dockerfile == "" {
		o.Dockerfile = DefaultDockerfile
	}
	if len(o.Paths) == 0 {
		o.Paths = DefaultDeployPaths(o.Root)
	}
	d := &deployRun{spec: spec, opts: o, dockerfiles: map[string]*dockerfile{}}
	targets, checks := d.discover()
	for _, t := range targets {
		checks = append(checks, d.check(ctx, t)...)
	}
	// Every Dockerfile a target ran (and every one found) gets its own checks once.
	for _, name := range sortedKeys(d.dockerfiles) {
		checks = append(checks, d.checkDockerfile(d.dockerfiles[name])...)
	}
	if len(targets) == 0 && len(d.dockerfiles) == 0 {
		checks = append(checks, Fail("deploy", "no deploy files found in "+strings.Join(o.Paths, ", "),
			"name Kubernetes manifests, a compose file, a Render Blueprint or a Dockerfile"))
	}
	return checks
}

// deployRun is one `validate deploy`.
type deployRun struct {
	spec        DeploySpec
	opts        DeployOptions
	dockerfiles map[string]*dockerfile // by name relative to Root
}

// platform is how a target runs its processes.
type platform string

const (
	kubernetes platform = "kubernetes"
	compose    platform = "compose"
	render     platform = "render"
)

// target is one deployment: a folder of Kubernetes manifests, a compose file or a
// Render Blueprint.
type target struct {
	name     string // as printed, e.g. "deploy/k8s", "docker-compose.yml"
	platform platform
	files    []string // absolute paths
}

// rel names a path relative to the root, as the report prints it.
func (d *deployRun) rel(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	root, err := filepath.Abs(d.opts.Root)
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(root, abs); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

// abs resolves a path given on the command line (relative to Root).
func (d *deployRun) abs(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(d.opts.Root, path)
}

// discover finds the targets under the paths: each folder of Kubernetes manifests is
// one target; each compose file and Render Blueprint is one; Dockerfiles are checked
// on their own. Other files (Prometheus rules, dashboards) are not deploy files.
func (d *deployRun) discover() ([]target, []Check) {
	var targets []target
	var checks []Check
	k8sDirs := map[string][]string{}
	seen := map[string]bool{}
	consider := func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		switch kind, err := classify(path); {
		case err != nil:
			checks = append(checks, Fail(d.rel(path), "cannot read: "+err.Error(), "fix the file or leave it out"))
		case kind == "dockerfile":
			d.dockerfile(path)
		case kind == "kubernetes":
			k8sDirs[filepath.Dir(path)] = append(k8sDirs[filepath.Dir(path)], path)
		case kind == "compose":
			targets = append(targets, target{name: d.rel(path), platform: compose, files: []string{path}})
		case kind == "render":
			targets = append(targets, target{name: d.rel(path), platform: render, files: []string{path}})
		}
	}
	for _, p := range d.opts.Paths {
		path := d.abs(p)
		info, err := os.Stat(path)
		if err != nil {
			checks = append(checks, Fail(p, "cannot read: "+err.Error(), "name an existing file or folder"))
			continue
		}
		if !info.IsDir() {
			consider(path)
			continue
		}
		err = filepath.WalkDir(path, func(f string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() {
				consider(f)
			}
			return nil
		})
		if err != nil {
			checks = append(checks, Fail(p, "cannot read: "+err.Error(), "name a readable folder"))
		}
	}
	dirs := make([]string, 0, len(k8sDirs))
	for dir := range k8sDirs {
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)
	for _, dir := range dirs {
		files := k8sDirs[dir]
		slices.Sort(files)
		targets = append(targets, target{name: d.rel(dir), platform: kubernetes, files: files})
	}
	slices.SortStableFunc(targets, func(a, b target) int { return strings.Compare(a.name, b.name) })
	return targets, checks
}

// classify says what kind of deploy file path is ("" for none).
func classify(path string) (string, error) {
	base := filepath.Base(path)
	if base == "Dockerfile" || base == "Containerfile" || strings.HasSuffix(base, ".Dockerfile") {
		return "dockerfile", nil
	}
	ext := filepath.Ext(base)
	if ext != ".yaml" && ext != ".yml" {
		return "", nil
	}
	switch base {
	case "docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml":
		return "compose", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	docs, err := splitYAML(data)
	if err != nil {
		return "", err
	}
	if len(docs) == 0 {
		return "", nil
	}
	k8s := true
	for _, doc := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if yaml.Unmarshal(doc, &head) != nil || head.APIVersion == "" || head.Kind == "" {
			k8s = false
		}
	}
	if k8s {
		return "kubernetes", nil
	}
	var top map[string]any
	if len(docs) == 1 && yaml.Unmarshal(docs[0], &top) == nil {
		if _, ok := top["services"].([]any); ok {
			return "render", nil
		}
		if _, ok := top["services"].(map[string]any); ok {
			return "compose", nil
		}
	}
	return "", nil
}

// splitYAML reads the documents of a multi-document YAML file, dropping empty ones.
func splitYAML(data []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops full-line comments, to tell an empty document from a real one.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// unit is one docpipe process a deploy file starts: a container of a pod, a compose
// service, a Render service or its pre-deploy command.
type unit struct {
	file     string // the file that declares it (relative to Root)
	name     string // as printed, e.g. "Deployment/docpipe-api container api", "service api"
	workload string // the pod template, compose service or Render service it belongs to
	image    string // image reference ("" when built from a Dockerfile)
	argv     []string
	inv      Invocation
	invErr   error
	roles    []Role
	replicas int // how many copies run at once (0 = none)
	// maxReplicas is how many an autoscaler may run (replicas when nothing scales it).
	maxReplicas int
	// initOf is true for what runs to completion before the workload's processes start
	// (an initContainer, a Render pre-deploy command).
	initOf     bool
	env        map[string]envVar
	refErrs    []string // environment references that would keep the process from starting
	mounts     []mount
	probes     []probe
	needsProbe string // what the platform needs to know the process is up, "" = nothing
	// grace is how long the platform waits after SIGTERM before it kills the process.
	grace     time.Duration
	graceFrom string
	// ordered says how migrations are ordered before this process, "" = they are not.
	ordered string
	// ports names container ports (Kubernetes), for probes by port name.
	ports map[string]int
	// envFromConfigMap is the first ConfigMap its environment comes from (Kubernetes).
	envFromConfigMap string
}

func (u *unit) has(r Role) bool { return slices.Contains(u.roles, r) }

// app reports whether the unit is part of the application proper (an API or a worker).
func (u *unit) app() bool { return u.has(RoleAPI) || u.has(RoleWorker) }

// label names the unit in a check: its file and name.
func (u *unit) label() string { return u.file + ": " + u.name }

// envVar is one environment variable as a process sees it.
type envVar struct {
	// Value is what config.Load sees: the literal value, or a stand-in that passes
	// validation when the value is supplied at deploy time (Supplied).
	Value string
	// From says where the value comes from, e.g. "ConfigMap docpipe-config".
	From string
	// Same identifies a value supplied at deploy time across processes: what it refers
	// to (the Secret key, the Render group's generated value, the database). Two
	// processes see the same value when Same is equal; "" compares the values.
	Same string
	// Supplied means the value is supplied at deploy time (a Secret, a prompt, a
	// generated value, a database property), not written in the file.
	Supplied bool
	// Inline means the value is written in the deploy file itself (File).
	Inline bool
	File   string
}

// mount is a volume mounted into a process's filesystem.
type mount struct {
	Path string
	// Shared identifies a volume that every copy of every process mounting it sees
	// (a ReadWriteMany claim, a compose volume on the one host); "" when each pod,
	// container or service has its own.
	Shared string
}

// probe is a health check the platform runs against a process.
type probe struct {
	What string // "readinessProbe", "healthcheck", "healthCheckPath", …
	Path string
	Port int // 0 = the port the platform routes to (Render's web service)
	// Inside means the check runs inside the container (a compose healthcheck, an exec
	// probe), so an address bound to loopback answers it.
	Inside bool
	// Bad is set when the check cannot be an HTTP GET docpipe answers (HTTPS, gRPC, a
	// shell the image does not have).
	Bad string
}

// parseArgv resolves a unit's command line against the real command tree.
func (d *deployRun) parseArgv(u *unit, binary string) {
	if len(u.argv) == 0 || u.argv[0] != binary {
		u.invErr = fmt.Errorf("runs %q, and the image's binary is %s", strings.Join(u.argv, " "), binary)
		return
	}
	u.inv, u.invErr = d.spec.Command(u.argv[1:])
	if u.invErr != nil {
		return
	}
	u.roles = rolesOf(u.inv)
}

// rolesOf derives what a command line does.
func rolesOf(inv Invocation) []Role {
	switch {
	case inv.Path == "serve":
		if inv.Flags["with-worker"] == "true" {
			return []Role{RoleAPI, RoleWorker}
		}
		return []Role{RoleAPI}
	case inv.Path == "worker":
		return []Role{RoleWorker}
	case inv.Path == "migrate up":
		return []Role{RoleMigrate}
	case strings.HasPrefix(inv.Path, "mock "):
		return []Role{RoleTwin}
	}
	return nil
}

// listener is an address a docpipe process listens on, and whose routes it serves.
type listener struct {
	Flag string // the flag that sets it, e.g. "--addr"
	Host string
	Port int
	Role Role // whose routes: the API's, a worker's health server's, a twin's
}

// listeners reads the addresses a command line listens on from its parsed flags
// (defaults included: `serve` without --addr listens on 127.0.0.1:8080).
func listeners(inv Invocation) []listener {
	var out []listener
	add := func(flag string, role Role) {
		addr := inv.Flags[flag]
		if addr == "" {
			return
		}
		i := strings.LastIndex(addr, ":")
		if i < 0 {
			return
		}
		var port int
		if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
			return
		}
		out = append(out, listener{Flag: "--" + flag, Host: strings.Trim(addr[:i], "[]"), Port: port, Role: role})
	}
	switch {
	case inv.Path == "serve":
		add("addr", RoleAPI)
	case inv.Path == "worker":
		add("health-addr", RoleWorker)
	case strings.HasPrefix(inv.Path, "mock "):
		add("addr", RoleTwin)
	}
	return out
}

// loopback reports whether a listen host only accepts connections from inside the
// container.
func loopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}
