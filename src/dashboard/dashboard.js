// Live view of /api/v1: polls the REST API and renders with textContent only
// (never innerHTML), so nothing a peer reports can inject markup. Every URL is
// relative to the page, so the dashboard works under a reverse proxy's prefix
// (https://host/tenant/status/, with its trailing slash).
"use strict";

const POLL_MS = 2000;
const open = new Set();
let latest = [];
let alertsNow = [];
// Server time minus browser time, from each answer's Date header: ages are the server's, whatever the browser's clock says.
let skewMs = 0;

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function badge(ok, yes, no) {
  return el("span", "badge " + (ok ? "ok" : "bad"), ok ? "✔ " + yes : "✖ " + no);
}

function serverNow() {
  return Date.now() + skewMs;
}

function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 1) return "<1 s";
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function ago(iso) {
  if (!iso) return "never";
  return span((serverNow() - Date.parse(iso)) / 1000) + " ago";
}

// A Go duration as the relay sends it ("150ms", "2.9s", "1m30.5s", "1h2m3s"), in seconds; null if unreadable.
function goSeconds(text) {
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, "µs": 1e-6, "μs": 1e-6, us: 1e-6, ns: 1e-9 };
  const parts = String(text).match(/([0-9.]+)(h|ms|m|s|µs|μs|us|ns)/g);
  if (!parts) return null;
  return parts.reduce((sum, p) => {
    const [, n, unit] = p.match(/([0-9.]+)(.+)/);
    return sum + Number(n) * units[unit];
  }, 0);
}

function shortStream(topic, stub) {
  return topic.startsWith(stub + "-st-") ? topic.slice(stub.length + 4) : topic;
}

// What the booking system holds, as last read (not what health asks for).
function bookableBadge(e) {
  let b;
  if (e.resource_name === null) b = el("span", "badge info", "Not in booking");
  else if (e.available === null) b = el("span", "badge info", "Booking unknown");
  else b = badge(e.available, "Bookable", "Not bookable");
  b.title = "As the booking system holds it, last read";
  return b;
}

// How long since the stream's last frame, now: its age in the relay's report plus the time since that report.
function streamDetail(e, topic) {
  const r = e.stream_reports[topic];
  if (!r) return e.stream_required[topic] ? "missing" : "gone";
  const last = goSeconds(r.stats.tx.last);
  if (last === null) return "never sent";
  const since = e.last_checked_streams ? (serverNow() - Date.parse(e.last_checked_streams)) / 1000 : 0;
  return "last frame " + span(last + Math.max(0, since)) + " ago · " + Number(r.stats.tx.fps).toFixed(1) + " fps";
}

function streamChip(e, topic) {
  const ok = e.stream_ok[topic];
  const req = e.stream_required[topic] ? "" : " (optional)";
  const chip = el("span", "stream " + (ok ? "ok" : "bad"),
    (ok ? "✔ " : "✖ ") + shortStream(topic, e.topic_name) + req + ": " + streamDetail(e, topic));
  chip.title = topic + (e.stream_required[topic] ? ", required for booking" : ", not required for booking");
  return chip;
}

// Today's events by time alone; older ones with their date.
function when(iso) {
  const t = new Date(iso);
  const today = new Date(serverNow()).toDateString() === t.toDateString();
  return today ? t.toLocaleTimeString() : t.toLocaleString();
}

function renderEvents(container, events) {
  container.replaceChildren();
  if (!events.length) {
    container.append(el("p", "muted", "No health events recorded yet."));
    return;
  }
  const table = el("table");
  table.append(el("caption", "muted", "Recent health events, newest first"));
  const head = el("tr");
  for (const h of ["When", "Health", "Jump", "Issues"]) {
    const th = el("th", null, h);
    th.scope = "col";
    head.append(th);
  }
  const body = el("tbody");
  table.append(el("thead"), body);
  table.tHead.append(head);
  for (const ev of events.slice().reverse()) {
    const row = el("tr");
    row.append(
      el("td", null, when(ev.when)),
      el("td", null, ev.healthy ? "✔ healthy" : "✖ unhealthy"),
      el("td", null, ev.jump_ok ? "✔" : "✖"),
      el("td", null, ev.issues.join(", ") || "—"),
    );
    body.append(row);
  }
  container.append(table);
}

