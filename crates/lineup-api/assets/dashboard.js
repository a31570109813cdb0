// The supervisor dashboard: sign-in, then one /v1/live WebSocket (snapshot in parts, then
// deltas) feeding a client-side copy of queues, operators, calls and the cluster. Actions are
// REST calls; their effects come back over the socket like anyone else's. Times in state and
// waits tick locally from `since_ms` and the server clock offset. The Reports page (#reports,
// supervisors and admins) asks /v1/reports/* for a period and plots the intervals.
import { api, apiText, session, liveSocket, duration, percent, h, ApiError } from "/assets/lineup.js";

const $ = (id) => document.getElementById(id);
/// Plots keep this much history (client-side, from the 1 s `queues` frames).
const HISTORY_MS = 60 * 60 * 1000;
/// The plot's time axis grows from this to HISTORY_MS as history accumulates.
const PLOT_MIN_WINDOW_MS = 5 * 60 * 1000;
/// Waiting calls drawn in the table (the count shows the rest).
const CALL_ROWS_MAX = 200;
/// A wait longer than this is drawn in red in the calls table.
const LONG_WAIT_MS = 60_000;
/// Service level below these percentages is amber / red; abandon rate above them.
const SL_CAUTION = 800, SL_BREACH = 600, ABANDON_CAUTION = 50, ABANDON_BREACH = 100;
/// No frame for this long on an open socket: shown as stale (queues frames come every second).
const STALE_MS = 5_000;
const STATES = ["available", "offered", "busy", "wrap_up", "break", "offline"];
const WAITING = new Set(["waiting", "callback_waiting"]);

const state = {
  me: null,
  canAct: false,
  socket: null,
  offsetMs: 0, // server routing clock − Date.now()
  site: null,
  queues: [],
  operators: new Map(),
  calls: new Map(),
  cluster: null,
  alarms: [],
  history: new Map(), // queue id → [{ t, depth, abandon }]
  today: null, // { from_ms, queues: [..], operators: [..] } from the history database
  inSnapshot: false,
  lastSeq: 0,
  lastFrameAt: 0,
  connState: "connecting",
  dirty: new Set(),
  renderTimer: null,
};

const serverNow = () => Date.now() + state.offsetMs;
const queueName = (id) => state.queues.find((q) => q.queue === id)?.name || id;

// ---------------------------------------------------------------------------- sign-in

async function boot() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) {
    // A wall screen opened with ?token=: keep it for the tab, take it out of the address bar.
    session.token = fromUrl;
    history.replaceState(null, "", location.pathname);
  }
  if (session.token && (await signIn(session.token))) return;
  showSignIn("");
}

function showSignIn(message) {
  $("dashboard-view").hidden = true;
  $("signin-view").hidden = false;
  $("signin-error").textContent = message;
  $("token").focus();
}

async function signIn(token) {
  let me;
  try {
    me = await api("/v1/me", { token });
  } catch (e) {
    session.token = "";
    const status = e instanceof ApiError ? e.status : 0;
    showSignIn(
      status === 401 ? "Unknown token."
        // Frontend tokens (they only mint widget links) and a caller's widget token.
        : status === 403 ? "This token cannot open the dashboard."
        : `Cannot reach the node: ${e.message}`,
    );
    return false;
  }
  session.token = token;
  state.me = me;
  state.canAct = me.role === "supervisor" || me.role === "admin";
  // The report routes need the same role as actions (`Caller<Supervise>`).
  state.canReport = state.canAct;
  document.body.dataset.role = me.role;
  $("reports-tab").hidden = !state.canReport;
  $("who").textContent = `${me.name} · ${me.role}`;
  $("signin-view").hidden = true;
  $("dashboard-view").hidden = false;
  start();
  showPage();
  return true;
}

function signOut(message = "") {
  if (state.socket) state.socket.stop();
  state.socket = null;
  session.token = "";
  state.me = null;
  state.canAct = false;
  state.canReport = false;
  resetReports();
  state.operators.clear();
  state.calls.clear();
  state.queues = [];
  state.cluster = null;
  state.history.clear();
  delete document.body.dataset.ready;
  delete document.body.dataset.role;
  $("token").value = "";
  showSignIn(message);
}

$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("token").value.trim());
});
$("signout").addEventListener("click", () => signOut());

// ---------------------------------------------------------------------------- live feed

function start() {
  state.socket = liveSocket("/v1/live", session.token, {
    onMessage,
    onState: async (s, wait) => {
      state.connState = s;
      showConn(s === "retry" ? `reconnecting in ${Math.ceil(wait / 1000)} s` : s === "open" ? "live" : s);
      if (s === "retry") {
        // A refused upgrade looks like any other close: ask whether the token still holds.
        try {
          await api("/v1/me");
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) signOut("The token is no longer valid.");
        }
      }
    },
  });
  if (!state.cluster) api("/v1/cluster").then((c) => { if (!state.cluster) { state.cluster = c; mark("cluster"); } }, () => {});
}

function showConn(text) {
  const el = $("conn");
  el.textContent = text;
  el.className = "pill " + state.connState;
}

