// The dashboard and the caller widget in headless Debian Chromium (driven by playwright-core;
// no browser is downloaded) against a real `lineup demo`: three sites, simulated callers and
// operators, the API and pages served from the binary. Every wait is bounded and waits for a
// condition; nothing sleeps for progress.
//
// Environment: LINEUP_BIN (default: $CARGO_TARGET_DIR or ../../target, then debug/lineup),
// CHROMIUM (default /usr/bin/chromium), LINEUP_BROWSER_ARTIFACTS (screenshots and the demo's
// output; default a fresh temp dir), LINEUP_DEMO_SEED (default 7).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, "target");
const LINEUP = process.env.LINEUP_BIN || path.join(targetDir, "debug", "lineup");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SEED = process.env.LINEUP_DEMO_SEED || "7";
/// The demo runs this long; the tests finish well within it and kill it.
const DEMO_SECONDS = 300;
const ARTIFACTS = process.env.LINEUP_BROWSER_ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), "lineup-browser-"));
fs.mkdirSync(ARTIFACTS, { recursive: true });

/// Bounds (ms) on each kind of wait.
const DEMO_START_MAX = 60_000;
const PAGE_READY_MAX = 20_000;
const LIVE_CHANGE_MAX = 30_000;
const WAITING_CALL_MAX = 60_000;
const API_REFLECTS_MAX = 10_000;
const POSITION_DROP_MAX = 60_000;

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let demo, demoExited, base, adminToken, viewerToken, frontendToken, browser;

function log(...args) {
  console.log("[browser-tests]", ...args);
}

/// Polls `probe` (async, returns a truthy value when done) every 200 ms for at most `maxMs`.
async function until(what, probe, maxMs) {
  const deadline = Date.now() + maxMs;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${maxMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    if (demoExited) throw new Error(`the demo exited while waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function apiGet(p, token = adminToken) {
  const res = await fetch(base + p.replace(/^\//, ""), { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/// The widget link for one call, minted as the web front end would (its frontend token).
async function widgetLink(call) {
  const res = await fetch(`${base}v1/calls/${encodeURIComponent(call)}/widget-token`, {
    method: "POST",
    headers: { Authorization: `Bearer ${frontendToken}` },
  });
  const body = await res.json().catch(() => null);
  return { status: res.status, body, url: body?.url ? base + body.url.replace(/^\//, "") : null };
}

/// Waiting calls in a queue, by position (from the API, as an admin).
async function waitingIn(queue) {
  const { body } = await apiGet("/v1/calls");
  return body.calls.filter((c) => c.status === "waiting" && c.queue === queue).sort((a, b) => a.position - b.position);
}

/// Whether the calls table's rows that the API still lists show the caller's number (and
/// name, when there is one) as the API has them; at least one such row.
async function callersShownAsApi(page, only = null) {
  const shown = await page.evaluate(() => [...document.querySelectorAll("#calls tr[data-call]")].map((r) => {
    const cell = r.querySelector("[data-field=caller]");
    return { call: r.dataset.call, number: cell.dataset.number, text: cell.textContent };
  }));
  const { body } = await apiGet("/v1/calls");
  const api = new Map(body.calls.map((c) => [c.call, c]));
  const both = shown.filter((r) => api.has(r.call) && (!only || only(r.call)));
  return both.length > 0 && both.every((r) => {
    const c = api.get(r.call);
    return c.caller_number && r.number === c.caller_number && r.text.startsWith(c.caller_number)
      && (!c.caller_name || r.text.includes(c.caller_name));
  });
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log("screenshot", file);
  return file;
}

/// Runs `body(page)`; on failure saves a screenshot before rethrowing.
async function withOpenPage(name, page, body) {
  try {
    await body(page);
  } catch (e) {
    await shot(page, `${name}-failure`).catch(() => {});
    throw e;
  }
}

/// Runs `body(page)` on a fresh page (its own context: its own sessionStorage).
async function withPage(name, viewport, body) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name}: page error: ${e.message}`));
  try {
    await withOpenPage(name, page, body);
  } finally {
    await context.close();
  }
}

async function signIn(page, token) {
  await page.goto(base, { timeout: PAGE_READY_MAX });
  await page.fill("#token", token);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("body[data-ready]", { timeout: PAGE_READY_MAX });
}

