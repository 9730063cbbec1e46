// SIGKILL Chromium under corral: open clients are closed with 1011, HTTP gets
// 503 JSON at once during the outage (WebSocket upgrades too), --wait-ready
// holds requests until Chromium is back, and clients holding the OLD URLs
// reconnect once corral has restarted it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

import { startStack, waitFor } from './lib/stack.mjs';
import { openWs, wsRefusal, Cdp, within, rawExchange, parseHttp } from './lib/clients.mjs';

let stack;

before(async () => {
  stack = await startStack({
    name: 'restart',
    bridges: {
      cdp: {},
      // The same bridge with --wait-ready: requests wait for Chromium instead of a 503.
      held: { args: ['--wait-ready', '30s'] },
    },
    // An 8 s restart delay makes the outage long enough to observe every
    // time, even on a loaded machine (the checks below take well under 1 s).
    chromiumBackoff: '{ initial = "8s", max = "8s", reset_after = "1h" }',
  });
});

after(async () => {
  await stack?.stop();
});

test('SIGKILL chromium: clients closed with 1011, 503 during the outage, old URLs work after the restart', { timeout: 120_000 }, async (t) => {
  const version = (await stack.get('cdp', '/json/version', { host: 'localhost' })).json;
  const oldWsUrl = version.webSocketDebuggerUrl;
  const oldGuid = oldWsUrl.split('/').at(-1);
  const page = (await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' })).json;

  // Clients connected before the crash.
  const rawBrowser = await Cdp.open(oldWsUrl);
  assert.match((await rawBrowser.send('Browser.getVersion')).product, /Chrome/);
  const rawPage = await Cdp.open(page.webSocketDebuggerUrl);
  const pw = await chromium.connectOverCDP(stack.url('cdp'), { timeout: 30_000 });
  const pwDisconnected = new Promise((r) => pw.once('disconnected', r));
  const pp = await puppeteer.connect({ browserURL: stack.url('cdp', 'localhost'), defaultViewport: null });
  const ppDisconnected = new Promise((r) => pp.once('disconnected', r));

  const before = await stack.status('chromium');
  const hostPid = stack.chromiumPid();
  process.kill(hostPid, 'SIGKILL');
  const killedAt = Date.now();

  await t.test('open WebSockets are closed with 1011 (browser and page), Playwright and Puppeteer see the disconnect', async () => {
    const b = await within(10_000, rawBrowser.ws.closed, 'browser socket close');
    assert.equal(b.code, 1011, `browser socket: ${JSON.stringify(b)}`);
    const p = await within(10_000, rawPage.ws.closed, 'page socket close');
    assert.equal(p.code, 1011, `page socket: ${JSON.stringify(p)}`);
    await within(10_000, pwDisconnected, "Playwright's disconnected event");
    await within(10_000, ppDisconnected, "Puppeteer's disconnected event");
    assert.equal(pw.isConnected(), false);
  });

  // Started during the outage on the --wait-ready bridge: answered once Chromium is back.
  const heldHttp = stack.get('held', '/json/version', { timeoutMs: 60_000 }).then((r) => ({ ...r, at: Date.now() }));
  const heldWs = openWs(oldWsUrl.replace(`:${stack.ports.cdp}/`, `:${stack.ports.held}/`)).then((ws) => ({ ws, at: Date.now() }));

  await t.test('during the outage: HTTP 503 with a JSON reason at once, WebSocket upgrades 503, never a hang', async () => {
    // The bridge sees Chromium's sockets close and corral sees SIGCHLD: two
    // processes woken by one death, in either order. Wait for corral's side.
    const s = await waitFor('corral to report chromium gone', async () => {
      const st = await stack.status('chromium');
      return st.pid !== before.pid || st.state !== 'RUNNING' ? st : null;
    }, { timeoutMs: 5_000, intervalMs: 20 });
    assert.notEqual(s.state, 'RUNNING', `chromium should still be down: ${JSON.stringify(s)}`);
    for (const p of ['/json/version', '/json/list', '/json/protocol']) {
      const t0 = Date.now();
      const r = await stack.get('cdp', p, { timeoutMs: 5_000 });
      const ms = Date.now() - t0;
      assert.equal(r.status, 503, `${p}: ${r.text}`);
      assert.equal(r.json.error, 'chromium is down', r.text);
      assert.ok(r.json.detail, r.text);
      assert.match(r.headers.get('content-type'), /application\/json/);
      assert.ok(ms < 3_000, `${p} answered in ${ms} ms (at once, not held)`);
    }
    const put = await stack.get('cdp', '/json/new?about:blank', { method: 'PUT', timeoutMs: 5_000 });
    assert.equal(put.status, 503);
    for (const url of [oldWsUrl, `ws://127.0.0.1:${stack.ports.cdp}/`, page.webSocketDebuggerUrl]) {
      const t0 = Date.now();
      const e = await within(5_000, wsRefusal(url), `upgrade to ${url}`);
      assert.equal(e.status, 503, `${url}: ${e.body}`);
      assert.equal(e.json?.error, 'chromium is down', e.body);
      assert.ok(Date.now() - t0 < 3_000);
    }
    // Still down while we checked: the 8 s backoff was not over.
    assert.notEqual((await stack.status('chromium')).state, 'RUNNING');
  });

  let after;
  await t.test('corral restarts chromium (a new pid and browser guid)', async () => {
    after = await stack.waitChromiumBack(before.pid);
    assert.ok(after.restarts > before.restarts);
    const v = await waitFor('/json/version 200 again', async () => {
      const r = await stack.get('cdp', '/json/version');
      return r.status === 200 && r.json;
    });
    assert.notEqual(v.webSocketDebuggerUrl.split('/').at(-1), oldGuid, 'a new browser guid');
    console.log(`# chromium back ${Date.now() - killedAt} ms after SIGKILL`);
  });

  await t.test('--wait-ready held the HTTP request and the WebSocket upgrade until chromium was back', async () => {
    const r = await within(30_000, heldHttp, 'held /json/version');
    assert.equal(r.status, 200, r.text);
    assert.ok(r.at - killedAt >= 1_500, `answered ${r.at - killedAt} ms after the kill: it was not held`);
    assert.notEqual(r.json.webSocketDebuggerUrl.split('/').at(-1), oldGuid);
    assert.ok(r.json.webSocketDebuggerUrl.includes(`:${stack.ports.held}/devtools/browser/`));
    const { ws, at } = await within(30_000, heldWs, 'held WebSocket upgrade');
    assert.ok(at - killedAt >= 1_500);
    const cdp = new Cdp(ws);
    assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/);
    await cdp.close();
    // The held bridge answers at once when nothing is wrong.
    const t0 = Date.now();
    assert.equal((await stack.get('held', '/json/version')).status, 200);
    assert.ok(Date.now() - t0 < 3_000);
  });

  await t.test('Playwright connectOverCDP with the OLD ws URL and with the http URL', async () => {
    for (const endpoint of [oldWsUrl, stack.url('cdp', 'localhost'), `ws://127.0.0.1:${stack.ports.cdp}/`]) {
      const browser = await chromium.connectOverCDP(endpoint, { timeout: 30_000 });
      try {
        const p = await browser.contexts()[0].newPage();
        await p.setContent('<p>back</p>');
        assert.equal(await p.evaluate(() => document.querySelector('p').textContent), 'back', endpoint);
        await p.close();
      } finally {
        await browser.close();
      }
    }
  });

  await t.test('Puppeteer connect with the OLD browserWSEndpoint and with browserURL', async () => {
    for (const opts of [{ browserWSEndpoint: oldWsUrl }, { browserURL: stack.url('cdp', 'localhost') }]) {
      const browser = await puppeteer.connect({ ...opts, defaultViewport: null });
      try {
        const p = await browser.newPage();
        assert.equal(await p.evaluate(() => 1 + 1), 2, JSON.stringify(opts));
        await p.close();
      } finally {
        await browser.disconnect();
      }
    }
  });

  await t.test('a stale page URL (the old page is gone) is refused with an error, not a hang', async () => {
    const e = await within(15_000, wsRefusal(page.webSocketDebuggerUrl), 'stale page upgrade');
    assert.ok(e.status >= 400, `${e.status} ${e.body}`);
    console.log(`# stale /devtools/page/ID after restart: HTTP ${e.status} ${e.body.trim()}`);
  });
});

