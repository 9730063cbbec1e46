// The live view's hand-over between an agent and a human, end to end on the
// shipped stack (the repo's supervisor.toml under the real corral as PID 1):
// a REAL noVNC client — noVNC's own page served by corral-live, in a separate
// headless Chromium, typing with real key events — against the stack's
// headful Chromium, whose page records the key events it receives (read over
// CDP, which stays open throughout). It checks that the live view is
// view-only by default (the control token's noVNC, view_only off, types and
// nothing arrives), that the view token never types even during a takeover,
// that `POST /live/takeover` lets the same client's keys reach the page, that
// `GET /live` reports the holder and expiry, that renewal extends and
// release ends control, and that the lease expires on time: no key sent
// after the expiry arrives, and the keys sent before it do.
//
// Ordering makes "nothing arrived" provable: keys travel in order on one
// noVNC connection, so a key typed without control and followed by keys
// typed under a lease would arrive first if it passed. corral-live logs when
// a viewer's input starts being dropped: the test waits on that line, never
// on a timer.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { chromium } from 'playwright-core';

import { startStack, waitFor, freePort, CHROMIUM, CHROMIUM_FLAGS } from './lib/stack.mjs';

let stack;
let site;
let viewerBrowser; // the human's browser, running noVNC
let cdp; // the agent's CDP connection to the stack's Chromium
let target; // the page in the stack's Chromium that records keys

const PAGE = `<!doctype html><title>hand-over</title><link rel="icon" href="data:,">
<body style="margin:0"><textarea id="t" autofocus style="width:100vw;height:100vh"></textarea>
<script>window.keys = []; addEventListener('keydown', (e) => keys.push(e.key), true);</script>`;

before(async () => {
  stack = await startStack({
    name: 'handoff',
    bind: '127.0.0.1',
    tokens: { LIVE: { file: true }, LIVE_VIEW: { file: true }, API: { file: true } },
  });
  const port = await freePort();
  site = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  await new Promise((r) => site.listen(port, '127.0.0.1', r));
  cdp = await chromium.connectOverCDP(`http://127.0.0.1:${stack.ports.cdp}`, { timeout: 30_000 });
  const ctx = cdp.contexts()[0];
  target = ctx.pages()[0] ?? (await ctx.newPage());
  await target.goto(`http://127.0.0.1:${port}/`);
  await target.bringToFront();
  await target.focus('#t');
  viewerBrowser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
});

after(async () => {
  await viewerBrowser?.close().catch(() => {});
  await cdp?.close().catch(() => {});
  await new Promise((r) => (site ? site.close(r) : r()));
  await stack?.stop();
  stack?.cleanup();
});

