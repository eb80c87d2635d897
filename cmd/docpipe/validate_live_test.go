package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/dbtest"
)

type validateOutput struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Fix    string `json:"fix"`
	} `json:"checks"`
}

// verdicts maps check names to PASS/FAIL (a name seen failing once stays FAIL).
func (v validateOutput) verdicts() map[string]bool {
	out := map[string]bool{}
	for _, c := range v.Checks {
		if ok, seen := out[c.Name]; !seen || ok {
			out[c.Name] = c.OK
		}
	}
	return out
}

// `docpipe validate env` against a stack like `make run`'s: the three twins
// holding their own keys, Supabase-style storage, the API with a worker. Every
// check passes. Then the same environment with an unreachable store, refused
// credentials and another webhook secret fails exactly those checks, by name.
func TestValidateEnvAgainstLiveStack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lp := startTwin(t, ctx, "llamaparse", "--api-key", "llx-env")
	oai := startTwin(t, ctx, "openai", "--api-key", "sk-env")
	blobs := startTwin(t, ctx, "storage", "--api-key", "service-key-env")
	port := freePort(t)
	c := newCLI(t, "DOCPIPE_PARSER=llamaparse", "LLAMAPARSE_BASE_URL="+lp, "LLAMA_CLOUD_API_KEY=llx-env",
		"DOCPIPE_EMBED_PROVIDER=openai", "OPENAI_BASE_URL="+oai+"/v1", "OPENAI_API_KEY=sk-env",
		"DOCPIPE_STORAGE=supabase", "SUPABASE_URL="+blobs+"/storage/v1", "SUPABASE_SERVICE_ROLE_KEY=service-key-env",
		fmt.Sprintf("DOCPIPE_PUBLIC_URL=http://127.0.0.1:%d", port), "DOCPIPE_WEBHOOK_SECRET=env-webhook-secret-0123456789")
	startServe(t, ctx, c, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--with-worker")
	for c.scalar(`SELECT count(*) FROM upload_pipeline.workers WHERE stopped_at IS NULL`) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the worker never sent a heartbeat")
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, errOut, code := c.run("validate", "env")
	if code != 0 {
		t.Fatalf("validate env on a working stack: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, name := range []string{"config", "postgres", "pgvector", "migrations", "schema drift", "blob store", "llamaparse", "openai", "webhook route", "workers"} {
		if !strings.Contains(out, "PASS  env: "+name+": ") {
			t.Errorf("no PASS line for %s:\n%s", name, out)
		}
	}
	t.Logf("validate env:\n%s", out)
	if strings.Contains(out, "skipped") || !strings.Contains(out, "supabase bucket") || !strings.Contains(out, "1 live") {
		t.Errorf("validate env output:\n%s", out)
	}
	if n := c.scalar(`SELECT count(*) FROM upload_pipeline.webhook_log`); n != 0 {
		t.Errorf("the webhook probe recorded %d deliveries, want none", n)
	}

	bad := &cli{t: t, db: c.db, env: append(slices.Clone(c.env),
		"SUPABASE_URL=http://127.0.0.1:1/storage/v1", // nothing listens on port 1
		"OPENAI_API_KEY=sk-revoked", "LLAMA_CLOUD_API_KEY=llx-revoked", "DOCPIPE_WEBHOOK_SECRET=another-secret-0123456789abcdef")}
	text, _, _ := bad.run("validate", "env")
	t.Logf("validate env, broken:\n%s", text)
	out, errOut, code = bad.run("validate", "env", "--json")
	var rep validateOutput
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK {
		t.Fatalf("validate env --json on a broken environment: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	want := map[string]bool{"env: config": true, "env: postgres": true, "env: pgvector": true, "env: migrations": true,
		"env: schema drift": true, "env: blob store": false, "env: llamaparse": false, "env: openai": false,
		"env: webhook route": false, "env: workers": true}
	if got := rep.verdicts(); !maps.Equal(got, want) {
		t.Errorf("verdicts %v, want %v\n%s", got, want, out)
	}
	for _, ch := range rep.Checks {
		if !ch.OK && ch.Fix == "" {
			t.Errorf("%s failed without a fix: %s", ch.Name, ch.Reason)
		}
		if ch.Name == "env: openai" && !strings.Contains(ch.Reason, "credential refused") ||
			ch.Name == "env: llamaparse" && !strings.Contains(ch.Reason, "credential refused") {
			t.Errorf("%s: %s", ch.Name, ch.Reason)
		}
		if strings.Contains(ch.Reason+ch.Fix, "revoked") || strings.Contains(ch.Reason+ch.Fix, "secret-0123") {
			t.Errorf("%s printed a secret: %s %s", ch.Name, ch.Reason, ch.Fix)
		}
	}
}

// `docpipe validate db` passes on a migrated database and names a dropped index
// with the SQL that restores it.
func TestValidateDB(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.mustRun("validate", "db")
	if !strings.Contains(out, "PASS  db: schema drift: none") || !strings.Contains(out, "PASS  db: migrations: at head") {
		t.Fatalf("validate db on a fresh database:\n%s", out)
	}
	_, err := c.db.Exec(context.Background(), `DROP INDEX upload_pipeline.ix_documents_parsed_sha`)
	dbtest.Must(t, err, "drop index")
	out, _, code := c.run("validate", "db")
	if code != 1 || !strings.Contains(out, "FAIL  db: schema drift: index upload_pipeline.ix_documents_parsed_sha missing") ||
		!strings.Contains(out, "CREATE INDEX ix_documents_parsed_sha ON upload_pipeline.documents USING btree (user_id, parsed_sha256) WHERE (parsed_sha256 IS NOT NULL);") {
		t.Fatalf("validate db after dropping an index: exit %d\n%s", code, out)
	}
	sql, _, code := c.run("validate", "db", "--sql")
	if code != 1 || !strings.HasPrefix(sql, "-- index upload_pipeline.ix_documents_parsed_sha missing\nCREATE INDEX") {
		t.Fatalf("validate db --sql: exit %d\n%s", code, sql)
	}
}