test('chromium killed again right after a restart: the bridge keeps working (no stuck state)', { timeout: 90_000 }, async () => {
  for (let i = 0; i < 2; i++) {
    const s = await stack.status('chromium');
    const ws = await openWs((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
    process.kill(stack.chromiumPid(), 'SIGKILL');
    assert.equal((await within(10_000, ws.closed, 'close')).code, 1011);
    const r = await stack.get('cdp', '/json/version', { timeoutMs: 5_000 });
    assert.equal(r.status, 503);
    await stack.waitChromiumBack(s.pid);
    const r2 = parseHttp((await rawExchange(stack.ports.cdp, ['GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'])).data);
    assert.equal(r2.status, 200);
  }
});

test('the bridge itself stopped by corral (SIGTERM): open WebSockets get 1001; started again, it serves', { timeout: 60_000 }, async () => {
  // Chromium may still be coming back from the previous test's kill.
  await waitFor('chromium answering through the bridge', async () => (await stack.get('cdp', '/json/version')).status === 200, { timeoutMs: 30_000 });
  const ws = await openWs((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
  await stack.ctl('stop', 'cdp');
  const { code } = await within(10_000, ws.closed, 'close on bridge shutdown');
  assert.equal(code, 1001);
  assert.equal((await stack.status('cdp')).state, 'STOPPED');
  await stack.ctl('start', 'cdp');
  const r = await stack.get('cdp', '/json/version');
  assert.equal(r.status, 200);
  const cdp = await Cdp.open(r.json.webSocketDebuggerUrl);
  assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/);
  await cdp.close();
});
