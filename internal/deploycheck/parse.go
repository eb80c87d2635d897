package deploycheck

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// docpipe's image in each format: built from the Dockerfile, or named …docpipe….
func isDocpipeImage(svc map[string]any) bool {
	if _, ok := svc["build"]; ok {
		return true
	}
	img, _ := svc["image"].(string)
	return strings.Contains(img, "docpipe")
}

func strs(v any) []string {
	switch v := v.(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	case string:
		return strings.Fields(v)
	}
	return nil
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// composeUnits reads docker-compose.yml services that run docpipe's image.
func composeUnits(data []byte) ([]Unit, error) {
	docs, err := decodeAll(data)
	if err != nil || len(docs) != 1 {
		return nil, fmt.Errorf("not one YAML document: %v", err)
	}
	services := mapOf(docs[0]["services"])
	if services == nil {
		return nil, fmt.Errorf("no services")
	}
	var units []Unit
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		svc := mapOf(services[name])
		if !isDocpipeImage(svc) {
			continue
		}
		u := Unit{Name: name, Args: strs(svc["command"]), Env: map[string]string{}}
		switch env := svc["environment"].(type) {
		case map[string]any:
			for k, v := range env {
				u.Env[k] = fmt.Sprint(v)
			}
		case []any:
			for _, kv := range strs(env) {
				k, v, _ := strings.Cut(kv, "=")
				u.Env[k] = v
			}
		}
		if hc := mapOf(svc["healthcheck"]); hc != nil {
			test := strs(hc["test"])
			if i := slices.Index(test, "probe"); i >= 0 {
				for _, a := range test[i+1:] {
					if p, ok := probeFromURL(a); ok {
						u.Health = append(u.Health, p)
					}
				}
			} else {
				return nil, fmt.Errorf("service %s: the health check must be `/docpipe probe URL` (the image has no shell or curl), is %q", name, test)
			}
		} else if u.Role() != RoleMigrate { // a one-shot has nothing to be healthy about
			return nil, fmt.Errorf("service %s has no healthcheck", name)
		}
		units = append(units, u)
	}
	// depends_on must wait for health (or, for one-shots, completion).
	for _, name := range names {
		for dep, cond := range mapOf(mapOf(services[name])["depends_on"]) {
			c, _ := mapOf(cond)["condition"].(string)
			if c != "service_healthy" && c != "service_completed_successfully" {
				return nil, fmt.Errorf("service %s depends on %s without condition service_healthy (or service_completed_successfully for a one-shot)", name, dep)
			}
		}
	}
	return units, nil
}

// renderUnits reads a Render Blueprint's docker services (and their env var groups).
func renderUnits(data []byte) ([]Unit, error) {
	docs, err := decodeAll(data)
	if err != nil || len(docs) != 1 {
		return nil, fmt.Errorf("not one YAML document: %v", err)
	}
	groups := map[string][]map[string]any{}
	for _, g := range docs[0]["envVarGroups"].([]any) {
		gm := mapOf(g)
		name, _ := gm["name"].(string)
		for _, ev := range gm["envVars"].([]any) {
			groups[name] = append(groups[name], mapOf(ev))
		}
	}
	addVar := func(u *Unit, ev map[string]any) {
		k, _ := ev["key"].(string)
		switch {
		case ev["sync"] == false, ev["generateValue"] == true, ev["fromDatabase"] != nil, ev["fromService"] != nil:
			u.Secrets[k] = true
		default:
			u.Env[k] = fmt.Sprint(ev["value"])
		}
	}
	var units []Unit
	for _, s := range docs[0]["services"].([]any) {
		sm := mapOf(s)
		if sm["runtime"] != "docker" {
			continue
		}
		name, _ := sm["name"].(string)
		cmd := strs(sm["dockerCommand"])
		if len(cmd) == 0 || cmd[0] != "/docpipe" {
			return nil, fmt.Errorf("service %s: dockerCommand must start with /docpipe, is %q", name, cmd)
		}
		u := Unit{Name: name, Args: cmd[1:], Env: map[string]string{}, Secrets: map[string]bool{}}
		if p, _ := sm["healthCheckPath"].(string); p != "" {
			u.Health = append(u.Health, Probe{Path: p})
		} else if sm["type"] == "web" {
			return nil, fmt.Errorf("web service %s has no healthCheckPath", name)
		}
		for _, ev := range sm["envVars"].([]any) {
			evm := mapOf(ev)
			if g, ok := evm["fromGroup"].(string); ok {
				vars, found := groups[g]
				if !found {
					return nil, fmt.Errorf("service %s: env var group %s is not defined", name, g)
				}
				for _, gv := range vars {
					addVar(&u, gv)
				}
				continue
			}
			addVar(&u, evm)
		}
		units = append(units, u)
		if pre := strs(sm["preDeployCommand"]); len(pre) > 0 {
			if pre[0] != "/docpipe" {
				return nil, fmt.Errorf("service %s: preDeployCommand must start with /docpipe", name)
			}
			pu := u
			pu.Name, pu.Args, pu.Health = name+" (preDeploy)", pre[1:], nil
			units = append(units, pu)
		}
	}
	return units, nil
}