function onMessage(m) {
  state.lastFrameAt = Date.now();
  if (m.now_ms) state.offsetMs = m.now_ms - Date.now();
  if (m.seq) document.body.dataset.seq = state.lastSeq = m.seq;
  switch (m.type) {
    case "snapshot":
      // Forget everything held; history (plots) survives a resync.
      state.inSnapshot = true;
      state.site = m.site;
      state.operators.clear();
      state.calls.clear();
      setQueues(m.queues, m.now_ms);
      if (m.cluster) state.cluster = m.cluster;
      break;
    case "snapshot_operators":
      for (const o of m.operators) state.operators.set(o.operator, o);
      break;
    case "snapshot_calls":
      for (const c of m.calls) state.calls.set(c.call, c);
      break;
    case "snapshot_trend":
      mergeTrend(m.queue, m.points);
      break;
    case "today":
      state.today = m.today;
      document.body.dataset.todayFrom = String(m.today.from_ms);
      mark("queues", "agents");
      break;
    case "snapshot_end":
      state.inSnapshot = false;
      state.socket?.healthy();
      document.body.dataset.ready = "1";
      document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
      mark("queues", "agents", "calls", "cluster");
      break;
    case "operator":
      state.operators.set(m.operator.operator, m.operator);
      mark("agents");
      break;
    case "call":
      state.calls.set(m.call.call, m.call);
      // The operator table's tooltip names the caller of an operator's call.
      if (m.call.operator) mark("calls", "agents");
      else mark("calls");
      break;
    case "call_ended":
      state.calls.delete(m.record.call);
      mark("calls");
      break;
    case "alarm":
      state.alarms.unshift({ ...m, at: m.now_ms });
      state.alarms.length = Math.min(state.alarms.length, 8);
      mark("cluster");
      break;
    case "queues":
      setQueues(m.queues, m.now_ms);
      break;
    case "cluster":
      state.cluster = m.cluster;
      mark("cluster");
      break;
  }
}

function setQueues(queues, nowMs) {
  state.queues = queues;
  for (const q of queues) {
    let points = state.history.get(q.queue);
    if (!points) state.history.set(q.queue, (points = []));
    if (points.length && points[points.length - 1].t >= nowMs) continue;
    points.push({ t: nowMs, depth: q.waiting + q.callbacks_waiting, abandon: q.abandon_rate_permille });
    while (points.length && points[0].t < nowMs - HISTORY_MS) points.shift();
  }
  mark("queues", "calls");
}

/// The server's last hour of a queue (one point per 10 s) under the points this page took
/// from the 1 s frames since: a page opened or reloaded now plots the hour behind it.
function mergeTrend(queue, serverPoints) {
  const held = state.history.get(queue) || [];
  const points = serverPoints.map(([t, depth, abandon]) => ({ t, depth, abandon }));
  const last = points.length ? points[points.length - 1].t : -Infinity;
  state.history.set(queue, points.concat(held.filter((p) => p.t > last)));
}

// ---------------------------------------------------------------------------- rendering

function mark(...what) {
  for (const w of what) state.dirty.add(w);
  if (state.inSnapshot || state.renderTimer) return;
  state.renderTimer = setTimeout(render, 30);
}

function render() {
  state.renderTimer = null;
  if (!state.me) return;
  const dirty = state.dirty;
  // A supervisor in the middle of picking a priority: redraw the calls when they are done.
  const picking = document.activeElement?.tagName === "SELECT" && document.activeElement.closest("#calls");
  state.dirty = new Set(picking ? ["calls"] : []);
  if (dirty.has("queues")) renderQueues();
  if (dirty.has("agents")) renderAgents();
  if (dirty.has("calls") && !picking) renderCalls();
  if (dirty.has("cluster")) renderCluster();
  tick();
}

function figure(field, label, value, level = "") {
  return h("div", { class: `figure ${level}` }, h("div", { class: "v", dataset: { field } }, value), h("div", { class: "l" }, label));
}

/// The ETA a caller joining now would be told; without one, why (the API gives an ETA
/// exactly when an operator of the queue is ready: logged in and not on a break).
function etaFigure(q) {
  if (q.eta_ms != null) return figure("eta", "ETA", duration(q.eta_ms));
  const why = q.waiting + q.callbacks_waiting === 0 ? "no one waiting"
    : q.logged_in === 0 ? "no operator logged in"
    : "no operator ready";
  const el = figure("eta", "ETA", why, "why");
  if (why === "no operator ready") el.title = `${q.logged_in} logged in, none ready (on a break or out of reach)`;
  return el;
}

const slLevel = (p) => (p == null ? "" : p < SL_BREACH ? "breach" : p < SL_CAUTION ? "caution" : "");
const abandonLevel = (p) => (p == null ? "" : p > ABANDON_BREACH ? "breach" : p > ABANDON_CAUTION ? "caution" : "");

