package validate

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Render's Blueprint has no Go loader; these are the fields `validate deploy` reads
// (https://render.com/docs/blueprint-spec). Unknown fields are ignored, as the rest of
// the spec is Render's business.
type blueprint struct {
	Services  []renderService `json:"services"`
	Databases []struct {
		Name string `json:"name"`
	} `json:"databases"`
	EnvVarGroups []struct {
		Name    string         `json:"name"`
		EnvVars []renderEnvVar `json:"envVars"`
	} `json:"envVarGroups"`
}

type renderService struct {
	Type             string `json:"type"`
	Name             string `json:"name"`
	Runtime          string `json:"runtime"`
	Env              string `json:"env"` // the older name of runtime
	DockerfilePath   string `json:"dockerfilePath"`
	DockerCommand    string `json:"dockerCommand"`
	PreDeployCommand string `json:"preDeployCommand"`
	HealthCheckPath  string `json:"healthCheckPath"`
	NumInstances     *int   `json:"numInstances"`
	Scaling          *struct {
		MinInstances int `json:"minInstances"`
		MaxInstances int `json:"maxInstances"`
	} `json:"scaling"`
	MaxShutdownDelaySeconds *int `json:"maxShutdownDelaySeconds"`
	Disk                    *struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"disk"`
	Image *struct {
		URL string `json:"url"`
	} `json:"image"`
	EnvVars []renderEnvVar `json:"envVars"`
}

type renderEnvVar struct {
	Key           string `json:"key"`
	Value         any    `json:"value"`
	GenerateValue bool   `json:"generateValue"`
	Sync          *bool  `json:"sync"`
	FromDatabase  *struct {
		Name     string `json:"name"`
		Property string `json:"property"`
	} `json:"fromDatabase"`
	FromService *struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Property  string `json:"property"`
		EnvVarKey string `json:"envVarKey"`
	} `json:"fromService"`
	FromGroup string `json:"fromGroup"`
}

// renderDatabaseProperties are what fromDatabase can read.
var renderDatabaseProperties = []string{"connectionString", "host", "port", "user", "password", "database"}

// loadRender reads a Render Blueprint. Render runs each service's dockerCommand in
// place of the image's ENTRYPOINT and CMD (so it names /docpipe itself), runs
// preDeployCommand in the new image before each deploy goes live, gives a service its
// linked env groups overridden by its own envVars, and waits maxShutdownDelaySeconds
// (default 30) after SIGTERM.
func (d *deployRun) loadRender(t target) loaded {
	file := t.files[0]
	rel := d.rel(file)
	l := loaded{images: map[string]string{}, separate: "are separate Render services"}
	data, err := os.ReadFile(file)
	var bp blueprint
	if err == nil {
		err = yaml.Unmarshal(data, &bp)
	}
	if err != nil {
		l.checks = append(l.checks, Fail(t.name+": files", "cannot read the Blueprint: "+err.Error(), "fix the YAML"))
		return l
	}
	l.checks = append(l.checks, Pass(t.name+": files", fmt.Sprintf("%d services, %d env groups, %d databases", len(bp.Services), len(bp.EnvVarGroups), len(bp.Databases))))
	groups := map[string][]renderEnvVar{}
	for _, g := range bp.EnvVarGroups {
		groups[g.Name] = g.EnvVars
	}
	databases := map[string]bool{}
	for _, db := range bp.Databases {
		databases[db.Name] = true
	}
	firstGroup := ""
	for _, s := range bp.Services {
		runtime := s.Runtime
		if runtime == "" {
			runtime = s.Env
		}
		var df *dockerfile
		image := ""
		switch {
		case runtime == "docker":
			path := s.DockerfilePath
			if path == "" {
				path = "Dockerfile"
			}
			path = d.abs(path)
			if rd := readDockerfile(path, d.rel(path)); rd.err != nil || rd.binary() != "/docpipe" {
				continue
			}
			df = d.dockerfile(path)
		case runtime == "image" && s.Image != nil && docpipeImage(s.Image.URL):
			df, image = d.dockerfile(d.abs(d.opts.Dockerfile)), s.Image.URL
			l.images[rel+": service "+s.Name] = image
		default:
			continue
		}
		u := &unit{file: rel, name: "service " + s.Name, workload: s.Name, image: image, replicas: 1, env: map[string]envVar{},
			grace: 30 * time.Second, graceFrom: "maxShutdownDelaySeconds (not set: 30)"}
		if s.NumInstances != nil {
			u.replicas = *s.NumInstances
		}
		u.maxReplicas = u.replicas
		if s.Scaling != nil {
			u.replicas, u.maxReplicas = s.Scaling.MinInstances, s.Scaling.MaxInstances
		}
		if s.MaxShutdownDelaySeconds != nil {
			u.grace, u.graceFrom = time.Duration(*s.MaxShutdownDelaySeconds)*time.Second, "maxShutdownDelaySeconds"
		}
		if s.DockerCommand != "" {
			u.argv = shellWords(s.DockerCommand)
		} else {
			u.argv = append(slices.Clone(df.final().entrypoint), df.final().cmd...)
		}
		d.parseArgv(u, df.binary())
		for k, v := range df.final().env {
			u.env[k] = envVar{Value: v, From: "image ENV in " + df.name}
		}
		// Linked groups first, then the service's own variables, which win.
		for _, ev := range s.EnvVars {
			if ev.FromGroup == "" {
				continue
			}
			vars, ok := groups[ev.FromGroup]
			if !ok {
				u.refErrs = append(u.refErrs, "fromGroup "+ev.FromGroup+" is not an envVarGroup of this Blueprint")
				continue
			}
			if firstGroup == "" {
				firstGroup = ev.FromGroup
			}
			for _, gv := range vars {
				renderVar(u, gv, "env group "+ev.FromGroup, rel, databases)
			}
		}
		for _, ev := range s.EnvVars {
			if ev.FromGroup == "" {
				renderVar(u, ev, "service "+s.Name, rel, databases)
			}
		}
		if s.Disk != nil {
			u.mounts = append(u.mounts, mount{Path: s.Disk.MountPath})
		}
		if s.Type == "web" {
			if s.HealthCheckPath != "" {
				u.probes = append(u.probes, probe{What: "healthCheckPath", Path: s.HealthCheckPath})
			}
			if u.invErr == nil && u.has(RoleAPI) {
				u.needsProbe = "healthCheckPath"
			}
		}
		l.units = append(l.units, u)
		if s.PreDeployCommand != "" {
			pre := &unit{file: rel, name: "service " + s.Name + " preDeployCommand", workload: s.Name, image: image,
				replicas: 1, initOf: true, env: u.env, refErrs: u.refErrs, argv: shellWords(s.PreDeployCommand)}
			d.parseArgv(pre, df.binary())
			if pre.invErr == nil && pre.has(RoleMigrate) {
				u.ordered = "every API and worker service runs `docpipe migrate up` as its preDeployCommand, before each deploy goes live"
			}
			l.units = append(l.units, pre)
		}
	}
	where := "in an env group every API and worker service links"
	if firstGroup != "" {
		where = "in env group " + firstGroup + " (" + rel + ")"
	}
	l.storageFix = where + ", with SUPABASE_URL there and SUPABASE_SERVICE_ROLE_KEY (sync: false) in the secrets group " +
		"(or S3_BUCKET, S3_ENDPOINT and the S3 keys); a Render disk belongs to one service and cannot be shared"
	return l
}

// renderVar adds one Blueprint variable to a unit's environment. scope is where it is
// declared: one env group's value is the same for every service linking it, while a
// value generated or prompted for on a service is that service's own.
func renderVar(u *unit, ev renderEnvVar, scope, file string, databases map[string]bool) {
	k := ev.Key
	switch {
	case ev.FromDatabase != nil:
		db := ev.FromDatabase
		if !databases[db.Name] {
			u.refErrs = append(u.refErrs, k+": fromDatabase "+db.Name+" is not a database of this Blueprint")
		}
		if !slices.Contains(renderDatabaseProperties, db.Property) {
			u.refErrs = append(u.refErrs, fmt.Sprintf("%s: fromDatabase property %q is not one of %s", k, db.Property, strings.Join(renderDatabaseProperties, ", ")))
		}
		u.env[k] = envVar{Value: standIn(k), From: "database " + db.Name + " (" + db.Property + ")", Same: "database:" + db.Name + "/" + db.Property, Supplied: true}
	case ev.FromService != nil:
		fs := ev.FromService
		u.env[k] = envVar{Value: standIn(k), From: "service " + fs.Name, Same: "service:" + fs.Name + "/" + fs.Property + fs.EnvVarKey, Supplied: true}
	case ev.GenerateValue:
		u.env[k] = envVar{Value: standIn(k), From: "a value Render generates for " + scope, Same: "generated:" + scope + "/" + k, Supplied: true}
	case ev.Value != nil:
		u.env[k] = envVar{Value: fmt.Sprint(ev.Value), From: scope, Inline: true, File: file}
	default: // sync: false, or a key without a value: Render asks for it
		u.env[k] = envVar{Value: standIn(k), From: "a value Render asks for on " + scope, Same: "prompt:" + scope + "/" + k, Supplied: true}
	}
}