before(async () => {
  assert.ok(fs.existsSync(LINEUP), `no lineup binary at ${LINEUP} (cargo build -p lineup)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  log("artifacts in", ARTIFACTS);
  const out = fs.createWriteStream(path.join(ARTIFACTS, "demo.log"));
  demo = spawn(LINEUP, ["demo", "--duration", String(DEMO_SECONDS), "--api-port", "0", "--seed", SEED], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
  });
  demo.on("exit", (code, signal) => { demoExited = { code, signal }; });
  let stdout = "";
  demo.stdout.on("data", (d) => { stdout += d; out.write(d); });
  demo.stderr.on("data", (d) => out.write(d));
  const started = await until("the demo to print its dashboard address and tokens", () => {
    const dash = stdout.match(/dashboard: (http:\/\/\S+?\/)\s+\(sign in with the admin token (\S+?)\)/);
    const viewer = stdout.match(/viewer token \(wallboard, no actions\): (\S+)/);
    const frontend = stdout.match(/frontend token \(mints a caller's widget link: .*?\): (\S+)/);
    return dash && viewer && frontend && { base: dash[1], admin: dash[2], viewer: viewer[1], frontend: frontend[1] };
  }, DEMO_START_MAX);
  ({ base, admin: adminToken, viewer: viewerToken, frontend: frontendToken } = started);
  log("demo dashboard at", base);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (demo && !demoExited) {
    demo.kill("SIGKILL");
    await until("the demo to exit", () => demoExited, 10_000).catch(() => {});
  }
  // What the demo would have removed had it finished on its own.
  if (demo?.pid) fs.rmSync(path.join(os.tmpdir(), `lineup-demo-${demo.pid}`), { recursive: true, force: true });
  log("screenshots and the demo's output are in", ARTIFACTS);
});

/// The first test's page stays open for the whole run: the last test checks its plots.
let observer;

test("the dashboard shows the demo's queues, gates, operators by site and the cluster", { timeout: 90_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  observer = await context.newPage();
  observer.on("pageerror", (e) => log(`observer: page error: ${e.message}`));
  await withOpenPage("dashboard", observer, async (page) => {
    await signIn(page, adminToken);
    await page.waitForSelector(".queue[data-queue=sales]", { timeout: PAGE_READY_MAX });
    await page.waitForSelector(".queue[data-queue=support]", { timeout: PAGE_READY_MAX });
    assert.match(await page.textContent(".queue[data-queue=sales] h3"), /Sales/);
    assert.match(await page.textContent(".queue[data-queue=support] h3"), /Support/);
    for (const gate of ["web", "phone"]) await page.waitForSelector(`.queue[data-queue=sales] tr[data-gate=${gate}]`);
    await page.waitForSelector(".queue[data-queue=sales] svg.plot");
    // Six operators, each under the site it is logged in at once they are in.
    const { body } = await apiGet("/v1/operators");
    assert.equal(body.operators.length, 6);
    for (const o of body.operators) await page.waitForSelector(`tr[data-operator="${o.operator}"]`, { timeout: PAGE_READY_MAX });
    await page.waitForFunction(() => document.querySelectorAll(".site-group[data-site='1'], .site-group[data-site='2'], .site-group[data-site='3']").length === 3,
      null, { timeout: LIVE_CHANGE_MAX });
    // The cluster panel lists the three sites and names a leader.
    await page.waitForFunction(() => document.querySelectorAll("#cluster tr[data-site]").length === 3, null, { timeout: PAGE_READY_MAX });
    await page.waitForFunction(() => /leader site \d/.test(document.getElementById("cluster-summary").textContent), null, { timeout: PAGE_READY_MAX });
    // A SIP proxy's question (GET /v1/ingress) shows in the cluster panel's Steered column,
    // under the site the answer put first.
    const { status: steerStatus, body: steer } = await apiGet("/v1/ingress?queue=sales");
    assert.equal(steerStatus, 200);
    assert.equal(steer.sites.length, 3, JSON.stringify(steer));
    const first = steer.sites[0].site;
    await page.waitForFunction((site) => Number(document.querySelector(`#cluster tr[data-site="${site}"] td[data-field=steered]`)?.textContent) >= 1,
      first, { timeout: LIVE_CHANGE_MAX });
    assert.match(await page.textContent("#conn"), /live/);
    assert.match(await page.textContent("#who"), /admin/);
    // Wait for someone in line so the picture shows the calls table at work.
    await page.waitForSelector("#calls tr[data-call]", { timeout: WAITING_CALL_MAX });
    // The waiting calls show their callers' numbers (and names) as the API has them.
    await until("the calls table to show the callers' numbers as the API does", () => callersShownAsApi(page), API_REFLECTS_MAX);
    // Operator rows are read whole at this width: no cell of the first four is cut, and an
    // operator's current call shows its whole id.
    await page.waitForSelector("#agents td[data-field=call]", { timeout: LIVE_CHANGE_MAX });
    const cut = await page.evaluate(() => [...document.querySelectorAll("#agents tr[data-operator]")].flatMap((r) =>
      [...r.cells].slice(0, 4).filter((td) => td.scrollWidth > td.clientWidth + 1).map((td) => `${r.dataset.operator}: ${td.textContent}`)));
    assert.deepEqual(cut, [], "operator cells cut");
    const onCalls = await page.evaluate(() => [...document.querySelectorAll("#agents td[data-field=call]")].map((td) => [td.dataset.call, td.textContent]));
    for (const [call, text] of onCalls) assert.equal(text, `☎ ${call}`);
    await shot(page, "dashboard-start");
  });
});

test("values change live over the WebSocket without a reload", { timeout: 90_000 }, async () => {
  await withPage("live", { width: 1280, height: 800 }, async (page) => {
    await signIn(page, adminToken);
    // Server-driven values only (not the locally ticking times): queue figures and states.
    const fingerprint = () => page.evaluate(() => JSON.stringify([
      [...document.querySelectorAll(".queue [data-field]")].map((e) => e.textContent),
      [...document.querySelectorAll("#agents [data-field=state]")].map((e) => e.textContent),
      [...document.querySelectorAll("#calls tr[data-call]")].map((e) => e.dataset.call),
    ]));
    const first = await fingerprint();
    // The waiting calls the snapshot drew (the first draw fills the count): rows for any
    // other came from deltas.
    await page.waitForFunction(() => document.getElementById("calls-count").textContent !== "", null, { timeout: PAGE_READY_MAX });
    const firstCalls = new Set(await page.evaluate(() => [...document.querySelectorAll("#calls tr[data-call]")].map((r) => r.dataset.call)));
    const navigations = [];
    page.on("framenavigated", (f) => navigations.push(f.url()));
    await until("a live change on the page", async () => (await fingerprint()) !== first, LIVE_CHANGE_MAX);
    // An operator's state on the page follows the API.
    await until("operator states on the page to match the API", async () => {
      const { body } = await apiGet("/v1/operators");
      const shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("tr[data-operator]")]
        .map((r) => [r.dataset.operator, r.querySelector("[data-field=state]").className.split(" ")[1]])));
      return body.operators.every((o) => shown[o.operator] === o.state);
    }, LIVE_CHANGE_MAX);
    assert.deepEqual(navigations, [], "the page reloaded");
    // Calls that joined after the page's snapshot came as `call` deltas: they show their
    // callers' numbers too.
    await until("a call drawn from deltas alone, showing its caller as the API does",
      () => callersShownAsApi(page, (call) => !firstCalls.has(call)), WAITING_CALL_MAX);
    assert.equal(await page.evaluate(() => document.body.dataset.snapshots), "1", "no resync meanwhile");
    await shot(page, "dashboard-laptop");
  });
});