function renderQueues() {
  const cards = state.queues.map((q) => {
    const alarm = q.alarm_longest_wait || q.alarm_depth;
    const gates = q.gates.length
      ? h("table", {},
          h("thead", {}, h("tr", {}, ["Gate", "Waiting", "Longest", "Service level", "Abandoned", "Answered"].map((t, i) => h("th", { class: i ? "n" : "" }, t)))),
          h("tbody", {}, q.gates.map((g) => h("tr", { dataset: { gate: g.gate } },
            h("td", {}, g.gate),
            h("td", { class: "n" }, g.waiting),
            h("td", { class: "n" }, duration(g.longest_wait_ms)),
            h("td", { class: `n ${slLevel(g.service_level_permille) ? "warn" : ""}` }, percent(g.service_level_permille)),
            h("td", { class: `n ${abandonLevel(g.abandon_rate_permille) ? "warn" : ""}` }, percent(g.abandon_rate_permille)),
            h("td", { class: "n" }, g.stats.answered)))))
      : null;
    return h("article", { class: `queue ${alarm ? "alarm" : ""}`, dataset: { queue: q.queue } },
      h("div", { class: "queue-head" },
        h("h3", {}, q.name || q.queue),
        h("div", { class: "badges" },
          q.alarm_longest_wait ? h("span", { class: "badge", dataset: { alarm: "longest_wait" } }, "MAX WAIT") : null,
          q.alarm_depth ? h("span", { class: "badge", dataset: { alarm: "depth" } }, "MAX DEPTH") : null),
        h("span", { class: "staff" }, `${q.logged_in} logged in · ${q.available} available · ${q.busy} busy`)),
      h("div", { class: "figures" },
        figure("waiting", "waiting", q.waiting + (q.callbacks_waiting ? ` +${q.callbacks_waiting}` : ""), q.alarm_depth ? "breach" : ""),
        figure("longest_wait", "longest wait", duration(q.longest_wait_ms), q.alarm_longest_wait ? "breach" : ""),
        etaFigure(q),
        figure("service_level", "service level", percent(q.service_level_permille), slLevel(q.service_level_permille)),
        figure("abandon_rate", "abandoned", percent(q.abandon_rate_permille), abandonLevel(q.abandon_rate_permille)),
        figure("answered", "answered", q.stats.answered),
        ...todayFigures(q.queue)),
      plot(state.history.get(q.queue) || []),
      h("div", { class: "legend" }, h("span", { class: "depth" }, "━ waiting"), " · ", h("span", { class: "abandon" }, "╍ abandon rate")),
      gates);
  });
  $("queues").replaceChildren(...cards);
  fillReportQueues();
}

