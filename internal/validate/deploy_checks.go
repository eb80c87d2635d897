package validate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/config"
)

// loaded is what a platform's loader found in a target.
type loaded struct {
	units []*unit
	// checks are the platform's own: reading the files (always the first), references
	// between objects, published ports, resource requests.
	checks []Check
	// images are the image references to pin (where → reference); nil when the
	// platform builds its images here (compose).
	images map[string]string
	// inlineSecrets are secrets written into the files outside a process's env (a
	// ConfigMap key, a committed Secret).
	inlineSecrets []string
	// separate says in words what keeps units apart ("run in separate pods").
	separate string
	// storageFix says where the blob store is set for this platform.
	storageFix string
	// twinKey (compose) reports whether a literal secret is a local twin's own key, and
	// whose; nil where no literal secret is allowed.
	twinKey func(u *unit, name string) (string, bool)
	// note adds to the topology check, e.g. services left out by a profile.
	note string
}

// check loads a target and runs every check on it.
func (d *deployRun) check(ctx context.Context, t target) []Check {
	var l loaded
	switch t.platform {
	case kubernetes:
		l = d.loadKubernetes(t)
	case compose:
		l = d.loadCompose(ctx, t)
	case render:
		l = d.loadRender(t)
	}
	if len(l.units) == 0 && countFailed(l.checks) > 0 {
		return l.checks // the files did not load; nothing more to say
	}
	// The files first, then each process, then the deployment as a whole.
	checks := slices.Clone(l.checks[:1])
	for _, u := range l.units {
		checks = append(checks, d.checkCommand(u))
		if u.invErr != nil {
			continue
		}
		checks = append(checks, d.checkEnv(u)...)
		if c, ok := d.checkProbes(u); ok {
			checks = append(checks, c)
		}
	}
	checks = append(checks, l.checks[1:]...)
	checks = append(checks, checkTopology(t, l), checkMigrations(t, l))
	checks = append(checks, d.checkShared(t, l)...)
	if l.images != nil {
		checks = append(checks, checkPinned(t, l))
	}
	checks = append(checks, d.checkSecrets(t, l), d.checkGrace(t, l))
	return checks
}

// countFailed counts the failed checks in cs.
func countFailed(cs []Check) int {
	n := 0
	for _, c := range cs {
		if !c.OK {
			n++
		}
	}
	return n
}

// apps are the units that are the application proper (APIs and workers).
func (l loaded) apps() []*unit {
	var out []*unit
	for _, u := range l.units {
		if u.invErr == nil && u.app() {
			out = append(out, u)
		}
	}
	return out
}

func (d *deployRun) checkCommand(u *unit) Check {
	name := u.label() + ": command"
	if u.invErr != nil {
		return Fail(name, u.invErr.Error(), "run a real docpipe command (docpipe --help); the image's binary is /docpipe")
	}
	what := "runs `docpipe " + strings.Join(u.argv[1:], " ") + "`"
	if len(u.roles) > 0 {
		var rs []string
		for _, r := range u.roles {
			rs = append(rs, string(r))
		}
		what += " (" + strings.Join(rs, " and ") + ")"
	}
	return Pass(name, what)
}

// getenv reads a unit's environment the way the process would.
func (u *unit) getenv(name string) string { return u.env[name].Value }

// config is the unit's settings as config.Load reads them (problems aside).
func (u *unit) config() config.Config {
	c, _ := config.Load(u.getenv)
	return c
}