test("the page reconnects when its WebSocket drops and resyncs from a fresh snapshot", { timeout: 90_000 }, async () => {
  await withPage("reconnect", { width: 1280, height: 800 }, async (page) => {
    // Every /v1/live socket passes through the test, which can cut the page's side.
    const sockets = [];
    await page.routeWebSocket(/\/v1\/live/, (ws) => {
      ws.connectToServer();
      sockets.push(ws);
    });
    await signIn(page, adminToken);
    assert.equal(sockets.length, 1);
    await page.waitForFunction(() => document.body.dataset.snapshots === "1");
    await sockets[0].close({ code: 4000, reason: "test cut" });
    await page.waitForFunction(() => /reconnecting|connecting/.test(document.getElementById("conn").textContent), null, { timeout: API_REFLECTS_MAX });
    // Backoff starts at about half a second; the new socket gets a new snapshot.
    await page.waitForFunction(() => document.body.dataset.snapshots === "2", null, { timeout: API_REFLECTS_MAX });
    assert.equal(sockets.length, 2);
    await page.waitForFunction(() => document.getElementById("conn").textContent === "live", null, { timeout: API_REFLECTS_MAX });
    // Still the whole board, still live.
    assert.equal(await page.locator("tr[data-operator]").count(), 6);
    // Frames keep coming on the new socket (queue summaries every second).
    const seq = Number(await page.evaluate(() => document.body.dataset.seq));
    await page.waitForFunction((n) => Number(document.body.dataset.seq) > n, seq, { timeout: API_REFLECTS_MAX });
  });
});

test("one click reassigns a waiting call to the other queue", { timeout: 120_000 }, async () => {
  await withPage("reassign", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, adminToken);
    let moved = null;
    for (let attempt = 0; attempt < 3 && !moved; attempt++) {
      // The last caller in line, least likely to be taken by an operator meanwhile.
      const candidate = await until("a waiting call in sales shown on the page", async () => {
        const calls = await waitingIn("sales");
        const last = calls[calls.length - 1];
        return last && (await page.$(`tr[data-call="${last.call}"] button[data-action=reassign][data-queue=support]`)) && last;
      }, WAITING_CALL_MAX);
      await page.click(`tr[data-call="${candidate.call}"] button[data-action=reassign][data-queue=support]`);
      const outcome = await until("the API to show the reassign (or its refusal)", async () => {
        const { status, body } = await apiGet(`/v1/calls/${encodeURIComponent(candidate.call)}`);
        if (status === 200 && body.queue === "support") return "moved";
        const toast = await page.textContent("#toast");
        if (/Refused/.test(toast) && !(await page.isHidden("#toast"))) return "refused";
        if (status === 404) return "gone";
        return null;
      }, API_REFLECTS_MAX);
      log(`reassign ${candidate.call}: ${outcome}`);
      if (outcome === "moved") moved = candidate.call;
    }
    assert.ok(moved, "no reassign took effect in three tries");
    // The page shows it in Support (or it left the line: support operators pick it up).
    await page.waitForFunction((call) => {
      const row = document.querySelector(`tr[data-call="${call}"]`);
      return !row || row.dataset.queue === "support";
    }, moved, { timeout: API_REFLECTS_MAX });
    assert.match(await page.textContent("#toast"), /moved to Support/);
  });
});

test("Monitor… on a connected call's operator asks the API to ring the supervisor's phone", { timeout: 120_000 }, async () => {
  await withPage("monitor", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, adminToken);
    let accepted = null;
    // A call may end between the click and the request (then the API refuses): try again.
    for (let attempt = 0; attempt < 3 && !accepted; attempt++) {
      const call = await until("a connected call with a Monitor button", async () => {
        const button = await page.$("button[data-action=monitor]");
        return button && (await button.getAttribute("data-call"));
      }, WAITING_CALL_MAX);
      await page.click(`button[data-action=monitor][data-call="${call}"]`);
      await page.selectOption("#monitor-mode", "whisper");
      await page.fill("#monitor-endpoint", "PJSIP/2001");
      await page.click("#monitor-ok");
      const outcome = await until("the monitoring accepted (or refused)", async () => {
        if (await page.isHidden("#toast")) return null;
        const toast = await page.textContent("#toast");
        if (/ringing PJSIP\/2001/.test(toast)) return "accepted";
        return /Refused/.test(toast) ? "refused" : null;
      }, API_REFLECTS_MAX);
      log(`monitor ${call}: ${outcome}`);
      if (outcome === "accepted") accepted = call;
    }
    assert.ok(accepted, "no monitoring accepted in three tries");
    assert.match(await page.textContent("#toast"), new RegExp(`${accepted}: whisper`));
  });
});

