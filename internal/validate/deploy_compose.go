package validate

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/docpipe/docpipe/internal/config"
)

// loadCompose reads a compose file with compose-go, the loader `docker compose` uses:
// interpolation from the .env file next to it, env_file, extends, anchors, defaults and
// depends_on conditions are resolved exactly as compose resolves them. The shell's own
// environment is left out on purpose, so the verdict does not depend on who runs it.
func (d *deployRun) loadCompose(ctx context.Context, t target) loaded {
	file := t.files[0]
	rel := d.rel(file)
	l := loaded{separate: "run in separate containers"}
	var unset []string
	record := func(o *loader.Options) {
		if o.Interpolate == nil { // compose-go also applies options where it does not interpolate
			return
		}
		o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
			return template.SubstituteWithOptions(s, m, template.WithoutLogging,
				template.WithReplacementFunction(func(sub string, m template.Mapping, cfg *template.Config) (string, error) {
					v, applied, err := template.DefaultReplacementAppliedFunc(sub, m, cfg)
					if name := strings.Trim(sub, "${}"); err == nil && !applied && !slices.Contains(unset, name) {
						unset = append(unset, name)
					}
					return v, err
				}))
		}
	}
	dir := filepath.Dir(file)
	p, err := loadProject(ctx, file, cli.WithWorkingDirectory(dir), cli.WithEnvFiles(), cli.WithDotEnv, cli.WithLoadOptions(record))
	if err != nil {
		l.checks = append(l.checks, Fail(t.name+": files", "compose-go cannot load it: "+err.Error(), "fix what docker compose would reject"))
		return l
	}
	// The same file without interpolation or env_file: which values are written in it.
	raw, rawErr := loadProject(ctx, file, cli.WithWorkingDirectory(dir), cli.WithInterpolation(false), cli.WithoutEnvironmentResolution)
	disabled := p.DisabledServiceNames()
	slices.Sort(disabled)
	if len(disabled) > 0 {
		l.note = "not started without a profile: " + strings.Join(disabled, ", ")
	}

	byService := map[string]*unit{}
	supplied := map[string]bool{} // unset variables a secret setting takes from compose's environment
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		df := d.composeDockerfile(s)
		if df == nil {
			continue
		}
		u := &unit{file: rel, name: "service " + name, workload: name, replicas: s.GetScale(), maxReplicas: s.GetScale(), env: map[string]envVar{},
			grace: 10 * time.Second, graceFrom: "stop_grace_period (not set: 10s)"}
		if s.StopGracePeriod != nil {
			u.grace, u.graceFrom = time.Duration(*s.StopGracePeriod), "stop_grace_period"
		}
		entry, cmd := df.final().entrypoint, df.final().cmd
		if s.Entrypoint != nil {
			entry, cmd = s.Entrypoint, nil // a new entrypoint drops the image's CMD
		}
		if s.Command != nil {
			cmd = s.Command
		}
		u.argv = append(slices.Clone(entry), cmd...)
		d.parseArgv(u, df.binary())
		for k, v := range df.final().env {
			u.env[k] = envVar{Value: v, From: "image ENV in " + df.name}
		}
		var rawEnv types.MappingWithEquals
		if rawErr == nil {
			rawEnv = raw.Services[name].Environment
		}
		for k, v := range s.Environment {
			if v == nil {
				u.env[k] = envVar{Value: standIn(k), From: "the shell running docker compose", Same: "shell:" + k, Supplied: true}
				continue
			}
			ev := envVar{Value: *v, From: "env_file of " + name}
			if rv, ok := rawEnv[k]; ok || rawErr != nil {
				switch {
				case rawErr != nil || (rv != nil && !strings.Contains(*rv, "$")):
					ev.From, ev.Inline, ev.File = "environment in "+rel, true, rel
				case rv != nil && secretFromShell(k, *rv, unset) != "":
					// A secret left to the environment docker compose runs in: supplied
					// at deploy time, like a Kubernetes Secret.
					shell := secretFromShell(k, *rv, unset)
					ev = envVar{Value: standIn(k), From: "${" + shell + "} from the environment docker compose runs in", Same: "shell:" + shell, Supplied: true}
					supplied[shell] = true
				default:
					ev.From = "environment in " + rel + ", interpolated"
				}
			}
			u.env[k] = ev
		}
		for _, v := range s.Volumes {
			m := mount{Path: v.Target}
			switch {
			case v.Type == types.VolumeTypeVolume && v.Source != "":
				m.Shared = "volume " + v.Source
			case v.Type == types.VolumeTypeBind:
				m.Shared = "bind mount " + v.Source
			}
			u.mounts = append(u.mounts, m)
		}
		if hc := s.HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			pr := probe{What: "healthcheck", Inside: true}
			if hc.Test[0] == "CMD" {
				pr.Path, pr.Port, pr.Bad = probeCommand(hc.Test[1:], df.binary())
			} else {
				pr.Bad = fmt.Sprintf("%q runs a shell, and docpipe's image has none: use [\"CMD\", %q, \"probe\", \"http://127.0.0.1:PORT/readyz\"]", strings.Join(hc.Test, " "), df.binary())
			}
			u.probes = append(u.probes, pr)
		}
		if u.invErr == nil && (u.app() || u.has(RoleTwin)) {
			u.needsProbe = "healthcheck"
		}
		byService[name] = u
		l.units = append(l.units, u)
	}

	files := Pass(t.name+": files", fmt.Sprintf("%d services loaded by compose-go (interpolation, env_file, depends_on resolved)", len(p.Services)))
	var missing []string
	for _, name := range unset {
		if !supplied[name] {
			missing = append(missing, "${"+name+"}")
		}
	}
	if len(missing) > 0 {
		files = Fail(t.name+": files", "interpolates "+strings.Join(missing, ", ")+", which is set neither in .env nor with a default: compose substitutes an empty string",
			"add the variable to .env next to the compose file, or give it a default: ${NAME:-value}")
	} else if len(supplied) > 0 {
		files.Reason += "; secrets left to the environment compose runs in: " + strings.Join(sortedKeys(supplied), ", ")
	}
	l.checks = append([]Check{files}, l.checks...)
	l.checks = append(l.checks, composeOrder(t, p, byService), composePorts(t, p, byService))
	l.storageFix = "in " + rel + " (every API and worker's environment), with SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY " +
		"(the mock-storage twin's address and --api-key, or a real project's), or S3_BUCKET and its keys; or mount one named volume at DOCPIPE_DATA_DIR (/data) in every API and worker service"
	l.twinKey = func(u *unit, name string) (string, bool) { return composeTwinKey(p, byService, u, name) }
	return l
}

