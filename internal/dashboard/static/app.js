// docpipe dashboard: polls the API every 2 s (no reload). Overview (counts, throughput,
// latency, error rates, cost against budget, live workers, external services), alerts,
// recent documents and events, search, a document's timeline and chunks, and dead
// letters. Retry and cancel buttons are shown to admin credentials only (the API
// enforces its own rules either way). Keep PollPaths in dashboard.go in step with the
// requests refresh() makes.
"use strict";
const $ = (s) => document.querySelector(s);
let token = sessionStorage.getItem("docpipe-token") || "";
let selected = null;
let admin = false;

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { logout("The credential was refused (401): sign in again."); throw new Error("401"); }
  const out = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((out.code || r.status) + ": " + (out.detail || out.title || ""));
  return out;
}

function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function cell(tr, text, cls) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function statusClass(s) { return s === "complete" ? "s-complete" : (s || "").startsWith("failed") ? "s-failed" : s === "duplicate" ? "muted" : "s-working"; }
function secs(s) { return s >= 100 ? s.toFixed(0) + " s" : s >= 1 ? s.toFixed(1) + " s" : (s * 1000).toFixed(0) + " ms"; }
function pct(x) { return (100 * x).toFixed(1) + "%"; }
function usd(x) { return "$" + x.toFixed(x < 1 ? 4 : 2); }
function time(t) { return new Date(t).toLocaleTimeString(); }
function kv(table, rows) { const tb = table.tBodies[0]; tb.textContent = ""; for (const [k, v] of rows) { const tr = tb.insertRow(); cell(tr, k, "muted"); cell(tr, v); } }
function button(label, cls, action) {
  const b = el("button", label, cls);
  b.onclick = async (ev) => { ev.stopPropagation(); b.disabled = true; try { await action(); } catch (e) { alert(e.message); } refresh(); };
  return b;
}

async function refresh() {
  try {
    const [ov, docs, alerts, dead] = await Promise.all([
      api("GET", "/v1/overview"),
      api("GET", "/v1/documents?limit=50"),
      api("GET", "/v1/alerts").catch(() => ({ alerts: [] })),
      api("GET", "/v1/jobs?state=deadletter&limit=50"),
    ]);
    renderViewer(ov.viewer);
    renderAlerts(alerts.alerts || []);
    renderOverview(ov);
    renderDocs(docs.items || []);
    renderDead(dead.items || []);
    if (selected) await renderDetail(selected);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message !== "401") $("#updated").textContent = "error: " + e.message;
  }
}

function renderViewer(v) {
  admin = !!v.admin;
  $("#who").textContent = v.id + (admin ? " (admin)" : "");
  $("#riverui").hidden = !admin;
  for (const e of document.querySelectorAll(".admin")) e.hidden = !admin;
}

function renderAlerts(list) {
  const box = $("#alerts"); box.textContent = "";
  for (const a of list.filter((a) => a.state === "firing")) {
    const runbook = a.runbook && !a.message.includes(a.runbook) ? " — " + a.runbook : "";
    const div = el("div", a.name + (a.subject ? " (" + a.subject + ")" : "") + ": " + a.message + runbook, "alert " + a.severity);
    div.dataset.alert = a.name; box.appendChild(div);
  }
}