test("a viewer token shows the same board with no action buttons, and signs out", { timeout: 90_000 }, async () => {
  await withPage("viewer", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, viewerToken);
    await page.waitForSelector("tr[data-operator]", { timeout: PAGE_READY_MAX });
    await page.waitForSelector(".queue[data-queue=sales]");
    assert.match(await page.textContent("#who"), /viewer/);
    // Let deltas arrive and redraw, then count: no button or picker that acts, anywhere.
    await page.waitForSelector("#calls tr[data-call]", { timeout: WAITING_CALL_MAX });
    assert.equal(await page.locator("[data-action]").count(), 0);
    assert.equal(await page.locator("#calls th", { hasText: "Move to" }).count(), 0);
    assert.equal((await page.textContent("#calls-head")).trim(), "#CallCallerSiteQueueGatePrioWaitPos", "the calls table's header");
    await shot(page, "dashboard-viewer");
    await page.click("#signout");
    await page.waitForSelector("#signin-view:not([hidden])");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("lineup.token")), null);
    // A wrong token is refused at sign-in.
    await page.fill("#token", "not-a-real-token-0123456789");
    await page.click("#signin button[type=submit]");
    await page.waitForFunction(() => /Unknown token/.test(document.getElementById("signin-error").textContent));
    // A frontend token only mints widget links: it cannot open the dashboard.
    await page.fill("#token", frontendToken);
    await page.click("#signin button[type=submit]");
    await page.waitForFunction(() => /cannot open the dashboard/.test(document.getElementById("signin-error").textContent));
  });
});

/// The demo's sites are never cut off, so the page's live socket is passed through a route
/// that adds to this node's own health report what an island's node reports (`island` in
/// `/readyz` and in the cluster status): first an island, then its merge, then nothing.
test("a site cut off as an island is named in a banner, then its merge, then nothing", { timeout: 90_000 }, async () => {
  await withPage("island-banner", { width: 1600, height: 1000 }, async (page) => {
    let site = null;
    let island = { phase: "island", since_ms: Date.now() - 95_000, epoch: 1, serving_fork: true };
    await page.routeWebSocket(/\/v1\/live/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        const m = JSON.parse(String(message));
        if (m.type === "snapshot") site = m.site;
        const own = (m.cluster?.members || []).find((member) => member.site === site && member.health);
        if (!own) return ws.send(message);
        own.health.island = island;
        ws.send(JSON.stringify(m));
      });
    });
    await signIn(page, adminToken);
    const banner = (shown) => page.waitForFunction((shown) => document.getElementById("island-banner").hidden === !shown,
      shown, { timeout: LIVE_CHANGE_MAX });
    await banner(true);
    const text = await page.textContent("#island-banner");
    assert.match(text, new RegExp(`^Site ${site} has been cut off from the other sites for \\d+:\\d\\d \\(island mode\\): it serves its own callers`), text);
    await shot(page, "dashboard-island");
    island = { ...island, phase: "merging", serving_fork: false };
    await page.waitForFunction((site) => new RegExp(`Site ${site} is back in touch and is merging`).test(document.getElementById("island-banner").textContent),
      site, { timeout: LIVE_CHANGE_MAX });
    island = null;
    await banner(false);
  });
});

test("the caller widget shows a position that then decreases", { timeout: 240_000 }, async () => {
  await withPage("widget", { width: 420, height: 760 }, async (page) => {
    // Simulated callers hang up now and then: one who leaves before moving up is replaced.
    for (let attempt = 1; attempt <= 3; attempt++) {
      // A caller with someone ahead of them, so there is a place to move up from.
      const call = await until("a call in sales at position 2 or more", async () => {
        const calls = await waitingIn("sales");
        return calls.find((c) => c.position >= 2);
      }, WAITING_CALL_MAX);
      // The link a web front end hands the caller: a token for this call only.
      const link = await widgetLink(call.call);
      if (link.status === 404) continue; // the caller left between the read and the mint
      assert.equal(link.status, 200, JSON.stringify(link.body));
      await page.goto(link.url);
      const shown = await page.waitForFunction(() => {
        const n = Number(document.getElementById("position").textContent);
        return document.body.dataset.status === "waiting" && Number.isInteger(n) && n > 0 ? n : document.body.dataset.status && -1;
      }, null, { timeout: PAGE_READY_MAX });
      const first = await shown.jsonValue();
      log(`widget for ${call.call} (try ${attempt}): position ${first}`);
      if (first < 1) continue; // taken or gone between the API read and the page load
      assert.match(await page.textContent("#eta"), /wait/);
      await shot(page, "widget");
      await page.waitForFunction((p) => {
        const status = document.body.dataset.status;
        const n = Number(document.getElementById("position").textContent);
        return (status === "waiting" && n < p) || ["offered", "connected", "ended"].includes(status);
      }, first, { timeout: POSITION_DROP_MAX });
      const status = await page.evaluate(() => document.body.dataset.status);
      log(`widget for ${call.call}: then ${status}, position ${await page.textContent("#position")}`);
      if (status !== "ended") return;
    }
    assert.fail("three callers in a row hung up before moving up the line");
  });
});

