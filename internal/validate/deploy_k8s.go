package validate

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/docpipe/docpipe/internal/config"
)

// k8sDecoder decodes manifests into typed objects, strictly: a misspelt field
// (readinesProbe) is an error, as `kubectl apply` reports it, not silently dropped.
var k8sDecoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // the scheme is built from the types above; this cannot fail
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// workload is an object with a pod template.
type workload struct {
	kind, name, file string
	meta             metav1.ObjectMeta
	pod              *corev1.PodSpec
	labels           map[string]string
	selector         *metav1.LabelSelector
	replicas         int
	maxReplicas      int
}

func (w *workload) id() string { return w.kind + "/" + w.name }

// k8sSecret is a Secret manifest: a template (*.example.yaml) or a committed Secret.
type k8sSecret struct {
	file    string
	example bool
	values  map[string]string
}

type k8sConfigMap struct {
	file string
	data map[string]string
}

// placeholder is how a Secret template marks a value to fill in.
const placeholder = "CHANGE-ME"

// loadKubernetes reads a folder of manifests.
func (d *deployRun) loadKubernetes(t target) loaded {
	l := loaded{images: map[string]string{}, separate: "run in separate pods"}
	var problems []string
	configMaps := map[string]k8sConfigMap{}
	secrets := map[string]k8sSecret{}
	var workloads []*workload
	var services []*corev1.Service
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	var pdbs []*policyv1.PodDisruptionBudget
	var ignored []string
	nobj := 0
	for _, f := range t.files {
		rel := d.rel(f)
		data, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, rel+": "+err.Error())
			continue
		}
		docs, err := splitYAML(data)
		if err != nil {
			problems = append(problems, rel+": "+err.Error())
			continue
		}
		for _, doc := range docs {
			obj, gvk, err := k8sDecoder.Decode(doc, nil, nil)
			switch {
			case runtime.IsNotRegisteredError(err):
				ignored = append(ignored, rel+": "+gvk.Kind)
				continue
			case err != nil && runtime.IsStrictDecodingError(err) && obj != nil:
				problems = append(problems, fmt.Sprintf("%s: %s: %v", rel, gvk.Kind, err))
			case err != nil:
				problems = append(problems, rel+": "+err.Error())
				continue
			}
			nobj++
			w := &workload{file: rel, kind: gvk.Kind, replicas: 1}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				configMaps[o.Name] = k8sConfigMap{file: rel, data: o.Data}
			case *corev1.Secret:
				s := k8sSecret{file: rel, example: strings.Contains(filepath.Base(rel), ".example."), values: map[string]string{}}
				for k, v := range o.StringData {
					s.values[k] = v
				}
				for k, v := range o.Data {
					s.values[k] = string(v)
				}
				secrets[o.Name] = s
			case *corev1.Service:
				services = append(services, o)
			case *autoscalingv2.HorizontalPodAutoscaler:
				hpas = append(hpas, o)
			case *policyv1.PodDisruptionBudget:
				pdbs = append(pdbs, o)
			case *appsv1.Deployment:
				w.name, w.meta, w.pod, w.labels, w.selector = o.Name, o.ObjectMeta, &o.Spec.Template.Spec, o.Spec.Template.Labels, o.Spec.Selector
				if o.Spec.Replicas != nil {
					w.replicas = int(*o.Spec.Replicas)
				}
			case *appsv1.StatefulSet:
				w.name, w.meta, w.pod, w.labels, w.selector = o.Name, o.ObjectMeta, &o.Spec.Template.Spec, o.Spec.Template.Labels, o.Spec.Selector
				if o.Spec.Replicas != nil {
					w.replicas = int(*o.Spec.Replicas)
				}
			case *appsv1.DaemonSet:
				w.name, w.meta, w.pod, w.labels, w.selector = o.Name, o.ObjectMeta, &o.Spec.Template.Spec, o.Spec.Template.Labels, o.Spec.Selector
			case *batchv1.Job:
				w.name, w.meta, w.pod, w.labels = o.Name, o.ObjectMeta, &o.Spec.Template.Spec, o.Spec.Template.Labels
			case *batchv1.CronJob:
				w.name, w.meta, w.pod, w.labels = o.Name, o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, o.Spec.JobTemplate.Spec.Template.Labels
				w.replicas = 0 // runs on a schedule, not all the time
			}
			if w.pod != nil {
				w.maxReplicas = w.replicas
				workloads = append(workloads, w)
			}
		}
	}
	filesCheck := Pass(t.name+": files", fmt.Sprintf("%d objects in %d files, decoded strictly as typed Kubernetes objects", nobj, len(t.files)))
	if len(ignored) > 0 {
		filesCheck.Reason += " (not checked: " + strings.Join(ignored, ", ") + ")"
	}
	if len(problems) > 0 {
		filesCheck = Fail(t.name+": files", strings.Join(problems, "; "), "fix the manifests: `kubectl apply` rejects (or silently ignores) what is wrong here")
	}
	l.checks = append(l.checks, filesCheck)

	// Autoscalers set the replicas of what they target.
	var refs []string
	for _, h := range hpas {
		var target *workload
		for _, w := range workloads {
			if w.kind == h.Spec.ScaleTargetRef.Kind && w.name == h.Spec.ScaleTargetRef.Name {
				target = w
			}
		}
		if target == nil {
			refs = append(refs, fmt.Sprintf("HorizontalPodAutoscaler %s scales %s/%s, which is not in %s", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, t.name))
			continue
		}
		minR := 1
		if h.Spec.MinReplicas != nil {
			minR = int(*h.Spec.MinReplicas)
		}
		target.replicas = max(target.replicas, minR)
		target.maxReplicas = max(target.replicas, int(h.Spec.MaxReplicas))
	}

	df := d.dockerfile(d.abs(d.opts.Dockerfile))
	var missingRequests []string
	for _, w := range workloads {
		if w.selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			if err != nil || !sel.Matches(labels.Set(w.labels)) {
				refs = append(refs, fmt.Sprintf("%s (%s): spec.selector does not match the pod template's labels (the API server rejects it)", w.id(), w.file))
			}
		}
		d.k8sUnits(w, df, configMaps, secrets, &l, &missingRequests)
	}
	for _, p := range pdbs {
		if !selectsAny(p.Spec.Selector, workloads) {
			refs = append(refs, fmt.Sprintf("PodDisruptionBudget %s selects no pod template in %s", p.Name, t.name))
		}
	}
	l.checks = append(l.checks, d.k8sServices(t, services, workloads, l.units))
	if len(refs) > 0 {
		l.checks = append(l.checks, Fail(t.name+": references", strings.Join(refs, "; "), "make selectors, scale targets and names match the objects they refer to"))
	} else {
		l.checks = append(l.checks, Pass(t.name+": references", "selectors match their pod templates; autoscalers and disruption budgets target existing workloads"))
	}
	if len(missingRequests) > 0 {
		l.checks = append(l.checks, Fail(t.name+": resource requests", strings.Join(missingRequests, "; ")+
			": the scheduler packs pods as if they needed nothing, and the autoscalers' CPU utilization has nothing to divide by",
			"set resources.requests.cpu and resources.requests.memory on every container, init containers included"))
	} else {
		l.checks = append(l.checks, Pass(t.name+": resource requests", "every container sets CPU and memory requests"))
	}

	// Migrations: an initContainer in the pod, or a Helm pre-install/pre-upgrade hook
	// Job, orders them before the app; a plain Job does not.
	for _, u := range l.units {
		if !u.app() {
			continue
		}
		for _, m := range l.units {
			if m.workload == u.workload && m.initOf && m.has(RoleMigrate) {
				u.ordered = "initContainers run `docpipe migrate up` to completion before each API and worker pod starts"
			}
		}
		for _, w := range workloads {
			if hook := w.meta.Annotations["helm.sh/hook"]; w.kind == "Job" && strings.Contains(hook, "pre-install") && strings.Contains(hook, "pre-upgrade") {
				for _, m := range l.units {
					if m.workload == w.id() && m.has(RoleMigrate) {
						u.ordered = fmt.Sprintf("%s is a Helm pre-install,pre-upgrade hook: Helm runs it to completion before the release's Deployments change", w.id())
					}
				}
			}
		}
	}

	// Secrets outside the processes' env: a ConfigMap holding one, a committed Secret.
	for _, name := range sortedKeys(configMaps) {
		cm := configMaps[name]
		for _, k := range sortedKeys(cm.data) {
			if v, ok := config.Lookup(k); ok && v.Secret {
				l.inlineSecrets = append(l.inlineSecrets, fmt.Sprintf("ConfigMap %s (%s) holds %s, a secret setting, in plain text", name, cm.file, k))
			}
		}
	}
	for _, name := range sortedKeys(secrets) {
		s := secrets[name]
		for _, k := range sortedKeys(s.values) {
			v := s.values[k]
			switch {
			case v == "" || strings.Contains(v, placeholder):
			case s.example:
				l.inlineSecrets = append(l.inlineSecrets, fmt.Sprintf("the template Secret %s (%s) has a value for %s that is not a %s placeholder", name, s.file, k, placeholder))
			default:
				l.inlineSecrets = append(l.inlineSecrets, fmt.Sprintf("Secret %s (%s) commits a value for %s", name, s.file, k))
			}
		}
	}
	where := "in the ConfigMap every API and worker reads"
	for _, u := range l.apps() {
		if cm := u.envFromConfigMap; cm != "" {
			where = "in ConfigMap " + cm + " (" + configMaps[cm].file + ")"
			break
		}
	}
	l.storageFix = where + ", with SUPABASE_URL there and SUPABASE_SERVICE_ROLE_KEY in the Secret (or S3_BUCKET and S3_ENDPOINT " +
		"there and S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY in the Secret); or mount one ReadWriteMany PersistentVolumeClaim at " +
		"DOCPIPE_DATA_DIR (/data) in every API and worker pod"
	return l
}

