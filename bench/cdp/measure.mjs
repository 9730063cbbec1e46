#!/usr/bin/env node
// Measures corral-cdp against a direct connection to Chromium's DevTools port.
//
// Run through `bench/cdp/run`, which installs what is needed, builds corral-cdp,
// starts Xvfb, Chromium and the bridge, and cleans up after this script whatever
// happens; this file only measures and writes the "cdp" section of
// docs/benchmarks.md. Its one dependency is `ws` (pinned in package-lock.json).
//
// What is measured (the same traffic over both paths: DIRECT is Chromium's own
// 127.0.0.1 port, BRIDGE is corral-cdp in front of it; both clients use the page's
// WebSocket URL as that side's /json/list gives it):
//   latency     Runtime.evaluate `1+1` (returnByValue), one at a time on one page
//               connection, after a warm-up; direct and bridge in interleaved blocks
//               (A B B A …) so drift over the run hits both alike.
//   large       Page.captureScreenshot of a tall page of deterministic noise (PNG
//               does not compress it: a message of tens of MB), interleaved.
//   concurrent  64 connections to the page endpoint at once, each 1,000
//               Runtime.evaluate with increasing ids (a window in flight): lost,
//               reordered, wrong answers, total time, round trips/s.
//   rss         the bridge's VmRSS idle, sampled every 50 ms (in a worker thread, so
//               a busy client loop does not delay it) during `concurrent` and
//               `large`, and its VmHWM per phase (reset through clear_refs).
//
// Every wait polls a condition or awaits an answer, with a deadline; the only plain
// sleeps are the documented settle pause before an idle reading and poll gaps.

import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import WebSocket from "ws";

import { startCapture } from "./wire.mjs";

const SETTLE_MS = 2000;
const SAMPLE_EVERY_MS = 50;
const CALL_TIMEOUT_MS = 60_000;
// The noise page: wide as the window, tall enough that its PNG is tens of MB.
const PAGE_W = 1280;
const PAGE_H = 6400;

const log = (m) => process.stderr.write(`[bench/cdp] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => process.hrtime.bigint();
const usSince = (t0, t1 = now()) => Number(t1 - t0) / 1000;

// ---------------------------------------------------------------------------
// A lean CDP client: one WebSocket, ids, a map of pending calls.

class Cdp {
  static open(url, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: 512 * 1024 * 1024,
        handshakeTimeout: timeoutMs,
      });
      ws.once("open", () => resolve(new Cdp(ws, url)));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) =>
        reject(new Error(`${url}: upgrade answered ${res.statusCode}`)));
    });
  }

  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.next = 1;
    this.pending = new Map();
    this.firstByte = null; // set by the socket's next data after arm()
    this.closed = null;
    ws.on("message", (data) => {
      const t = now();
      const msg = JSON.parse(data);
      if (msg.id === undefined) return; // an event
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
      else p.resolve({ result: msg.result, t, bytes: data.length });
    });
    ws.on("close", (code, reason) => {
      this.closed = `${code} ${reason}`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`${url} closed (${this.closed}) during ${p.method}`));
      }
      this.pending.clear();
    });
    ws.on("error", () => {}); // surfaces as close
  }

  // The time the next bytes arrive on the socket (for time-to-first-byte).
  arm() {
    this.firstByte = null;
    this.ws._socket.once("data", () => { this.firstByte = now(); });
  }

  call(method, params = {}, timeoutMs = CALL_TIMEOUT_MS) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method} (id ${id}) on ${this.url}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async value(expression) {
    const r = await this.call("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.result.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.result.exceptionDetails)}`);
    return r.result.result.value;
  }

  close() {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once("close", resolve);
      this.ws.close();
      setTimeout(() => { this.ws.terminate(); resolve(); }, 5000).unref();
    });
  }
}

async function getJson(hostPort, path) {
  const res = await fetch(`http://${hostPort}${path}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET http://${hostPort}${path}: ${res.status}`);
  return res.json();
}

// ---------------------------------------------------------------------------
// Statistics

function pct(sorted, p) {
  // Nearest rank.
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(values) {
  const s = Float64Array.from(values).sort();
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), mean, min: s[0], max: s[s.length - 1] };
}

const median = (xs) => pct(Float64Array.from(xs).sort(), 50);

// ---------------------------------------------------------------------------
// /proc

function procStatus(pid) {
  const out = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out; // VmRSS, VmHWM, RssAnon, RssFile, Threads (kB)
}

function cpuNs(pid) {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch { /* thread gone */ }
  }
  return total;
}

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

