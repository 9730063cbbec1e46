// The stack as `scripts/run --public` (or a container) runs it: every public
// port on 0.0.0.0 (CORRAL_BIND=0.0.0.0, API_LISTEN=0.0.0.0:P) and every
// listener behind its token (CORRAL_<NAME>_TOKEN). A stranger on the network —
// a network namespace of the test's own — gets 401 everywhere without the
// credential and in with it; the real CDP clients connect with the token
// (headers or ?token=) and are refused without it. See README.md.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import CDP from 'chrome-remote-interface';

import { startStack, request, wsTry } from './lib/stack.mjs';
import { Netns } from './lib/netns.mjs';

const token = (name) => `${name.toLowerCase()}-${crypto.randomBytes(24).toString('hex')}`;
const TOKENS = { CDP: token('cdp'), LIVE: token('live'), LIVE_VIEW: token('view'), SNAPSHOT: token('snap'), API: token('api') };
const bearer = (key) => ({ authorization: `Bearer ${TOKENS[key]}` });

let stack;
let netns;

before(async () => {
  stack = await startStack({ name: 'public', bind: '0.0.0.0', tokens: TOKENS });
  netns = await Netns.create();
});

after(async () => {
  await netns?.remove();
  await stack?.stop();
  stack?.cleanup();
});

test('with CORRAL_BIND=0.0.0.0 the public ports listen on every address; the rest stays on loopback', async () => {
  const listeners = await stack.listeners();
  const at = (port) => listeners.filter((l) => l.port === port).map((l) => l.local);
  for (const name of ['cdp', 'live', 'snapshot', 'api']) {
    assert.deepEqual(at(stack.ports[name]), [`0.0.0.0:${stack.ports[name]}`], `${name}: ${JSON.stringify(listeners)}`);
  }
  for (const name of ['probe', 'chromium', 'vnc']) {
    assert.ok(at(stack.ports[name]).length > 0, `${name} listens`);
    for (const local of at(stack.ports[name])) assert.match(local, /^(127\.0\.0\.1|\[::1\]):/, `${name} on ${local}`);
  }
});

test('a stranger on the network: every port refuses without its credential (401) and lets in with it', async () => {
  const { cdp, live, snapshot, api, probe, chromium: up, vnc } = stack.ports;
  const h = netns.hostAddr;
  const out = await netns.node(`
    const h = ${JSON.stringify(h)};
    const t = ${JSON.stringify(TOKENS)};
    const b = (k) => ({ authorization: 'Bearer ' + t[k] });
    const st = async (port, p, opts) => { const r = await lib.request(port, p, { host: h, ...opts }); return [r.status, r.json?.error ?? null]; };
    const ws = async (url, opts) => { const r = await lib.wsTry(url, opts); return r.open ? ['open', r.first ? r.first.toString('latin1') : null] : [r.status ?? r.error, r.json?.error ?? null]; };
    return {
      cdpNone: await st(${cdp}, '/json/version'),
      cdpWrong: await st(${cdp}, '/json/version', { headers: { authorization: 'Bearer nope' } }),
      cdpOther: await st(${cdp}, '/json/version', { headers: b('API') }),
      cdpBearer: await st(${cdp}, '/json/version', { headers: b('CDP') }),
      cdpQuery: await st(${cdp}, '/json/version?token=' + t.CDP),
      cdpWsNone: await ws('ws://' + h + ':${cdp}/'),
      cdpWsToken: await ws('ws://' + h + ':${cdp}/?token=' + t.CDP, { firstMs: 500 }),
      liveWsNone: await ws('ws://' + h + ':${live}/websockify', { protocols: ['binary'] }),
      liveWsOther: await ws('ws://' + h + ':${live}/websockify?token=' + t.CDP, { protocols: ['binary'] }),
      liveWsToken: await ws('ws://' + h + ':${live}/websockify?token=' + t.LIVE, { protocols: ['binary'] }),
      liveWsView: await ws('ws://' + h + ':${live}/websockify?token=' + t.LIVE_VIEW, { protocols: ['binary'] }),
      snapNone: await st(${snapshot}, '/api/snapshot'),
      snapBearer: await st(${snapshot}, '/api/snapshot?fresh=1', { headers: b('SNAPSHOT') }),
      apiNone: await st(${api}, '/programs'),
      apiOther: await st(${api}, '/programs', { headers: b('SNAPSHOT') }),
      apiBearer: await st(${api}, '/programs', { headers: b('API') }),
    };
  `, { timeoutMs: 60_000 });
  assert.deepEqual(out.cdpNone, [401, 'unauthorized']);
  assert.deepEqual(out.cdpWrong, [401, 'unauthorized']);
  assert.deepEqual(out.cdpOther, [401, 'unauthorized'], 'another listener’s token is not this one’s');
  assert.deepEqual(out.cdpBearer, [200, null]);
  assert.deepEqual(out.cdpQuery, [200, null]);
  assert.deepEqual(out.cdpWsNone, [401, 'unauthorized']);
  assert.equal(out.cdpWsToken[0], 'open');
  assert.deepEqual(out.liveWsNone, [401, 'unauthorized']);
  assert.deepEqual(out.liveWsOther, [401, 'unauthorized']);
  assert.deepEqual(out.liveWsToken, ['open', 'RFB 003.008\n']);
  assert.deepEqual(out.liveWsView, ['open', 'RFB 003.008\n']);
  assert.deepEqual(out.snapNone, [401, 'unauthorized']);
  assert.deepEqual(out.snapBearer, [200, null]);
  assert.deepEqual(out.apiNone, [401, 'unauthorized']);
  assert.deepEqual(out.apiOther, [401, 'unauthorized']);
  assert.deepEqual(out.apiBearer, [200, null]);
  // What stays on loopback is not reachable at all from there.
  for (const port of [probe, up, vnc]) {
    assert.equal(await netns.tcpConnect(h, port), 'ECONNREFUSED', `port ${port}`);
  }
});