test("the widget's 'call me back instead' validates the number and keeps the caller's place", { timeout: 120_000 }, async () => {
  await withPage("callback", { width: 420, height: 760 }, async (page) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const calls = await until("a waiting call in sales", async () => (await waitingIn("sales")).at(-1), WAITING_CALL_MAX);
      const call = calls.call;
      const link = await widgetLink(call);
      if (link.status === 404) continue; // the caller left between the read and the mint
      assert.equal(link.status, 200, JSON.stringify(link.body));
      // The token opens only this call: another call's position is refused.
      const other = (await waitingIn("sales")).find((c) => c.call !== call);
      if (other) assert.equal((await apiGet(`/v1/calls/${encodeURIComponent(other.call)}/position`, link.body.token)).status, 403);
      await page.goto(link.url);
      await page.waitForFunction(() => document.body.dataset.status, null, { timeout: PAGE_READY_MAX });
      if (await page.isHidden("#callback")) continue; // taken by an operator meanwhile
      await page.fill("#number", "12ab");
      await page.click("#callback button[type=submit]");
      await page.waitForFunction(() => /Please enter a phone number/.test(document.getElementById("message").textContent), null, { timeout: PAGE_READY_MAX });
      assert.equal((await apiGet(`/v1/calls/${encodeURIComponent(call)}`)).body?.callback, false);
      await page.fill("#number", "+1 555 0123");
      await page.click("#callback button[type=submit]");
      const answer = await page.waitForFunction(() => {
        const t = document.getElementById("message").textContent;
        return /We will call you back|did not work|refused/.test(t) && t;
      }, null, { timeout: API_REFLECTS_MAX });
      const text = await answer.jsonValue();
      if (!/We will call you back at \+15550123/.test(text)) {
        log(`callback for ${call} refused (${text}); trying another caller`);
        continue;
      }
      const after = await apiGet(`/v1/calls/${encodeURIComponent(call)}`);
      assert.equal(after.status, 200);
      assert.equal(after.body.callback, true);
      await page.waitForFunction(() => /call you back/.test(document.getElementById("status").textContent), null, { timeout: API_REFLECTS_MAX });
      await shot(page, "widget-callback");
      return;
    }
    assert.fail("no caller stayed waiting long enough to ask for a callback in three tries");
  });
});

test("supervisor actions: break with a reason, available, log out", { timeout: 120_000 }, async () => {
  await withPage("operator-actions", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, adminToken);
    const operatorState = async (id) => (await apiGet("/v1/operators")).body.operators.find((o) => o.operator === id);
    // An operator not on a call right now (available or in wrap-up), so a break takes effect
    // at once (one who took a call between the read and the click goes on break only after
    // it: then another is tried). The demo runs its operators near full load, so a free one
    // may not come for a minute; wrap-up comes every call.
    let id, row;
    for (let attempt = 1; attempt <= 3 && !id; attempt++) {
      const candidate = await until("an operator available or in wrap-up", async () => {
        const { body } = await apiGet("/v1/operators");
        const free = (o) => (o.state === "available" || o.state === "wrap_up") && o.break_reason == null;
        return body.operators.find(free)?.operator;
      }, WAITING_CALL_MAX);
      row = `tr[data-operator="${candidate}"]`;
      await page.click(`${row} button[data-action=break]`, { timeout: PAGE_READY_MAX });
      await page.fill("#break-reason", "training");
      await page.click("#break-ok");
      const onBreak = await until(`${candidate} on a break for training (API)`, async () => {
        const o = await operatorState(candidate);
        return o.state === "break" && o.break_reason === "training";
      }, API_REFLECTS_MAX).catch((e) => log(`break for ${candidate} (try ${attempt}): ${e.message}`));
      if (onBreak) id = candidate;
    }
    assert.ok(id, "no operator went on a break in three tries");
    await page.waitForFunction((sel) => /break: training/.test(document.querySelector(`${sel} [data-field=state]`)?.textContent),
      row, { timeout: API_REFLECTS_MAX });
    await shot(page, "dashboard-break");
    await page.click(`${row} button[data-action=available]`, { timeout: API_REFLECTS_MAX });
    await until(`${id} available again (API)`, async () => (await operatorState(id)).state !== "break", API_REFLECTS_MAX);
    await page.click(`${row} button[data-action=logout]`, { timeout: API_REFLECTS_MAX });
    await until(`${id} logged out (API)`, async () => (await operatorState(id)).state === "offline", API_REFLECTS_MAX);
    // Logged out: listed apart, with nothing to act on.
    await page.waitForFunction((op) => {
      const r = document.querySelector(`tr[data-operator="${op}"]`);
      return r && r.closest(".site-group")?.dataset.site === "none" && !r.querySelector("[data-action]");
    }, id, { timeout: API_REFLECTS_MAX });
  });
});