// Resets VmHWM to the current RSS (clear_refs 5, Linux ≥ 4.0, needs ptrace rights).
function resetHwm(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

// Samples VmRSS every SAMPLE_EVERY_MS in a worker thread, whose event loop the
// client's own work does not hold up. stop() gives the peak and the sample count.
function rssSampler(pid) {
  const worker = new Worker(`
    const { parentPort, workerData } = require("node:worker_threads");
    const fs = require("node:fs");
    let peak = 0, n = 0, maxGap = 0, last = 0;
    const sample = () => {
      try {
        const m = /VmRSS:\\s+(\\d+)/.exec(fs.readFileSync("/proc/" + workerData.pid + "/status", "utf8"));
        if (m) { peak = Math.max(peak, Number(m[1])); n++; }
      } catch {}
      const t = performance.now();
      if (last) maxGap = Math.max(maxGap, t - last);
      last = t;
    };
    sample();
    const timer = setInterval(sample, workerData.every);
    parentPort.on("message", () => {
      clearInterval(timer);
      sample();
      parentPort.postMessage({ peak, n, maxGap });
    });
  `, { eval: true, workerData: { pid, every: SAMPLE_EVERY_MS } });
  const reset = resetHwm(pid);
  return {
    stop: () => new Promise((resolve) => {
      worker.once("message", (r) => {
        worker.terminate();
        resolve({ peakKiB: r.peak, samples: r.n, maxGapMs: r.maxGap, hwmKiB: reset ? procStatus(pid).VmHWM : null });
      });
      worker.postMessage("stop");
    }),
  };
}

async function waitFor(what, cond, deadlineMs) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// The measurements

// Blocks of `block` calls, alternating A B B A …; returns µs per call per
// side, and per block each side's p50 (for paired differences: drift over
// the run moves both sides of a block alike).
async function latency(conns, n, block, warmup) {
  const sides = Object.keys(conns); // direct, bridge, and the raw relay if given
  const times = Object.fromEntries(sides.map((s) => [s, []]));
  const blockP50 = Object.fromEntries(sides.map((s) => [s, []]));
  const run = async (c, count, into) => {
    for (let i = 0; i < count; i++) {
      const t0 = now();
      const r = await c.call("Runtime.evaluate", { expression: "1+1", returnByValue: true });
      if (r.result.result.value !== 2) throw new Error(`1+1 answered ${JSON.stringify(r.result)}`);
      into?.push(usSince(t0, r.t));
    }
  };
  for (const side of sides) await run(conns[side], warmup);
  const blocks = Math.ceil(n / block);
  for (let b = 0; b < blocks; b++) {
    const order = b % 2 === 0 ? sides : [...sides].reverse();
    const count = Math.min(block, n - b * block);
    for (const side of order) {
      const mine = [];
      await run(conns[side], count, mine);
      times[side].push(...mine);
      blockP50[side].push(median(mine));
    }
  }
  const out = Object.fromEntries(sides.map((s) => [s, summary(times[s])]));
  // Median over blocks of (bridge − other) block p50s.
  out.paired = Object.fromEntries(sides.filter((s) => s !== "bridge").map((s) =>
    [s, median(blockP50.bridge.map((b, i) => b - blockP50[s][i]))]));
  return out;
}

// Builds the noise page in the already open page: a canvas PAGE_W × PAGE_H of
// xorshift noise from a fixed seed (the same pixels every run), then two frames.
async function makeNoisePage(c) {
  await c.value(`(() => {
    document.documentElement.style.margin = document.body.style.margin = "0";
    document.body.innerHTML = "";
    const cv = document.createElement("canvas");
    cv.width = ${PAGE_W}; cv.height = ${PAGE_H};
    cv.style.display = "block";
    document.body.appendChild(cv);
    const ctx = cv.getContext("2d");
    const img = ctx.createImageData(${PAGE_W}, ${PAGE_H});
    const px = new Uint32Array(img.data.buffer);
    let x = 0x9e3779b9;
    for (let i = 0; i < px.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      px[i] = (x | 0xff000000) >>> 0; // opaque: alpha is the top byte (little endian)
    }
    ctx.putImageData(img, 0, 0);
    return document.documentElement.scrollHeight;
  })()`);
  await c.value("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))");
}

async function screenshot(c) {
  c.arm();
  const t0 = now();
  const r = await c.call("Page.captureScreenshot", {
    format: "png",
    captureBeyondViewport: true,
    clip: { x: 0, y: 0, width: PAGE_W, height: PAGE_H, scale: 1 },
  });
  const totalMs = usSince(t0, r.t) / 1000;
  const ttfbMs = c.firstByte ? usSince(t0, c.firstByte) / 1000 : NaN;
  const data = r.result.data;
  return {
    totalMs,
    ttfbMs,
    bytes: r.bytes,
    png: Buffer.byteLength(data, "base64"),
    hash: crypto.createHash("sha256").update(data).digest("hex").slice(0, 16),
  };
}

async function large(conns, shots, bridgePid) {
  const out = { direct: [], bridge: [] };
  const sampler = rssSampler(bridgePid);
  // Warm-up: one each (the first capture also rasterizes the page).
  await screenshot(conns.direct);
  await screenshot(conns.bridge);
  for (let i = 0; i < shots; i++) {
    const order = i % 2 === 0 ? ["direct", "bridge"] : ["bridge", "direct"];
    for (const side of order) {
      const s = await screenshot(conns[side]);
      out[side].push(s);
      log(`  screenshot ${side}: ${(s.bytes / 1e6).toFixed(1)} MB in ${s.totalMs.toFixed(0)} ms (first byte ${s.ttfbMs.toFixed(0)} ms)`);
    }
  }
  const rss = await sampler.stop();
  // The connection that carried them is still open: does the bridge keep their buffers?
  await sleep(SETTLE_MS);
  rss.afterKiB = procStatus(bridgePid).VmRSS;
  const side = (xs) => {
    const totalMs = median(xs.map((s) => s.totalMs));
    const ttfbMs = median(xs.map((s) => s.ttfbMs));
    return {
      shots: xs.length,
      totalMs,
      ttfbMs,
      tailMs: median(xs.map((s) => s.totalMs - s.ttfbMs)),
      minMs: Math.min(...xs.map((s) => s.totalMs)),
      maxMs: Math.max(...xs.map((s) => s.totalMs)),
      mbps: xs[0].bytes / 1e6 / (totalMs / 1000),
      bytes: xs[0].bytes,
      png: xs[0].png,
    };
  };
  const hashes = new Set([...out.direct, ...out.bridge].map((s) => s.hash));
  const sizes = new Set([...out.direct, ...out.bridge].map((s) => s.bytes));
  return { direct: side(out.direct), bridge: side(out.bridge), identical: hashes.size === 1, sizes: [...sizes], rss };
}

// First byte of a large answer whose making takes the same time every call: a
// 33 MB string kept in the page, returned by value (Chromium only serializes it),
// `n` per path alternating after one warm-up each. Screenshots vary by tens of ms
// in Chromium's PNG encoding; this does not, so the bridge's own delay shows.
async function firstByte(conns, n, ports) {
  await conns.direct.value(`(() => { let c = ""; for (let i = 0; c.length < 65536; i++) c += "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7919) % 36]; window.__big = c.repeat(503); return window.__big.length; })()`);
  const one = async (c) => {
    c.arm();
    const t0 = now();
    const r = await c.call("Runtime.evaluate", { expression: "window.__big", returnByValue: true });
    return { ttfbMs: usSince(t0, c.firstByte) / 1000, totalMs: usSince(t0, r.t) / 1000, bytes: r.bytes };
  };
  await one(conns.direct);
  await one(conns.bridge);
  const out = { direct: [], bridge: [] };
  for (let i = 0; i < n; i++) {
    for (const side of i % 2 === 0 ? ["direct", "bridge"] : ["bridge", "direct"]) out[side].push(await one(conns[side]));
  }
  // Then the bridge's own delay on the first byte, on the wire (wire.mjs),
  // in calls of its own so the capture does not weigh on the ones above.
  let wire;
  try {
    const capture = await startCapture({
      ...ports,
      clientPort: conns.bridge.ws._socket.localPort,
      directClientPort: conns.direct.ws._socket.localPort,
    });
    for (let i = 0; i < n; i++) await one(conns.bridge);
    const us = await capture.stop();
    if (us.length !== n) throw new Error(`${us.length} answers seen on the wire for ${n} calls`);
    wire = { n, ...summary(us) };
  } catch (e) {
    wire = { error: String(e.message ?? e) };
    log(`first byte on the wire not measured: ${wire.error}`);
  }
  await conns.direct.value("(delete window.__big, true)");
  const side = (xs) => ({ ttfbMs: median(xs.map((x) => x.ttfbMs)), totalMs: median(xs.map((x) => x.totalMs)), bytes: xs[0].bytes, n: xs.length });
  // Each bridge call against the direct call next to it (same block): drift cancels.
  const pairedMs = median(out.bridge.map((b, i) => b.ttfbMs - out.direct[i].ttfbMs));
  return { direct: side(out.direct), bridge: side(out.bridge), pairedMs, wire };
}

// One GET /json/version on a fresh connection (the bridge answers
// Connection: close), µs from connect to the end of the answer.
function getOnce(hostPort, headers) {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve, reject) => {
    const t0 = now();
    const sock = net.connect({ host, port: Number(port), noDelay: true }, () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
      sock.write(`GET /json/version HTTP/1.1\r\nHost: ${hostPort}\r\n${extra}\r\n`);
    });
    let head = "";
    sock.on("data", (d) => (head += d.toString("latin1")));
    sock.on("end", () => {
      const status = Number(head.split(" ")[1]);
      if (status !== 200) return reject(new Error(`${hostPort}: HTTP ${status}`));
      resolve(usSince(t0, now()));
    });
    sock.on("error", reject);
  });
}