/// ASA and AHT since midnight (the node's time zone), from the history database; nothing
/// when the node keeps no history.
function todayFigures(queue) {
  const t = state.today?.queues.find((row) => row.queue === queue);
  if (!t) return [];
  const seconds = (s) => (s == null ? "–" : duration(s * 1000));
  return [
    figure("asa_today", "ASA today", seconds(t.asa_s)),
    figure("aht_today", "AHT today", seconds(t.aht_s)),
  ];
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

/// Four horizontal grid lines and their labels (`left(f)`, `right(f)` for f = 1 at the top
/// down to 0; either may be null) in the box `b` ({ W, H, L, R, T, B }).
function grid(svg, b, left, right) {
  for (let i = 0; i <= 4; i++) {
    const gy = b.T + (i / 4) * (b.H - b.T - b.B);
    svg.append(s("line", { x1: b.L, x2: b.W - b.R, y1: gy, y2: gy, class: "grid" }));
    if (left) svg.append(s("text", { x: b.L - 4, y: gy + 4, "text-anchor": "end" }, left(1 - i / 4)));
    if (right) svg.append(s("text", { x: b.W - b.R + 4, y: gy + 4 }, right(1 - i / 4)));
  }
}

/// Depth (left axis) and abandon rate (right axis, %) against time, hand-drawn in SVG.
function plot(points) {
  const W = 600, H = 150, L = 34, R = 40, T = 8, B = 20;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img", "aria-label": "waiting calls and abandon rate" });
  const now = points.length ? points[points.length - 1].t : serverNow();
  const span = points.length ? now - points[0].t : 0;
  const win = Math.min(HISTORY_MS, Math.max(PLOT_MIN_WINDOW_MS, span));
  const maxDepth = Math.max(4, ...points.map((p) => p.depth));
  const depthTop = Math.ceil(maxDepth / 4) * 4;
  const maxAbandon = Math.max(200, ...points.map((p) => p.abandon ?? 0));
  const abandonTop = Math.ceil(maxAbandon / 200) * 200;
  const x = (t) => L + ((t - (now - win)) / win) * (W - L - R);
  const y = (v, top) => T + (1 - v / top) * (H - T - B);
  grid(svg, { W, H, L, R, T, B }, (f) => Math.round(depthTop * f), (f) => `${Math.round((abandonTop * f) / 10)}%`);
  svg.append(s("text", { x: L, y: H - 4 }, `−${Math.round(win / 60000)} min`));
  svg.append(s("text", { x: W - R, y: H - 4, "text-anchor": "end" }, "now"));
  const line = (cls, pick, top) => {
    const pts = points.filter((p) => pick(p) != null).map((p) => `${x(p.t).toFixed(1)},${y(pick(p), top).toFixed(1)}`);
    if (pts.length) svg.append(s("polyline", { points: pts.join(" "), class: cls }));
  };
  line("depth", (p) => p.depth, depthTop);
  line("abandon", (p) => p.abandon, abandonTop);
  return svg;
}

function siteOf(o) {
  return o.site ?? null;
}

function renderAgents() {
  const groups = new Map();
  for (const o of state.operators.values()) {
    const key = siteOf(o);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(o);
  }
  const keys = [...groups.keys()].sort((a, b) => (a == null) - (b == null) || a - b);
  const out = keys.map((site) => {
    const ops = groups.get(site).sort((a, b) => STATES.indexOf(a.state) - STATES.indexOf(b.state) || a.operator.localeCompare(b.operator));
    const counts = STATES.map((st) => [st, ops.filter((o) => o.state === st).length]).filter(([, n]) => n);
    return h("div", { class: "site-group", dataset: { site: site ?? "none" } },
      h("h3", {}, site == null ? "Logged out" : `Site ${site}`, " ",
        h("span", { class: "dim" }, counts.map(([st, n]) => `${n} ${st.replace("_", "-")}`).join(" · "))),
      h("table", {}, h("tbody", {}, ops.map(agentRow))));
  });
  $("agents").replaceChildren(...out);
}

function agentRow(o) {
  const label = o.state === "break" && o.break_reason ? `break: ${o.break_reason}` : o.state.replace("_", "-");
  const loggedIn = o.state !== "offline";
  return h("tr", { dataset: { operator: o.operator } },
    h("td", {}, o.name || o.operator, " ", h("span", { class: "dim" }, o.operator)),
    h("td", {}, h("span", { class: `state ${o.state}`, dataset: { field: "state" } }, label)),
    h("td", { class: "n", dataset: { since: o.since_ms } }, duration(serverNow() - o.since_ms)),
    callCell(o),
    todayCell(o),
    state.canAct
      ? h("td", {}, loggedIn
          ? h("div", { class: "actions" },
              o.state !== "available" && o.state !== "busy" && o.state !== "offered"
                ? h("button", { type: "button", dataset: { action: "available", operator: o.operator }, onclick: () => setOperatorState(o.operator, "available") }, "Available")
                : null,
              o.state !== "break"
                ? h("button", { type: "button", dataset: { action: "break", operator: o.operator }, onclick: () => askBreak(o) }, "Break…")
                : null,
              monitorButton(o),
              h("button", { type: "button", class: "danger", dataset: { action: "logout", operator: o.operator }, onclick: () => act(`/v1/operators/${enc(o.operator)}/logout`, undefined, `${o.operator} logged out`) }, "Log out"))
          : null)
      : null);
}

/// Calls the operator took today (from the history database), with their talk time.
function todayCell(o) {
  const t = state.today?.operators.find((row) => row.operator === o.operator);
  if (!state.today) return null;
  const calls = t?.calls_taken ?? 0;
  return h("td", { class: "n", dataset: { field: "calls_today" }, title: t ? `talk ${duration(t.talk_s * 1000)} today` : "" },
    `${calls} today`);
}

/// The operator's current call, its id whole (the caller's number in the tooltip when the
/// call is known here), or else the queues they serve.
function callCell(o) {
  if (!o.call) return h("td", { class: "dim", dataset: { field: "queues" } }, o.queues.map(queueName).join(", "));
  const c = state.calls.get(o.call);
  const who = c?.caller_number ? `caller ${c.caller_number}${c.caller_name ? ` (${c.caller_name})` : ""}` : "";
  return h("td", { class: "dim", title: who, dataset: { field: "call", call: o.call } }, `☎ ${o.call}`);
}

function sortedWaiting() {
  const waiting = [...state.calls.values()].filter((c) => WAITING.has(c.status));
  waiting.sort((a, b) => a.global_order[0] - b.global_order[0] || a.global_order[1] - b.global_order[1] || a.global_order[2] - b.global_order[2]);
  return waiting;
}

function renderCalls() {
  const waiting = sortedWaiting();
  const positions = new Map();
  const queues = state.queues.map((q) => q.queue);
  $("calls-head").replaceChildren(
    ...["#", "Call", "Caller", "Site", "Queue", "Gate", "Prio", "Wait", "Pos"].map((t, i) => h("th", { class: [0, 3, 6, 7, 8].includes(i) ? "n" : "" }, t)),
    // replaceChildren, unlike h(), would write a null out as the text "null".
    ...(state.canAct ? [h("th", {}, "Move to")] : []));
  const rows = waiting.slice(0, CALL_ROWS_MAX).map((c, i) => {
    const position = (positions.get(c.queue) || 0) + 1;
    positions.set(c.queue, position);
    const others = queues.filter((q) => q !== c.queue);
    return h("tr", { class: c.priority === 0 ? "vip" : "", dataset: { call: c.call, queue: c.queue } },
      h("td", { class: "n dim" }, i + 1),
      h("td", {}, c.call, c.callback ? h("div", {}, h("span", { class: "pill", title: "will be called back" }, "callback")) : null),
      h("td", { class: "caller", dataset: { field: "caller", number: c.caller_number ?? "" } },
        c.caller_number ?? "–", c.caller_name ? h("div", { class: "dim" }, c.caller_name) : null),
      h("td", { class: "n" }, c.entry_site),
      h("td", { dataset: { field: "queue" } }, queueName(c.queue)),
      h("td", {}, c.gate || "–"),
      h("td", { class: "n", dataset: { field: "priority" } }, state.canAct ? prioritySelect(c) : c.priority),
      h("td", { class: "n wait", dataset: { since: c.since_ms, long: LONG_WAIT_MS } }, duration(serverNow() - c.since_ms)),
      h("td", { class: "n", dataset: { field: "position" } }, position),
      state.canAct
        ? h("td", {}, h("div", { class: "actions" }, others.slice(0, 3).map((q) =>
            h("button", { type: "button", dataset: { action: "reassign", call: c.call, queue: q }, onclick: () => reassign(c.call, q) }, `→ ${queueName(q)}`)),
            others.length > 3 ? h("select", { dataset: { action: "reassign-more", call: c.call }, onchange: (e) => e.target.value && reassign(c.call, e.target.value) },
              h("option", { value: "" }, "more…"), others.slice(3).map((q) => h("option", { value: q }, queueName(q)))) : null))
        : null);
  });
  $("calls").replaceChildren(...rows);
  $("calls-empty").hidden = waiting.length > 0;
  const busy = [...state.calls.values()].length - waiting.length;
  $("calls-count").textContent = `${waiting.length} waiting${waiting.length > CALL_ROWS_MAX ? ` (first ${CALL_ROWS_MAX} shown)` : ""} · ${busy} offered or connected`;
}

function prioritySelect(c) {
  const values = new Set([0, 1, 3, 5, 7, 10, c.priority]);
  return h("select", { "aria-label": `priority of ${c.call}`, dataset: { action: "priority", call: c.call },
    onchange: (e) => { act(`/v1/calls/${enc(c.call)}/priority`, { priority: Number(e.target.value) }, `${c.call}: priority ${e.target.value}`); e.target.blur(); } },
  [...values].sort((a, b) => a - b).map((p) => h("option", { value: p, selected: p === c.priority }, p === 0 ? "0 VIP" : p)));
}

function health(edge, detail) {
  if (edge === undefined) return h("td", { class: "dim" }, "?");
  if (edge === null) return h("td", { class: "dim", title: "not configured" }, "–");
  const lag = edge.lag_entries ? ` (${edge.lag_entries} behind)` : "";
  return h("td", { class: edge.ok ? "ok" : "bad", title: edge.detail || detail }, (edge.ok ? "✓ ok" : "✗ down") + lag);
}

/// The routing state's view of a site: up; unreachable (its calls go on, nothing is
/// offered across it) with how long; or lost (declared gone).
function siteState(m) {
  if (m.site_state === "unreachable") {
    const since = m.unreachable_since_ms;
    const text = since ? `unreachable ${duration(Math.max(0, serverNow() - since))}` : "unreachable";
    return h("td", { class: "bad", title: "silent: its calls go on, nothing is offered across it" }, text);
  }
  if (m.site_state === "lost") return h("td", { class: "bad", title: "declared gone" }, "lost");
  return h("td", { class: "ok" }, "up");
}

/// Ingress answers that put `site` first, summed over every node's report, with the reasons.
function steeredTo(c, site) {
  const byReason = new Map();
  for (const m of c.members || []) {
    for (const d of m.health?.ingress_decisions || []) {
      if (d.site === site) byReason.set(d.reason, (byReason.get(d.reason) || 0) + d.count);
    }
  }
  const total = [...byReason.values()].reduce((a, b) => a + b, 0);
  const title = [...byReason].map(([reason, n]) => `${reason.replace("_", " ")}: ${n}`).join(", ");
  return h("td", { class: `n ${total ? "" : "dim"}`, title: title || "no ingress answers put this site first", dataset: { field: "steered" } }, total);
}

/// A site that is an island (cut off from the others, serving its own callers with its own
/// operators) or is merging one back, as its own health report says: a banner naming it and
/// since when. Only the island's own node knows it is one; the others show it unreachable.
function renderIsland(c) {
  const lines = (c?.members || []).filter((m) => m.health?.island).map((m) => {
    const island = m.health.island;
    if (island.phase === "merging") return `Site ${m.site} is back in touch and is merging its island into the cluster.`;
    const since = island.since_ms ? ` for ${duration(Math.max(0, serverNow() - island.since_ms))}` : "";
    const what = island.serving_fork
      ? "it serves its own callers with its own operators and merges back when the link returns"
      : "it waits for the link to return";
    return `Site ${m.site} has been cut off from the other sites${since} (island mode): ${what}.`;
  });
  const banner = $("island-banner");
  banner.hidden = lines.length === 0;
  banner.textContent = lines.join(" ");
}

function renderCluster() {
  const c = state.cluster;
  renderIsland(c);
  $("cluster-summary").textContent = c ? `leader ${c.leader ? "site " + c.leader : "none"} · term ${c.term} · seen from site ${state.site ?? "?"}` : "";
  $("cluster").replaceChildren(...(c?.members || []).map((m) => {
    const hl = m.health;
    const raft = m.site === c.leader ? "leader" : hl?.raft?.role || (m.voter ? "voter" : "learner");
    return h("tr", { dataset: { site: m.site } },
      h("td", { class: "n" }, m.site),
      h("td", { class: m.site === c.leader ? "ok" : c.leader == null ? "bad" : "" }, raft, m.voter ? "" : " (learner)"),
      h("td", { class: `n ${m.lag_entries > 100 ? "warn" : ""}` }, m.lag_entries ?? "–"),
      h("td", { class: m.reachable === false ? "bad" : m.reachable ? "ok" : "dim" }, m.reachable == null ? "?" : m.reachable ? "✓" : "✗"),
      siteState(m),
      hl ? h("td", { class: hl.ari_connected ? "ok" : "bad" }, hl.ari_connected ? "✓ ok" : "✗ down") : h("td", { class: "dim" }, "?"),
      health(hl ? hl.redis : undefined),
      health(hl ? hl.database : undefined),
      steeredTo(c, m.site));
  }));
  $("alarms").replaceChildren(...state.alarms.map((a) => {
    const what = a.kind === "depth" ? `depth ${a.value} (max ${a.threshold})` : `longest wait ${duration(a.value)} (max ${duration(a.threshold)})`;
    return h("li", { class: a.raised ? "raised" : "dim" }, `${new Date(a.at).toLocaleTimeString()} ${queueName(a.queue)}: ${what} ${a.raised ? "raised" : "cleared"}`);
  }));
}

/// Times in state and waits tick between frames.
function tick() {
  const now = serverNow();
  for (const el of document.querySelectorAll("[data-since]")) {
    const ms = now - Number(el.dataset.since);
    el.textContent = duration(ms);
    if (el.dataset.long) el.classList.toggle("long", ms > Number(el.dataset.long));
  }
  $("clock").textContent = state.me ? new Date(now).toLocaleTimeString() : "";
  if (state.connState === "open" && state.lastFrameAt && Date.now() - state.lastFrameAt > STALE_MS) {
    $("conn").textContent = "stale";
    $("conn").className = "pill retry";
  } else if (state.connState === "open") {
    showConn("live");
  }
}
setInterval(tick, 1000);

// ---------------------------------------------------------------------------- pages

/// `#reports` or the live board (anything else).
function showPage() {
  if (!state.me) return;
  const reports = location.hash === "#reports";
  $("live-view").hidden = reports;
  $("reports-view").hidden = !reports;
  for (const a of document.querySelectorAll("#pages a")) a.classList.toggle("current", a.dataset.page === (reports ? "reports" : "live"));
  if (!reports) return;
  $("reports-denied").hidden = state.canReport;
  $("reports-role").textContent = state.me.role;
  for (const id of ["reports-section", "report-plots-section", "report-agents-section"]) if (!state.canReport) $(id).hidden = true;
  if (!state.canReport) return;
  $("reports-section").hidden = false;
  if (!report.shown) {
    report.shown = true;
    const today = localDate(new Date());
    $("report-from").value = $("report-from").value || today;
    $("report-to").value = $("report-to").value || today;
    fillReportQueues();
    loadReport();
  }
}
window.addEventListener("hashchange", showPage);

// ---------------------------------------------------------------------------- reports

/// The report being shown: `seq` drops answers to older requests; CSV links are blob URLs.
const report = { shown: false, seq: 0, urls: [] };

/// "2026-12-07" for the browser's local date of `d` (what an <input type=date> holds).
function localDate(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/// Local midnight starting the date `text` ("2026-12-07"), plus `days`, as Unix ms.
function localMidnight(text, days = 0) {
  const [y, m, d] = text.split("-").map(Number);
  return new Date(y, m - 1, d + days).getTime();
}

function resetReports() {
  report.shown = false;
  report.seq++;
  for (const u of report.urls) URL.revokeObjectURL(u);
  report.urls = [];
  for (const id of ["report-plots-section", "report-agents-section", "report-csv-queues", "report-csv-operators"]) $(id).hidden = true;
  $("report-status").textContent = "";
  delete $("reports-view").dataset.query;
  delete document.body.dataset.report;
}

/// The queue picker follows the live queues; the gate picker the chosen queue's gates (or
/// every queue's).
function fillReportQueues() {
  const select = $("report-queue");
  const want = [["", "all queues"], ...state.queues.map((q) => [q.queue, q.name || q.queue])];
  const have = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    const chosen = select.value;
    select.replaceChildren(...want.map(([v, t]) => h("option", { value: v, selected: v === chosen }, t)));
  }
  fillReportGates();
}

function fillReportGates() {
  const select = $("report-gate");
  const queue = $("report-queue").value;
  const gates = [...new Set(state.queues.filter((q) => !queue || q.queue === queue).flatMap((q) => q.gates.map((g) => g.gate)))].sort();
  const want = [["", "all gates"], ...gates.map((g) => [g, g])];
  const have = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(want) === JSON.stringify(have)) return;
  const chosen = select.value;
  select.replaceChildren(...want.map(([v, t]) => h("option", { value: v, selected: v === chosen }, t)));
}
$("report-queue").addEventListener("change", fillReportGates);
$("report-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadReport();
});