func (d *deployRun) checkEnv(u *unit) []Check {
	name := u.label() + ": environment"
	var checks []Check
	for _, e := range u.refErrs {
		checks = append(checks, Fail(name, e, "define what the reference names, or remove the reference"))
	}
	for _, k := range sortedKeys(u.env) {
		if _, ok := config.Lookup(k); !ok {
			checks = append(checks, Fail(name, fmt.Sprintf("sets %s (%s), which is not a docpipe setting: the process ignores it",
				k, u.env[k].From), "remove it or use the right name (docpipe config docs)"))
		}
	}
	if !u.has(RoleAPI) && !u.has(RoleWorker) && !u.has(RoleMigrate) {
		if len(checks) == 0 {
			checks = append(checks, Pass(name, "no unknown settings"))
		}
		return checks
	}
	for _, c := range Config(name, u.getenv) {
		if !c.OK {
			// Say where a wrong value comes from.
			for _, k := range sortedKeys(u.env) {
				if strings.HasPrefix(c.Reason, k+":") {
					c.Reason += " (" + u.env[k].From + ")"
				}
			}
		} else {
			c.Reason = fmt.Sprintf("config.Load accepts the process's environment (%d set in the deploy file, the rest from the image and defaults)", u.setCount())
		}
		checks = append(checks, c)
	}
	return checks
}

// setCount counts the variables the deploy file (not the image) sets.
func (u *unit) setCount() int {
	n := 0
	for _, v := range u.env {
		if !strings.HasPrefix(v.From, "image ENV") {
			n++
		}
	}
	return n
}

// checkProbes checks that every health check the platform runs hits a real route on a
// port the process listens on, reachable from where the check runs; ok is false when
// the unit has no probes and needs none.
func (d *deployRun) checkProbes(u *unit) (Check, bool) {
	name := u.label() + ": probes"
	if len(u.probes) == 0 && u.needsProbe == "" {
		return Check{}, false
	}
	ls := listeners(u.inv)
	var bad, good []string
	for _, want := range strings.Split(u.needsProbe, ",") {
		if want != "" && !slices.ContainsFunc(u.probes, func(p probe) bool { return p.What == want }) {
			bad = append(bad, "no "+want+": "+probeWhy(want))
		}
	}
	for _, p := range u.probes {
		if p.Bad != "" {
			bad = append(bad, p.What+": "+p.Bad)
			continue
		}
		var l *listener
		for i := range ls {
			if ls[i].Port == p.Port || (p.Port == 0 && ls[i].Role == RoleAPI) {
				l = &ls[i]
			}
		}
		switch {
		case l == nil && p.Port == 0:
			bad = append(bad, fmt.Sprintf("%s %s: `docpipe %s` serves no HTTP for the platform to check", p.What, p.Path, u.inv.Path))
			continue
		case l == nil:
			bad = append(bad, fmt.Sprintf("%s on port %d: nothing listens there (%s)", p.What, p.Port, describeListeners(u.inv, ls)))
			continue
		}
		routes := d.spec.Routes[l.Role]
		if p.Path != "" && !slices.Contains(routes, p.Path) {
			bad = append(bad, fmt.Sprintf("%s GET %s on port %d: not a route of %s (routes a probe can use: %s)", p.What, p.Path, l.Port, roleServer(l.Role), strings.Join(routes, ", ")))
			continue
		}
		if !p.Inside && loopback(l.Host) {
			bad = append(bad, fmt.Sprintf("%s on port %d: %s %s:%d accepts connections from inside the container only, and the platform checks from outside", p.What, l.Port, l.Flag, l.Host, l.Port))
			continue
		}
		what := p.What
		if p.Path != "" {
			what += " GET " + p.Path
		}
		good = append(good, fmt.Sprintf("%s → %s %s:%d", what, l.Flag, l.Host, l.Port))
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; "), "point each probe at a route the process serves, on the port of its "+
			"--addr/--health-addr, bound to 0.0.0.0 when the platform probes from outside"), true
	}
	return Pass(name, strings.Join(good, "; ")), true
}

func probeWhy(what string) string {
	switch what {
	case "readinessProbe":
		return "Kubernetes sends traffic to and counts rollout progress on pods that are not ready yet"
	case "livenessProbe":
		return "a process that hangs is never restarted"
	case "healthcheck":
		return "`depends_on: service_healthy` and `docker compose up --wait` cannot tell when it is up"
	case "healthCheckPath":
		return "Render switches traffic to a new deploy before it can answer"
	}
	return "the platform cannot tell when it is up"
}

