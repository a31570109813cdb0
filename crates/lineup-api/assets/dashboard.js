// The supervisor dashboard: sign-in, then one /v1/live WebSocket (snapshot in parts, then
// deltas) feeding a client-side copy of queues, operators, calls and the cluster. Actions are
// REST calls; their effects come back over the socket like anyone else's. Times in state and
// waits tick locally from `since_ms` and the server clock offset.
import { api, session, liveSocket, duration, percent, h, ApiError } from "/assets/lineup.js";

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
  document.body.dataset.role = me.role;
  $("who").textContent = `${me.name} · ${me.role}`;
  $("signin-view").hidden = true;
  $("dashboard-view").hidden = false;
  start();
  return true;
}

function signOut(message = "") {
  if (state.socket) state.socket.stop();
  state.socket = null;
  session.token = "";
  state.me = null;
  state.canAct = false;
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
      mark("calls");
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
        figure("eta", "ETA", duration(q.eta_ms)),
        figure("service_level", "service level", percent(q.service_level_permille), slLevel(q.service_level_permille)),
        figure("abandon_rate", "abandoned", percent(q.abandon_rate_permille), abandonLevel(q.abandon_rate_permille)),
        figure("answered", "answered", q.stats.answered)),
      plot(state.history.get(q.queue) || []),
      h("div", { class: "legend" }, h("span", { class: "depth" }, "━ waiting"), " · ", h("span", { class: "abandon" }, "╍ abandon rate")),
      gates);
  });
  $("queues").replaceChildren(...cards);
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
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
  for (let i = 0; i <= 4; i++) {
    const gy = T + (i / 4) * (H - T - B);
    svg.append(s("line", { x1: L, x2: W - R, y1: gy, y2: gy, class: "grid" }));
    svg.append(s("text", { x: L - 4, y: gy + 4, "text-anchor": "end" }, Math.round(depthTop * (1 - i / 4))));
    svg.append(s("text", { x: W - R + 4, y: gy + 4 }, `${Math.round((abandonTop * (1 - i / 4)) / 10)}%`));
  }
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
    h("td", { class: "dim clip" }, o.call ? `☎ ${o.call}` : o.queues.map(queueName).join(", ")),
    state.canAct
      ? h("td", {}, loggedIn
          ? h("div", { class: "actions" },
              o.state !== "available" && o.state !== "busy" && o.state !== "offered"
                ? h("button", { type: "button", dataset: { action: "available", operator: o.operator }, onclick: () => setOperatorState(o.operator, "available") }, "Available")
                : null,
              o.state !== "break"
                ? h("button", { type: "button", dataset: { action: "break", operator: o.operator }, onclick: () => askBreak(o) }, "Break…")
                : null,
              h("button", { type: "button", class: "danger", dataset: { action: "logout", operator: o.operator }, onclick: () => act(`/v1/operators/${enc(o.operator)}/logout`, undefined, `${o.operator} logged out`) }, "Log out"))
          : null)
      : null);
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
    ...["#", "Call", "Site", "Queue", "Gate", "Prio", "Wait", "Pos"].map((t, i) => h("th", { class: [0, 2, 5, 6, 7].includes(i) ? "n" : "" }, t)),
    state.canAct ? h("th", {}, "Move to") : null);
  const rows = waiting.slice(0, CALL_ROWS_MAX).map((c, i) => {
    const position = (positions.get(c.queue) || 0) + 1;
    positions.set(c.queue, position);
    const others = queues.filter((q) => q !== c.queue);
    return h("tr", { class: c.priority === 0 ? "vip" : "", dataset: { call: c.call, queue: c.queue } },
      h("td", { class: "n dim" }, i + 1),
      h("td", {}, c.call, c.callback ? h("span", { class: "pill", title: "will be called back" }, " callback") : null),
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

function renderCluster() {
  const c = state.cluster;
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
      health(hl ? hl.database : undefined));
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

boot();
