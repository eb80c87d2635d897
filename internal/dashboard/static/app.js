// docpipe dashboard: polls the API every 2 s (no reload), shows alerts, counts per
// status, recent documents (click one for its timeline) and dead letters with retry.
"use strict";
const $ = (s) => document.querySelector(s);
let token = sessionStorage.getItem("docpipe-token") || "";
let selected = null;

async function api(method, path) {
  const r = await fetch(path, { method, headers: { Authorization: "Bearer " + token } });
  if (r.status === 401) { logout("The key was refused (401): sign in again."); throw new Error("401"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.code || r.status) + ": " + (body.detail || body.title || ""));
  return body;
}

function cell(tr, text, cls) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function statusClass(s) { return s === "complete" ? "s-complete" : (s || "").startsWith("failed") ? "s-failed" : "s-working"; }

async function refresh() {
  try {
    const [docs, alerts, dead] = await Promise.all([
      api("GET", "/v1/documents?limit=200"),
      api("GET", "/v1/alerts").catch(() => ({ alerts: [] })),
      api("GET", "/v1/jobs?state=deadletter&limit=50"),
    ]);
    renderAlerts(alerts.alerts || []);
    renderDocs(docs.items || []);
    renderDead(dead.items || []);
    if (selected) await renderTimeline(selected);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message !== "401") $("#updated").textContent = "error: " + e.message;
  }
}

function renderAlerts(list) {
  const box = $("#alerts"); box.textContent = "";
  for (const a of list.filter((a) => a.state === "firing")) {
    const d = document.createElement("div");
    d.className = "alert " + a.severity;
    d.textContent = a.name + (a.subject ? " (" + a.subject + ")" : "") + ": " + a.message + " — " + a.runbook;
    box.appendChild(d);
  }
}

function renderDocs(items) {
  const counts = {};
  for (const d of items) counts[d.status] = (counts[d.status] || 0) + 1;
  const c = $("#counts"); c.textContent = "";
  for (const [s, n] of Object.entries(counts).sort()) {
    const div = document.createElement("div"); div.className = "count " + statusClass(s);
    const b = document.createElement("b"); b.textContent = n; div.appendChild(b); div.append(s); c.appendChild(div);
  }
  const tb = $("#docs tbody"); tb.textContent = "";
  for (const d of items.slice(0, 50)) {
    const tr = tb.insertRow(); tr.className = "doc"; tr.dataset.id = d.id; tr.dataset.status = d.status;
    tr.onclick = () => { selected = { id: d.id, name: d.filename }; renderTimeline(selected); };
    cell(tr, d.filename);
    cell(tr, d.status, statusClass(d.status));
    const p = document.createElement("progress"); p.max = 100; p.value = Math.max(d.percent || 0, 0); tr.insertCell().appendChild(p);
    cell(tr, d.chunks);
    cell(tr, d.job ? d.job.tokens : "");
    cell(tr, d.job ? "$" + d.job.cost_usd.toFixed(6) : "");
    cell(tr, new Date(d.updated_at).toLocaleTimeString());
  }
}

function renderDead(items) {
  const tb = $("#dead tbody"); tb.textContent = "";
  if (!items.length) { const tr = tb.insertRow(); cell(tr, "none", "muted"); return; }
  for (const j of items) {
    const tr = tb.insertRow(); tr.dataset.job = j.id;
    cell(tr, j.filename);
    cell(tr, j.status, "s-failed");
    cell(tr, j.last_error ? j.last_error.code + ": " + j.last_error.message : "");
    const b = document.createElement("button"); b.textContent = "Retry"; b.className = "retry";
    b.onclick = async () => { b.disabled = true; try { await api("POST", "/v1/jobs/" + j.id + "/retry"); } catch (e) { alert(e.message); } refresh(); };
    tr.insertCell().appendChild(b);
  }
}

async function renderTimeline(sel) {
  const ev = await api("GET", "/v1/documents/" + sel.id + "/events");
  $("#timeline").hidden = false; $("#tl-name").textContent = sel.name;
  const tb = $("#timeline tbody"); tb.textContent = "";
  const items = (ev.items || []).slice().sort((a, b) => new Date(a.at) - new Date(b.at));
  let prev = null;
  for (const e of items) {
    const t = new Date(e.at), tr = tb.insertRow(); tr.className = "event";
    cell(tr, t.toLocaleTimeString()); cell(tr, prev ? t - prev : 0); prev = t;
    cell(tr, e.type); cell(tr, e.stage || ""); cell(tr, e.code, e.severity === "error" ? "s-failed" : "");
    cell(tr, e.payload ? JSON.stringify(e.payload) : "");
  }
}

function logout(msg) {
  token = ""; sessionStorage.removeItem("docpipe-token");
  $("#app").hidden = true; $("#login").hidden = false; $("#logout").hidden = true;
  $("#login-error").textContent = msg || "";
}

async function start() {
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  await refresh();
}

$("#login-form").onsubmit = (e) => { e.preventDefault(); token = $("#token").value.trim(); sessionStorage.setItem("docpipe-token", token); start(); };
$("#logout").onclick = () => logout();
setInterval(() => { if (token) refresh(); }, 2000);
if (token) start();
