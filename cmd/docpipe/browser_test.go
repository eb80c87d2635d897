package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/docpipe/docpipe/internal/dbtest"
)

// chromium finds the browser the dashboard test drives: $DOCPIPE_CHROMIUM, or
// chromium on PATH (scripts/bootstrap installs Debian's). Missing, the test fails
// rather than skip, so CI cannot go green without it; DOCPIPE_SKIP_BROWSER=1 skips.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("DOCPIPE_SKIP_BROWSER") == "1" {
		t.Skip("DOCPIPE_SKIP_BROWSER=1")
	}
	for _, c := range []string{os.Getenv("DOCPIPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: run scripts/bootstrap (it installs Debian's chromium), set DOCPIPE_CHROMIUM, or DOCPIPE_SKIP_BROWSER=1 to skip")
	return ""
}

// The operator dashboard in a real browser, against real processes (`docpipe serve`,
// then `docpipe worker`): sign in with an admin key; with documents waiting and no
// worker, the "no live worker" alert appears in the banner; an admin cancels one
// run from the page (it is dead-lettered); a worker starts and the other document
// moves to complete on the page without a reload; its timeline and chunks open;
// Retry on the dead letter brings that run to complete too; River UI opens under
// /riverui/ with the sign-in cookie. Screenshots of the overview and the timeline
// go to $DOCPIPE_SCREENSHOTS (make screenshots writes docs/img/).
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	c := newCLI(t, "DOCPIPE_BUDGET_OPENAI_USD=5", "DOCPIPE_BUDGET_LLAMAPARSE_USD=20")
	key := strings.TrimSpace(strings.SplitN(c.mustRun("keys", "create", "--name", "ops", "--admin"), "\n", 2)[0])
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	base := startServe(t, ctx, c)
	c.mustRun("ingest", "--no-work", "--no-wait", "../../samples/sample-policy.pdf", "../../samples/faq.html")
	var keepID, cancelID, cancelJob string
	dbtest.Must(t, c.db.QueryRow(ctx, `SELECT d.document_id::text FROM upload_pipeline.documents d WHERE d.filename = 'sample-policy.pdf'`).Scan(&keepID), "document")
	dbtest.Must(t, c.db.QueryRow(ctx, `SELECT d.document_id::text, j.job_id::text FROM upload_pipeline.documents d
		JOIN upload_pipeline.upload_jobs j USING (document_id) WHERE d.filename = 'faq.html'`).Scan(&cancelID, &cancelJob), "document")

	shots := os.Getenv("DOCPIPE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	dbtest.Must(t, os.MkdirAll(shots, 0o755), "screenshot folder")
	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()))...)
	defer stopAlloc()
	bctx, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) bool {
		t.Helper()
		ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return ok
	}
	// waitPage polls a condition in the page, as a person watching it would.
	waitPage := func(what string, within time.Duration, js string) time.Duration {
		t.Helper()
		start := time.Now()
		for !eval(js) {
			if time.Since(start) > within {
				text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
				t.Fatalf("%s: not within %s; the page shows:\n%s", what, within, text)
			}
			time.Sleep(250 * time.Millisecond)
		}
		return time.Since(start)
	}
	screenshot := func(name string, a chromedp.Action[[]byte]) {
		t.Helper()
		png, err := chromedp.Run(bctx, a)
		dbtest.Must(t, err, "screenshot %s", name)
		if len(png) < 1000 || string(png[1:4]) != "PNG" {
			t.Fatalf("screenshot %s: %d bytes, not a PNG", name, len(png))
		}
		dbtest.Must(t, os.WriteFile(filepath.Join(shots, name), png, 0o644), "write %s", name)
	}
	rowStatus := func(docID string) string {
		return fmt.Sprintf(`(document.querySelector('#docs tr.doc[data-id="%s"] td.status') || {}).textContent`, docID)
	}

	// Without a credential the page shows only the sign-in form.
	do("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if eval(`!document.querySelector("#app").hidden`) {
		t.Fatal("the dashboard shows data before sign-in")
	}
	do("sign in", chromedp.SendKeys(chromedp.ID("token"), key), chromedp.Click(chromedp.CSS(`#login-form button`)))
	waitPage("both documents listed", 30*time.Second, `document.querySelectorAll("#docs tr.doc").length === 2`)
	if !eval(`!document.querySelector("#riverui").hidden && document.querySelector("#who").textContent.includes("admin")`) {
		t.Fatal("an admin sign-in shows no River UI link or admin badge")
	}
	// Marks this page load: a reload would drop it.
	do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameLoad = true; window.__alerts = []; window.alert = (m) => window.__alerts.push(m)`))

	// 1. Documents wait, no worker runs: the banner says so within a minute.
	took := waitPage("no-live-worker alert in the banner", 90*time.Second,
		`[...document.querySelectorAll("#alerts .alert")].some((a) => a.textContent.includes("DocpipeNoLiveWorker"))`)
	t.Logf("the banner showed DocpipeNoLiveWorker after %s", took.Round(time.Second))
	if !eval(`document.querySelector("#workers tbody").textContent.includes("no live worker")`) {
		t.Error("the workers table does not say that no worker is live")
	}

	// 2. An admin cancels one run from the page: it is dead-lettered and listed.
	do("cancel faq.html", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#docs tr.doc[data-id="%s"] button.cancel`, cancelID))))
	waitPage("faq.html in the dead letters", 30*time.Second, fmt.Sprintf(`!!document.querySelector('#dead tr[data-job="%s"] button.retry')`, cancelJob))

	// 3. A worker starts: the other document reaches complete on the same page load.
	worker := c.cmd(ctx, "worker")
	dbtest.Must(t, worker.Start(), "start worker")
	t.Cleanup(func() { _ = worker.Process.Signal(syscall.SIGTERM); _ = worker.Wait() })
	took = waitPage("sample-policy.pdf complete", 2*time.Minute, rowStatus(keepID)+` === "complete"`)
	t.Logf("sample-policy.pdf showed complete %s after the worker started", took.Round(100*time.Millisecond))
	waitPage("banner clear", 90*time.Second, `!document.querySelector("#alerts").textContent.includes("DocpipeNoLiveWorker")`)
	waitPage("a live worker listed", 30*time.Second, `document.querySelectorAll("#workers tr.worker").length === 1`)

	// 4. Its timeline and chunks.
	do("open the timeline", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#docs tr.doc[data-id="%s"]`, keepID))))
	waitPage("timeline with every stage done", 30*time.Second,
		`["parse","validate","chunk","embed"].every((s) => [...document.querySelectorAll("#timeline tr.event")].some((r) => r.cells[2].textContent === "stage_done" && r.cells[3].textContent === s))`)
	waitPage("chunks shown", 10*time.Second, `document.querySelectorAll("#chunks li").length > 0`)
	screenshot("dashboard-timeline.png", chromedp.Screenshot(chromedp.ID("detail")))

	// 5. Retry the dead letter from the list: it completes.
	do("retry faq.html", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dead tr[data-job="%s"] button.retry`, cancelJob))))
	waitPage("faq.html complete after retry", 2*time.Minute, rowStatus(cancelID)+` === "complete"`)
	waitPage("dead letters empty", 30*time.Second, `!document.querySelector("#dead button.retry")`)
	if !eval(`window.__sameLoad === true && window.__alerts.length === 0`) {
		alerts, _ := chromedp.Run(bctx, chromedp.Evaluate[[]string](`window.__alerts || []`))
		t.Fatalf("the page reloaded or showed errors: %v", alerts)
	}
	waitPage("throughput chart drawn", 30*time.Second, `document.querySelectorAll("#chart rect").length > 0 && document.querySelector("#latency").textContent.includes("p95")`)
	do("close the timeline", chromedp.Click(chromedp.ID("tl-close")), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	screenshot("dashboard-overview.png", chromedp.FullScreenshot(100))

	// 6. River UI, admin only, with the cookie the sign-in set (no header possible).
	status, err := chromedp.Run(bctx, chromedp.Evaluate[int](`fetch("/riverui/api/jobs?state=completed&limit=5").then((r) => r.status)`, chromedp.EvalAwaitPromise))
	dbtest.Must(t, err, "fetch River UI API")
	if status != 200 {
		t.Fatalf("River UI API from the signed-in page: %d", status)
	}
	resp, err := http.Get(base + "/riverui/api/jobs?state=completed")
	dbtest.Must(t, err, "River UI without a credential")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("River UI without a credential: %d, want 401", resp.StatusCode)
	}
	do("open River UI", chromedp.Navigate(base+"/riverui/jobs?state=completed"))
	waitPage("River UI lists the completed stage jobs", 30*time.Second, `document.body.innerText.includes("docpipe.finalize")`)
	screenshot("riverui.png", chromedp.CaptureScreenshot())
}
