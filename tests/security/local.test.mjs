// The stack as `scripts/run` starts it on a developer's machine: every
// listener on 127.0.0.1 (CORRAL_BIND=127.0.0.1), no CDP token (a local client
// needs none, as with Chromium itself), the live view / snapshot / API tokens in
// files the product makes. Attacked by a web page in the user's own browser,
// by DNS rebinding, and used by the real CDP clients. See README.md.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import CDP from 'chrome-remote-interface';
import { Builder } from 'selenium-webdriver';
import chrome from 'selenium-webdriver/chrome.js';

import { startStack, request, wsTry, waitFor, freePort } from './lib/stack.mjs';
import { hostileServer, everydayBrowser, ATTACK_JS } from './lib/hostile.mjs';
import { Netns } from './lib/netns.mjs';

let stack;
let evil;
let browser; // the user's everyday browser
let site; // an ordinary page the clients navigate to
let sitePort;
let netns;

before(async () => {
  stack = await startStack({
    name: 'local',
    bind: '127.0.0.1',
    tokens: { LIVE: { file: true }, LIVE_VIEW: { file: true }, SNAPSHOT: { file: true }, API: { file: true } },
  });
  evil = await hostileServer();
  browser = await everydayBrowser();
  sitePort = await freePort();
  site = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>hello from the site</title><link rel="icon" href="data:,">');
  });
  await new Promise((r) => site.listen(sitePort, '127.0.0.1', r));
});

after(async () => {
  await browser?.close().catch(() => {});
  await evil?.close();
  await new Promise((r) => (site ? site.close(r) : r()));
  await netns?.remove();
  await stack?.stop();
  stack?.cleanup();
});

const refusals = (name, reason) =>
  (stack.programLog(name).match(new RegExp(`request refused.*reason="?${reason}`, 'g')) ?? []).length;