// k8sUnits reads Deployments and Jobs running docpipe's image, and records ConfigMap and
// Secret keys for envFrom.
func k8sUnits(data []byte, configMaps, secrets map[string][]string) ([]Unit, error) {
	docs, err := decodeAll(data)
	if err != nil {
		return nil, err
	}
	var units []Unit
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		name, _ := mapOf(d["metadata"])["name"].(string)
		switch kind {
		case "ConfigMap":
			for k := range mapOf(d["data"]) {
				configMaps[name] = append(configMaps[name], k)
			}
			continue
		case "Secret":
			for _, field := range []string{"stringData", "data"} {
				for k := range mapOf(d[field]) {
					secrets[name] = append(secrets[name], k)
				}
			}
			continue
		case "Deployment", "Job", "StatefulSet", "CronJob":
		default:
			continue
		}
		pod := mapOf(mapOf(mapOf(d["spec"])["template"])["spec"])
		for _, c := range pod["containers"].([]any) {
			cm := mapOf(c)
			if img, _ := cm["image"].(string); !strings.Contains(img, "docpipe") {
				continue
			}
			cname, _ := cm["name"].(string)
			u := Unit{Name: kind + "/" + name + "/" + cname, Args: append(strs(cm["command"]), strs(cm["args"])...),
				Env: map[string]string{}, Secrets: map[string]bool{}}
			if len(u.Args) > 0 && u.Args[0] == "/docpipe" {
				u.Args = u.Args[1:]
			}
			for _, e := range asList(cm["env"]) {
				em := mapOf(e)
				k, _ := em["name"].(string)
				if vf := mapOf(em["valueFrom"]); vf != nil {
					u.Secrets[k] = vf["secretKeyRef"] != nil
					if vf["secretKeyRef"] == nil {
						u.Env[k] = ""
					}
				} else {
					u.Env[k] = fmt.Sprint(em["value"])
				}
			}
			for _, ef := range asList(cm["envFrom"]) {
				efm := mapOf(ef)
				if r := mapOf(efm["configMapRef"]); r != nil {
					u.EnvFromConfigMaps = append(u.EnvFromConfigMaps, fmt.Sprint(r["name"]))
				}
				if r := mapOf(efm["secretRef"]); r != nil {
					u.EnvFromSecrets = append(u.EnvFromSecrets, fmt.Sprint(r["name"]))
				}
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
				if hg := mapOf(mapOf(cm[probe])["httpGet"]); hg != nil {
					var port int
					_, _ = fmt.Sscanf(fmt.Sprint(hg["port"]), "%d", &port)
					u.Health = append(u.Health, Probe{Path: fmt.Sprint(hg["path"]), Port: port})
				}
			}
			if kind == "Deployment" && len(u.Health) < 2 {
				return nil, fmt.Errorf("%s needs readiness and liveness probes", u.Name)
			}
			units = append(units, u)
		}
	}
	return units, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// parseDockerfile reads the final stage's ENV, ENTRYPOINT, CMD and USER.
func parseDockerfile(s string) (env map[string]string, entry, cmd []string, user string) {
	env = map[string]string{}
	// Join continuation lines.
	s = strings.ReplaceAll(s, "\\\n", " ")
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(word) {
		case "FROM": // a new stage: only the last one counts
			env, entry, cmd, user = map[string]string{}, nil, nil, ""
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = v
				}
			}
		case "ENTRYPOINT":
			entry = execForm(rest)
		case "CMD":
			cmd = execForm(rest)
		case "USER":
			user = rest
		}
	}
	return env, entry, cmd, user
}

func execForm(s string) []string {
	var out []string
	if json.Unmarshal([]byte(s), &out) == nil {
		return out
	}
	return strings.Fields(s)
}
