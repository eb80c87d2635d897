// Package deploycheck checks deploy files (docker-compose.yml, a Render Blueprint,
// Kubernetes manifests, the Dockerfile) against the code: every environment variable
// they set exists in the config schema, every required one is set or declared as a
// secret, every command they run is a real subcommand with real flags, every health
// path is a real route, and each file runs both an API and a worker. The earlier
// system shipped deploy files without a worker; this makes that a failing test.
// (`docpipe validate deploy` is meant to reuse it.)
package deploycheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Role is what a container of docpipe's image does.
type Role string

const (
	RoleAPI     Role = "api"
	RoleWorker  Role = "worker"
	RoleMigrate Role = "migrate"
	RoleMock    Role = "mock"
	RoleOther   Role = "other"
)

// Unit is one container running docpipe's binary, as a deploy file describes it.
type Unit struct {
	File    string
	Name    string
	Args    []string          // arguments after the binary, e.g. ["serve", "--addr", "0.0.0.0:8080"]
	Env     map[string]string // NAME → value ("" when it comes from elsewhere)
	Secrets map[string]bool   // NAME → supplied by a secret store (secretKeyRef, sync: false, fromDatabase…)
	// EnvFromSecrets/EnvFromConfigMaps name k8s objects whose keys become variables.
	EnvFromSecrets, EnvFromConfigMaps []string
	Health                            []Probe
}

// Probe is an HTTP health check: a path on a port (0 = the unit's main port).
type Probe struct {
	Path string
	Port int
}

// Role derives the unit's role from its command.
func (u Unit) Role() Role {
	if len(u.Args) == 0 {
		return RoleOther
	}
	switch u.Args[0] {
	case "serve":
		return RoleAPI
	case "worker":
		return RoleWorker
	case "migrate":
		return RoleMigrate
	case "mock":
		return RoleMock
	}
	return RoleOther
}

// Spec is what the code offers.
type Spec struct {
	// Vars are the config schema's variable names; Required must be set somewhere.
	Vars     map[string]bool
	Required []string
	// Command validates a command line (without the binary): the subcommand exists
	// and its flags parse.
	Command func(args []string) error
	// Routes are the health/probe routes each role serves (e.g. api: /healthz, /readyz).
	Routes map[Role][]string
	// Env are variables the image sets itself (Dockerfile ENV), so units may omit them.
	ImageEnv map[string]string
}

// Problem is one finding.
type Problem struct {
	File, Unit, Message string
}

func (p Problem) String() string {
	if p.Unit == "" {
		return p.File + ": " + p.Message
	}
	return p.File + ": " + p.Unit + ": " + p.Message
}

// Set is what Load found.
type Set struct {
	Files               map[string][]Unit   // units per deploy file (deploy/k8s counts as one)
	ConfigMaps, Secrets map[string][]string // k8s object name → keys (for envFrom)
	ImageEnv            map[string]string   // the Dockerfile's ENV
	ImageCmd            []string            // the Dockerfile's CMD
}