func roleServer(r Role) string {
	switch r {
	case RoleAPI:
		return "the API (serve --addr)"
	case RoleWorker:
		return "the worker's health server (worker --health-addr)"
	}
	return "the twin (mock --addr)"
}

func describeListeners(inv Invocation, ls []listener) string {
	if len(ls) == 0 {
		if inv.Path == "worker" {
			return "`docpipe worker` serves /healthz and /readyz only with --health-addr"
		}
		return "`docpipe " + inv.Path + "` listens on no port"
	}
	var s []string
	for _, l := range ls {
		s = append(s, fmt.Sprintf("%s %s:%d", l.Flag, l.Host, l.Port))
	}
	return "`docpipe " + inv.Path + "` listens on " + strings.Join(s, ", ")
}

func describeUnits(us []*unit) string {
	var s []string
	for _, u := range us {
		s = append(s, fmt.Sprintf("%s ×%d", u.name, u.replicas))
	}
	return strings.Join(s, ", ")
}

// checkTopology: a deployment needs an API to accept uploads and at least one worker to
// process them; the earlier system shipped one without a worker.
func checkTopology(t target, l loaded) Check {
	name := t.name + ": API and workers"
	var apis, workers []*unit
	for _, u := range l.apps() {
		if u.replicas <= 0 {
			continue
		}
		if u.has(RoleAPI) {
			apis = append(apis, u)
		}
		if u.has(RoleWorker) {
			workers = append(workers, u)
		}
	}
	note := ""
	if l.note != "" {
		note = " (" + l.note + ")"
	}
	switch {
	case len(workers) == 0:
		return Fail(name, "no worker runs (no `docpipe worker` or `serve --with-worker` with at least one replica)"+note+
			": every upload is accepted and stays queued forever", "add a worker running `docpipe worker --health-addr 0.0.0.0:8081` on the same database and blob store as the API")
	case len(apis) == 0:
		return Fail(name, "no API runs (no `docpipe serve` with at least one replica)"+note+": nothing accepts uploads or answers searches",
			"add a service running `docpipe serve --addr 0.0.0.0:8080`")
	}
	return Pass(name, "API: "+describeUnits(apis)+"; workers: "+describeUnits(workers)+note)
}

// checkMigrations: each API and worker must start only after `docpipe migrate up` has
// finished, or a new release runs against the old schema.
func checkMigrations(t target, l loaded) Check {
	name := t.name + ": migrations first"
	var how, missing []string
	for _, u := range l.apps() {
		if u.ordered == "" {
			missing = append(missing, u.label())
		} else if !slices.Contains(how, u.ordered) {
			how = append(how, u.ordered)
		}
	}
	if len(missing) > 0 {
		fix := map[platform]string{
			kubernetes: "add an initContainer running `docpipe migrate up` (same image and environment) to every API and worker pod; " +
				"or, with Helm, annotate the migration Job helm.sh/hook: pre-install,pre-upgrade",
			compose: "make every API and worker service depend on the migration service with condition: service_completed_successfully",
			render:  "give every API and worker service preDeployCommand: /docpipe migrate up",
		}[t.platform]
		return Fail(name, strings.Join(missing, ", ")+" can start before `docpipe migrate up` has finished: "+notOrderedWhy(t.platform, l), fix)
	}
	if len(how) == 0 {
		return Pass(name, "no API or worker to order")
	}
	return Pass(name, strings.Join(how, "; "))
}

// notOrderedWhy explains what does not count as ordering.
func notOrderedWhy(p platform, l loaded) string {
	var jobs []string
	for _, u := range l.units {
		if u.invErr == nil && u.has(RoleMigrate) && !u.initOf && u.ordered == "" && strings.HasPrefix(u.workload, "Job/") {
			jobs = append(jobs, u.workload+" ("+u.file+")")
		}
	}
	switch {
	case p == kubernetes && len(jobs) > 0:
		return strings.Join(jobs, ", ") + " runs the migrations, but a Job alone orders nothing: `kubectl apply` starts it and the Deployments at the same time"
	case p == kubernetes:
		return "nothing runs `docpipe migrate up` before them"
	case p == compose:
		return "nothing they depend on with service_completed_successfully runs `docpipe migrate up`"
	}
	return "no preDeployCommand runs `docpipe migrate up` before they go live"
}