async function loadEvents(box, name) {
  try {
    const res = await fetch("api/v1/experiments/events/" + encodeURIComponent(name), { cache: "no-store" });
    if (res.ok) {
      renderEvents(box, await res.json());
      return;
    }
    // A 404 is not "no events": the service does not know this experiment (any more).
    const error = await res.json().catch(() => null);
    const why = error && error.message ? error.message : "the service answered " + res.status;
    box.replaceChildren(el("p", "muted", "Could not load events: " + why + "."));
  } catch (err) {
    box.replaceChildren(el("p", "muted", "Could not load events: " + err + "."));
  }
}

// The row's disclosure button: it alone is named after the experiment.
function toggleButton(item) {
  return item.querySelector("button.toggle");
}

function toggle(item, e) {
  const name = e.topic_name;
  const existing = item.querySelector(".events");
  if (existing) {
    existing.remove();
    open.delete(name);
    toggleButton(item).setAttribute("aria-expanded", "false");
    return;
  }
  open.add(name);
  toggleButton(item).setAttribute("aria-expanded", "true");
  const box = el("div", "events", "Loading events…");
  box.dataset.count = e.health_events;
  item.append(box);
  loadEvents(box, name);
}

function renderExperiment(e) {
  const grace = e.in_startup_grace;
  const item = el("li", "exp" + (grace ? " grace" : e.healthy ? "" : " bad"));
  // Stable hooks for scripts and tests: name, health and booking state.
  item.dataset.name = e.topic_name;
  item.dataset.health = grace ? "starting" : e.healthy ? "healthy" : "unhealthy";
  item.dataset.bookable = e.resource_name === null ? "unmanaged" : e.available === null ? "unknown" : String(e.available);
  // The button holds only the name (its accessible name); the rest of the row is plain
  // content beside it, and a click anywhere on the row toggles too.
  const row = el("div", "row");
  const button = el("button", "toggle");
  button.type = "button";
  button.setAttribute("aria-expanded", "false");
  const name = el("span", "name", e.topic_name);
  name.append(el("span", "resource", e.resource_name || "not in the manifest"));
  button.append(name);
  const state = el("span", "state");
  state.append(
    grace ? el("span", "badge info", "… Starting") : badge(e.healthy, "Healthy", "Unhealthy"),
    bookableBadge(e),
    badge(e.jump_ok, "Jump connected", "No jump"),
  );
  const streams = el("span", "streams");
  for (const topic of Object.keys(e.stream_ok)) streams.append(streamChip(e, topic));
  if (!Object.keys(e.stream_ok).length) streams.append(el("span", "muted", "no streams"));
  row.append(button, state, streams);
  if (e.issues.length) row.append(el("span", "issues", e.issues.join(" · ")));
  row.addEventListener("click", () => toggle(item, e));
  item.append(row);
  return item;
}

