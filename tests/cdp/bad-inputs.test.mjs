// Bad input over raw sockets: malformed HTTP, broken upgrades, unknown paths,
// wrong methods, bad Host headers, oversized bodies, and slow clients; each is
// answered (or cut off) without harming the other clients.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

import { startStack, waitFor, fdCount } from './lib/stack.mjs';
import { rawExchange, parseHttp, wsRefusal, Cdp, within } from './lib/clients.mjs';

let stack;
let port;

before(async () => {
  stack = await startStack({ name: 'bad-inputs' });
  port = stack.ports.cdp;
});

after(async () => {
  await stack?.stop();
});

/** Every other client is still served: HTTP and a CDP call over a WebSocket. */
async function othersServed() {
  const r = await stack.get('cdp', '/json/version', { timeoutMs: 3_000 });
  assert.equal(r.status, 200);
  const cdp = await Cdp.open(r.json.webSocketDebuggerUrl);
  assert.match((await within(3_000, cdp.send('Browser.getVersion'), 'Browser.getVersion')).product, /Chrome/);
  await cdp.close();
}

const WS_HEADERS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n';

test('malformed HTTP gets 400 and the connection is closed', async () => {
  for (const garbage of [
    'HELLO WORLD\r\n\r\n',
    '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n',
    'GET /json/version HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n',
    'GET /json/version HTTP/1.1\r\nHost x no colon\r\n\r\n',
    'GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
  ]) {
    const r = await rawExchange(port, [garbage], { timeoutMs: 5_000 });
    const label = JSON.stringify(garbage.slice(0, 40));
    assert.ok(r.closedByServer, `${label}: closed by the bridge`);
    const h = parseHttp(r.data);
    assert.ok(h.status === 400 || h.status === 431 || h.status === 414 || h.status === 505, `${label}: got ${JSON.stringify(r.data.slice(0, 80))}`);
  }
  await othersServed();
});

test('an upgrade without the WebSocket headers gets 400 JSON', async () => {
  const cases = {
    'no Sec-WebSocket-Key': `GET /devtools/browser HTTP/1.1\r\nHost: 127.0.0.1\r\n${WS_HEADERS}\r\n`,
    'wrong version': `GET /devtools/browser HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    'Upgrade: h2c': `GET /devtools/browser HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    'no Connection: Upgrade': `GET /devtools/browser HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  };
  for (const [what, req] of Object.entries(cases)) {
    const r = await rawExchange(port, [req], { timeoutMs: 5_000 });
    const h = parseHttp(r.data);
    assert.equal(h.status, 400, `${what}: ${r.data.slice(0, 200)}`);
    assert.equal(h.json?.error, 'bad WebSocket upgrade', `${what}: ${h.body}`);
    assert.ok(r.closedByServer, what);
  }
  await othersServed();
});

test("a path Chrome doesn't know: Chrome's 404 forwarded; an unknown WebSocket path: 404 JSON", async () => {
  for (const p of ['/nope', '/json/nope', '/foo/bar?x=1']) {
    const r = await stack.get('cdp', p);
    assert.equal(r.status, 404, `${p}: ${r.text}`);
    console.log(`# GET ${p}: ${r.status} ${JSON.stringify(r.text.slice(0, 80))}`);
  }
  for (const p of ['/nope', '/json/version', '/ws']) {
    const e = await wsRefusal(`ws://127.0.0.1:${port}${p}`);
    assert.equal(e.status, 404, `${p}: ${e.body}`);
    assert.equal(e.json?.error, 'no such WebSocket endpoint', e.body);
  }
  // A page id Chrome does not know: Chrome's refusal is passed on, as JSON.
  const e = await wsRefusal(`ws://127.0.0.1:${port}/devtools/page/0123456789ABCDEF0123456789ABCDEF`);
  assert.ok(e.status >= 400 && e.status < 600, `${e.status}`);
  assert.equal(e.json?.error, 'chromium refused the WebSocket', e.body);
  await othersServed();
});