/// The query both report routes get: `from`/`to` are the local midnights that start the
/// first day and end the last one (Unix ms, as the API takes them).
function reportQuery() {
  const from = localMidnight($("report-from").value);
  const to = localMidnight($("report-to").value, 1);
  const q = new URLSearchParams({ from, to, interval: $("report-interval").value });
  if ($("report-queue").value) q.set("queue", $("report-queue").value);
  if ($("report-gate").value) q.set("gate", $("report-gate").value);
  return { from, to, q };
}

async function loadReport() {
  if (!$("report-from").value || !$("report-to").value) return;
  const { from, to, q } = reportQuery();
  if (to <= from) {
    $("report-status").textContent = "The period ends before it starts.";
    return;
  }
  const seq = ++report.seq;
  delete document.body.dataset.report;
  $("report-status").textContent = "Loading…";
  const csvQuery = new URLSearchParams(q);
  csvQuery.set("format", "csv");
  let answers;
  try {
    answers = await Promise.all([
      api(`/v1/reports/queues?${q}`),
      api(`/v1/reports/operators?${q}`),
      apiText(`/v1/reports/queues?${csvQuery}`),
      apiText(`/v1/reports/operators?${csvQuery}`),
    ]);
  } catch (e) {
    if (seq !== report.seq) return;
    $("report-status").textContent = e instanceof ApiError && e.status === 403
      ? "This token may not read reports."
      : `No report: ${e.message}${e.field ? ` (${e.field})` : ""}`;
    for (const id of ["report-plots-section", "report-agents-section", "report-csv-queues", "report-csv-operators"]) $(id).hidden = true;
    document.body.dataset.report = "error";
    return;
  }
  if (seq !== report.seq) return;
  const [queueRows, operatorRows, queueCsv, operatorCsv] = answers;
  const interval = $("report-interval").value;
  const name = `${$("report-from").value}_${$("report-to").value}_${interval}${$("report-queue").value ? "_" + $("report-queue").value : ""}${$("report-gate").value ? "_" + $("report-gate").value : ""}`;
  for (const u of report.urls) URL.revokeObjectURL(u);
  report.urls = [];
  for (const [id, text, what] of [["report-csv-queues", queueCsv, "queues"], ["report-csv-operators", operatorCsv, "operators"]]) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    report.urls.push(url);
    Object.assign($(id), { href: url, download: `lineup-${what}-${name}.csv`, hidden: false });
  }
  const span = localMoment(from, "day") + (to - from > 86_400_000 + 3_600_000 ? ` – ${localMoment(to - 1, "day")}` : "");
  $("report-period").textContent = `${span} · ${$("report-queue").selectedOptions[0]?.textContent ?? ""}${$("report-gate").value ? " · gate " + $("report-gate").value : ""}`;
  renderReportPlots(byInterval(queueRows), interval, to - from > 86_400_000 + 3_600_000);
  renderReportAgents(operatorRows, interval);
  $("report-status").textContent = `${queueRows.length} queue rows, ${operatorRows.length} operator rows`;
  $("report-plots-section").hidden = false;
  $("report-agents-section").hidden = false;
  $("reports-view").dataset.query = String(q);
  document.body.dataset.report = "loaded";
}