// shellRef matches a value that is one variable reference, ${NAME} or $NAME.
var shellRef = regexp.MustCompile(`^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$`)

// secretFromShell returns the variable a secret setting's raw value refers to when
// that variable is left unset for docker compose's own environment to supply, or "".
func secretFromShell(key, raw string, unset []string) string {
	v, ok := config.Lookup(key)
	m := shellRef.FindStringSubmatch(raw)
	if !ok || !v.Secret || m == nil || !slices.Contains(unset, m[1]) {
		return ""
	}
	return m[1]
}

// loadProject runs compose-go's loader on one file.
func loadProject(ctx context.Context, file string, opts ...cli.ProjectOptionsFn) (*types.Project, error) {
	po, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

// composeDockerfile returns the Dockerfile of a service that runs docpipe's image, or nil.
func (d *deployRun) composeDockerfile(s types.ServiceConfig) *dockerfile {
	if s.Build != nil {
		name := s.Build.Dockerfile
		if name == "" {
			name = "Dockerfile"
		}
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.Build.Context, name)
		}
		if df := readDockerfile(path, d.rel(path)); df.err == nil && df.binary() == "/docpipe" {
			return d.dockerfile(path)
		}
		return nil
	}
	if docpipeImage(s.Image) {
		return d.dockerfile(d.abs(d.opts.Dockerfile))
	}
	return nil
}

// composeOrder checks depends_on: a condition must wait for what it needs (health,
// or completion for a one-shot), and a service_healthy dependency must have a
// healthcheck or compose refuses to start; migrations order the app when every API
// and worker depends, directly or not, on `migrate up` completing.
func composeOrder(t target, p *types.Project, byService map[string]*unit) Check {
	name := t.name + ": start order"
	var bad []string
	for _, sname := range sortedKeys(p.Services) {
		s := p.Services[sname]
		for _, dep := range sortedKeys(s.DependsOn) {
			cond := s.DependsOn[dep].Condition
			ds, ok := p.Services[dep]
			switch {
			case !ok:
				continue // compose-go already rejects unknown services
			case cond == types.ServiceConditionHealthy && (ds.HealthCheck == nil || ds.HealthCheck.Disable):
				bad = append(bad, fmt.Sprintf("%s waits for %s to be healthy, and %s has no healthcheck: compose refuses to start it", sname, dep, dep))
			case byService[sname] != nil && cond != types.ServiceConditionHealthy && cond != types.ServiceConditionCompletedSuccessfully:
				bad = append(bad, fmt.Sprintf("%s depends on %s with condition %s: it may start before %s accepts connections", sname, dep, cond, dep))
			}
		}
	}
	// Migrations: follow depends_on to a `migrate up` service that must complete.
	for _, u := range byService {
		if !u.app() {
			continue
		}
		seen := map[string]bool{}
		queue := []string{u.workload}
		for len(queue) > 0 && u.ordered == "" {
			cur := queue[0]
			queue = queue[1:]
			if seen[cur] {
				continue
			}
			seen[cur] = true
			for dep, cfg := range p.Services[cur].DependsOn {
				if m := byService[dep]; m != nil && m.invErr == nil && m.has(RoleMigrate) && cfg.Condition == types.ServiceConditionCompletedSuccessfully {
					u.ordered = "API and worker services depend on " + dep + " (`docpipe migrate up`) with condition service_completed_successfully"
				}
				queue = append(queue, dep)
			}
		}
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; "), "use condition: service_healthy (with a healthcheck) or service_completed_successfully for one-shots")
	}
	return Pass(name, "every depends_on waits for health or completion, and every service it waits on for health has a healthcheck")
}