// k8sUnits turns the docpipe containers of a workload into units, and notes the
// images and requests of all of its containers.
func (d *deployRun) k8sUnits(w *workload, df *dockerfile, configMaps map[string]k8sConfigMap, secrets map[string]k8sSecret, l *loaded, missingRequests *[]string) {
	vols := map[string]corev1.Volume{}
	for _, v := range w.pod.Volumes {
		vols[v.Name] = v
	}
	grace, graceFrom := 30*time.Second, "terminationGracePeriodSeconds (not set: 30)"
	if w.pod.TerminationGracePeriodSeconds != nil {
		grace, graceFrom = time.Duration(*w.pod.TerminationGracePeriodSeconds)*time.Second, "terminationGracePeriodSeconds"
	}
	containers := func(kind string, cs []corev1.Container) {
		for _, c := range cs {
			where := fmt.Sprintf("%s: %s %s %s", w.file, w.id(), kind, c.Name)
			l.images[where] = c.Image
			req := c.Resources.Requests
			if req.Cpu().IsZero() || req.Memory().IsZero() {
				*missingRequests = append(*missingRequests, strings.TrimPrefix(where, w.file+": ")+" ("+w.file+") has no CPU or memory request")
			}
			if !docpipeImage(c.Image) {
				continue
			}
			u := &unit{file: w.file, name: w.id() + " " + kind + " " + c.Name, workload: w.id(), image: c.Image,
				replicas: w.replicas, maxReplicas: w.maxReplicas, initOf: kind == "initContainer", grace: grace, graceFrom: graceFrom,
				env: map[string]envVar{}, ports: map[string]int{}}
			argv := c.Command
			if len(argv) == 0 {
				argv = df.final().entrypoint
				if len(c.Args) == 0 {
					argv = append(slices.Clone(argv), df.final().cmd...)
				}
			}
			u.argv = append(slices.Clone(argv), c.Args...)
			d.parseArgv(u, df.binary())
			for _, p := range c.Ports {
				if p.Name != "" {
					u.ports[p.Name] = int(p.ContainerPort)
				}
			}
			k8sEnv(u, c, df, configMaps, secrets)
			for _, vm := range c.VolumeMounts {
				u.mounts = append(u.mounts, k8sMount(w, vols[vm.Name], vm))
			}
			for _, p := range []struct {
				what string
				p    *corev1.Probe
			}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
				if p.p != nil {
					u.probes = append(u.probes, k8sProbe(p.what, p.p, u, df.binary()))
				}
			}
			if !u.initOf && u.app() && (w.kind == "Deployment" || w.kind == "StatefulSet" || w.kind == "DaemonSet") {
				u.needsProbe = "readinessProbe,livenessProbe"
			}
			l.units = append(l.units, u)
		}
	}
	containers("initContainer", w.pod.InitContainers)
	containers("container", w.pod.Containers)
}