// The request policy's cost end to end: the same request to the bridge
// without a token and to the one with a token, alternating A B B A.
async function policyCost(plain, guarded, token, n) {
  const auth = { Authorization: `Bearer ${token}` };
  for (let i = 0; i < 200; i++) {
    await getOnce(plain, {});
    await getOnce(guarded, auth);
  }
  const out = { plain: [], guarded: [] };
  for (let i = 0; i < n; i++) {
    for (const side of i % 2 === 0 ? ["plain", "guarded"] : ["guarded", "plain"]) {
      out[side].push(await getOnce(side === "plain" ? plain : guarded, side === "plain" ? {} : auth));
    }
  }
  const paired = out.guarded.map((g, i) => g - out.plain[i]).sort((a, b) => a - b);
  return { plain: summary(out.plain), guarded: summary(out.guarded), pairedUs: pct(paired, 50) };
}

// `clients` connections to `url`, each `messages` Runtime.evaluate `ID+1` with ids
// 1, 2, …, at most `window` in flight; checks every answer's id and value.
async function concurrent(url, clients, messages, window, pid) {
  const conns = await Promise.all(Array.from({ length: clients }, () => Cdp.open(url)));
  const sampler = pid ? rssSampler(pid) : null;
  const cpu0 = pid ? cpuNs(pid) : 0;
  const t0 = now();
  const results = await Promise.all(conns.map((c) => new Promise((resolve) => {
    const ws = c.ws;
    let sent = 0, received = 0, lastId = 0, reordered = 0, wrong = 0, dup = 0;
    const seen = new Uint8Array(messages + 1);
    const send = () => {
      while (sent < messages && sent - received < window) {
        sent++;
        ws.send(`{"id":${sent},"method":"Runtime.evaluate","params":{"expression":"${sent}+1","returnByValue":true}}`);
      }
    };
    const finish = (why) => {
      clearTimeout(timer);
      ws.removeListener("message", onMessage);
      resolve({ received, lost: messages - received, reordered, wrong, dup, ms: usSince(t0) / 1000, why });
    };
    const onMessage = (data) => {
      const msg = JSON.parse(data);
      if (msg.id === undefined) return;
      if (msg.id < 1 || msg.id > messages || seen[msg.id]) { dup++; return; }
      seen[msg.id] = 1;
      if (msg.id !== lastId + 1) reordered++;
      lastId = msg.id;
      if (msg.result?.result?.value !== msg.id + 1) wrong++;
      received++;
      if (received === messages) finish("done");
      else send();
    };
    const timer = setTimeout(() => finish("deadline"), CALL_TIMEOUT_MS);
    ws.on("message", onMessage);
    ws.once("close", () => finish(`closed: ${c.closed}`));
    send();
  })));
  const wallMs = usSince(t0) / 1000;
  const cpuMs = pid ? (cpuNs(pid) - cpu0) / 1e6 : null;
  const rss = sampler ? await sampler.stop() : null;
  await Promise.all(conns.map((c) => c.close()));
  const sum = (k) => results.reduce((a, r) => a + r[k], 0);
  const received = sum("received");
  return {
    clients, messages, window,
    received, lost: sum("lost"), reordered: sum("reordered"), wrong: sum("wrong"), dup: sum("dup"),
    unfinished: results.filter((r) => r.why !== "done").map((r) => r.why),
    wallMs, cpuMs, rss,
  };
}

// Rounds of `concurrent` on each path, A B B A …, summed per path.
async function concurrentRounds(urls, args, pid) {
  const runs = { direct: [], bridge: [], relay: [] };
  const sides = urls.relay ? ["direct", "bridge", "relay"] : ["direct", "bridge"];
  for (let i = 0; i < args.rounds; i++) {
    const order = i % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const c = await concurrent(urls[side], args.clients, args.messages, args.window, side === "bridge" ? pid : null);
      runs[side].push(c);
      log(`  ${side}: ${c.received} answers in ${(c.wallMs / 1000).toFixed(2)} s, lost ${c.lost}, reordered ${c.reordered}, wrong ${c.wrong}`);
    }
  }
  const combine = (xs) => {
    const sum = (k) => xs.reduce((a, x) => a + x[k], 0);
    const wallMs = sum("wallMs");
    const received = sum("received");
    const cpuMs = xs[0].cpuMs === null ? null : sum("cpuMs");
    const rss = xs[0].rss && {
      peakKiB: Math.max(...xs.map((x) => x.rss.peakKiB)),
      hwmKiB: xs.every((x) => x.rss.hwmKiB) ? Math.max(...xs.map((x) => x.rss.hwmKiB)) : null,
      samples: xs.reduce((a, x) => a + x.rss.samples, 0),
      maxGapMs: Math.max(...xs.map((x) => x.rss.maxGapMs)),
    };
    return {
      clients: xs[0].clients, messages: xs[0].messages, window: xs[0].window, rounds: xs.length,
      received, lost: sum("lost"), reordered: sum("reordered"), wrong: sum("wrong"), dup: sum("dup"),
      unfinished: xs.flatMap((x) => x.unfinished),
      wallMs, perSec: received / (wallMs / 1000), roundsMs: xs.map((x) => x.wallMs),
      cpuPct: cpuMs === null ? null : (100 * cpuMs) / wallMs,
      cpuUsPerTrip: cpuMs === null ? null : (cpuMs * 1000) / received,
      rss,
    };
  };
  return { direct: combine(runs.direct), bridge: combine(runs.bridge), relay: runs.relay.length ? combine(runs.relay) : null };
}