test('with a token, a foreign Host is let in (the token proves it is no rebinding page); a foreign Origin never is', async () => {
  const { cdp, snapshot } = stack.ports;
  const host = 'corral.example.test';
  assert.equal((await request(cdp, '/json/version', { headers: { host } })).status, 401);
  assert.equal((await request(cdp, '/json/version', { headers: { host, ...bearer('CDP') } })).status, 200);
  const evil = await request(cdp, '/json/version', { headers: { host, origin: 'http://evil.test', ...bearer('CDP') } });
  assert.equal(evil.status, 403);
  assert.equal(evil.json.error, 'origin not allowed');
  const snap = await request(snapshot, '/healthz', { headers: { host } });
  assert.equal(snap.status, 403, 'a public path under a foreign name: the Host check');
  assert.equal((await request(snapshot, '/healthz', { headers: { host, ...bearer('SNAPSHOT') } })).status, 200);
  const ws = await wsTry(`ws://127.0.0.1:${cdp}/?token=${TOKENS.CDP}`, { origin: 'http://evil.test' });
  assert.equal(ws.status, 403);
});

test('clients with the token: Playwright and Puppeteer (Authorization header), ?token= in a ws URL (Playwright, Puppeteer, chrome-remote-interface); without it 401', async () => {
  const { cdp } = stack.ports;
  const http = `http://127.0.0.1:${cdp}`;
  const headers = { Authorization: `Bearer ${TOKENS.CDP}` };
  const title = 'data:text/html,<title>tok</title>';

  const pw = await chromium.connectOverCDP(http, { headers, timeout: 30_000 });
  const page = await pw.contexts()[0].newPage();
  await page.goto(title);
  assert.equal(await page.title(), 'tok');
  await page.close();
  await pw.close();

  // Puppeteer sends `headers` only with browserWSEndpoint: with browserURL it
  // fetches /json/version bare (puppeteer-core 24.43.1, BrowserConnector.js).
  for (const opts of [
    { browserWSEndpoint: `ws://127.0.0.1:${cdp}/`, headers },
    { browserWSEndpoint: `ws://127.0.0.1:${cdp}/?token=${TOKENS.CDP}` },
  ]) {
    const pp = await puppeteer.connect({ ...opts, protocolTimeout: 30_000 });
    const ppPage = await pp.newPage();
    await ppPage.goto(title);
    assert.equal(await ppPage.title(), 'tok');
    await ppPage.close();
    await pp.disconnect();
  }

  const pwq = await chromium.connectOverCDP(`ws://127.0.0.1:${cdp}/?token=${TOKENS.CDP}`, { timeout: 30_000 });
  assert.ok(pwq.contexts().length >= 1);
  await pwq.close();

  const version = await request(cdp, `/json/version?token=${TOKENS.CDP}`);
  const wsUrl = version.json.webSocketDebuggerUrl;
  assert.ok(!wsUrl.includes(TOKENS.CDP), 'the token is not echoed into the URLs it hands out');
  // local: the bundled protocol (a bare /json/protocol fetch would be refused).
  const client = await CDP({ target: `${wsUrl}?token=${TOKENS.CDP}`, local: true });
  const v = await client.send('Browser.getVersion');
  assert.match(v.product, /Chrome/);
  await client.close();

  // Without the token (or with a wrong one): refused, 401. (Puppeteer rejects
  // with the WebSocket's ErrorEvent, not an Error: match its message.)
  const says = (re) => (e) => (assert.match(String(e?.message), re), true);
  await assert.rejects(chromium.connectOverCDP(http, { timeout: 15_000 }), says(/401/));
  await assert.rejects(chromium.connectOverCDP(http, { headers: { Authorization: 'Bearer wrong' }, timeout: 15_000 }), says(/401/));
  await assert.rejects(puppeteer.connect({ browserURL: http }), says(/Unauthorized/));
  await assert.rejects(puppeteer.connect({ browserWSEndpoint: `ws://127.0.0.1:${cdp}/` }), says(/401/));
  await assert.rejects(CDP({ target: wsUrl, local: true }), says(/401/));
  for (const url of [wsUrl, `ws://127.0.0.1:${cdp}/`, `${wsUrl}?token=${TOKENS.LIVE}`]) {
    const r = await wsTry(url);
    assert.equal(r.status, 401, url);
  }
});

test('tokens are never logged (corral’s output and log_dir, after everything above and a shutdown)', async () => {
  await stack.stop({ keep: true });
  const logs = stack.allLogs();
  assert.ok(logs.includes('request refused'), 'the logs were read');
  for (const t of Object.values(TOKENS)) {
    assert.ok(!logs.includes(t), `a token appears in the logs: …${logs.slice(Math.max(0, logs.indexOf(t) - 200), logs.indexOf(t) + 80)}`);
  }
});