// k8sEnv builds a container's environment the way the kubelet does: the image's ENV,
// then envFrom sources in order, then env entries.
func k8sEnv(u *unit, c corev1.Container, df *dockerfile, configMaps map[string]k8sConfigMap, secrets map[string]k8sSecret) {
	for k, v := range df.final().env {
		u.env[k] = envVar{Value: v, From: "image ENV in " + df.name}
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			name := ef.ConfigMapRef.Name
			cm, ok := configMaps[name]
			if !ok {
				if ef.ConfigMapRef.Optional == nil || !*ef.ConfigMapRef.Optional {
					u.refErrs = append(u.refErrs, "envFrom ConfigMap "+name+" is not defined here: the pod would not start (CreateContainerConfigError)")
				}
				continue
			}
			if u.envFromConfigMap == "" {
				u.envFromConfigMap = name
			}
			for k, v := range cm.data {
				u.env[ef.Prefix+k] = envVar{Value: v, From: "ConfigMap " + name, Inline: true, File: cm.file}
			}
		case ef.SecretRef != nil:
			name := ef.SecretRef.Name
			s, ok := secrets[name]
			if !ok {
				u.refErrs = append(u.refErrs, "envFrom Secret "+name+" has no template here (a Secret in a *.example.yaml file): which keys it supplies is unknown")
				continue
			}
			for k := range s.values {
				u.env[ef.Prefix+k] = envVar{Value: standIn(ef.Prefix + k), From: "Secret " + name, Same: "secret:" + name + "/" + k, Supplied: true}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			u.env[e.Name] = envVar{Value: e.Value, From: "env in " + u.file, Inline: true, File: u.file}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := configMaps[ref.Name]
			v, has := cm.data[ref.Key]
			if !ok || !has {
				if ref.Optional == nil || !*ref.Optional {
					u.refErrs = append(u.refErrs, fmt.Sprintf("%s: ConfigMap %s has no key %s: the pod would not start", e.Name, ref.Name, ref.Key))
				}
				continue
			}
			u.env[e.Name] = envVar{Value: v, From: "ConfigMap " + ref.Name + " key " + ref.Key, Inline: true, File: cm.file}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := secrets[ref.Name]
			if _, has := s.values[ref.Key]; !ok || !has {
				if ref.Optional == nil || !*ref.Optional {
					u.refErrs = append(u.refErrs, fmt.Sprintf("%s: Secret %s has no key %s in its template here: the pod would not start", e.Name, ref.Name, ref.Key))
				}
				continue
			}
			u.env[e.Name] = envVar{Value: standIn(e.Name), From: "Secret " + ref.Name + " key " + ref.Key, Same: "secret:" + ref.Name + "/" + ref.Key, Supplied: true}
		default: // fieldRef, resourceFieldRef: the pod's own values
			u.env[e.Name] = envVar{Value: standIn(e.Name), From: "the pod's own fields", Same: "field:" + u.name + "/" + e.Name, Supplied: true}
		}
	}
}