test("the Reports page plots a queue's intervals today and lists operators as the API answers, with its CSV", { timeout: 150_000 }, async () => {
  // A time zone half an hour off UTC: interval starts must be the browser's local times.
  const context = await browser.newContext({ viewport: { width: 1600, height: 1200 }, timezoneId: "Asia/Kolkata" });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`reports: page error: ${e.message}`));
  try {
    await withOpenPage("reports", page, async () => {
      await signIn(page, adminToken);
      await page.waitForSelector(".queue[data-queue=sales]", { timeout: PAGE_READY_MAX });
      await page.click("#reports-tab");
      await page.waitForSelector("#reports-view:not([hidden])", { timeout: PAGE_READY_MAX });
      await page.waitForSelector("body[data-report=loaded]", { timeout: PAGE_READY_MAX });
      const today = await page.evaluate(() => {
        const d = new Date();
        return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
      });
      const localMidnight = await page.evaluate(() => { const d = new Date(); return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); });
      const query = `from=${localMidnight}&to=${localMidnight + 86_400_000}&interval=15m&queue=sales`;
      // Calls end into the history database a few seconds after they do: wait for some.
      await until("answered sales calls in today's report", async () => {
        const { body } = await apiGet(`/v1/reports/queues?${query}`);
        return body.some((r) => r.answered > 0);
      }, WAITING_CALL_MAX);

      // Today, 15-minute intervals, sales; the answers the page gets are kept to compare.
      await page.fill("#report-from", today);
      await page.fill("#report-to", today);
      await page.selectOption("#report-interval", "15m");
      await page.selectOption("#report-queue", "sales");
      const answer = (route, csv) => page.waitForResponse((r) => r.url().includes(`/v1/reports/${route}?`) && r.url().includes("queue=sales")
        && r.url().includes("format=csv") === csv, { timeout: PAGE_READY_MAX });
      const answers = Promise.all([answer("queues", false), answer("operators", false), answer("queues", true), answer("operators", true)]);
      await page.click("#report-form button[type=submit]");
      const [queuesRes, operatorsRes, queuesCsvRes, operatorsCsvRes] = await answers;
      await page.waitForFunction(() => document.body.dataset.report === "loaded"
        && /queue=sales/.test(document.getElementById("reports-view").dataset.query), null, { timeout: PAGE_READY_MAX });
      // The API got the local day as Unix ms: today's local midnight to the next.
      const sent = new URL(queuesRes.url()).searchParams;
      assert.equal(Number(sent.get("from")), localMidnight);
      assert.equal(Number(sent.get("to")), localMidnight + 86_400_000);
      assert.equal(sent.get("interval"), "15m");
      const queueRows = await queuesRes.json();
      const operatorRows = await operatorsRes.json();
      assert.equal(queueRows.length, 96);
      assert.ok(queueRows.every((r) => r.queue === "sales"));

      // The plots: one group per interval, each figure as the API gave it.
      const plotted = await page.evaluate(() => Object.fromEntries(["volume", "service_level", "abandon_rate", "asa"].map((chart) =>
        [chart, [...document.querySelectorAll(`figure[data-chart=${chart}] g[data-start]`)].map((g) => ({
          start: Number(g.dataset.start),
          values: Object.fromEntries([...g.querySelectorAll("[data-series]")].map((e) => [e.dataset.series, e.dataset.value])),
        }))])));
      const num = (v) => (v === "" ? null : Number(v));
      for (const chart of Object.keys(plotted)) assert.deepEqual(plotted[chart].map((p) => p.start), queueRows.map((r) => r.interval_start), chart);
      queueRows.forEach((r, i) => {
        const at = new Date(r.interval_start).toISOString();
        assert.equal(num(plotted.volume[i].values.offered), r.offered, `offered ${at}`);
        assert.equal(num(plotted.volume[i].values.answered), r.answered, `answered ${at}`);
        assert.equal(num(plotted.volume[i].values.abandoned), r.abandoned, `abandoned ${at}`);
        assert.equal(num(plotted.service_level[i].values.service_level), r.service_level, `service level ${at}`);
        assert.equal(num(plotted.abandon_rate[i].values.abandon_rate), r.offered ? r.abandoned / r.offered : null, `abandon rate ${at}`);
        assert.equal(num(plotted.asa[i].values.asa_s), r.asa_s, `ASA ${at}`);
      });
      assert.ok(queueRows.some((r) => r.answered > 0));
      assert.ok(await page.isHidden("#report-empty"));
      // Interval starts in the browser's zone: the first label is local midnight.
      const midnightLabel = await page.evaluate((ms) => new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }), localMidnight);
      assert.ok((await page.locator("figure[data-chart=volume] svg text", { hasText: midnightLabel }).count()) >= 1, midnightLabel);

      // The same query asked again: the same intervals; figures only grow as calls end.
      const again = (await apiGet(`/v1/reports/queues?${sent}`)).body;
      assert.deepEqual(again.map((r) => r.interval_start), queueRows.map((r) => r.interval_start));
      again.forEach((r, i) => assert.ok(r.offered >= queueRows[i].offered));

      // The agent table: every operator interval with something in it, as the API gave it.
      const active = operatorRows.filter((r) => r.logged_in_s > 0 || r.logins > 0 || r.calls_taken > 0 || r.break_s > 0);
      assert.ok(active.length > 0, "no operator activity today");
      const table = await page.evaluate(() => [...document.querySelectorAll("#report-agents tr[data-operator]")].map((tr) => ({
        operator: tr.dataset.operator,
        start: Number(tr.dataset.start),
        values: Object.fromEntries([...tr.querySelectorAll("[data-field]")].map((td) => [td.dataset.field, td.dataset.value])),
      })));
      assert.deepEqual(table.map((t) => [t.operator, t.start]), active.map((r) => [r.operator, r.interval_start]));
      active.forEach((r, i) => {
        const v = table[i].values;
        for (const f of ["calls_taken", "talk_s", "wrap_up_s", "break_s", "available_s", "logged_in_s", "logins", "occupancy"]) {
          assert.equal(num(v[f]), r[f], `${r.operator} ${f}`);
        }
        assert.deepEqual(JSON.parse(v.breaks), r.breaks);
      });
      const sameOperators = (await apiGet(`/v1/reports/operators?${sent}`)).body;
      assert.deepEqual([...new Set(sameOperators.map((r) => r.operator))], [...new Set(operatorRows.map((r) => r.operator))]);
      await shot(page, "reports");

      // The CSV links download what the API answered to format=csv for the same query.
      for (const [link, res, route] of [["#report-csv-queues", queuesCsvRes, "queues"], ["#report-csv-operators", operatorsCsvRes, "operators"]]) {
        assert.equal(new URL(res.url()).searchParams.get("from"), String(localMidnight));
        const [download] = await Promise.all([page.waitForEvent("download", { timeout: PAGE_READY_MAX }), page.click(link)]);
        const text = fs.readFileSync(await download.path(), "utf8");
        assert.equal(text, await res.text(), route);
        const direct = await fetch(`${base}v1/reports/${route}?${sent}&format=csv`, { headers: { Authorization: `Bearer ${adminToken}` } });
        assert.equal(direct.headers.get("content-type"), "text/csv; charset=utf-8");
        const lines = (await direct.text()).trim().split("\n");
        assert.equal(text.split("\n")[0], lines[0]);
        assert.equal(text.trim().split("\n").length, lines.length);
        assert.match(download.suggestedFilename(), new RegExp(`^lineup-${route}-${today}_${today}_15m_sales\\.csv$`));
      }

      // A period with no calls says so instead of drawing empty plots.
      await page.fill("#report-from", "2020-01-01");
      await page.fill("#report-to", "2020-01-02");
      await page.selectOption("#report-interval", "day");
      await page.click("#report-form button[type=submit]");
      await page.waitForFunction(() => document.body.dataset.report === "loaded" && /from=1577/.test(document.getElementById("reports-view").dataset.query),
        null, { timeout: PAGE_READY_MAX });
      assert.ok(await page.isVisible("#report-empty"));
      assert.match(await page.textContent("#report-empty"), /No calls in this period/);
      assert.equal(await page.locator("#report-plots svg").count(), 0);
    });
  } finally {
    await context.close();
  }
  // A viewer may not read reports: no tab, and the page says so.
  await withPage("reports-viewer", { width: 1280, height: 800 }, async (viewer) => {
    await signIn(viewer, viewerToken);
    assert.ok(await viewer.isHidden("#reports-tab"));
    await viewer.evaluate(() => { location.hash = "#reports"; });
    await viewer.waitForSelector("#reports-denied:not([hidden])", { timeout: PAGE_READY_MAX });
    assert.match(await viewer.textContent("#reports-denied"), /supervisor or admin/);
    assert.ok(await viewer.isHidden("#reports-section"));
    assert.ok(await viewer.isHidden("#report-plots-section"));
  });
});