/// An interval's start in the browser's time zone: the date for daily intervals, else the
/// time (with the date when the period spans days).
function localMoment(ms, interval, withDate = true) {
  const d = new Date(ms);
  if (interval === "day") return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" });
  const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return withDate ? `${d.toLocaleDateString(undefined, { day: "numeric", month: "short" })} ${time}` : time;
}

/// Queue rows summed by interval (one queue: its own figures as the API gave them; all
/// queues: counts summed, service level and abandon rate from the sums, ASA weighted by
/// answered calls).
function byInterval(rows) {
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.interval_start)) groups.set(r.interval_start, []);
    groups.get(r.interval_start).push(r);
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([start, rs]) => {
    const sum = (f) => rs.reduce((n, r) => n + r[f], 0);
    const offered = sum("offered"), answered = sum("answered"), abandoned = sum("abandoned");
    const counted = offered - sum("abandoned_before_sl");
    const one = rs.length === 1 ? rs[0] : null;
    return {
      start, offered, answered, abandoned,
      service_level: one ? one.service_level : counted > 0 ? sum("answered_within_sl") / counted : null,
      abandon_rate: offered > 0 ? abandoned / offered : null,
      asa_s: one ? one.asa_s : answered > 0 ? rs.reduce((n, r) => n + (r.asa_s ?? 0) * r.answered, 0) / answered : null,
    };
  });
}