// k8sMount says whether a mounted volume is shared between pods.
func k8sMount(w *workload, v corev1.Volume, vm corev1.VolumeMount) mount {
	m := mount{Path: vm.MountPath}
	switch {
	case v.PersistentVolumeClaim != nil:
		m.Shared = "PersistentVolumeClaim " + v.PersistentVolumeClaim.ClaimName
	case v.NFS != nil:
		m.Shared = "NFS " + v.NFS.Server + ":" + v.NFS.Path
	case v.EmptyDir != nil && w.maxReplicas <= 1:
		// An emptyDir is shared by the containers of one pod, so only one replica works.
		m.Shared = "emptyDir " + v.Name + " of the one " + w.id() + " pod"
	}
	return m
}

// k8sProbe reads a probe: an HTTP GET, a TCP check, or `docpipe probe URL` run inside
// the container.
func k8sProbe(what string, p *corev1.Probe, u *unit, binary string) probe {
	pr := probe{What: what}
	switch {
	case p.HTTPGet != nil:
		pr.Path = p.HTTPGet.Path
		pr.Port, pr.Bad = containerPort(p.HTTPGet.Port, u.ports)
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			pr.Bad = "scheme HTTPS, and docpipe serves plain HTTP"
		}
		if p.HTTPGet.Host != "" {
			pr.Bad = "host " + p.HTTPGet.Host + ": the kubelet would probe that host, not the pod"
		}
	case p.TCPSocket != nil:
		pr.Port, pr.Bad = containerPort(p.TCPSocket.Port, u.ports)
	case p.Exec != nil:
		pr.Inside = true
		pr.Path, pr.Port, pr.Bad = probeCommand(p.Exec.Command, binary)
	default:
		pr.Bad = "not an HTTP, TCP or `docpipe probe` check; docpipe serves plain HTTP"
	}
	return pr
}

// containerPort resolves a probe's or Service's port: a number, or a container port name.
func containerPort(p intstr.IntOrString, named map[string]int) (int, string) {
	if p.Type == intstr.Int {
		return p.IntValue(), ""
	}
	if n, ok := named[p.StrVal]; ok {
		return n, ""
	}
	return 0, "port " + strconv.Quote(p.StrVal) + " is not a named port of the container"
}