// A shared setting: what the API and every worker must agree on.
type sharedGroup struct {
	what  string
	vars  []string
	roles []Role // who must agree
	why   string // what breaks otherwise
}

var sharedGroups = []sharedGroup{
	{"database", []string{"DATABASE_URL"}, []Role{RoleAPI, RoleWorker, RoleMigrate},
		"the API queues jobs in one database while workers poll (or migrations run on) another: uploads are accepted and never processed"},
	{"webhook secret", []string{"DOCPIPE_WEBHOOK_SECRET"}, []Role{RoleAPI, RoleWorker},
		"the API rejects the LlamaParse webhooks the worker asked for (the token is signed with the worker's secret)"},
	{"embedding", []string{"DOCPIPE_EMBED_PROVIDER", "DOCPIPE_EMBED_MODEL", "DOCPIPE_EMBED_DIMS", "OPENAI_BASE_URL"}, []Role{RoleAPI, RoleWorker},
		"the API embeds search queries with a different model or size than the workers embedded the chunks: results are wrong, or searches fail on the dimensions"},
	{"chunk settings", []string{"DOCPIPE_CHUNK_TOKENS", "DOCPIPE_CHUNK_OVERLAP"}, []Role{RoleAPI, RoleWorker},
		"the same document is chunked differently depending on which process handles it"},
}

// checkShared compares what the API and every worker must share.
func (d *deployRun) checkShared(t target, l loaded) []Check {
	var checks []Check
	checks = append(checks, d.checkBlobStore(t, l))
	for _, g := range sharedGroups {
		var us []*unit
		for _, u := range l.units {
			if u.invErr == nil && slices.ContainsFunc(g.roles, u.has) {
				us = append(us, u)
			}
		}
		checks = append(checks, agree(t.name+": shared "+g.what, us, g.vars, g.why))
	}
	return checks
}

// agree checks that every unit sees the same value for vars.
func agree(name string, us []*unit, vars []string, why string) Check {
	if len(us) < 2 {
		return Pass(name, "one process only")
	}
	for _, v := range vars {
		byKey := map[string][]*unit{}
		var keys []string
		for _, u := range us {
			k := sameKey(u, v)
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], u)
		}
		if len(keys) > 1 {
			var parts []string
			for _, k := range keys {
				var names []string
				for _, u := range byKey[k] {
					names = append(names, u.label())
				}
				parts = append(parts, strings.Join(names, " and ")+" "+shown(byKey[k][0], v))
			}
			return Fail(name, v+" differs: "+strings.Join(parts, "; ")+": "+why,
				"give every API and worker "+v+" from one place (one ConfigMap/Secret key, one env group, one anchor)")
		}
	}
	var s []string
	for _, v := range vars {
		s = append(s, shown(us[0], v))
	}
	return Pass(name, fmt.Sprintf("%d processes agree: %s", len(us), strings.Join(s, ", ")))
}

// sameKey identifies the value a unit sees for name: equal keys, equal values.
func sameKey(u *unit, name string) string {
	if v, ok := u.env[name]; ok && v.Same != "" {
		return v.Same
	}
	val, _ := u.config().Value(name)
	return "value:" + val
}

// shown prints a setting without revealing a secret: "DOCPIPE_STORAGE=local (the
// default)", "DATABASE_URL from Secret docpipe-secrets".
func shown(u *unit, name string) string {
	v, set := u.env[name]
	secret := false
	if cv, ok := config.Lookup(name); ok {
		secret = cv.Secret
	}
	val, _ := u.config().Value(name)
	switch {
	case !set && val == "":
		return name + " not set"
	case !set:
		return name + "=" + val + " (the default)"
	case v.Supplied || secret:
		return name + " from " + v.From
	}
	return name + "=" + val + " (" + v.From + ")"
}