/** Opens the attack page at `origin` in the everyday browser. */
async function attackPage(origin) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${origin}/attack`);
  assert.equal(await page.title(), 'totally harmless');
  return { page, ctx };
}

test('the files the product makes for its tokens are private and random', () => {
  for (const key of ['LIVE', 'LIVE_VIEW', 'SNAPSHOT', 'API']) {
    const file = stack.tokenFiles[key];
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, `${file} mode`);
    assert.match(stack.token(key), /^[0-9a-f]{64}$/, `${key} token`);
  }
  assert.equal(new Set(['LIVE', 'LIVE_VIEW', 'SNAPSHOT', 'API'].map((k) => stack.token(k))).size, 4, 'each listener has its own token');
});

test('a hostile page in the user’s browser gets nothing from CDP, Chromium’s own port, or the APIs', async () => {
  const { cdp, chromium: up } = stack.ports;
  const version = await stack.upstreamJson('/json/version');
  const browserId = version.webSocketDebuggerUrl.split('/').pop();
  const pageId = (await stack.upstreamJson('/json/list')).find((t) => t.type === 'page').id;
  const before = await stack.targetIds();
  const refusedBefore = refusals('cdp', 'origin not allowed');
  const { page, ctx } = await attackPage(`http://evil.test:${evil.port}`);

  // Positive control: this page can open a WebSocket on loopback and read it,
  // so whatever stops the attacks below is the server saying no.
  const control = await page.evaluate((u) => window.tryWs(u), `ws://127.0.0.1:${evil.wsPort}/`);
  assert.ok(control.opened && control.messages.length === 1, `control WebSocket: ${JSON.stringify(control)}`);

  const create = JSON.stringify({ id: 1, method: 'Target.createTarget', params: { url: evil.canaryUrl } });
  const sockets = [
    `ws://127.0.0.1:${cdp}/`,
    `ws://localhost:${cdp}/`,
    `ws://127.0.0.1:${cdp}/devtools/browser/00000000-stale-0000-0000-000000000000`,
    `ws://127.0.0.1:${cdp}/devtools/browser/${browserId}`,
    `ws://localhost:${cdp}/devtools/page/${pageId}`,
    `ws://127.0.0.1:${up}/devtools/browser/${browserId}`,
    `ws://127.0.0.1:${up}/devtools/page/${pageId}`,
    `ws://localhost:${up}/devtools/browser/${browserId}`,
  ];
  const ws = await page.evaluate(
    ({ sockets, create }) => Promise.all(sockets.map((u) => window.tryWs(u, { send: create }))),
    { sockets, create },
  );
  for (const r of ws) {
    assert.equal(r.opened, false, `${r.url} opened: ${JSON.stringify(r)}`);
    assert.deepEqual(r.messages, [], `${r.url} answered`);
  }

  const json = (p) => `http://127.0.0.1:${cdp}${p}`;
  const fetches = await page.evaluate(
    ({ urls }) => Promise.all(urls.map(([u, init]) => window.tryFetch(u, init))),
    {
      urls: [
        [json(`/json/new?${evil.canaryUrl}`), { method: 'PUT' }],
        [json(`/json/new?${evil.canaryUrl}`), { method: 'PUT', mode: 'no-cors' }],
        [json(`/json/new?${evil.canaryUrl}`), { method: 'POST', mode: 'no-cors' }],
        [json(`/json/new?${evil.canaryUrl}`), { method: 'GET', mode: 'no-cors' }],
        [`http://localhost:${cdp}/json/new?${evil.canaryUrl}`, { method: 'PUT' }],
        [json('/json/list'), {}],
        [json('/json/version'), {}],
        [`http://127.0.0.1:${up}/json/new?${evil.canaryUrl}`, { method: 'PUT' }],
        [`http://127.0.0.1:${up}/json/new?${evil.canaryUrl}`, { method: 'GET', mode: 'no-cors' }],
        [`http://127.0.0.1:${up}/json/list`, {}],
        [`http://127.0.0.1:${stack.ports.snapshot}/api/snapshot`, {}],
        [`http://127.0.0.1:${stack.ports.api}/process/exec`, { method: 'POST', mode: 'no-cors', body: '{"command":"touch /tmp/pwned"}' }],
        [`http://127.0.0.1:${stack.ports.api}/programs`, {}],
      ],
    },
  );
  for (const r of fetches) {
    // A readable answer (type basic/cors) would leak it; an opaque one
    // (no-cors) carries nothing the page can see.
    assert.ok(r.failed || r.type === 'opaque', `${r.method} ${r.url} (${r.mode}) was readable: ${JSON.stringify(r)}`);
  }
  await ctx.close();

  // From Node: no tab was opened, nothing loaded the canary.
  assert.deepEqual(await stack.targetIds(), before, 'no new target in Chromium');
  assert.equal(evil.canary.hits, 0, 'no tab loaded the canary URL');
  // The bridge itself said no (not the browser): one refusal per WebSocket at least.
  assert.ok(refusals('cdp', 'origin not allowed') - refusedBefore >= 5, stack.programLog('cdp').slice(-2000));
  assert.ok(refusals('api', 'origin not allowed') >= 1, 'corral-api refused the page');
});

test('a hostile page gets no RFB banner from the live view, even holding the token', async () => {
  const { page, ctx } = await attackPage(`http://evil.test:${evil.port}`);
  const live = stack.token('LIVE');
  const view = stack.token('LIVE_VIEW');
  const refusedBefore = refusals('novnc', 'origin not allowed');
  const sockets = [
    `ws://127.0.0.1:${stack.ports.live}/websockify`,
    `ws://localhost:${stack.ports.live}/websockify`,
    `ws://127.0.0.1:${stack.ports.live}/websockify?token=${live}`,
    `ws://127.0.0.1:${stack.ports.live}/websockify?token=${view}`,
    `ws://127.0.0.1:${stack.ports.live}/?token=${live}`,
  ];
  const ws = await page.evaluate((sockets) => Promise.all(sockets.map((u) => window.tryWs(u, { protocols: ['binary'] }))), sockets);
  await ctx.close();
  for (const r of ws) {
    assert.equal(r.opened, false, `${r.url} opened`);
    assert.deepEqual(r.messages, [], `${r.url} sent ${r.messages}`);
  }
  assert.ok(refusals('novnc', 'origin not allowed') - refusedBefore >= sockets.length, stack.programLog('novnc').slice(-2000));
});