// probeCommand reads `/docpipe probe URL` (a container health check run inside it).
func probeCommand(cmd []string, binary string) (path string, port int, bad string) {
	if len(cmd) < 3 || cmd[0] != binary || cmd[1] != "probe" {
		return "", 0, fmt.Sprintf("runs %q, and the image has no shell or curl: use [%q, \"probe\", \"http://127.0.0.1:PORT/readyz\"]", strings.Join(cmd, " "), binary)
	}
	raw := cmd[len(cmd)-1]
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return "", 0, "probe URL " + raw + " is not an http:// URL"
	}
	if !loopback(u.Hostname()) && u.Hostname() != "0.0.0.0" {
		return "", 0, "probe URL " + raw + " checks " + u.Hostname() + ", not this container (use 127.0.0.1)"
	}
	port, _ = strconv.Atoi(u.Port())
	if port == 0 {
		port = 80
	}
	return u.Path, port, ""
}

// selectsAny reports whether a selector matches one of the workloads' pod templates.
func selectsAny(sel *metav1.LabelSelector, ws []*workload) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return slices.ContainsFunc(ws, func(w *workload) bool { return s.Matches(labels.Set(w.labels)) })
}

// k8sServices checks that each Service reaches a port the API listens on, from outside
// the container.
func (d *deployRun) k8sServices(t target, services []*corev1.Service, ws []*workload, units []*unit) Check {
	name := t.name + ": Service ports"
	var bad, good []string
	for _, s := range services {
		if len(s.Spec.Selector) == 0 {
			continue // an external endpoint, not ours to check
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched []*unit
		for _, w := range ws {
			if !sel.Matches(labels.Set(w.labels)) {
				continue
			}
			for _, u := range units {
				if u.workload == w.id() && !u.initOf && u.invErr == nil {
					matched = append(matched, u)
				}
			}
		}
		if len(matched) == 0 {
			bad = append(bad, "Service "+s.Name+" selects no docpipe pod in "+t.name)
			continue
		}
		for _, sp := range s.Spec.Ports {
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			for _, u := range matched {
				port, why := containerPort(tp, u.ports)
				if why != "" {
					bad = append(bad, fmt.Sprintf("Service %s port %d → %s: %s", s.Name, sp.Port, u.name, why))
					continue
				}
				var l *listener
				for _, x := range listeners(u.inv) {
					if x.Port == port {
						l = &x
					}
				}
				switch {
				case l == nil:
					bad = append(bad, fmt.Sprintf("Service %s port %d → %s port %d: nothing listens there (%s)", s.Name, sp.Port, u.name, port, describeListeners(u.inv, listeners(u.inv))))
				case loopback(l.Host):
					bad = append(bad, fmt.Sprintf("Service %s port %d → %s: %s %s:%d accepts connections from inside the container only", s.Name, sp.Port, u.name, l.Flag, l.Host, l.Port))
				default:
					good = append(good, fmt.Sprintf("Service %s port %d → %s %s:%d", s.Name, sp.Port, l.Flag, l.Host, l.Port))
				}
			}
		}
	}
	if len(bad) > 0 {
		return Fail(name, strings.Join(bad, "; "), "point targetPort at the port of `serve --addr 0.0.0.0:PORT`")
	}
	if len(good) == 0 {
		return Pass(name, "no Service selects docpipe pods")
	}
	return Pass(name, strings.Join(good, "; "))
}

// standIn is a value that passes config.Load for a variable whose real value is
// supplied at deploy time (a Secret, a prompt, a generated value): its default, or a
// valid value of its kind.
func standIn(name string) string {
	v, ok := config.Lookup(name)
	switch {
	case !ok:
		return "supplied-at-deploy-time"
	case v.Default != "":
		return v.Default
	case v.Kind == "url":
		return "postgres://supplied:supplied@supplied.invalid:5432/supplied"
	case v.Kind == "uuid":
		return "00000000-0000-4000-8000-000000000000"
	case v.Kind == "bool":
		return "false"
	case v.Kind == "int" || v.Kind == "duration" || v.Kind == "bytes" || v.Kind == "usd":
		if v.Min != "" {
			return v.Min
		}
		return map[string]string{"int": "1", "duration": "1s", "bytes": "1", "usd": "0"}[v.Kind]
	case strings.HasPrefix(v.Kind, "enum:"):
		opt, _, _ := strings.Cut(strings.TrimPrefix(v.Kind, "enum:"), "|")
		return opt
	}
	return "supplied-at-deploy-time-0123456789abcdef" // long enough for the 32-byte minimums
}