test("the wallboard plots keep the history of the 1 s queue frames on a page left open", { timeout: 90_000 }, async () => {
  assert.ok(observer, "the first test's page is open");
  await withOpenPage("dashboard", observer, async (page) => {
    // One point per `queues` frame since the page opened (a minute or so by now).
    const points = () => page.evaluate(() => document.querySelector(".queue[data-queue=sales] svg.plot polyline.depth")
      ?.getAttribute("points").trim().split(/\s+/).length ?? 0);
    await until("the sales plot to hold 30 one-second points", async () => (await points()) >= 30, LIVE_CHANGE_MAX * 2);
    assert.match(await page.textContent("#conn"), /live/);
    await shot(page, "dashboard");
  });
});

test("a page opened later plots the last hour the server kept, not only what it has seen", { timeout: 60_000 }, async () => {
  await withPage("reload", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, adminToken);
    await page.waitForSelector(".queue[data-queue=sales] svg.plot polyline.depth", { timeout: PAGE_READY_MAX });
    // The plot's x axis: 600 units wide, "now" at 560, at least five minutes across 526 units.
    // The demo has run for more than a minute, sampled every 10 s: at once, the line reaches
    // back further than the few seconds this page has seen.
    const firstX = await page.evaluate(() => Number(document.querySelector(".queue[data-queue=sales] svg.plot polyline.depth")
      .getAttribute("points").trim().split(/\s+/)[0].split(",")[0]));
    const tenSecondsX = 560 - (526 * 10) / 300;
    assert.ok(firstX < tenSecondsX, `the sales plot starts at x=${firstX}, less than 10 s back`);
  });
});

test("the wallboard shows ASA and AHT today per queue and each operator's calls today, as the history has them", { timeout: 120_000 }, async () => {
  await withPage("today", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, viewerToken);
    // The hub reads today's figures every 30 s; the demo's calls keep changing them.
    await page.waitForFunction(() => document.body.dataset.todayFrom, null, { timeout: LIVE_CHANGE_MAX * 2 });
    await page.waitForSelector(".queue[data-queue=sales] [data-field=asa_today]");
    await page.waitForSelector(".queue[data-queue=sales] [data-field=aht_today]");
    const from = Number(await page.evaluate(() => document.body.dataset.todayFrom));
    assert.ok(from <= Date.now() && Date.now() - from <= 86_400_000, `today starts at ${from}`);
    // Each operator row says how many calls they took today: the same as the operator report
    // for today says, at some refresh (figures move between the two reads).
    await until("every operator's calls today to match the report", async () => {
      const { status, body } = await apiGet(`/v1/reports/operators?from=${from}&to=${Date.now()}&interval=day`);
      assert.equal(status, 200);
      const taken = Object.fromEntries(body.map((row) => [row.operator, row.calls_taken]));
      const shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("tr[data-operator]")]
        .map((tr) => [tr.dataset.operator, tr.querySelector("[data-field=calls_today]")?.textContent])));
      return Object.keys(shown).length === 6 && Object.entries(shown).every(([op, text]) => text === `${taken[op] ?? 0} today`);
    }, LIVE_CHANGE_MAX * 3);
    assert.ok(Object.values(await page.evaluate(() => [...document.querySelectorAll("[data-field=calls_today]")].map((td) => td.textContent)))
      .some((text) => text !== "0 today"), "the demo's operators took calls today");
    await shot(page, "wallboard-today");
  });
});