test('a hostile page cannot get past x11vnc’s own loopback port', async () => {
  // x11vnc (libvncserver) also speaks WebSocket on its RFB port, with no
  // Origin check: a page reaching 127.0.0.1:5900 directly would bypass
  // corral-live and its token. x11vnc requires a random password only
  // corral-live knows, so the page sees the banner and no way in.
  const { page, ctx } = await attackPage(`http://evil.test:${evil.port}`);
  const sockets = [`ws://127.0.0.1:${stack.ports.vnc}/`, `ws://localhost:${stack.ports.vnc}/websockify`];
  const ws = await page.evaluate((sockets) => Promise.all(sockets.map((u) => window.tryRfbNone(u))), sockets);
  await ctx.close();
  let reached = 0;
  for (const r of ws) {
    if (r.types) reached++;
    assert.ok(!r.types?.includes(1), `${r.url} offered the page "no authentication": ${JSON.stringify(r)}`);
    assert.notDeepEqual(r.after, [0, 0, 0, 0], `${r.url} let the page in: ${JSON.stringify(r)}`);
  }
  // The page did reach x11vnc (so the password is what stops it).
  assert.ok(reached >= 1, JSON.stringify(ws));
});

test('DNS rebinding: pages on rebind.test (same-origin with each port) are refused', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const cases = [
    [stack.ports.cdp, '/json/version', 403],
    [stack.ports.cdp, '/json/list', 403],
    [stack.ports.live, '/vnc.html', 403],
    [stack.ports.live, '/', 403],
    [stack.ports.snapshot, '/healthz', 403],
    [stack.ports.snapshot, '/api/snapshot', 401],
    [stack.ports.api, '/healthz', 403],
    [stack.ports.api, '/programs', 401],
  ];
  for (const [port, p, status] of cases) {
    const res = await page.goto(`http://rebind.test:${port}${p}`);
    assert.equal(res.status(), status, `rebind.test:${port}${p}: ${await res.text()}`);
    assert.ok(!(await res.text()).includes('webSocketDebuggerUrl'));
  }
  // Now a page whose origin IS http://rebind.test:CDP (the error page above):
  // its same-origin WebSocket and fetches carry Host and Origin rebind.test.
  const version = await stack.upstreamJson('/json/version');
  const browserId = version.webSocketDebuggerUrl.split('/').pop();
  const before = await stack.targetIds();
  for (const port of [stack.ports.cdp, stack.ports.live, stack.ports.snapshot, stack.ports.api]) {
    await page.goto(`http://rebind.test:${port}/json/version`);
    await page.addScriptTag({ content: ATTACK_JS });
    const origin = `rebind.test:${port}`;
    const ws = await page.evaluate(
      (urls) => Promise.all(urls.map((u) => window.tryWs(u, { protocols: u.includes('websockify') ? ['binary'] : undefined, send: '{"id":1,"method":"Browser.getVersion"}' }))),
      [`ws://${origin}/devtools/browser/${browserId}`, `ws://${origin}/`, `ws://${origin}/websockify`],
    );
    for (const r of ws) {
      assert.equal(r.opened, false, `${r.url} opened`);
      assert.deepEqual(r.messages, []);
    }
    const f = await page.evaluate(
      (urls) => Promise.all(urls.map(([u, init]) => window.tryFetch(u, init))),
      [[`http://${origin}/json/list`, {}], [`http://${origin}/json/new?${evil.canaryUrl}`, { method: 'PUT' }], [`http://${origin}/programs`, {}], [`http://${origin}/api/snapshot`, {}]],
    );
    for (const r of f) {
      assert.ok(r.failed || [401, 403].includes(r.status), `${r.method} ${r.url}: ${JSON.stringify(r)}`);
      assert.ok(!r.body?.includes('"id"'), `${r.url} leaked: ${r.body}`);
    }
  }
  await ctx.close();
  assert.deepEqual(await stack.targetIds(), before, 'no new target');
  assert.equal(evil.canary.hits, 0);
});