function renderReportPlots(points, interval, spansDays) {
  const empty = points.every((p) => p.offered === 0);
  $("report-empty").hidden = !empty;
  if (empty) {
    $("report-plots").replaceChildren();
    return;
  }
  const pct = (v) => (v == null ? "–" : `${Math.round(v * 1000) / 10}%`);
  const secs = (v) => (v == null ? "–" : `${v} s`);
  const charts = [
    ["volume", "Calls: offered, answered, abandoned", reportChart(points, interval, spansDays, {
      bars: [["offered", "offered"], ["answered", "answered"], ["abandoned", "abandoned"]], top: niceTop(Math.max(...points.map((p) => p.offered))), format: (v) => v,
    }), h("div", { class: "legend" }, h("span", { class: "offered" }, "▮ offered"), " · ", h("span", { class: "answered" }, "▮ answered"), " · ", h("span", { class: "abandoned" }, "▮ abandoned"))],
    ["service_level", "Service level", reportChart(points, interval, spansDays, { line: "service_level", top: 1, format: pct })],
    ["abandon_rate", "Abandon rate", reportChart(points, interval, spansDays, {
      line: "abandon_rate", top: Math.max(0.2, Math.ceil(Math.max(...points.map((p) => p.abandon_rate ?? 0)) * 5) / 5), format: pct,
    })],
    ["asa", "Average speed of answer", reportChart(points, interval, spansDays, {
      line: "asa_s", cls: "asa", top: niceTop(Math.max(...points.map((p) => p.asa_s ?? 0))), format: secs,
    })],
  ];
  $("report-plots").replaceChildren(...charts.map(([key, title, svg, legend]) =>
    h("figure", { dataset: { chart: key } }, h("figcaption", {}, title), svg, legend)));
}

/// 4, 8, 12 … or the next multiple of four above `max`.
function niceTop(max) {
  return Math.max(4, Math.ceil(max / 4) * 4);
}

/// One value per interval, hand-drawn in SVG like the wallboard's plot: grouped bars
/// (`bars`: [field, class]) or a line with a dot per interval (`line`: field). Each
/// interval is a <g data-start> whose shapes carry data-series and data-value (the figure
/// as the API gave it) and a tooltip.
function reportChart(points, interval, spansDays, { bars, line, cls = line, top, format }) {
  const W = 600, H = 170, L = 40, R = 12, T = 8, B = 22;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  grid(svg, { W, H, L, R, T, B }, (f) => format(top === 1 || top < 1 ? Math.round(top * f * 100) / 100 : Math.round(top * f)), null);
  const n = points.length;
  const slot = (W - L - R) / n;
  const y = (v) => T + (1 - Math.min(v, top) / top) * (H - T - B);
  const labelEvery = Math.max(1, Math.ceil(n / 8));
  const path = [];
  points.forEach((p, i) => {
    const x0 = L + i * slot;
    const g = s("g", { "data-start": p.start });
    const when = localMoment(p.start, interval, spansDays);
    if (bars) {
      const w = Math.max(1, (slot * 0.8) / bars.length);
      bars.forEach(([field, c], j) => {
        const v = p[field];
        const r = s("rect", { x: (x0 + slot * 0.1 + j * w).toFixed(1), y: y(v).toFixed(1), width: w.toFixed(1), height: (H - B - y(v)).toFixed(1), class: c, "data-series": field, "data-value": v });
        r.append(s("title", {}, `${when}: ${v} ${field}`));
        g.append(r);
      });
    } else {
      const v = p[line];
      if (v != null) {
        const cx = x0 + slot / 2;
        path.push(`${cx.toFixed(1)},${y(v).toFixed(1)}`);
        const dot = s("circle", { cx: cx.toFixed(1), cy: y(v).toFixed(1), r: 3, class: cls, "data-series": line, "data-value": v });
        dot.append(s("title", {}, `${when}: ${format(v)}`));
        g.append(dot);
      } else {
        g.append(s("g", { "data-series": line, "data-value": "" }));
      }
    }
    if (i % labelEvery === 0) svg.append(s("text", { x: (x0 + 2).toFixed(1), y: H - 6 }, when));
    svg.append(g);
  });
  if (path.length > 1) svg.insertBefore(s("polyline", { points: path.join(" "), class: cls }), svg.querySelector("g[data-start]"));
  svg.setAttribute("aria-label", bars ? "calls by interval" : `${cls} by interval`);
  return svg;
}