test('/json/new with GET (or POST) is 405; PUT works', async () => {
  for (const method of ['GET', 'POST']) {
    const r = await stack.get('cdp', '/json/new?about:blank', { method });
    assert.equal(r.status, 405, `${method}: ${r.text}`);
  }
  const put = await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' });
  assert.equal(put.status, 200);
  await stack.get('cdp', `/json/close/${put.json.id}`);
});

test('a Host header that could break the JSON is refused with 400', async () => {
  for (const host of ['x","evil":"y', 'a b', 'x/y', 'x?y']) {
    const r = parseHttp((await rawExchange(port, [`GET /json/version HTTP/1.1\r\nHost: ${host}\r\n\r\n`])).data);
    assert.equal(r.status, 400, `${host}: ${r.body}`);
  }
  // HTTP/1.0 without any Host: the bridge names its own address.
  const r = parseHttp((await rawExchange(port, ['GET /json/version HTTP/1.0\r\n\r\n'])).data);
  assert.equal(r.status, 200, r.body);
  assert.ok(r.json.webSocketDebuggerUrl.startsWith(`ws://127.0.0.1:${port}/devtools/browser/`), r.json.webSocketDebuggerUrl);
});

test('a request body over the limit is refused (413), not buffered', async () => {
  const body = 'x'.repeat(1024 * 1024);
  const r = parseHttp(
    (await rawExchange(port, [`PUT /json/new?about:blank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`, body], { timeoutMs: 10_000 })).data,
  );
  assert.equal(r.status, 413, r.body);
  await othersServed();
});

test('slow clients (half a request head, or one byte a second) are closed after the 10 s header timeout; others are served meanwhile', { timeout: 60_000 }, async () => {
  const fdsBefore = fdCount(stack.bridgePid());
  const half = rawExchange(port, ['GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n'], { timeoutMs: 30_000 });
  const drip = rawExchange(port, [...'GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: drip-drip-drip-drip-drip\r\n\r\n'], { timeoutMs: 30_000, gapMs: 1_000 });
  const silent = rawExchange(port, [], { timeoutMs: 30_000 });
  // A WebSocket opened before the stall stays usable throughout.
  const cdp = await Cdp.open((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
  let served = 0;
  let settled = false;
  Promise.allSettled([half, drip]).then(() => (settled = true));
  const pw = await chromium.connectOverCDP(stack.url('cdp'), { timeout: 10_000 });
  const page = await pw.contexts()[0].newPage();
  while (!settled) {
    const t0 = Date.now();
    await othersServed();
    assert.ok((await cdp.send('Browser.getVersion')).product);
    assert.equal(await page.evaluate(() => 2 + 2), 4);
    assert.ok(Date.now() - t0 < 5_000, 'served promptly while slow clients stall');
    served++;
    await new Promise((r) => setTimeout(r, 200));
  }
  await page.close();
  await pw.close();
  await cdp.close();
  const [h, d, s] = await Promise.all([half, drip, silent]);
  for (const [name, r] of Object.entries({ half: h, drip: d })) {
    assert.ok(r.closedByServer, `${name}: closed by the bridge`);
    assert.ok(r.ms >= 9_000 && r.ms <= 20_000, `${name}: closed after ${r.ms} ms`);
    console.log(`# slow client '${name}' closed after ${r.ms} ms; it got ${JSON.stringify(r.data.slice(0, 60))}`);
  }
  console.log(`# silent client (connects, sends nothing): ${s.closedByServer ? `closed after ${s.ms} ms` : 'still open after 30 s'}; got ${JSON.stringify(s.data.slice(0, 60))}`);
  assert.ok(served >= 3, `other clients served ${served} times during the stall`);
  await waitFor('the bridge fd count back to where it was', () => fdCount(stack.bridgePid()) <= fdsBefore + 2, { timeoutMs: 10_000 });
});