test('DNS rebinding, raw: a foreign Host (with or without its matching Origin) is refused on every port, HTTP and upgrade', async () => {
  const { cdp, live, snapshot, api } = stack.ports;
  // [port, path, status without Origin]: the Host check where no credential
  // is asked for (403), the credential first where one is (401).
  const cases = [
    [cdp, '/json/version', 403], [cdp, '/json/list', 403], [cdp, '/json/new?about:blank', 403],
    [live, '/vnc.html', 403], [live, '/', 403],
    [snapshot, '/healthz', 403], [snapshot, '/api/snapshot', 401],
    [api, '/healthz', 403], [api, '/spec.yaml', 403], [api, '/programs', 401],
  ];
  for (const [port, p, status] of cases) {
    const host = `rebind.test:${port}`;
    const method = p.startsWith('/json/new') ? 'PUT' : 'GET';
    const noOrigin = await request(port, p, { method, headers: { host } });
    assert.equal(noOrigin.status, status, `${host}${p}: ${noOrigin.text}`);
    if (status === 403) assert.equal(noOrigin.json?.error, 'host not allowed');
    const withOrigin = await request(port, p, { method, headers: { host, origin: `http://${host}` } });
    assert.equal(withOrigin.status, 403, `${host}${p} + Origin: ${withOrigin.text}`);
  }
  const browserId = (await stack.upstreamJson('/json/version')).webSocketDebuggerUrl.split('/').pop();
  for (const [port, p] of [[cdp, `/devtools/browser/${browserId}`], [cdp, '/'], [live, '/websockify'], [live, `/websockify?token=wrong`]]) {
    for (const origin of [undefined, `http://rebind.test:${port}`]) {
      const r = await wsTry(`ws://127.0.0.1:${port}${p}`, { headers: { host: `rebind.test:${port}` }, origin, protocols: port === live ? ['binary'] : undefined });
      assert.ok(!r.open, `${p} opened with Host rebind.test`);
      // Live view: the credential is asked for first (401); CDP (no token): the Host (403).
      assert.equal(r.status, port === live ? 401 : 403, `${p} origin=${origin}: ${r.text}`);
    }
  }
  // localhost names and IP literals are what the check lets in.
  for (const host of [`localhost:${cdp}`, `127.0.0.1:${cdp}`, `app.localhost:${cdp}`, `[::1]:${cdp}`]) {
    assert.equal((await request(cdp, '/json/version', { headers: { host } })).status, 200, host);
  }
});

