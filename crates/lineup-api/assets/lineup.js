// Minimal client for the Lineup API: the token lives in localStorage (never in the page).
export function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) localStorage.setItem("lineup.token", fromUrl);
  return localStorage.getItem("lineup.token") || "";
}

export async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

export function ws(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sep = path.includes("?") ? "&" : "?";
  return new WebSocket(`${scheme}//${location.host}${path}${sep}token=${encodeURIComponent(token())}`);
}

export function seconds(ms) {
  return ms == null ? "–" : Math.round(ms / 1000) + " s";
}