function idleRss(pid) {
  const s = procStatus(pid);
  return { rssKiB: s.VmRSS, anonKiB: s.RssAnon, fileKiB: s.RssFile, threads: s.Threads, fds: fdCount(pid) };
}

// `k` idle relays: WebSockets through the bridge to the browser endpoint, opened
// in batches, each used once (one Browser.getVersion), then held; the bridge's
// RSS with all of them open, after the settle pause.
async function idleRelays(bridge, k, pid) {
  const url = (await getJson(bridge, "/json/version")).webSocketDebuggerUrl;
  const conns = [];
  while (conns.length < k) {
    const batch = Math.min(50, k - conns.length);
    conns.push(...await Promise.all(Array.from({ length: batch }, () => Cdp.open(url))));
  }
  await Promise.all(conns.map((c) => c.call("Browser.getVersion")));
  await sleep(SETTLE_MS);
  const held = procStatus(pid);
  const fds = fdCount(pid);
  await Promise.all(conns.map((c) => c.close()));
  return { k, heldKiB: held.VmRSS, anonKiB: held.RssAnon, fds };
}

// `k` idle TCP connections to the bridge (no request sent), opened in batches of
// 500. The bridge closes a connection whose request head has not come within 10 s,
// so on a slow machine the first ones can go before the last are open: the
// bridge's fd count and RSS are sampled (every 20 ms and after the last batch),
// and the figures are those at the most connections held at once.
async function idleConnections(hostPort, k, pid, baseFds) {
  const [host, port] = hostPort.split(":");
  const socks = [];
  let closedByBridge = 0;
  let best = { held: -1 };
  const sample = () => {
    try {
      const held = fdCount(pid) - baseFds;
      if (held > best.held) best = { held, ...procStatus(pid) };
    } catch { /* between reads */ }
  };
  const timer = setInterval(sample, 20);
  const t0 = now();
  while (socks.length < k) {
    const batch = Math.min(500, k - socks.length);
    socks.push(...await Promise.all(Array.from({ length: batch }, () => new Promise((resolve, reject) => {
      const s = net.connect({ host, port: Number(port) });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
      s.once("close", () => { closedByBridge++; });
    }))));
  }
  const openedMs = usSince(t0) / 1000;
  // Until the bridge has accepted all that are still open (or 5 s).
  await waitFor("the bridge to accept the last ones", () => { sample(); return best.held >= k - closedByBridge; }, 5_000).catch(() => {});
  clearInterval(timer);
  const closedWhileOpening = closedByBridge;
  for (const s of socks) s.destroy();
  await waitFor("the bridge to let them go", () => fdCount(pid) <= baseFds, 30_000);
  return { k, held: best.held, heldKiB: best.VmRSS, anonKiB: best.RssAnon, openedMs, closedWhileOpening };
}

// ---------------------------------------------------------------------------
// The report

const mib = (kib) => `${(kib / 1024).toFixed(2)} MiB`;
const us = (v) => `${v.toFixed(1)} µs`;
const fmtInt = (v) => Math.round(v).toLocaleString("en-US");

