// Shared client for the Lineup pages: the API token, REST calls, WebSockets that reconnect
// with backoff, and formatting. The dashboard keeps its token in sessionStorage (gone with
// the tab); the widget takes its token from its URL and keeps it in memory only.

const TOKEN_KEY = "lineup.token";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.field = body.field;
    this.code = body.code;
  }
}

export async function api(path, { token = session.token, method = "GET", body } = {}) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, answer);
  return answer;
}

/// The same as `api` for an answer that is not JSON (a report's `format=csv`): its text.
export async function apiText(path, { token = session.token } = {}) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => ({})));
  return res.text();
}

/// A WebSocket on `path` that reconnects (0.5 s doubling to 15 s, with jitter) until
/// `stop()`. `onMessage(json)`, `onState("connecting" | "open" | "retry", detail)`.
/// `healthy()` resets the backoff (call it once the server sent something complete).
export function liveSocket(path, token, { onMessage, onState }) {
  let socket = null;
  let delay = 500;
  let timer = null;
  let stopped = false;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sep = path.includes("?") ? "&" : "?";
  const url = `${scheme}//${location.host}${path}${sep}token=${encodeURIComponent(token)}`;
  function connect() {
    if (stopped) return;
    onState("connecting");
    socket = new WebSocket(url);
    socket.onopen = () => onState("open");
    socket.onmessage = (m) => {
      let message;
      try { message = JSON.parse(m.data); } catch { return; }
      onMessage(message);
    };
    socket.onclose = () => {
      socket = null;
      if (stopped) return;
      const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
      delay = Math.min(delay * 2, 15_000);
      onState("retry", wait);
      timer = setTimeout(connect, wait);
    };
  }
  connect();
  return {
    healthy() { delay = 500; },
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

/// "42 s", "3:07", "1:02:03"; "–" for none.
export function duration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

/// Per mille as a percentage ("97%"), "–" for none.
export function percent(permille) {
  return permille == null ? "–" : `${Math.round(permille / 10)}%`;
}

/// Creates an element: h("td", { class: "n", dataset: { x: 1 } }, "text", child...).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/// A callback number as the API accepts it: 3 to 15 digits, optionally after '+'
/// (spaces, dashes, dots and brackets typed by people are dropped first).
export function normalizeNumber(text) {
  const cleaned = String(text).trim().replace(/[\s\-.()]/g, "");
  return /^\+?[0-9]{3,15}$/.test(cleaned) ? cleaned : null;
}