// checkBlobStore: the API stores every upload and each worker reads it back, so they
// must use one store. A local store is one only when every copy of every API and
// worker mounts the same shared volume at DOCPIPE_DATA_DIR; the issue this catches
// accepted every upload and dead-lettered it with STORAGE_OBJECT_MISSING.
func (d *deployRun) checkBlobStore(t target, l loaded) Check {
	name := t.name + ": shared blob store"
	us := l.apps()
	if len(us) == 0 {
		return Pass(name, "no API or worker")
	}
	if c := agree(name, us, []string{"DOCPIPE_STORAGE"}, "uploads the API stores in one place are missing for the workers (STORAGE_OBJECT_MISSING)"); !c.OK {
		return c
	}
	kind := us[0].config().Storage
	switch kind {
	case "s3":
		return agree(name, us, []string{"DOCPIPE_STORAGE", "S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_VIRTUAL_HOSTED"},
			"uploads the API stores are missing for the workers (STORAGE_OBJECT_MISSING)")
	case "supabase":
		return agree(name, us, []string{"DOCPIPE_STORAGE", "SUPABASE_URL", "SUPABASE_STORAGE_BUCKET"},
			"uploads the API stores are missing for the workers (STORAGE_OBJECT_MISSING)")
	}
	// local: one filesystem for all, or a volume every copy shares at DOCPIPE_DATA_DIR.
	if len(us) == 1 && us[0].has(RoleAPI) && us[0].has(RoleWorker) && max(us[0].replicas, us[0].maxReplicas) <= 1 {
		return Pass(name, us[0].label()+" is the only API and worker, in one process: "+shown(us[0], "DOCPIPE_STORAGE")+" works")
	}
	var shared []string
	for _, u := range us {
		dir := u.config().DataDir
		id := ""
		for _, m := range u.mounts {
			if m.Shared != "" && (dir == m.Path || strings.HasPrefix(dir, strings.TrimSuffix(m.Path, "/")+"/")) {
				id = m.Shared
			}
		}
		shared = append(shared, id)
	}
	if shared[0] != "" && !slices.ContainsFunc(shared, func(s string) bool { return s != shared[0] }) {
		return Pass(name, fmt.Sprintf("%s with one shared volume (%s) at DOCPIPE_DATA_DIR in every API and worker", shown(us[0], "DOCPIPE_STORAGE"), shared[0]))
	}
	var files []string
	for _, u := range us {
		if !slices.Contains(files, u.file) {
			files = append(files, u.file)
		}
	}
	where := strings.Join(files, " and ")
	if len(files) == 1 {
		where = strings.Join(unitNames(us), " and ") + " in " + files[0]
	}
	return Fail(name, fmt.Sprintf("%s %s with %s and no shared volume: every upload the API accepts is missing for the worker (STORAGE_OBJECT_MISSING)",
		where, l.separate, shown(us[0], "DOCPIPE_STORAGE")),
		"set DOCPIPE_STORAGE=s3 or supabase "+l.storageFix)
}

func unitNames(us []*unit) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.name)
	}
	return out
}

// checkPinned: a tag that moves (or none, which is :latest) makes every restart a
// possible upgrade, and API, workers and migrations of different releases.
func checkPinned(t target, l loaded) Check {
	name := t.name + ": images pinned"
	var bad []string
	for _, where := range sortedKeys(l.images) {
		if ok, why := pinned(l.images[where]); !ok {
			bad = append(bad, where+": "+l.images[where]+" "+why)
		}
	}
	// Every docpipe process must run the same release.
	seen := map[string][]string{}
	var order []string
	for _, u := range l.units {
		if u.image == "" {
			continue
		}
		if _, ok := seen[u.image]; !ok {
			order = append(order, u.image)
		}
		seen[u.image] = append(seen[u.image], u.label())
	}
	if len(order) > 1 {
		var parts []string
		for _, img := range order {
			parts = append(parts, img+" ("+strings.Join(seen[img], ", ")+")")
		}
		bad = append(bad, "docpipe processes run different images, so API, workers and migrations can be different releases: "+strings.Join(parts, "; "))
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; "), "name one release tag (or digest) for every docpipe container, e.g. ghcr.io/docpipe/docpipe:1.0.0")
	}
	var imgs []string
	for _, where := range sortedKeys(l.images) {
		if !slices.Contains(imgs, l.images[where]) {
			imgs = append(imgs, l.images[where])
		}
	}
	if len(imgs) == 0 {
		return Pass(name, "images are built from the Dockerfile (its base images are checked with it)")
	}
	return Pass(name, strings.Join(imgs, ", "))
}

