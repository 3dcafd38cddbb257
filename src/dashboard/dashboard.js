// Live view of /api/v1: polls the REST API and renders with textContent only
// (never innerHTML), so nothing a peer reports can inject markup.
"use strict";

const POLL_MS = 2000;
const open = new Set();
let latest = [];

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

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return s + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function shortStream(topic, stub) {
  return topic.startsWith(stub + "-st-") ? topic.slice(stub.length + 4) : topic;
}

function bookableBadge(e) {
  if (e.resource_name === null) return el("span", "badge info", "Not in booking");
  if (e.available === null) return el("span", "badge info", "Booking unknown");
  return badge(e.available, "Bookable", "Not bookable");
}

function streamChip(e, topic) {
  const ok = e.stream_ok[topic];
  const r = e.stream_reports[topic];
  let detail;
  if (!r) detail = e.stream_required[topic] ? "missing" : "gone";
  else if (r.stats.tx.last === "Never") detail = "never sent";
  else detail = r.stats.tx.last + " · " + Number(r.stats.tx.fps).toFixed(1) + " fps";
  const req = e.stream_required[topic] ? "" : " (extra)";
  const chip = el("span", "stream " + (ok ? "ok" : "bad"), (ok ? "✔ " : "✖ ") + shortStream(topic, e.topic_name) + req + ": " + detail);
  chip.title = topic;
  return chip;
}

function renderEvents(container, events) {
  container.replaceChildren();
  if (!events.length) {
    container.append(el("p", "muted", "No health events recorded yet."));
    return;
  }
  const table = el("table");
  const head = el("tr");
  for (const h of ["When", "Health", "Jump", "Issues"]) head.append(el("th", null, h));
  table.append(head);
  for (const ev of events.slice().reverse()) {
    const row = el("tr");
    row.append(
      el("td", null, new Date(ev.when).toLocaleString()),
      el("td", null, ev.healthy ? "✔ healthy" : "✖ unhealthy"),
      el("td", null, ev.jump_ok ? "✔" : "✖"),
      el("td", null, ev.issues.join(", ") || "—"),
    );
    table.append(row);
  }
  container.append(el("p", "muted", "Recent health events, newest first"), table);
}

async function toggle(item, e) {
  const name = e.topic_name;
  const existing = item.querySelector(".events");
  if (existing) {
    existing.remove();
    open.delete(name);
    item.firstChild.setAttribute("aria-expanded", "false");
    return;
  }
  open.add(name);
  item.firstChild.setAttribute("aria-expanded", "true");
  const box = el("div", "events", "Loading events…");
  item.append(box);
  try {
    const res = await fetch("/api/v1/experiments/events/" + encodeURIComponent(name));
    renderEvents(box, res.ok ? await res.json() : []);
  } catch (err) {
    box.textContent = "Could not load events: " + err;
  }
}

function renderExperiment(e) {
  const grace = e.in_startup_grace;
  const item = el("li", "exp" + (grace ? " grace" : e.healthy ? "" : " bad"));
  item.dataset.name = e.topic_name;
  const button = el("button");
  button.setAttribute("aria-expanded", "false");
  const name = el("span", "name", e.topic_name);
  name.append(el("span", "resource", e.resource_name || "not in the manifest"));
  const state = el("span");
  state.append(
    grace ? el("span", "badge info", "… Starting") : badge(e.healthy, "Healthy", "Unhealthy"),
    bookableBadge(e),
    badge(e.jump_ok, "Jump", "Jump"),
  );
  const streams = el("span", "streams");
  for (const topic of Object.keys(e.stream_ok)) streams.append(streamChip(e, topic));
  if (!Object.keys(e.stream_ok).length) streams.append(el("span", "muted", "no streams"));
  button.append(name, state, streams);
  if (e.issues.length) button.append(el("p", "issues", e.issues.join(" · ")));
  button.addEventListener("click", () => toggle(item, e));
  item.append(button);
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
  list.replaceChildren(...shown.map((e) => {
    const item = renderExperiment(e);
    const events = keep.get(e.topic_name);
    if (events) {
      item.append(events);
      item.firstChild.setAttribute("aria-expanded", "true");
    }
    return item;
  }));
  const healthy = latest.filter((e) => e.healthy).length;
  const bookable = latest.filter((e) => e.available === true).length;
  $("summary").textContent = latest.length + " experiments · " + healthy + " healthy · " +
    (latest.length - healthy) + " with problems · " + bookable + " bookable";
}

function renderFeeds(feeds) {
  const list = $("feeds");
  list.replaceChildren();
  if (!feeds) return;
  for (const [name, f] of Object.entries(feeds)) {
    const ok = f.connected;
    const li = el("li", null, (ok ? "✔ " : "✖ ") + name + (ok ? " connected" : " disconnected") +
      " · last frame " + ago(f.last_frame_at));
    li.className = ok ? "badge ok" : "badge bad";
    list.append(li);
  }
}

function renderAlerts(alerts) {
  const box = $("alerts");
  box.replaceChildren(...alerts.map((a) => el("p", null, "⚠ " + a.message + " (since " + ago(a.since) + ")")));
  box.hidden = alerts.length === 0;
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(path + " answered " + res.status);
  return res.json();
}

async function poll() {
  try {
    const [experiments, alerts, feeds] = await Promise.all([
      getJson("/api/v1/experiments"),
      getJson("/api/v1/alerts"),
      getJson("/api/v1/feeds").catch(() => null),
    ]);
    latest = experiments;
    render();
    renderAlerts(alerts);
    renderFeeds(feeds);
    $("error").hidden = true;
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("error").textContent = "Cannot reach the status service: " + err.message + ". Retrying…";
    $("error").hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

$("filter").addEventListener("input", render);
$("problems").addEventListener("change", render);
poll();