function renderOverview(ov) {
  const c = $("#counts"); c.textContent = "";
  for (const [s, n] of Object.entries(ov.counts || {}).sort()) {
    const div = el("div", undefined, "count " + statusClass(s)); div.dataset.status = s;
    div.appendChild(el("b", String(n))); div.append(s); c.appendChild(div);
  }
  renderChart(ov.throughput || [], ov.at);
  const l = ov.latency;
  kv($("#latency"), l.count ? [["runs", l.count], ["p50", secs(l.p50_seconds)], ["p95", secs(l.p95_seconds)], ["p99", secs(l.p99_seconds)]] : [["runs", "none completed"]]);
  const r = ov.rates;
  kv($("#rates"), [["stage attempts", r.stage_attempts], ["errors", r.errors + " (" + pct(r.error_rate) + ")"],
    ["retries", r.retries + " (" + pct(r.retry_rate) + ")"], ["dead letters", r.dead_letters]]);
  renderEvents(ov.events || []);
  if (!admin) return;
  const cost = $("#cost tbody"); cost.textContent = "";
  for (const s of ov.cost || []) {
    const tr = cost.insertRow(); tr.dataset.service = s.service;
    cell(tr, s.service); cell(tr, usd(s.cost_usd)); cell(tr, s.budget_usd ? usd(s.budget_usd) : "none");
    const m = el("meter"); m.min = 0; m.max = 1; m.low = 0.8; m.high = 0.99; m.optimum = 0; m.value = s.budget_usd ? Math.min(s.cost_usd / s.budget_usd, 1) : 0;
    tr.insertCell().appendChild(m); cell(tr, s.tokens); cell(tr, s.pages);
  }
  if (!(ov.cost || []).length) cell(cost.insertRow(), "nothing spent today", "muted");
  const w = $("#workers tbody"); w.textContent = "";
  for (const x of ov.workers || []) {
    const tr = w.insertRow(); tr.className = "worker";
    cell(tr, x.id); cell(tr, x.hostname + " / " + x.pid); cell(tr, x.concurrency); cell(tr, time(x.started_at)); cell(tr, secs(x.heartbeat_age_seconds) + " ago");
  }
  if (!(ov.workers || []).length) cell(w.insertRow(), "no live worker: nothing will be processed", "error");
  const sv = $("#services tbody"); sv.textContent = "";
  for (const s of ov.services || []) {
    const tr = sv.insertRow(); tr.dataset.service = s.name;
    cell(tr, s.name); cell(tr, s.breaker || "—", s.breaker === "open" ? "s-failed" : s.breaker === "half-open" ? "s-working" : "s-complete");
    cell(tr, s.calls); cell(tr, s.errors, s.errors ? "s-failed" : ""); cell(tr, s.rate_limited);
    cell(tr, s.calls ? s.p50_ms.toFixed(0) + " ms" : "—"); cell(tr, s.calls ? s.p95_ms.toFixed(0) + " ms" : "—");
  }
  if (!(ov.services || []).length) cell(sv.insertRow(), "no external calls reported", "muted");
}

// renderChart draws documents completed per minute over the last hour as SVG bars
// (failed runs stacked in red).
function renderChart(minutes, at) {
  const svg = $("#chart"), ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  const end = new Date(at).getTime(), peak = Math.max(1, ...minutes.map((m) => m.documents + m.failed));
  let docs = 0, chunks = 0, failed = 0;
  for (const m of minutes) {
    docs += m.documents; chunks += m.chunks; failed += m.failed;
    const ago = Math.floor((end - new Date(m.minute).getTime()) / 60000);
    if (ago < 0 || ago >= 60) continue;
    const x = (59 - ago) * 10, hOk = (m.documents / peak) * 110, hBad = (m.failed / peak) * 110;
    for (const [h, y, cls] of [[hOk, 120 - hOk, "bar"], [hBad, 120 - hOk - hBad, "bar failed"]]) {
      if (h <= 0) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", x + 1); r.setAttribute("y", y); r.setAttribute("width", 8); r.setAttribute("height", h); r.setAttribute("class", cls);
      const t = document.createElementNS(ns, "title"); t.textContent = time(m.minute) + ": " + m.documents + " complete, " + m.failed + " failed"; r.appendChild(t);
      svg.appendChild(r);
    }
  }
  $("#tp-docs").textContent = docs; $("#tp-chunks").textContent = chunks; $("#tp-failed").textContent = failed;
  $("#tp-peak").textContent = minutes.length ? Math.max(...minutes.map((m) => m.documents)) : 0;
}

function renderEvents(items) {
  const ul = $("#events"); ul.textContent = "";
  for (const e of items) {
    const li = el("li", undefined, e.severity === "error" ? "s-failed" : e.severity === "warn" ? "s-working" : "");
    li.append(time(e.at) + " " + (e.filename || "") + " · " + e.type + (e.stage ? " " + e.stage : "") + " · " + e.code);
    if (e.document_id) { li.className += " link"; li.onclick = () => select(e.document_id, e.filename); }
    ul.appendChild(li);
  }
}

function select(id, name) { selected = { id, name }; renderDetail(selected); $("#detail").scrollIntoView(); }

function renderDocs(items) {
  const tb = $("#docs tbody"); tb.textContent = "";
  for (const d of items) {
    const tr = tb.insertRow(); tr.className = "doc"; tr.dataset.id = d.id; tr.dataset.status = d.status;
    tr.onclick = () => select(d.id, d.filename);
    cell(tr, d.filename);
    cell(tr, d.status, "status " + statusClass(d.status));
    const p = el("progress"); p.max = 100; p.value = Math.max(d.percent || 0, 0); tr.insertCell().appendChild(p);
    cell(tr, d.chunks);
    cell(tr, d.job ? d.job.tokens : "");
    cell(tr, d.job ? "$" + d.job.cost_usd.toFixed(6) : "");
    cell(tr, time(d.updated_at));
    const act = tr.insertCell();
    if (admin && d.job && ["queued", "working", "retryable"].includes(d.job.state)) {
      act.appendChild(button("Cancel", "cancel", () => api("POST", "/v1/jobs/" + d.job.id + "/cancel", { reason: "cancelled from the dashboard" })));
    }
  }
}