// checkSecrets: a secret setting written into a deploy file is in git for good.
func (d *deployRun) checkSecrets(t target, l loaded) Check {
	name := t.name + ": secrets not inline"
	bad := slices.Clone(l.inlineSecrets)
	var twins, refs []string
	for _, u := range l.units {
		for _, k := range sortedKeys(u.env) {
			v := u.env[k]
			cv, ok := config.Lookup(k)
			if !ok || !cv.Secret {
				continue
			}
			if !v.Inline {
				if s := k + " from " + v.From; !slices.Contains(refs, s) {
					refs = append(refs, s)
				}
				continue
			}
			if l.twinKey != nil {
				if whose, ok := l.twinKey(u, k); ok {
					if s := k + " (" + whose + ")"; !slices.Contains(twins, s) {
						twins = append(twins, s)
					}
					continue
				}
			}
			bad = append(bad, fmt.Sprintf("%s sets %s to a literal value in %s", u.label(), k, v.File))
		}
	}
	if len(bad) > 0 {
		fix := map[platform]string{
			kubernetes: "move it into a Secret created outside git (deploy/k8s/secret.example.yaml lists the keys) and reference it with secretRef or secretKeyRef",
			render:     "use sync: false (Render asks for it), generateValue: true, or fromDatabase instead of value",
			compose:    "read it from an env_file kept out of git, or interpolate ${NAME} from the environment; literal keys are fine only for the local twins in the same file",
		}[t.platform]
		return Fail(name, strings.Join(bad, "; "), fix)
	}
	reason := "no secret setting has a literal value in the files"
	if len(refs) > 0 {
		reason += "; " + strings.Join(refs, ", ")
	}
	if len(twins) > 0 {
		reason += "; literal keys that belong to the local twins: " + strings.Join(twins, ", ")
	}
	return Pass(name, reason)
}

// checkGrace: the platform must wait longer after SIGTERM than docpipe takes to
// finish its running requests and stages (DOCPIPE_SHUTDOWN_TIMEOUT), or it kills them
// half-way and they are retried after DOCPIPE_RESCUE_AFTER.
func (d *deployRun) checkGrace(t target, l loaded) Check {
	name := t.name + ": graceful shutdown"
	var bad, good []string
	for _, u := range l.apps() {
		if u.replicas <= 0 || u.initOf {
			continue
		}
		timeout := u.config().ShutdownTimeout
		if u.grace <= timeout {
			bad = append(bad, fmt.Sprintf("%s: %s is %s, not more than DOCPIPE_SHUTDOWN_TIMEOUT=%s", u.label(), u.graceFrom, fmtDuration(u.grace), fmtDuration(timeout)))
		} else {
			good = append(good, fmt.Sprintf("%s %s > %s", u.name, fmtDuration(u.grace), fmtDuration(timeout)))
		}
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; ")+": the platform kills requests and stages that are still finishing", map[platform]string{
			kubernetes: "set terminationGracePeriodSeconds above DOCPIPE_SHUTDOWN_TIMEOUT (e.g. 45 for 30s)",
			compose:    "set stop_grace_period above DOCPIPE_SHUTDOWN_TIMEOUT (e.g. 45s for 30s)",
			render:     "set maxShutdownDelaySeconds above DOCPIPE_SHUTDOWN_TIMEOUT (e.g. 45 for 30s)",
		}[t.platform])
	}
	return Pass(name, strings.Join(good, ", "))
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