test('clients still connect with no token on loopback: Playwright, Puppeteer, chrome-remote-interface, Selenium (chromedriver)', async () => {
  const { cdp } = stack.ports;
  const url = `http://127.0.0.1:${sitePort}/`;
  const before = await stack.targetIds();

  const pw = await chromium.connectOverCDP(`http://127.0.0.1:${cdp}`, { timeout: 30_000 });
  const pwPage = await pw.contexts()[0].newPage();
  await pwPage.goto(url);
  assert.equal(await pwPage.title(), 'hello from the site');
  await pwPage.close();
  await pw.close();

  const pp = await puppeteer.connect({ browserURL: `http://127.0.0.1:${cdp}`, protocolTimeout: 30_000 });
  const ppPage = await pp.newPage();
  await ppPage.goto(url);
  assert.equal(await ppPage.title(), 'hello from the site');
  await ppPage.close();
  await pp.disconnect();

  // chrome-remote-interface: PUT /json/new, a page session, /json/close.
  const target = await CDP.New({ host: '127.0.0.1', port: cdp, url: 'about:blank' });
  const client = await CDP({ host: '127.0.0.1', port: cdp, target });
  await client.Page.enable();
  const loaded = client.Page.loadEventFired();
  await client.Page.navigate({ url });
  await loaded;
  const { result } = await client.Runtime.evaluate({ expression: 'document.title' });
  assert.equal(result.value, 'hello from the site');
  await client.close();
  await CDP.Close({ host: '127.0.0.1', port: cdp, id: target.id });

  // Selenium through Debian's chromedriver, attached to the bridge.
  const options = new chrome.Options();
  options.debuggerAddress(`127.0.0.1:${cdp}`);
  const driver = await new Builder()
    .forBrowser('chrome')
    .setChromeOptions(options)
    .setChromeService(new chrome.ServiceBuilder('/usr/bin/chromedriver'))
    .build();
  try {
    await driver.get(url);
    assert.equal(await driver.getTitle(), 'hello from the site');
    // A 3 MB answer: one frame Chromium sends, which the bridge passes on
    // whole (splicing most of it); chromedriver's own WebSocket reads it.
    const big = await driver.executeScript("return 'corral'.repeat(500000)");
    assert.equal(big.length, 3_000_000);
    assert.ok(big.startsWith('corralcorral') && big.endsWith('corral'));
  } finally {
    await driver.quit().catch(() => {});
  }
  // Each client closed what it opened (chromedriver drove the existing tab).
  const pages = (ids) => ids.filter((t) => t.startsWith('page:')).length;
  await waitFor('the clients’ pages to be closed', async () => pages(await stack.targetIds()) === pages(before), { timeoutMs: 10_000 });
});

test('default listeners are loopback only (ss), and unreachable from another network namespace', async () => {
  const listeners = await stack.listeners();
  const ports = listeners.map((l) => l.port);
  for (const [name, port] of Object.entries(stack.ports)) {
    assert.ok(ports.includes(port), `${name} (${port}) listens: ${JSON.stringify(listeners)}`);
  }
  for (const l of listeners) {
    assert.match(l.local, /^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/, `${l.proc} (pid ${l.pid}) listens on ${l.local}`);
  }
  // A stranger on the network: a host in a network namespace of our own,
  // reaching this machine through a veth pair.
  netns = await Netns.create();
  for (const [name, port] of Object.entries(stack.ports)) {
    const r = await netns.tcpConnect(netns.hostAddr, port);
    assert.equal(r, 'ECONNREFUSED', `${name} port ${port} from ${netns.nsAddr}: ${r}`);
  }
});