test("a queue without an ETA says why: no one waiting, then no operator logged in", { timeout: 120_000 }, async () => {
  await withPage("eta", { width: 1600, height: 1000 }, async (page) => {
    await signIn(page, adminToken);
    // A queue no operator serves, added as an admin would (after the other tests, which count
    // the demo's two queues).
    const put = await fetch(`${base}v1/config/queues/lobby`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ id: "lobby", name: "Lobby" }),
    });
    assert.equal(put.status, 200, await put.text());
    const eta = () => page.textContent(".queue[data-queue=lobby] [data-field=eta]");
    await page.waitForSelector(".queue[data-queue=lobby]", { timeout: LIVE_CHANGE_MAX });
    await until("Lobby's ETA to say no one is waiting", async () => (await eta()) === "no one waiting", LIVE_CHANGE_MAX);
    // A caller moved there waits with no operator to estimate from.
    let moved = null;
    for (let attempt = 0; attempt < 3 && !moved; attempt++) {
      const calls = await until("a waiting call in sales", async () => (await waitingIn("sales")).at(-1), WAITING_CALL_MAX);
      const res = await fetch(`${base}v1/calls/${encodeURIComponent(calls.call)}/reassign`, {
        method: "POST",
        headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ queue: "lobby" }),
      });
      if (res.status === 200) moved = calls.call;
      else log(`reassign ${calls.call} to lobby: ${res.status}`);
    }
    assert.ok(moved, "no call moved to lobby in three tries");
    await until("Lobby's ETA to say no operator is logged in", async () => (await eta()) === "no operator logged in", LIVE_CHANGE_MAX);
    const lobby = (await apiGet("/v1/queues")).body.queues.find((q) => q.queue === "lobby");
    assert.equal(lobby.eta_ms, null);
    assert.equal(lobby.logged_in, 0);
    // The other queues never show a bare dash for their ETA.
    const etas = await page.evaluate(() => [...document.querySelectorAll(".queue [data-field=eta]")].map((e) => e.textContent));
    assert.ok(etas.every((t) => t !== "–"), JSON.stringify(etas));
    await shot(page, "dashboard-eta");
  });
});

test("the agent panel: an operator signs in by PIN on a phone-sized screen, sees its caller, ends a wrap-up early, takes a break, signs out", { timeout: 240_000 }, async () => {
  // A persistent operator logged in now (the supervisor test may have logged one out); the
  // demo's PIN is the operator id reversed. Its shortest wrap-up is sales' 5 s.
  const WRAP_UP_SHORTEST_MS = 5_000;
  const id = await until("a persistent operator logged in", async () => {
    const { body } = await apiGet("/v1/operators");
    return body.operators.find((o) => o.mode === "persistent" && o.state !== "offline" && o.state !== "break")?.operator;
  }, WAITING_CALL_MAX);
  await withPage("agent-panel", { width: 390, height: 844 }, async (page) => {
    await page.goto(base + "agent", { timeout: PAGE_READY_MAX });
    await page.fill("#operator", id);
    await page.fill("#pin", "0000");
    await page.click("#signin button[type=submit]");
    await page.waitForFunction(() => /wrong PIN/.test(document.getElementById("signin-message").textContent), null, { timeout: PAGE_READY_MAX });
    await page.fill("#pin", [...id].reverse().join(""));
    await page.click("#signin button[type=submit]");
    await page.waitForSelector("body[data-ready]", { timeout: PAGE_READY_MAX });
    assert.match(await page.textContent("#name"), new RegExp(id));
    // Nothing of the panel is wider than the phone's screen.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "the panel scrolls sideways");

    // The caller offered to or connected with the operator, as the API has it.
    const seen = await until("a caller on the panel that the API lists with the same number", async () => {
      const call = await page.evaluate(() => { const c = document.getElementById("call"); return c.hidden ? null : { call: c.dataset.call, number: document.getElementById("caller").dataset.number }; });
      if (!call) return null;
      const { status, body } = await apiGet(`/v1/calls/${encodeURIComponent(call.call)}`);
      return status === 200 && body.operator === id && body.caller_number === call.number && call;
    }, WAITING_CALL_MAX * 2);
    log("agent panel showed caller", seen.call);
    await shot(page, "agent-panel-call");

    // End a wrap-up early: the state after it starts less than the shortest wrap-up later.
    let ended = false;
    for (let attempt = 1; attempt <= 3 && !ended; attempt++) {
      await page.waitForSelector("body[data-state=wrap_up]", { timeout: WAITING_CALL_MAX * 2 });
      const wrapUpSince = Number(await page.getAttribute("body", "data-since"));
      await page.click("#ready");
      await page.waitForFunction(() => document.body.dataset.state !== "wrap_up", null, { timeout: API_REFLECTS_MAX });
      const nextSince = Number(await page.getAttribute("body", "data-since"));
      ended = nextSince - wrapUpSince < WRAP_UP_SHORTEST_MS;
      if (!ended) log(`wrap-up ended on its own before the click landed (try ${attempt})`);
    }
    assert.ok(ended, "no wrap-up was ended early in three tries");

    // A break with a reason, shown on the panel and in the API; then ready again.
    await until("the operator off a call (a break would wait for the call's end)", () => page.evaluate(() => ["available", "wrap_up"].includes(document.body.dataset.state)), WAITING_CALL_MAX * 2);
    await page.fill("#break-reason", "coffee");
    await page.click("#break-form button[type=submit]");
    await page.waitForSelector("body[data-state=break]", { timeout: API_REFLECTS_MAX });
    assert.match(await page.textContent("#state"), /coffee/);
    const row = async () => (await apiGet("/v1/operators")).body.operators.find((o) => o.operator === id);
    await until(`${id} on a coffee break (API)`, async () => { const o = await row(); return o.state === "break" && o.break_reason === "coffee"; }, API_REFLECTS_MAX);
    await shot(page, "agent-panel-break");
    await page.click("#ready");
    await until(`${id} back from the break (API)`, async () => (await row()).state !== "break", API_REFLECTS_MAX);

    await page.click("#signout");
    await page.waitForSelector("#signin:not([hidden])", { timeout: API_REFLECTS_MAX });
  });
});