async function api(method, p, body) {
  const r = await fetch(`http://127.0.0.1:${stack.ports.api}${p}`, {
    method,
    headers: { authorization: `Bearer ${stack.token('API')}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

const received = () => target.evaluate(() => window.keys.join(''));
const logCount = (re) => (stack.programLog('novnc').match(re) ?? []).length;
const PASSES = /viewer input passes: a human holds the live view/g;

/** The peer (127.0.0.1:PORT) corral-live logged for its newest connection with this access. */
const newestPeer = (access) =>
  [...stack.programLog('novnc').matchAll(/live view open peer=(\S+) access=(\w+)/g)].filter((m) => m[2] === access).at(-1)?.[1];
/** How often corral-live logged that this viewer's input started being dropped. */
const drops = (peer) => stack.programLog('novnc').split('\n').filter((l) => l.includes('viewer input dropped: no control lease') && l.includes(`peer=${peer} `)).length;

/** Waits on corral-live's log; on timeout, says what the log holds. */
async function waitLog(what, check) {
  try {
    await waitFor(what, check, { timeoutMs: 15_000 });
  } catch (e) {
    throw new Error(`${e.message}\n--- novnc.log (tail) ---\n${stack.programLog('novnc').split('\n').filter((l) => !l.includes('GET /')).slice(-20).join('\n')}`);
  }
}

/** noVNC's own page from corral-live, connected, its canvas focused (keys go to the VNC server). */
async function noVNC(url) {
  const page = await viewerBrowser.newPage();
  await page.goto(url);
  await waitFor('noVNC to connect', () => page.evaluate(() => document.documentElement.classList.contains('noVNC_connected')), { timeoutMs: 20_000 });
  await page.evaluate(() => document.querySelector('#noVNC_container canvas').focus());
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'CANVAS');
  return page;
}

let human; // the control token's noVNC (the one-click URL: view_only off)
let humanPeer; // its connection, as corral-live logs it
let viewer; // the view token's noVNC with view_only switched OFF by hand (a bypass attempt)

test('view-only by default: a real noVNC client types, nothing reaches the page; the view token is refused even with view_only off', async () => {
  assert.deepEqual((await api('GET', '/live')).json.control, 'agent');
  human = await noVNC(`http://127.0.0.1:${stack.ports.live}/?token=${stack.token('LIVE')}`);
  assert.equal(new URL(human.url()).searchParams.get('view_only'), null, 'the control page is not client-side view-only');
  humanPeer = newestPeer('Control');
  assert.ok(humanPeer, 'corral-live logged the control viewer');
  await human.keyboard.type('q');
  // Logged at this viewer's first input message (the key, or anything noVNC sent before it).
  await waitLog('corral-live to drop the control viewer’s input', () => drops(humanPeer) >= 1);
  // A noVNC page that does not ask for view-only, with the view token.
  const path = encodeURIComponent(`websockify?token=${stack.token('LIVE_VIEW')}`);
  viewer = await noVNC(`http://127.0.0.1:${stack.ports.live}/vnc.html?autoconnect=true&path=${path}`);
  const viewerPeer = newestPeer('ViewOnly');
  assert.ok(viewerPeer, 'corral-live logged the view viewer');
  await viewer.keyboard.type('v');
  await waitLog('corral-live to drop the view viewer’s input', () => drops(viewerPeer) >= 1);
  assert.equal(await received(), '', 'no key reached the page');
});

test('takeover: the same client’s keys reach the page; GET /live names the holder; renewal extends; release ends it', async () => {
  const t = await api('POST', '/live/takeover', { holder: 'alice', duration_s: 30 });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  const id = t.json.lease_id;
  const g = (await api('GET', '/live')).json;
  assert.equal(g.control, 'human');
  assert.equal(g.holder, 'alice');
  assert.equal(g.expires_at_ms, t.json.expires_at_ms);
  assert.equal(g.expires_at, t.json.expires_at);

  const second = await api('POST', '/live/takeover', { holder: 'bob' });
  assert.equal(second.status, 409);
  assert.match(second.json.detail, /alice holds the live view until /);

  const typedAt = Date.now();
  await human.keyboard.type('hello');
  await waitFor('the typed keys to reach the page', async () => (await received()).length >= 5, { timeoutMs: 10_000 });
  console.log(`keys through noVNC → corral-live → x11vnc → Chromium in ${Date.now() - typedAt} ms`);
  // 'q', typed before on the same connection, never arrived (it would be first).
  assert.equal(await received(), 'hello');
  // The view token still never types, even during a takeover.
  await viewer.keyboard.type('w');

  const r = await api('POST', '/live/takeover', { lease_id: id, duration_s: 120 });
  assert.equal(r.status, 200);
  assert.equal(r.json.renewed, true);
  assert.ok(r.json.expires_at_ms >= t.json.expires_at_ms + 80_000, 'renewal extends');
  assert.equal((await api('GET', '/live')).json.expires_at_ms, r.json.expires_at_ms);

  const before = drops(humanPeer);
  const rel = await api('POST', '/live/release', { lease_id: id });
  assert.equal(rel.status, 200);
  assert.equal((await api('GET', '/live')).json.control, 'agent');
  await human.keyboard.type('x');
  await waitLog('corral-live to drop the key typed after the release', () => drops(humanPeer) > before);
  assert.equal(await received(), 'hello', 'nothing after the release');
});

test('the lease expires on time: keys sent before it arrive, none sent after it', async () => {
  const t = await api('POST', '/live/takeover', { holder: 'carol', duration_s: 2 });
  assert.equal(t.status, 200);
  const expires = t.json.expires_at_ms;
  const base = (await received()).length;
  const letters = 'abcdefghijklmnop';
  const sent = [];
  const before = drops(humanPeer);
  // Type steadily across the expiry and half a second past it.
  while (Date.now() < expires + 500) {
    const at = Date.now();
    await human.keyboard.press(letters[sent.length % letters.length]);
    sent.push(at);
  }
  await waitLog('corral-live to drop keys after the expiry', () => drops(humanPeer) > before);
  const sentBefore = sent.filter((at) => at < expires - 250).length;
  await waitFor('the keys sent well before the expiry to arrive', async () => (await received()).length - base >= sentBefore, { timeoutMs: 10_000 });
  const got = (await received()).slice(base);
  const typed = sent.map((_, i) => letters[i % letters.length]).join('');
  assert.ok(typed.startsWith(got), `what arrived is what was typed, in order, up to a point: ${got}`);
  const lastIn = sent[got.length - 1];
  const firstOut = sent[got.length];
  console.log(`lease expiry: last key in sent ${expires - lastIn} ms before it, first key out sent ${firstOut - expires} ms after it (${got.length}/${sent.length} keys)`);
  assert.ok(lastIn < expires, 'no key sent after the expiry arrived');
  assert.ok(got.length >= sentBefore, 'every key sent 250 ms before the expiry arrived');
  assert.equal((await api('GET', '/live')).json.control, 'agent');
  // Renewing an expired lease is refused; the holder must take it again.
  assert.equal((await api('POST', '/live/takeover', { lease_id: t.json.lease_id })).status, 404);
});

test('CDP stayed open throughout, and the view token’s keys never arrived', async () => {
  assert.equal(await target.evaluate(() => 6 * 7), 42);
  const all = await received();
  assert.ok(!/[qvwx]/.test(all), `keys typed without control never arrived: ${all}`);
  assert.ok(logCount(PASSES) >= 2, 'corral-live logged input passing under each lease');
});