function render(r, args) {
  const L = r.latency, G = r.large, C = r.concurrent, F = r.firstByte;
  const sign = (v, d = 1) => `${v >= 0 ? "+" : ""}${v.toFixed(d)}`;
  const added50 = L.bridge.p50 - L.direct.p50;
  const relayAdded = L.relay ? L.relay.p50 - L.direct.p50 : null;
  const ratio = G.bridge.mbps / G.direct.mbps;
  const tripsRatio = C.bridge.perSec / C.direct.perSec;
  const idle = r.idleBefore.rssKiB;
  const shotPeak = Math.max(G.rss.peakKiB, G.rss.hwmKiB ?? 0);
  const R = r.idleRelays, T = r.idleConns;
  const perRelay = (R.heldKiB - r.idleAfter.rssKiB) / R.k;
  const clean = (x) => x.lost === 0 && x.reordered === 0 && x.wrong === 0 && x.dup === 0 && x.unfinished.length === 0;
  const ok = (cond) => (cond ? "✅" : "❌ goal missed");
  const errs = (x) => `${x.lost} lost, ${x.reordered} reordered, ${x.wrong} wrong, ${x.dup} duplicate` +
    (x.unfinished.length ? `; ${x.unfinished.length} connections ended early (${[...new Set(x.unfinished)].join("; ")})` : "");
  const rows = [
    [`Runtime.evaluate round trip, p50 (n = ${L.direct.n} each)`, "", us(L.bridge.p50), us(L.direct.p50)],
    ["… added by the bridge at p50 (bridge − direct; median of paired block differences)", "",
      `${us(added50)}; ${us(L.paired.direct)} paired`, ""],
    ...(L.relay
      ? [[`… a raw TCP relay (socat ${args["relay-version"]}, the seeds' ncat workaround) at p50, and what it adds`, "",
        `${us(L.relay.p50)}, +${us(relayAdded)}`, ""],
        ["… the bridge's added latency against the raw relay's: bridge − relay at p50, and the median of paired block differences (the figure the goal is checked on: drift does not move it)",
          "≤ 0 (the bridge adds no more than the raw relay)",
          `${us(L.bridge.p50 - L.relay.p50)}; ${us(L.paired.relay)} paired ${ok(L.paired.relay <= 0)}`, ""]]
      : []),
    ["… p90 / p99", "", `${us(L.bridge.p90)} / ${us(L.bridge.p99)}`, `${us(L.direct.p90)} / ${us(L.direct.p99)}`],
    ["… mean / min / max", "", `${us(L.bridge.mean)} / ${us(L.bridge.min)} / ${(L.bridge.max / 1000).toFixed(2)} ms`,
      `${us(L.direct.mean)} / ${us(L.direct.min)} / ${(L.direct.max / 1000).toFixed(2)} ms`],
    [`screenshot message: ${(G.direct.bytes / 1e6).toFixed(1)} MB of JSON (PNG ${(G.direct.png / 1e6).toFixed(1)} MB, ${PAGE_W} × ${PAGE_H} px); time per screenshot, median of ${G.direct.shots}`,
      "", `${G.bridge.totalMs.toFixed(0)} ms`, `${G.direct.totalMs.toFixed(0)} ms`],
    ["… throughput (message size / time per screenshot)", "bridge ≥ 0.98 × direct",
      `${G.bridge.mbps.toFixed(1)} MB/s = ${ratio.toFixed(3)} × ${ok(ratio >= 0.98)}`, `${G.direct.mbps.toFixed(1)} MB/s`],
    ["… min / max time", "", `${G.bridge.minMs.toFixed(0)} / ${G.bridge.maxMs.toFixed(0)} ms`, `${G.direct.minMs.toFixed(0)} / ${G.direct.maxMs.toFixed(0)} ms`],
    ["… added by the bridge per screenshot (bridge − direct, medians)", "",
      `${(G.bridge.totalMs - G.direct.totalMs).toFixed(1)} ms`, ""],
    ["… request → first byte / first byte → whole message (medians; Chromium's PNG encoding varies by tens of ms)", "",
      `${G.bridge.ttfbMs.toFixed(1)} / ${G.bridge.tailMs.toFixed(1)} ms (first byte ${sign(G.bridge.ttfbMs - G.direct.ttfbMs)} ms)`,
      `${G.direct.ttfbMs.toFixed(1)} / ${G.direct.tailMs.toFixed(1)} ms`],
    [`a ${(F.direct.bytes / 1e6).toFixed(1)} MB answer made the same way every call (a string kept in the page): request → first byte, median of ${F.direct.n}`, "≤ direct + 1 ms",
      `${F.bridge.ttfbMs.toFixed(2)} ms; bridge − direct: ${sign(F.bridge.ttfbMs - F.direct.ttfbMs, 2)} ms (medians), ${sign(F.pairedMs, 2)} ms (median of paired differences)` +
        (F.wire.error ? ` ${ok(F.pairedMs <= 1)}` : " (Chromium's time to make the answer varies by more than 1 ms: the goal is checked on the wire, next row)"),
      `${F.direct.ttfbMs.toFixed(2)} ms`],
    ["… what the bridge adds to that first byte, on the wire (tcpdump on lo: Chromium's first segment of the answer to the bridge → the bridge's first to the client), per call: median / p90 / max",
      "≤ 1 ms",
      F.wire.error ? `not measured (${F.wire.error})`
        : `${us(F.wire.p50)} / ${us(F.wire.p90)} / ${us(F.wire.max)} (n = ${F.wire.n}) ${ok(F.wire.p50 <= 1000)}`, ""],
    ["… request → whole message, median", "", `${F.bridge.totalMs.toFixed(1)} ms`, `${F.direct.totalMs.toFixed(1)} ms`],
    ["… every screenshot byte-identical (both paths)", "yes", `${G.identical ? "yes ✅" : "no ❌"}`, ""],
    [`${C.bridge.clients} concurrent connections × ${fmtInt(C.bridge.messages)} Runtime.evaluate (${C.bridge.window} in flight each), ${C.bridge.rounds} rounds per path`, "0 lost, 0 reordered",
      `${errs(C.bridge)} ${ok(clean(C.bridge))}`, errs(C.direct)],
    ["… total time / round trips per second", "",
      `${(C.bridge.wallMs / 1000).toFixed(2)} s / ${fmtInt(C.bridge.perSec)}`, `${(C.direct.wallMs / 1000).toFixed(2)} s / ${fmtInt(C.direct.perSec)}`],
    ["… round trips per second, bridge / direct", "≥ 0.95 ×", `${tripsRatio.toFixed(3)} × ${ok(tripsRatio >= 0.95)}`, ""],
    ...(C.relay ? [["… the same through the raw TCP relay (socat, a process per connection), same rounds: round trips per second, relay / direct", "",
      `${fmtInt(C.relay.perSec)}: ${(C.relay.perSec / C.direct.perSec).toFixed(3)} × (${errs(C.relay)})`, ""]] : []),
    ["… each round's time", "", C.bridge.roundsMs.map((x) => `${(x / 1000).toFixed(2)} s`).join(", "),
      C.direct.roundsMs.map((x) => `${(x / 1000).toFixed(2)} s`).join(", ")],
    ["… bridge CPU during it (schedstat, % of one CPU) / per round trip", "",
      `${C.bridge.cpuPct.toFixed(0)}% / ${C.bridge.cpuUsPerTrip.toFixed(1)} µs`, ""],
    ["bridge RSS (VmRSS) idle, before any connection", "", mib(r.idleBefore.rssKiB), ""],
    ["… anonymous / file-backed; threads", "", `${mib(r.idleBefore.anonKiB)} / ${mib(r.idleBefore.fileKiB)}; ${r.idleBefore.threads}`, ""],
    [`… peak during the ${C.bridge.clients} connections (sampled / VmHWM)`, "",
      `${mib(C.bridge.rss.peakKiB)} / ${C.bridge.rss.hwmKiB ? mib(C.bridge.rss.hwmKiB) : "n/a"}`, ""],
    ["… per open relay above idle ((peak − idle) / connections)", "",
      `${((C.bridge.rss.peakKiB - r.idleBefore.rssKiB) / C.bridge.clients).toFixed(0)} KiB`, ""],
    ["… peak during the screenshots (sampled / VmHWM), and above idle", "≤ idle + 2 MiB",
      `${mib(G.rss.peakKiB)} / ${G.rss.hwmKiB ? mib(G.rss.hwmKiB) : "n/a"}; +${mib(shotPeak - idle)} ${ok(shotPeak - idle <= 2048)}`, ""],
    [`… RSS ${SETTLE_MS / 1000} s after the last screenshot, its connection still open, and above idle`, "≤ idle + 1 MiB",
      `${mib(G.rss.afterKiB)}; +${mib(G.rss.afterKiB - idle)} ${ok(G.rss.afterKiB - idle <= 1024)}`, ""],
    ["… idle after all of it (anonymous)", "", `${mib(r.idleAfter.rssKiB)} (${mib(r.idleAfter.anonKiB)})`, ""],
    [`${fmtInt(R.k)} idle relays held (WebSockets to the browser endpoint, each used once): RSS / per relay above the idle RSS before them`, "≤ 32 KiB per relay",
      `${mib(R.heldKiB)} / ${perRelay.toFixed(1)} KiB ${ok(perRelay <= 32)}`, ""],
    [`${fmtInt(T.k)} idle TCP connections opened (no request sent; \`--max-connections ${args["max-connections"]}\`): most held at once, RSS then / per connection above idle`, "",
      `${fmtInt(T.held)} held: ${mib(T.heldKiB)} / ${((T.heldKiB - r.idleAfter.rssKiB) / T.held).toFixed(1)} KiB (opened in ${(T.openedMs / 1000).toFixed(1)} s; ${fmtInt(T.closedWhileOpening)} closed meanwhile by the 10 s header timeout)`, ""],
  ];
  if (r.policy) {
    const P = r.policy;
    const added = P.guarded.p50 - P.plain.p50;
    rows.push([`the request policy: GET /json/version on a fresh connection, ${fmtInt(P.plain.n)} per bridge alternating; p50 with a token (credential checked in constant time) / without (Origin and Host checks only)`,
      "policy adds < 5 µs at p50",
      `${us(P.guarded.p50)} / ${us(P.plain.p50)}: ${sign(added)} µs (medians), ${sign(P.pairedUs)} µs (median of paired differences, the figure the goal is checked on: drift does not move it) ${ok(P.pairedUs < 5)}`, ""]);
  }
  if (r.policyMicro) {
    rows.push(["… the policy alone per request (crates/serve/examples/policy_cost.rs, best of 5 × 1,000,000 calls)", "",
      r.policyMicro.trim().split("\n").join("; "), ""]);
  }
  const table = ["| measure | goal | bridge (corral-cdp) | direct (Chromium's port) |", "|---|---|---|---|",
    ...rows.map((x) => `| ${x.join(" | ")} |`)];
  const date = new Date().toISOString().replace(/T(\d\d:\d\d).*/, " $1 UTC");
  const cpus = os.cpus();
  return [
    "<!-- bench:cdp:start (generated by bench/cdp/run; edits here are overwritten) -->",
    "## cdp",
    "",
    "corral-cdp, the CDP bridge, against a direct connection to the headful Chromium's own",
    "DevTools port behind it: the same CDP traffic over both paths, measured side by side in one run.",
    "",
    `- command: \`${args.command}\``,
    `- date: ${date}`,
    `- machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), Linux ${os.release()}, ${os.arch()}; ` +
      `load average at the start ${args["load-at-start"]} (other work on the machine shows up as outliers)`,
    `- corral-cdp: ${args["bridge-version"]}`,
    `- Chromium: ${args["chromium-version"]}, headful on Xvfb (${r.xvfb})`,
    `- client: Node ${process.version}, ws ${r.wsVersion}`,
    "",
    ...table,
    "",
    "How each figure is made (bench/cdp/measure.mjs):",
    "",
    "- **setup**: `Xvfb -displayfd` (ready when it writes its display number), then `chromium` " +
      "(Debian's) on it with `--no-sandbox --disable-background-networking --disable-component-update " +
      "--disable-sync --no-first-run --password-store=basic --disable-dev-shm-usage --disable-gpu " +
      "--disable-background-timer-throttling --disable-renderer-backgrounding " +
      "--disable-backgrounding-occluded-windows`, a temporary `--user-data-dir`, " +
      "`--remote-debugging-port=0` (ready when it writes the port it bound to `DevToolsActivePort`, " +
      "then `/json/version` and a page in `/json/list` answer) and `--remote-allow-origins=*`; then " +
      "the release `corral-cdp --listen 127.0.0.1:FREE --upstream 127.0.0.1:THAT_PORT " +
      `--max-connections ${args["max-connections"]}\` (ready when ` +
      "its `/json/version` answers). Every wait polls with a deadline. Everything on 127.0.0.1, on " +
      "the same 2 CPUs as the client and Chromium.",
    "- **client**: one Node process with `ws` (no compression, no other library): " +
      "direct connects to the page's `webSocketDebuggerUrl` from Chromium's `/json/list`, bridge to " +
      "the one from the bridge's `/json/list` (rewritten to the bridge's address) — the same page, " +
      "the same method. Times are `process.hrtime` from just before `send` to the `message` event " +
      "of the answer (before JSON.parse of large ones).",
    `- **latency**: \`Runtime.evaluate\` of \`1+1\` with \`returnByValue\`, one call at a time on one ` +
      `connection per path (the answer checked to be 2). ${args.warmup} calls each to warm up, then ` +
      `${L.direct.n} each in blocks of ${args.block}, alternating direct/bridge as A B B A … so drift ` +
      "over the run (CPU frequency, other load) falls on both. Percentiles are nearest-rank. " +
      "The added latency is the difference of the two p50s: a relayed call crosses two more " +
      "loopback hops (client → bridge → Chromium and back); the bridge reads the frame header and " +
      "copies the bytes on (crates/cdp/src/relay.rs: one read and one write per message and " +
      "direction, like a byte relay). The raw " +
      "relay row measures that floor in the same run: `socat` copying bytes between the two " +
      "sockets (TCP_NODELAY on both, like the bridge), on its own connection to the same page, " +
      "in the same alternating blocks (direct, bridge, relay, then the reverse). Whether the bridge " +
      "adds more than the relay is checked on the median over blocks of the bridge's p50 minus the " +
      "relay's in the same block (blocks run back to back), which drift over the run does not move; " +
      "the difference of the overall p50s is shown beside it. For scale, `strace -c` of each relay " +
      "over 2,000 such calls counted per round trip: the bridge 6 system calls (2 epoll_wait, " +
      "2 recvfrom, 2 sendto), socat about 20 (pselect6, read, write and some 13 recvfrom that fail " +
      "with EAGAIN).",
    `- **screenshots**: the page becomes a ${PAGE_W} × ${PAGE_H} px canvas of xorshift noise from a ` +
      "fixed seed (PNG cannot compress noise, so the message is tens of MB, the same every run), two " +
      "animation frames later `Page.captureScreenshot` `{format: \"png\", captureBeyondViewport: true, " +
      `clip: the whole canvas}\`; one per path to warm up, then ${G.direct.shots} per path, alternating. ` +
      "Time per screenshot includes Chromium encoding the PNG (most of the time, seen in the " +
      "first-byte column: the time until the first bytes of the answer reach the client); " +
      "throughput is the WebSocket message size (the JSON text, base64 PNG inside) over that " +
      "time. The first byte is when the socket first has data after the request (the `ws` " +
      "socket's `data` event). The bridge passes Chromium's one frame on as it is: the header and the " +
      "first read of the payload at once, then the rest spliced socket to socket through a 1 MiB pipe, " +
      "so its first byte follows Chromium's and the client gets the frame Chromium sent. " +
      "The SHA-256 of every screenshot's data is compared: " +
      "all equal means the relay changed no byte.",
    `- **first byte**: after the screenshots, the page keeps a ${(F.direct.bytes / 1e6).toFixed(1)} MB ASCII string ` +
      "(a 64 KiB pattern repeated); `Runtime.evaluate` of it with `returnByValue`, one warm-up per path, then " +
      `${F.direct.n} per path alternating; the first byte is the socket's first \`data\` event after the send. ` +
      "Chromium takes about the same time to serialize it every call (the screenshots' encoding time varies " +
      "by tens of ms), but not to the millisecond: the median of the paired differences (each bridge call " +
      "minus the direct call in the same A B / B A block) still moved between −3.9 and +5.6 ms over five " +
      "runs on 2026-12-04, more than the goal. So the goal is checked where Chromium's time is out of it, " +
      "on the wire (bench/cdp/wire.mjs): during " + `${F.wire.n ?? F.direct.n}` + " more calls through the " +
      "bridge alone, `tcpdump -i lo` timestamps in the kernel the first segment of each answer Chromium " +
      "sends the bridge and the first the bridge sends the client; the difference is what the bridge adds " +
      "to the first byte (the last hop, bridge → client, costs what Chromium → client costs direct). " +
      "The capture runs only during those calls, not the paired ones.",
    `- **concurrent**: ${C.bridge.clients} WebSocket connections to the page endpoint, all opened ` +
      `first, then each sends \`Runtime.evaluate\` of \`ID+1\` with ids 1…${C.bridge.messages}, ` +
      `keeping ${C.bridge.window} in flight (a new one per answer). Per connection every answer's id ` +
      "must be the one after the previous (else reordered), its value ID+1 (else wrong), no id " +
      `twice (duplicate); lost = not answered within ${CALL_TIMEOUT_MS / 1000} s. Time from the ` +
      "first send to the last answer; round trips/s = all answers / the rounds' summed time. " +
      `A warm-up round of ${Math.min(100, C.bridge.messages)} per connection on each path, then ` +
      `${C.bridge.rounds} rounds per path, alternating A B B A … (Chromium does most of the work, and ` +
      "its pace drifts; with the raw relay too: A B C C B A …). The bridge's CPU is its schedstat run " +
      "time (all threads) over its rounds. On a 2-core machine the client, Chromium's processes and " +
      "any relay share the same two CPUs, so a relay's CPU is taken from Chromium: the socat row " +
      "shows what a plain byte relay costs in the same rounds.",
    `- **RSS**: VmRSS of the corral-cdp process from /proc/PID/status. Idle: after ${SETTLE_MS / 1000} s ` +
      "with no connection, before the tests; after: once the bridge's open fd count is back to the " +
      `idle one (polled) and ${SETTLE_MS / 1000} s more. Peaks: sampled every ${SAMPLE_EVERY_MS} ms ` +
      "by a worker thread of the client (its own event loop, not held up by the client's work) " +
      "during the concurrent test and during the screenshots, and VmHWM read after each, reset " +
      "before each by writing 5 to /proc/PID/clear_refs. \"Above idle\" is above the idle RSS " +
      "before any connection. The relay reads into one 64 KiB buffer per worker thread, not per " +
      "connection, and keeps bytes of its own only while a peer does not take them (at most one " +
      "read, freed once written); a large payload goes through a kernel pipe, not its memory, so " +
      "neither a message's size nor an open connection should show. " + `Idle relays (after everything else): ${fmtInt(r.idleRelays.k)} WebSockets through ` +
      "the bridge to the browser endpoint, opened 50 at a time, each one `Browser.getVersion`, " +
      `then ${SETTLE_MS / 1000} s of quiet; per relay = (RSS held − the idle RSS read just before) / count ` +
      "(a relay is two sockets, a task and its timers). Idle TCP connections (last): opened 500 at a " +
      "time, sending nothing; the bridge's fd count and RSS sampled every 20 ms, the row gives them at the " +
      "most connections held at once (the bridge closes one that sends no request within 10 s, so on a " +
      "loaded machine the first can go before the last are open); the bench's bridge runs with " +
      `\`--max-connections ${args["max-connections"]}\`` +
      " so none is evicted by the cap (tests/cdp/flood.test.mjs checks the cap itself).",
    `- bridge log during the run: ${r.bridgeLog}`,
    "<!-- bench:cdp:end -->",
  ].join("\n");
}