// composePorts checks that published ports reach a port a docpipe process listens on
// from outside its container.
func composePorts(t target, p *types.Project, byService map[string]*unit) Check {
	name := t.name + ": published ports"
	var bad, good []string
	for _, sname := range sortedKeys(byService) {
		u := byService[sname]
		if u.invErr != nil {
			continue
		}
		for _, port := range p.Services[sname].Ports {
			var l *listener
			for _, x := range listeners(u.inv) {
				if x.Port == int(port.Target) {
					l = &x
				}
			}
			switch {
			case l == nil:
				bad = append(bad, fmt.Sprintf("%s publishes %s:%d, and nothing listens on %d (%s)", sname, port.Published, port.Target, port.Target, describeListeners(u.inv, listeners(u.inv))))
			case loopback(l.Host):
				bad = append(bad, fmt.Sprintf("%s publishes port %d, and %s %s:%d accepts connections from inside the container only", sname, port.Target, l.Flag, l.Host, l.Port))
			default:
				good = append(good, fmt.Sprintf("%s %s→%d", sname, port.Published, port.Target))
			}
		}
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; "), "publish the port of --addr, and bind it to 0.0.0.0")
	}
	if len(good) == 0 {
		return Pass(name, "no docpipe service publishes a port")
	}
	return Pass(name, strings.Join(good, ", "))
}

// composeTwinKey decides whether a literal secret in docker-compose.yml is allowed. The
// compose file runs against the local twins only, so a key is fine when it is a twin's
// own --api-key and the matching URL points at that twin in the same file (the key then
// opens nothing real); the database URL is fine when it names the file's own Postgres
// service; the webhook secret is fine when only the LlamaParse twin calls the webhook.
// Anything else (a JWT secret, S3 keys, a key sent to a real service) must come from
// an env_file or ${NAME} interpolation kept out of git.
func composeTwinKey(p *types.Project, byService map[string]*unit, u *unit, name string) (string, bool) {
	// twinAt is the twin of that kind the URL variable points at, or nil.
	twinAt := func(kind, urlVar string) *unit {
		parsed, err := url.Parse(u.env[urlVar].Value)
		if err != nil {
			return nil
		}
		tw := byService[parsed.Hostname()]
		if tw == nil || tw.invErr != nil || tw.inv.Path != "mock "+kind {
			return nil
		}
		port, _ := strconv.Atoi(parsed.Port())
		if !slices.ContainsFunc(listeners(tw.inv), func(l listener) bool { return l.Port == port }) {
			return nil
		}
		return tw
	}
	key := func(kind, urlVar string) (string, bool) {
		tw := twinAt(kind, urlVar)
		if tw == nil {
			return "", false
		}
		return "the " + tw.workload + " twin's --api-key", tw.inv.Flags["api-key"] == u.env[name].Value
	}
	switch name {
	case "DATABASE_URL":
		parsed, err := url.Parse(u.env[name].Value)
		if err != nil {
			return "", false
		}
		s, ok := p.Services[parsed.Hostname()]
		return "the " + parsed.Hostname() + " service of this file", ok && byService[s.Name] == nil
	case "OPENAI_API_KEY":
		return key("openai", "OPENAI_BASE_URL")
	case "LLAMA_CLOUD_API_KEY":
		return key("llamaparse", "LLAMAPARSE_BASE_URL")
	case "SUPABASE_SERVICE_ROLE_KEY":
		return key("storage", "SUPABASE_URL")
	case "DOCPIPE_WEBHOOK_SECRET":
		if tw := twinAt("llamaparse", "LLAMAPARSE_BASE_URL"); tw != nil {
			return "only the " + tw.workload + " twin calls the webhook", true
		}
	}
	return "", false
}
