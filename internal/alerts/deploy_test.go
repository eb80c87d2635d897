package alerts_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river/rivertype"
	"go.yaml.in/yaml/v3"

	"github.com/docpipe/docpipe/internal/alerts"
	"github.com/docpipe/docpipe/internal/dbtest"
	"github.com/docpipe/docpipe/internal/metrics"
	"github.com/docpipe/docpipe/internal/runstate"
)

const (
	promDir   = "../../deploy/prometheus"
	dashboard = "../../deploy/grafana/docpipe.json"
	runbook   = "../../docs/RUNBOOK.md"
)

// promtool checks the rules and the Prometheus config, and runs the rules' unit
// tests (alerts_test.yml). scripts/bootstrap installs promtool (scripts/install-promtool).
func TestPrometheusRulesWithPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("DOCPIPE_SKIP_PROMTOOL") == "1" {
			t.Skip("promtool not installed; DOCPIPE_SKIP_PROMTOOL=1")
		}
		t.Fatal("promtool is not installed: run scripts/install-promtool (scripts/bootstrap does), " +
			"or set DOCPIPE_SKIP_PROMTOOL=1 to skip checking deploy/prometheus/alerts.yml")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = promDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(promDir, "alerts.yml"))
	dbtest.Must(t, err, "read alerts.yml")
	var rf ruleFile
	dbtest.Must(t, yaml.Unmarshal(b, &rf), "parse alerts.yml")
	return rf
}

// alerts.yml has the engine's rules: same names, severities and runbook anchors;
// docs/RUNBOOK.md has a section for each.
func TestRulesFileMatchesEngineAndRunbook(t *testing.T) {
	t.Parallel()
	rf := readRules(t)
	got := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			got[r.Alert] = r.Labels["severity"]
			if want := "docs/RUNBOOK.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
	rb, err := os.ReadFile(runbook)
	dbtest.Must(t, err, "read RUNBOOK.md")
	headings := map[string]bool{}
	for _, line := range strings.Split(string(rb), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	// Rules only the engine evaluates, and why Prometheus cannot.
	engineOnly := map[string]string{
		alerts.SchemaDrift: "drift compares the live catalog with the migrations' own; it is not a metric",
	}
	for _, r := range alerts.Rules {
		if _, ok := engineOnly[r.Name]; ok {
			if _, inFile := got[r.Name]; inFile {
				t.Errorf("alerts.yml has %s, which only the engine evaluates", r.Name)
			}
		} else if sev, ok := got[r.Name]; !ok {
			t.Errorf("alerts.yml has no rule %s", r.Name)
		} else if sev != r.Severity {
			t.Errorf("alerts.yml: %s has severity %s, the engine %s", r.Name, sev, r.Severity)
		}
		if !headings[r.Name] {
			t.Errorf("docs/RUNBOOK.md has no section \"## %s\" (the anchor #%s the alert points to)", r.Name, strings.ToLower(r.Name))
		}
		delete(got, r.Name)
	}
	for name := range got {
		t.Errorf("alerts.yml has %s, which the engine does not know", name)
	}
}

var stuckBranch = regexp.MustCompile(`docpipe_documents_oldest_unchanged_seconds\{status(=|=~|!~)"([^"]*)"\}\) > (\d+)`)

// alerts.yml's DocpipeDocumentStuck gives every active status of the vocabulary
// exactly one deadline, the engine's (a new status falls into the default branch).
func TestRulesFileStatusDeadlinesMatchEngine(t *testing.T) {
	t.Parallel()
	var expr string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == alerts.DocumentStuck {
				expr = r.Expr
			}
		}
	}
	branches := stuckBranch.FindAllStringSubmatch(expr, -1)
	if len(branches) == 0 {
		t.Fatalf("no status branches in %s: %q", alerts.DocumentStuck, expr)
	}
	for _, st := range runstate.ActiveStatuses() {
		var deadlines []time.Duration
		for _, b := range branches {
			full := regexp.MustCompile("^(?:" + b[2] + ")$").MatchString(string(st))
			if (b[1] == "=" && b[2] == string(st)) || (b[1] == "=~" && full) || (b[1] == "!~" && !full) {
				secs, _ := strconv.Atoi(b[3])
				deadlines = append(deadlines, time.Duration(secs)*time.Second)
			}
		}
		if want := alerts.DefaultStatusDeadlines[st]; len(deadlines) != 1 || deadlines[0] != want {
			t.Errorf("alerts.yml gives status %s the deadlines %v, the engine %s", st, deadlines, want)
		}
	}
}

var metricName = regexp.MustCompile(`\bdocpipe_[a-z_]+\b`)

// The dashboard is valid JSON with a query on every panel, and the dashboard and the
// rules only use metrics docpipe exports.
func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.Pool(t)
	// Give every in-process metric a sample so it is exported.
	metrics.ObserveExternalCall("deploy-test", metrics.OutcomeOK, 200, time.Millisecond)
	metrics.SetBreakerState("deploy-test", "closed")
	metrics.SetRateLimitRemaining("deploy-test", "requests", 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("x-ratelimit-remaining-requests", "10")
	}))
	resp, err := (&http.Client{Transport: metrics.Transport("deploy-test", nil)}).Get(srv.URL)
	dbtest.Must(t, err, "GET through the transport")
	resp.Body.Close()
	srv.Close()
	mw := metrics.RiverMiddleware().(rivertype.WorkerMiddleware)
	_ = mw.Work(context.Background(), &rivertype.JobRow{Kind: "docpipe.parse", Errors: []rivertype.AttemptError{{Error: "Stuck job rescued by JobRescuer"}}},
		func(context.Context) error { return nil })
	// And give the database-derived ones that only exist with data some data.
	execSQL(t, pool, `INSERT INTO upload_pipeline.usage_daily (day, service, tokens, pages, cost_usd) VALUES (current_date, 'openai', 10, 1, 0.1)`)
	execSQL(t, pool, `INSERT INTO upload_pipeline.workers (worker_id, hostname, pid, breakers) VALUES ('w1', 'h', 1, '{"openai": "closed"}')`)
	execSQL(t, pool, `INSERT INTO upload_pipeline.events (event_id, type, stage, severity, code) VALUES (gen_random_uuid(), 'retry', 'embed', 'warn', 'UPSTREAM_503')`)
	m := metrics.New(pool, metrics.Options{Budgets: map[string]float64{"openai": 1}, StorageCheck: func(context.Context) error { return nil }})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	dbtest.Must(t, err, "parse /metrics")
	exported := map[string]bool{}
	for name, f := range fams {
		exported[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		}
	}

	check := func(where, expr string) {
		for _, name := range metricName.FindAllString(expr, -1) {
			if !exported[name] {
				t.Errorf("%s uses %s, which docpipe does not export", where, name)
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			check("alerts.yml "+r.Alert, r.Expr)
		}
	}

	b, err := os.ReadFile(dashboard)
	dbtest.Must(t, err, "read dashboard")
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				W, H int
			} `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dbtest.Must(t, json.Unmarshal(b, &dash), "parse dashboard")
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels")
	}
	var ids []int
	var titles []string
	for _, p := range dash.Panels {
		ids = append(ids, p.ID)
		titles = append(titles, p.Title)
		if p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no size", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != len(dash.Panels) {
		t.Error("dashboard panel ids are not unique")
	}
	for _, want := range []string{"Documents by status", "Throughput", "Upload → complete", "Retries and dead letters / min", "Queue depth (waiting jobs)", "Cost today vs budget"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard has no panel %q", want)
		}
	}
}