function writeSection(path, section) {
  const start = "<!-- bench:cdp:start", end = "<!-- bench:cdp:end -->";
  let text;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch {
    text = "# Benchmarks\n\nEach section is written by the script named in it.\n";
  }
  if (text.includes(start) && text.includes(end)) {
    text = text.slice(0, text.indexOf(start)) + section + text.slice(text.indexOf(end) + end.length);
  } else {
    text = text.replace(/\n*$/, "\n\n") + section + "\n";
  }
  fs.writeFileSync(path, text);
}

function bridgeLogSummary(path) {
  if (!path) return "not read";
  let text = "";
  try { text = fs.readFileSync(path, "utf8"); } catch { return `cannot read ${path}`; }
  // eslint-disable-next-line no-control-regex
  const lines = text.replace(/\x1b\[[0-9;]*m/g, "").split("\n").filter(Boolean);
  const opened = lines.filter((l) => l.includes("websocket open")).length;
  const closed = lines.filter((l) => l.includes("websocket closed")).length;
  const bad = lines.filter((l) => /\b(WARN|ERROR)\b/.test(l));
  const whys = {};
  for (const l of lines) {
    const m = /websocket closed: (.*?)(?: path=\S*)?$/.exec(l);
    if (m) whys[m[1]] = (whys[m[1]] ?? 0) + 1;
  }
  const whyText = Object.entries(whys).map(([k, v]) => `${v} × "${k}"`).join(", ");
  return `${opened} WebSockets opened, ${closed} closed (${whyText || "none"}); ` +
    `${bad.length} warning/error lines${bad.length ? `: ${bad.slice(0, 3).join(" | ")}` : ""}`;
}

// ---------------------------------------------------------------------------

async function main() {
  const { values: args } = parseArgs({
    options: {
      direct: { type: "string" },
      bridge: { type: "string" },
      relay: { type: "string" },
      "relay-version": { type: "string", default: "" },
      "bridge-pid": { type: "string" },
      "chromium-pid": { type: "string" },
      "bridge-version": { type: "string", default: "unknown" },
      "chromium-version": { type: "string", default: "unknown" },
      "load-at-start": { type: "string", default: os.loadavg().map((x) => x.toFixed(2)).join(" ") },
      "bridge-log": { type: "string" },
      display: { type: "string", default: "unknown" },
      out: { type: "string" },
      command: { type: "string", default: "bench/cdp/run" },
      n: { type: "string", default: "5000" },
      block: { type: "string", default: "250" },
      warmup: { type: "string", default: "500" },
      shots: { type: "string", default: "5" },
      clients: { type: "string", default: "64" },
      messages: { type: "string", default: "1000" },
      window: { type: "string", default: "16" },
      rounds: { type: "string", default: "2" },
      "idle-relays": { type: "string", default: "1000" },
      firsts: { type: "string", default: "15" },
      "idle-connections": { type: "string", default: "10000" },
      "max-connections": { type: "string", default: "2048" },
      guarded: { type: "string" },
      "guarded-token": { type: "string" },
      "policy-micro": { type: "string", default: "" },
      policies: { type: "string", default: "2000" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (args.help || !args.direct || !args.bridge || !args["bridge-pid"]) {
    process.stdout.write(`usage: measure.mjs --direct HOST:PORT --bridge HOST:PORT --bridge-pid PID
  [--n 5000] [--block 250] [--warmup 500] [--shots 5] [--clients 64] [--messages 1000]
  [--window 16] [--rounds 2] [--out docs/benchmarks.md] [--command TEXT]   (normally run by bench/cdp/run)\n`);
    process.exit(args.help ? 0 : 2);
  }
  for (const k of ["n", "block", "warmup", "shots", "clients", "messages", "window", "rounds", "idle-relays", "idle-connections", "firsts", "policies"]) {
    args[k] = Number(args[k]);
    if (!Number.isInteger(args[k]) || args[k] < 1) throw new Error(`--${k}: a positive integer`);
  }
  const pid = Number(args["bridge-pid"]);
  process.on("SIGTERM", () => process.exit(143));
  const r = {};
  r.wsVersion = JSON.parse(fs.readFileSync(new URL("./node_modules/ws/package.json", import.meta.url))).version;
  r.xvfb = `display ${args.display}, screen 1280×1024×24`;

  // The page, as each path's /json/list names it.
  const listDirect = await getJson(args.direct, "/json/list");
  const page = listDirect.find((t) => t.type === "page");
  if (!page) throw new Error("no page target in Chromium's /json/list");
  const listBridge = await getJson(args.bridge, "/json/list");
  const pageB = listBridge.find((t) => t.id === page.id);
  const urls = { direct: page.webSocketDebuggerUrl, bridge: pageB?.webSocketDebuggerUrl };
  // The raw relay rewrites nothing: its URL is the direct one on its port.
  if (args.relay) urls.relay = `ws://${args.relay}/devtools/page/${page.id}`;
  if (urls.bridge !== `ws://${args.bridge}/devtools/page/${page.id}`) {
    throw new Error(`the bridge's /json/list gives ${urls.bridge} for page ${page.id}`);
  }
  log(`page ${page.id}: direct ${urls.direct}, bridge ${urls.bridge}`);

  // Idle, before any WebSocket (the readiness polls were plain HTTP).
  await sleep(SETTLE_MS);
  r.idleBefore = idleRss(pid);
  log(`bridge idle: ${mib(r.idleBefore.rssKiB)}, ${r.idleBefore.fds} fds, ${r.idleBefore.threads} threads`);

  // The measured connections enable no domain: no events travel on them, only answers.
  const conns = { direct: await Cdp.open(urls.direct), bridge: await Cdp.open(urls.bridge) };
  // The raw relay rewrites nothing: its URL is the direct one on its port.
  if (args.relay) conns.relay = await Cdp.open(`ws://${args.relay}/devtools/page/${page.id}`);
  if ((await conns.direct.value("location.href")) !== "about:blank") {
    await conns.direct.call("Page.navigate", { url: "about:blank" });
  }
  await waitFor("about:blank loaded", async () => (await conns.direct.value("document.readyState")) === "complete", 10_000);

  log(`latency: ${args.n} × Runtime.evaluate per path, blocks of ${args.block}`);
  r.latency = await latency(conns, args.n, args.block, args.warmup);
  log(`  p50 direct ${us(r.latency.direct.p50)}, bridge ${us(r.latency.bridge.p50)}` +
    (r.latency.relay ? `, raw relay ${us(r.latency.relay.p50)}` : ""));
  if (conns.relay) await conns.relay.close();

  log(`concurrent: ${args.clients} × ${args.messages}, ${args.rounds} rounds per path (after a warm-up of both)`);
  const warm = Math.min(100, args.messages);
  await concurrent(urls.direct, args.clients, warm, args.window, null);
  await concurrent(urls.bridge, args.clients, warm, args.window, null);
  if (urls.relay) await concurrent(urls.relay, args.clients, warm, args.window, null);
  r.concurrent = await concurrentRounds(urls, args, pid);

  log(`screenshots: ${PAGE_W} × ${PAGE_H} noise, ${args.shots} per path`);
  await makeNoisePage(conns.direct);
  r.large = await large(conns, args.shots, pid);
  log(`first byte: a 33 MB answer kept in the page, ${args.firsts} per path`);
  const portOf = (hostPort) => Number(hostPort.split(":").at(-1));
  r.firstByte = await firstByte(conns, args.firsts, { bridgePort: portOf(args.bridge), chromiumPort: portOf(args.direct) });
  log(`  first byte median: direct ${r.firstByte.direct.ttfbMs.toFixed(2)} ms, bridge ${r.firstByte.bridge.ttfbMs.toFixed(2)} ms`);

  if (args.guarded) {
    log(`policy: ${args.policies} × GET /json/version per bridge (no token / token), alternating`);
    r.policy = await policyCost(args.bridge, args.guarded, args["guarded-token"], args.policies);
    log(`  p50 no token ${us(r.policy.plain.p50)}, token ${us(r.policy.guarded.p50)}, paired median ${us(r.policy.pairedUs)}`);
  }
  r.policyMicro = args["policy-micro"];

  await Promise.all([conns.direct.close(), conns.bridge.close()]);
  await waitFor("the bridge back to its idle fd count", () => fdCount(pid) <= r.idleBefore.fds, 10_000);
  await sleep(SETTLE_MS);
  r.idleAfter = idleRss(pid);

  // Last, so what they leave in the allocator does not weigh on the figures above.
  log(`idle relays: ${args["idle-relays"]} WebSockets held`);
  r.idleRelays = await idleRelays(args.bridge, args["idle-relays"], pid);
  log(`  RSS ${mib(r.idleRelays.heldKiB)} with ${r.idleRelays.k} open (idle before: ${mib(r.idleAfter.rssKiB)})`);
  await waitFor("the bridge back to its idle fd count", () => fdCount(pid) <= r.idleBefore.fds, 30_000);
  log(`idle connections: ${args["idle-connections"]} TCP connections held`);
  r.idleConns = await idleConnections(args.bridge, args["idle-connections"], pid, r.idleBefore.fds);
  log(`  RSS ${mib(r.idleConns.heldKiB)} with ${r.idleConns.held} held`);
  r.bridgeLog = bridgeLogSummary(args["bridge-log"]);

  const section = render(r, args);
  process.stdout.write(section + "\n");
  if (args.out) {
    writeSection(args.out, section);
    log(`wrote the cdp section of ${args.out}`);
  }
}

main().catch((e) => {
  log(`error: ${e.stack ?? e}`);
  process.exit(1);
});