/// Operator rows with something in them (logged in, a login, a call or a break), grouped
/// by operator; each cell's data-value is the API's figure.
function renderReportAgents(rows, interval) {
  const shown = rows.filter((r) => r.logged_in_s > 0 || r.logins > 0 || r.calls_taken > 0 || r.break_s > 0);
  $("report-agents-empty").hidden = shown.length > 0;
  $("report-agents-table").hidden = shown.length === 0;
  const secs = (field) => (r) => h("td", { class: "n", dataset: { field, value: r[field] } }, duration(r[field] * 1000));
  $("report-agents").replaceChildren(...shown.map((r, i) => {
    const first = i === 0 || shown[i - 1].operator !== r.operator;
    const name = state.operators.get(r.operator)?.name;
    const breaks = Object.entries(r.breaks);
    return h("tr", { class: first ? "first" : "", dataset: { operator: r.operator, start: r.interval_start } },
      h("td", {}, first ? [name || r.operator, " ", name ? h("span", { class: "dim" }, r.operator) : null] : ""),
      h("td", {}, localMoment(r.interval_start, interval)),
      h("td", { class: "n", dataset: { field: "calls_taken", value: r.calls_taken } }, r.calls_taken),
      secs("talk_s")(r),
      secs("wrap_up_s")(r),
      secs("break_s")(r),
      h("td", { dataset: { field: "breaks", value: JSON.stringify(r.breaks) } }, breaks.length ? breaks.map(([k, v]) => `${k} ${duration(v * 1000)}`).join(", ") : "–"),
      secs("available_s")(r),
      secs("logged_in_s")(r),
      h("td", { class: "n", dataset: { field: "logins", value: r.logins } }, r.logins),
      h("td", { class: "n", dataset: { field: "occupancy", value: r.occupancy ?? "" } }, r.occupancy == null ? "–" : percent(r.occupancy * 1000)));
  }));
}

// ---------------------------------------------------------------------------- actions

const enc = encodeURIComponent;

function toast(text, bad = false) {
  const el = $("toast");
  el.textContent = text;
  el.className = bad ? "bad" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 4000);
}

async function act(path, body, done) {
  try {
    await api(path, { method: "POST", body: body ?? {} });
    toast(done);
  } catch (e) {
    toast(`Refused: ${e.message}${e.field ? ` (${e.field})` : ""}`, true);
  }
}

function reassign(call, queue) {
  return act(`/v1/calls/${enc(call)}/reassign`, { queue }, `${call} moved to ${queueName(queue)}`);
}

function setOperatorState(operator, st, reason) {
  const body = reason ? { state: st, reason } : { state: st };
  return act(`/v1/operators/${enc(operator)}/state`, body, `${operator}: ${st}${reason ? ` (${reason})` : ""}`);
}

let breakFor = null;
function askBreak(o) {
  breakFor = o.operator;
  $("break-operator").textContent = o.name || o.operator;
  $("break-dialog").showModal();
  $("break-reason").select();
}
$("break-cancel").addEventListener("click", () => $("break-dialog").close());
$("break-form").addEventListener("submit", (e) => {
  const reason = $("break-reason").value.trim();
  if (!reason) { e.preventDefault(); return; }
  if (breakFor) setOperatorState(breakFor, "break", reason);
  breakFor = null;
});

/// Connected calls only: the API refuses to monitor anything else.
const MONITORABLE = new Set(["connected", "callback_connected"]);
let monitorFor = null;

function monitorButton(o) {
  const c = o.call && state.calls.get(o.call);
  if (!c || !MONITORABLE.has(c.status)) return null;
  return h("button", { type: "button", dataset: { action: "monitor", call: o.call }, onclick: () => askMonitor(o) }, "Monitor…");
}

function askMonitor(o) {
  monitorFor = o.call;
  $("monitor-call").textContent = o.call;
  $("monitor-operator").textContent = o.name || o.operator;
  // The supervisor's own phone, remembered for the tab.
  $("monitor-endpoint").value = sessionStorage.getItem("lineup.monitor_endpoint") || "";
  $("monitor-dialog").showModal();
  $("monitor-endpoint").select();
}
$("monitor-cancel").addEventListener("click", () => $("monitor-dialog").close());
$("monitor-form").addEventListener("submit", (e) => {
  const endpoint = $("monitor-endpoint").value.trim();
  if (!endpoint) { e.preventDefault(); return; }
  sessionStorage.setItem("lineup.monitor_endpoint", endpoint);
  const mode = $("monitor-mode").value;
  if (monitorFor) act(`/v1/calls/${enc(monitorFor)}/monitor`, { mode, endpoint }, `${monitorFor}: ${mode}, ringing ${endpoint}`);
  monitorFor = null;
});

boot();