function renderDead(items) {
  const tb = $("#dead tbody"); tb.textContent = "";
  if (!items.length) { cell(tb.insertRow(), "none", "muted"); return; }
  for (const j of items) {
    const tr = tb.insertRow(); tr.dataset.job = j.id; tr.className = "doc";
    tr.onclick = () => select(j.document_id, j.filename);
    cell(tr, j.filename);
    cell(tr, j.status, "s-failed");
    cell(tr, j.last_error ? j.last_error.code + ": " + j.last_error.message : "");
    cell(tr, j.retry_count);
    const act = tr.insertCell();
    if (admin) act.appendChild(button("Retry", "retry", () => api("POST", "/v1/jobs/" + j.id + "/retry")));
  }
}

async function renderDetail(sel) {
  const [doc, ev, ch] = await Promise.all([
    api("GET", "/v1/documents/" + sel.id),
    api("GET", "/v1/documents/" + sel.id + "/events"),
    api("GET", "/v1/documents/" + sel.id + "/chunks?limit=20"),
  ]);
  $("#detail").hidden = false; $("#tl-name").textContent = doc.filename;
  const j = doc.job || {};
  $("#tl-summary").textContent = doc.status + " · " + doc.mime + " · " + doc.bytes + " bytes" + (doc.pages ? " · " + doc.pages + " pages" : "") +
    " · " + doc.chunks + " chunks · retries " + (j.retry_count || 0) + " · correlation " + (j.correlation_id || "");
  $("#tl-error").textContent = j.last_error ? "Last error: " + j.last_error.code + ": " + j.last_error.message : "";
  const tb = $("#timeline tbody"); tb.textContent = "";
  const items = (ev.items || []).slice().sort((a, b) => new Date(a.at) - new Date(b.at));
  let prev = null;
  for (const e of items) {
    const t = new Date(e.at), tr = tb.insertRow(); tr.className = "event";
    cell(tr, t.toLocaleTimeString()); cell(tr, prev ? t - prev : 0); prev = t;
    cell(tr, e.type); cell(tr, e.stage || ""); cell(tr, e.code, e.severity === "error" ? "s-failed" : "");
    cell(tr, e.payload ? JSON.stringify(e.payload) : "", "details");
  }
  const ol = $("#chunks"); ol.textContent = "";
  for (const c of ch.items || []) {
    const li = el("li"); li.value = c.ord + 1;
    li.appendChild(el("span", (c.heading_path || []).join(" › ") + (c.page_start ? " (p. " + c.page_start + (c.page_end !== c.page_start ? "–" + c.page_end : "") + ")" : ""), "muted"));
    li.appendChild(el("div", c.text.length > 300 ? c.text.slice(0, 300) + "…" : c.text));
    ol.appendChild(li);
  }
  $("#chunk-count").textContent = doc.chunks > 20 ? "(first 20 of " + doc.chunks + ")" : "";
}

$("#search-form").onsubmit = async (e) => {
  e.preventDefault();
  const ol = $("#results"); ol.textContent = "";
  try {
    const r = await api("POST", "/v1/search", { query: $("#q").value, mode: $("#mode").value, limit: 10 });
    for (const h of r.results || []) {
      const li = el("li", undefined, "link"); li.onclick = () => select(h.document_id, h.filename);
      li.appendChild(el("b", h.filename + (h.page_start ? " p. " + h.page_start : "") + " "));
      li.appendChild(el("span", h.score.toFixed(4), "muted"));
      li.appendChild(el("div", h.text.length > 240 ? h.text.slice(0, 240) + "…" : h.text));
      ol.appendChild(li);
    }
    if (!(r.results || []).length) ol.appendChild(el("li", "no results", "muted"));
  } catch (err) { if (err.message !== "401") ol.appendChild(el("li", err.message, "error")); }
};

function logout(msg) {
  token = ""; sessionStorage.removeItem("docpipe-token");
  fetch("/v1/session", { method: "DELETE" }).catch(() => {});
  $("#app").hidden = true; $("#login").hidden = false; $("#logout").hidden = true; $("#riverui").hidden = true; $("#who").textContent = "";
  $("#login-error").textContent = msg || "";
}

async function start() {
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  api("POST", "/v1/session").catch(() => {}); // the River UI cookie (admins only)
  await refresh();
}

$("#login-form").onsubmit = (e) => { e.preventDefault(); token = $("#token").value.trim(); sessionStorage.setItem("docpipe-token", token); start(); };
$("#logout").onclick = () => logout();
$("#tl-close").onclick = () => { selected = null; $("#detail").hidden = true; };
setInterval(() => { if (token) refresh(); }, 2000);
if (token) start();