// Check runs every check over the units of each file.
func Check(spec Spec, set Set) []Problem {
	var ps []Problem
	if spec.Command != nil && len(set.ImageCmd) > 0 {
		if err := spec.Command(set.ImageCmd); err != nil {
			ps = append(ps, Problem{File: "deploy/docker/Dockerfile", Unit: "CMD", Message: err.Error()})
		}
	}
	for k := range set.ImageEnv {
		if !spec.Vars[k] {
			ps = append(ps, Problem{File: "deploy/docker/Dockerfile", Unit: "ENV", Message: k + " is not in the config schema"})
		}
	}
	files, configMaps, secrets := set.Files, set.ConfigMaps, set.Secrets
	spec.ImageEnv = set.ImageEnv
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		units := files[f]
		roles := map[Role]bool{}
		for _, u := range units {
			roles[u.Role()] = true
			add := func(format string, a ...any) {
				ps = append(ps, Problem{File: f, Unit: u.Name, Message: fmt.Sprintf(format, a...)})
			}
			if spec.Command != nil {
				if err := spec.Command(u.Args); err != nil {
					add("command %q: %v", strings.Join(u.Args, " "), err)
				}
			}
			have := map[string]bool{}
			for k := range spec.ImageEnv {
				have[k] = true
			}
			for k := range u.Env {
				have[k] = true
				if !spec.Vars[k] {
					add("sets %s, which is not in the config schema (docpipe config docs)", k)
				}
			}
			for k := range u.Secrets {
				have[k] = true
				if !spec.Vars[k] {
					add("secret %s is not in the config schema", k)
				}
			}
			for _, cm := range u.EnvFromConfigMaps {
				keys, ok := configMaps[cm]
				if !ok {
					add("envFrom configMap %s is not defined in the manifests", cm)
				}
				for _, k := range keys {
					have[k] = true
					if !spec.Vars[k] {
						add("configMap %s sets %s, which is not in the config schema", cm, k)
					}
				}
			}
			for _, s := range u.EnvFromSecrets {
				keys, ok := secrets[s]
				if !ok {
					add("envFrom secret %s has no template in the manifests", s)
				}
				for _, k := range keys {
					have[k] = true
					if !spec.Vars[k] {
						add("secret %s sets %s, which is not in the config schema", s, k)
					}
				}
			}
			switch u.Role() {
			case RoleAPI, RoleWorker, RoleMigrate:
				for _, r := range spec.Required {
					if !have[r] {
						add("needs %s, which is neither set nor declared as a secret", r)
					}
				}
			}
			routes := spec.Routes[u.Role()]
			for _, p := range u.Health {
				if !slices.Contains(routes, p.Path) {
					add("health check path %s is not a route of `%s` (routes: %s)", p.Path, strings.Join(firstN(u.Args, 2), " "), strings.Join(routes, ", "))
				}
				if p.Port != 0 {
					if ports := listenPorts(u.Args); len(ports) > 0 && !slices.Contains(ports, p.Port) {
						add("health check port %d is not a port the command listens on (%v)", p.Port, ports)
					}
				}
			}
		}
		if len(units) > 0 && (!roles[RoleAPI] || !roles[RoleWorker]) {
			ps = append(ps, Problem{File: f, Message: fmt.Sprintf("must run both an API (docpipe serve) and a worker (docpipe worker); has api=%v worker=%v",
				roles[RoleAPI], roles[RoleWorker])})
		}
	}
	return ps
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// listenPorts reads the ports of --addr/--health-addr flags in args.
func listenPorts(args []string) []int {
	var out []int
	for i, a := range args {
		var v string
		switch {
		case (a == "--addr" || a == "--health-addr") && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--addr="), strings.HasPrefix(a, "--health-addr="):
			v = a[strings.Index(a, "=")+1:]
		default:
			continue
		}
		if j := strings.LastIndex(v, ":"); j >= 0 {
			var p int
			if _, err := fmt.Sscanf(v[j+1:], "%d", &p); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// probeFromURL reads a health URL in a probe command (`docpipe probe URL`).
func probeFromURL(raw string) (Probe, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Probe{}, false
	}
	var port int
	_, _ = fmt.Sscanf(u.Port(), "%d", &port)
	return Probe{Path: u.Path, Port: port}, true
}

// decodeAll reads every YAML document of a file.
func decodeAll(data []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
}

// Load reads the deploy files under root: docker-compose.yml, deploy/render/render.yaml,
// deploy/k8s/*.yaml and deploy/docker/Dockerfile.
func Load(root string) (Set, error) {
	set := Set{Files: map[string][]Unit{}, ConfigMaps: map[string][]string{}, Secrets: map[string][]string{}}
	read := func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(root, rel)) }

	df, err := read("deploy/docker/Dockerfile")
	if err != nil {
		return set, err
	}
	var entry []string
	var user string
	set.ImageEnv, entry, set.ImageCmd, user = parseDockerfile(string(df))
	if len(entry) != 1 || entry[0] != "/docpipe" {
		return set, fmt.Errorf("deploy/docker/Dockerfile: ENTRYPOINT must be [\"/docpipe\"], is %q", entry)
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
		return set, fmt.Errorf("deploy/docker/Dockerfile: the final image must run as a non-root USER, has %q", user)
	}
	for _, f := range []struct {
		rel   string
		parse func([]byte) ([]Unit, error)
	}{{"docker-compose.yml", composeUnits}, {"deploy/render/render.yaml", renderUnits}} {
		data, err := read(f.rel)
		if err != nil {
			return set, err
		}
		units, err := f.parse(data)
		if err != nil {
			return set, fmt.Errorf("%s: %w", f.rel, err)
		}
		for i := range units {
			units[i].File = f.rel
		}
		set.Files[f.rel] = units
	}
	k8s, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if err != nil || len(k8s) == 0 {
		return set, fmt.Errorf("no deploy/k8s/*.yaml")
	}
	for _, f := range k8s {
		data, err := os.ReadFile(f)
		if err != nil {
			return set, err
		}
		units, err := k8sUnits(data, set.ConfigMaps, set.Secrets)
		if err != nil {
			return set, fmt.Errorf("%s: %w", f, err)
		}
		for i := range units {
			units[i].File = "deploy/k8s/" + filepath.Base(f)
		}
		set.Files["deploy/k8s"] = append(set.Files["deploy/k8s"], units...)
	}
	return set, nil
}