function render() {
  const filter = $("filter").value.trim().toLowerCase();
  const problemsOnly = $("problems").checked;
  const shown = latest.filter((e) =>
    (!filter || e.topic_name.toLowerCase().includes(filter) || (e.resource_name || "").toLowerCase().includes(filter)) &&
    (!problemsOnly || !e.healthy));
  const list = $("experiments");
  const keep = new Map();
  for (const li of list.children) if (open.has(li.dataset.name)) keep.set(li.dataset.name, li.querySelector(".events"));
  // Rows are rebuilt on every poll: give keyboard focus back to the same experiment.
  const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("li.exp") : null;
  const focusName = focused ? focused.dataset.name : null;
  list.replaceChildren(...shown.map((e) => {
    const item = renderExperiment(e);
    const events = keep.get(e.topic_name);
    if (events) {
      item.append(events);
      toggleButton(item).setAttribute("aria-expanded", "true");
      if (events.dataset.count !== String(e.health_events)) {
        events.dataset.count = e.health_events;
        loadEvents(events, e.topic_name);
      }
    }
    return item;
  }));
  if (focusName) {
    const again = [...list.children].find((li) => li.dataset.name === focusName);
    if (again) toggleButton(again).focus({ preventScroll: true });
  }
  const healthy = latest.filter((e) => e.healthy).length;
  // Bookable as the booking system holds it (`available`), like the badges.
  const bookable = latest.filter((e) => e.available === true).length;
  const problems = latest.length - healthy;
  setText($("summary"), latest.length + " experiments · " + healthy + " healthy · " +
    problems + " with problems · " + bookable + " bookable in the booking system");
  document.title = (problems ? "(" + problems + ") " : "") + "Lab status";
}

// Changes text only when it differs, so live regions announce changes, not every poll.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function renderFeeds(feeds) {
  const list = $("feeds");
  list.replaceChildren();
  if (!feeds) return;
  for (const [name, f] of Object.entries(feeds)) {
    const silent = alertsNow.some((a) => a.kind === name + "_silent");
    const ok = f.connected && !silent;
    const state = !f.connected ? " disconnected" : silent ? " silent" : " connected";
    let text = (ok ? "✔ " : "✖ ") + name + state + " · last frame " + ago(f.last_frame_at);
    if (f.reconnections) text += " · " + f.reconnections + " reconnection" + (f.reconnections === 1 ? "" : "s");
    const li = el("li", ok ? "badge ok" : "badge bad", text);
    li.dataset.feed = name;
    li.dataset.state = state.trim();
    if (f.last_error) li.title = "Last error " + ago(f.last_error_at) + ": " + f.last_error;
    list.append(li);
  }
}

function renderAlerts(alerts) {
  alertsNow = alerts;
  const box = $("alerts");
  // Rebuilt only when the alerts change, and with fixed times: role="alert" announces every change.
  const key = JSON.stringify(alerts.map((a) => [a.kind, a.since, a.message]));
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...alerts.map((a) =>
      el("p", null, "⚠ " + a.message + " (since " + new Date(a.since).toLocaleTimeString() + ")")));
  }
  box.hidden = alerts.length === 0;
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(path + " answered " + res.status);
  const date = Date.parse(res.headers.get("date"));
  // The header has whole seconds: add half of one to centre the estimate.
  if (!Number.isNaN(date)) skewMs = date + 500 - Date.now();
  return res.json();
}

async function poll() {
  try {
    const [experiments, alerts, feeds] = await Promise.all([
      getJson("api/v1/experiments"),
      getJson("api/v1/alerts"),
      getJson("api/v1/feeds").catch(() => null),
    ]);
    latest = experiments;
    renderAlerts(alerts);
    render();
    renderFeeds(feeds);
    openLinked();
    $("error").hidden = true;
    $("updated").textContent = "Updated " + new Date(serverNow()).toLocaleTimeString();
  } catch (err) {
    $("error").textContent = "Cannot reach the status service: " + err.message + ". Retrying…";
    $("error").hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// `/#pend00` opens that experiment's events once, so a link can point at one rig.
let linked = "";
try {
  linked = decodeURIComponent(location.hash.slice(1));
} catch (err) {
  // A malformed link opens nothing.
}
function openLinked() {
  if (!linked) return;
  const item = [...$("experiments").children].find((li) => li.dataset.name === linked);
  const e = latest.find((x) => x.topic_name === linked);
  if (item && e && !open.has(linked)) toggle(item, e);
  linked = "";
}

$("filter").addEventListener("input", render);
$("problems").addEventListener("change", render);
poll();