test('noVNC: the live token gets the RFB banner through corral-live; none → 401; foreign Origin → 403; the view token logs in view-only', async () => {
  const { live } = stack.ports;
  const liveToken = stack.token('LIVE');
  const viewToken = stack.token('LIVE_VIEW');
  const ok = await wsTry(`ws://127.0.0.1:${live}/websockify?token=${liveToken}`, { protocols: ['binary'] });
  assert.ok(ok.open, JSON.stringify(ok));
  assert.equal(ok.protocol, 'binary');
  assert.equal(ok.first?.toString('latin1'), 'RFB 003.008\n');
  const bearer = await wsTry(`ws://127.0.0.1:${live}/websockify`, { headers: { authorization: `Bearer ${liveToken}` } });
  assert.equal(bearer.first?.toString('latin1'), 'RFB 003.008\n');

  for (const p of ['/websockify', '/websockify?token=wrong', `/websockify?token=${liveToken}x`, '/']) {
    const r = await wsTry(`ws://127.0.0.1:${live}${p}`, { protocols: ['binary'] });
    assert.equal(r.status, 401, `${p}: ${JSON.stringify(r)}`);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
  }
  for (const origin of ['http://evil.test', `http://evil.test:${live}`, 'null', `http://127.0.0.1:${live}.evil.test`]) {
    const r = await wsTry(`ws://127.0.0.1:${live}/websockify?token=${liveToken}`, { origin, protocols: ['binary'] });
    assert.equal(r.status, 403, `${origin}: ${JSON.stringify(r)}`);
    assert.equal(r.json?.error, 'origin not allowed');
  }
  // Its own page's Origin (same host:port) is welcome.
  const same = await wsTry(`ws://127.0.0.1:${live}/websockify?token=${liveToken}`, { origin: `http://127.0.0.1:${live}`, protocols: ['binary'] });
  assert.equal(same.first?.toString('latin1'), 'RFB 003.008\n');

  // The view token: corral-live logs in with x11vnc's view-only password
  // (crates/live/tests/x11vnc.rs checks x11vnc ignores that viewer's pointer).
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`ws://127.0.0.1:${live}/websockify?token=${viewToken}`, ['binary']);
  const first = await new Promise((resolve, reject) => {
    ws.once('message', (d) => resolve(Buffer.from(d).toString('latin1')));
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  assert.equal(first, 'RFB 003.008\n');
  ws.terminate();
  assert.match(stack.programLog('novnc'), /live view open .*access=ViewOnly/);

  // The redirect that puts the token in the WebSocket path; the view token adds view_only.
  const r = await request(live, `/?token=${liveToken}`);
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, `vnc.html?autoconnect=true&resize=scale&path=websockify%3Ftoken%3D${liveToken}`);
  assert.equal(r.headers['cache-control'], 'no-store');
  const rn = await request(live, '/?token=wrong');
  assert.equal(rn.headers.location, 'vnc.html?autoconnect=true&resize=scale', 'a wrong token is not carried on');
});

/** Opens the one-click URL of `key` in the everyday browser; resolves once noVNC shows it is connected. */
async function oneClick(key) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`http://127.0.0.1:${stack.ports.live}/?token=${stack.token(key)}`);
  const state = () => page.evaluate(() => ({
    connected: document.documentElement.classList.contains('noVNC_connected'),
    status: document.getElementById('noVNC_status')?.textContent,
  }));
  let url;
  try {
    await waitFor(`noVNC (${key}) to show it is connected`, async () => (await state()).connected, { timeoutMs: 20_000, intervalMs: 100 });
  } catch (e) {
    throw new Error(`${e.message}: ${JSON.stringify(await state())} at ${page.url()}\n${stack.programLog('novnc').slice(-1500)}`);
  } finally {
    url = page.url();
    await ctx.close();
  }
  return url;
}

test('noVNC for real: the live token’s one-click URL connects in a browser', async () => {
  const url = await oneClick('LIVE');
  assert.equal(new URL(url).searchParams.get('view_only'), null);
});

test('noVNC for real: the view token’s one-click URL connects, view-only', async () => {
  const viewToken = stack.token('LIVE_VIEW');
  const r = await request(stack.ports.live, `/?token=${viewToken}`);
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, `vnc.html?autoconnect=true&resize=scale&path=websockify%3Ftoken%3D${viewToken}&view_only=true`, 'the redirect carries the view token and view_only');
  const url = await oneClick('LIVE_VIEW');
  assert.equal(new URL(url).searchParams.get('view_only'), 'true');
});

test('tokens are never logged (corral’s output and log_dir, after everything above and a shutdown)', async () => {
  const tokens = stack.allTokens();
  await browser.close();
  browser = null;
  await stack.stop({ keep: true });
  const logs = stack.allLogs();
  assert.ok(logs.includes('request refused'), 'the logs were read');
  for (const t of tokens) {
    assert.ok(t.length >= 32);
    assert.ok(!logs.includes(t), `a token appears in the logs: …${logs.slice(Math.max(0, logs.indexOf(t) - 200), logs.indexOf(t) + 80)}`);
  }
});
