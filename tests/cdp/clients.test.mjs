// Playwright and Puppeteer through corral-cdp, by IP and by names that resolve
// to it; URL rewriting in /json answers; a full-page screenshot larger than
// 16 MiB; ordering of 1000 messages; pings; text relay; close codes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import os from 'node:os';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startStack, waitFor, ALIAS_HOST, BIN } from './lib/stack.mjs';
import { rawExchange, parseHttp, openWs, Cdp, within } from './lib/clients.mjs';

const ALIAS = ALIAS_HOST;
const HOSTS = '/etc/hosts';
const MARK = '# added by corral tests/cdp (removed after)';
const MiB = 1024 * 1024;

let stack;
let port;
let hostsOriginal;
const hosts = ['127.0.0.1', 'localhost'];

const removeOurLine = (text) =>
  text
    .split('\n')
    .filter((l) => !l.includes(MARK))
    .join('\n');

before(async () => {
  // An /etc/hosts alias: a name Chrome itself would refuse as a Host.
  try {
    const clean = removeOurLine(fs.readFileSync(HOSTS, 'utf8'));
    hostsOriginal = clean;
    fs.writeFileSync(HOSTS, `${clean.replace(/\n*$/, '\n')}127.0.0.1 ${ALIAS} ${MARK}\n`);
    const { address } = await dns.lookup(ALIAS, { family: 4 });
    if (address === '127.0.0.1') hosts.push(ALIAS);
  } catch (e) {
    console.error(`# cannot add ${ALIAS} to ${HOSTS}: ${e.message}`);
  }
  // The machine's own name, when it resolves to a local address (it does in most containers).
  try {
    const { address } = await dns.lookup(os.hostname(), { family: 4 });
    if (address.startsWith('127.') && !hosts.includes(os.hostname())) hosts.push(os.hostname());
  } catch {}
  stack = await startStack({ name: 'clients', bridges: { cdp: { args: ['--ping-interval', '1s'] } } });
  port = stack.ports.cdp;
});

after(async () => {
  await stack?.stop();
  // Remove only our line: someone else may have edited the file meanwhile.
  if (hostsOriginal !== undefined) fs.writeFileSync(HOSTS, removeOurLine(fs.readFileSync(HOSTS, 'utf8')));
});

const GUID = /^[0-9a-f-]{36}$/i;

test('the test machine gives at least two names for 127.0.0.1 besides the IP', () => {
  assert.ok(hosts.length >= 3, `names used: ${hosts.join(', ')}`);
});

test('/json/version: webSocketDebuggerUrl names the Host the client used', async () => {
  for (const host of hosts) {
    for (const p of ['/json/version', '/json/version/']) {
      const r = await stack.get('cdp', p, { host });
      assert.equal(r.status, 200, `${host}${p}`);
      assert.equal(r.headers.get('connection'), 'close');
      const url = new URL(r.json.webSocketDebuggerUrl);
      assert.equal(url.protocol, 'ws:');
      assert.equal(url.host, `${host}:${port}`, `${host}${p}: ${r.json.webSocketDebuggerUrl}`);
      assert.match(url.pathname.replace('/devtools/browser/', ''), GUID);
      assert.ok(!r.text.includes(`:${stack.upstream}`), 'the upstream port never leaks');
    }
  }
  // Names given only in the Host header: `localhost.` (FQDN form) and an arbitrary name with a port.
  for (const hostHeader of [`localhost.:${port}`, 'cdp.example.internal:443', 'LOCALHOST', '[::1]:9222']) {
    const r = parseHttp((await rawExchange(port, [`GET /json/version HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`])).data);
    assert.equal(r.status, 200, hostHeader);
    assert.ok(r.json.webSocketDebuggerUrl.startsWith(`ws://${hostHeader}/devtools/browser/`), r.json.webSocketDebuggerUrl);
  }
  // Behind a TLS-terminating proxy.
  const r = await stack.get('cdp', '/json/version', { host: 'localhost', headers: { 'x-forwarded-proto': 'https' } });
  assert.ok(r.json.webSocketDebuggerUrl.startsWith(`wss://localhost:${port}/devtools/browser/`));
});

test('/json and /json/list: page URLs and devtoolsFrontendUrl are rewritten; /json/protocol is forwarded', async () => {
  const host = hosts.at(-1);
  for (const p of ['/json', '/json/list']) {
    const r = await stack.get('cdp', p, { host });
    assert.equal(r.status, 200);
    const pages = r.json.filter((t) => t.type === 'page');
    assert.ok(pages.length >= 1, r.text);
    for (const t of pages) {
      assert.equal(t.webSocketDebuggerUrl, `ws://${host}:${port}/devtools/page/${t.id}`);
      assert.ok(t.devtoolsFrontendUrl.includes(`ws=${host}:${port}/devtools/page/${t.id}`), t.devtoolsFrontendUrl);
    }
    assert.ok(!r.text.includes(`:${stack.upstream}`));
  }
  const proto = await stack.get('cdp', '/json/protocol');
  assert.equal(proto.status, 200);
  assert.ok(proto.json.domains.some((d) => d.domain === 'Runtime'));
});

test('/json/new is PUT-only; /json/activate and /json/close work', async () => {
  const get = await stack.get('cdp', '/json/new?about:blank');
  assert.equal(get.status, 405, get.text);
  const put = await stack.get('cdp', '/json/new?about:blank', { method: 'PUT', host: 'localhost' });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.type, 'page');
  assert.equal(put.json.webSocketDebuggerUrl, `ws://localhost:${port}/devtools/page/${put.json.id}`);
  const act = await stack.get('cdp', `/json/activate/${put.json.id}`);
  assert.equal(act.status, 200, act.text);
  const close = await stack.get('cdp', `/json/close/${put.json.id}`);
  assert.equal(close.status, 200, close.text);
  await waitFor('the closed target to leave /json/list', async () => {
    const list = await stack.get('cdp', '/json/list');
    return !list.json.some((t) => t.id === put.json.id);
  });
});

test('Playwright chromium.connectOverCDP through each name: pages open and evaluate', async () => {
  for (const host of hosts) {
    const before = stack.wsOpened();
    const browser = await chromium.connectOverCDP(stack.url('cdp', host), { timeout: 30_000 });
    try {
      assert.ok(browser.isConnected());
      assert.ok(stack.wsOpened() > before, 'the WebSocket went through the bridge');
      const context = browser.contexts()[0];
      const page = await context.newPage();
      await page.setContent(`<title>via ${host}</title><p id=x>${host}</p>`);
      assert.equal(await page.title(), `via ${host}`);
      assert.equal(await page.evaluate(() => 6 * 7), 42);
      assert.equal(await page.textContent('#x'), host);
      const second = await context.newPage();
      assert.equal(await second.evaluate(() => navigator.userAgent.includes('Chrome')), true);
      await second.close();
      await page.close();
    } finally {
      await browser.close();
    }
  }
  // Closing a CDP-connected Playwright browser only disconnects: Chromium stays up.
  assert.equal((await stack.status('chromium')).restarts, 0);
});

test('Puppeteer connect({browserURL}) through each name: pages open and evaluate', async () => {
  for (const host of hosts) {
    const before = stack.wsOpened();
    const browser = await puppeteer.connect({ browserURL: stack.url('cdp', host), defaultViewport: null, protocolTimeout: 30_000 });
    try {
      assert.ok(browser.connected);
      assert.ok(browser.wsEndpoint().startsWith(`ws://${host}:${port}/devtools/browser/`), browser.wsEndpoint());
      assert.ok(stack.wsOpened() > before, 'the WebSocket went through the bridge');
      const page = await browser.newPage();
      await page.setContent(`<p id=x>${host}</p>`);
      assert.equal(await page.evaluate(() => document.getElementById('x').textContent), host);
      assert.equal(await page.evaluate(() => 6 * 7), 42);
      assert.ok((await browser.pages()).length >= 1);
      await page.close();
    } finally {
      await browser.disconnect();
    }
  }
  assert.equal((await stack.status('chromium')).restarts, 0);
});

// A 1280×5200 canvas of random opaque pixels: PNG cannot compress it, so the
// screenshot is ~20 MB (its base64 CDP message ~27 MB, in one WebSocket frame).
const NOISE = `<!doctype html><html><body style="margin:0">
<canvas id=c width=1280 height=5200 style="display:block"></canvas>
<script>
const c = document.getElementById('c'), ctx = c.getContext('2d');
const img = ctx.createImageData(c.width, c.height);
const px = new Uint32Array(img.data.buffer);
for (let i = 0; i < px.length; i += 16384) crypto.getRandomValues(px.subarray(i, i + 16384));
for (let i = 0; i < px.length; i++) px[i] |= 0xff000000;
ctx.putImageData(img, 0, 0);
document.title = 'noise';
</script></body></html>`;

function checkPng(buf, who) {
  assert.ok(Buffer.isBuffer(buf) || buf instanceof Uint8Array, who);
  const b = Buffer.from(buf);
  assert.equal(b.subarray(1, 4).toString('latin1'), 'PNG', `${who}: a PNG`);
  const height = b.readUInt32BE(20);
  assert.ok(height >= 5200, `${who}: full page, height ${height}`);
  assert.ok(b.length > 16 * MiB, `${who}: ${(b.length / MiB).toFixed(1)} MiB decoded`);
  return b.length;
}

test('full-page screenshot larger than 16 MiB: Playwright and Puppeteer', { timeout: 240_000 }, async () => {
  const sizes = {};
  const pw = await chromium.connectOverCDP(stack.url('cdp', hosts.at(-1)), { timeout: 30_000 });
  try {
    const page = await pw.contexts()[0].newPage();
    await page.setContent(NOISE);
    assert.equal(await page.title(), 'noise');
    sizes.playwright = checkPng(await page.screenshot({ fullPage: true, timeout: 180_000 }), 'playwright');
    await page.close();
  } finally {
    await pw.close();
  }
  const pp = await puppeteer.connect({ browserURL: stack.url('cdp', 'localhost'), defaultViewport: null, protocolTimeout: 180_000 });
  try {
    const page = await pp.newPage();
    await page.setContent(NOISE);
    sizes.puppeteer = checkPng(await page.screenshot({ fullPage: true }), 'puppeteer');
    await page.close();
  } finally {
    await pp.disconnect();
  }
  console.log(`# screenshot sizes (MiB): ${JSON.stringify(Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, +(v / MiB).toFixed(1)])))}`);
});

test('1000 Runtime.evaluate sent back-to-back on one WebSocket: answers arrive in order, as text', async () => {
  const target = (await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' })).json;
  const ws = await openWs(target.webSocketDebuggerUrl);
  try {
    const answers = [];
    let binary = 0;
    const done = new Promise((resolve) => {
      ws.on('message', (data, isBinary) => {
        if (isBinary) binary++;
        const m = JSON.parse(data.toString());
        if (m.id) answers.push(m);
        if (answers.length === 1000) resolve();
      });
    });
    for (let id = 1; id <= 1000; id++) {
      ws.send(JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression: `${id} * 2`, returnByValue: true } }));
    }
    await within(60_000, done, '1000 answers');
    assert.deepEqual(answers.map((m) => m.id), Array.from({ length: 1000 }, (_, i) => i + 1));
    for (const m of answers) assert.equal(m.result.result.value, m.id * 2);
    assert.equal(binary, 0, 'every message relayed as a text frame');
  } finally {
    ws.close(1000);
    await ws.closed;
    await stack.get('cdp', `/json/close/${target.id}`);
  }
});

test('the 101 says exactly `Connection: Upgrade`, and a strict client (corral-snapshot, tungstenite) harvests through the bridge', async () => {
  const port = stack.ports.cdp;
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const raw = await rawExchange(port, [`GET /devtools/browser HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`], { timeoutMs: 2_000 });
  const head = raw.data.toString('latin1').split('\r\n\r\n')[0];
  assert.match(head, /^HTTP\/1\.1 101 /, head);
  const connection = head.split('\r\n').filter((l) => /^connection:/i.test(l)).map((l) => l.split(':')[1].trim());
  assert.deepEqual(connection, ['Upgrade'], head);
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'corral-cdp-strict-')), 'state.json');
  const { stderr } = await promisify(execFile)(path.join(BIN, 'corral-snapshot'),
    ['harvest', '--cdp', `http://127.0.0.1:${port}`, '--out', out, '--open-tabs-only'], { timeout: 60_000 });
  assert.ok(JSON.parse(fs.readFileSync(out, 'utf8')).cookies, stderr);
});

test('a binary frame holding UTF-8 is relayed as text; non-UTF-8 binary is refused with 1003', async () => {
  const cdp = await Cdp.open((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
  const answer = new Promise((resolve) => cdp.ws.once('message', (d, isBinary) => resolve({ m: JSON.parse(d), isBinary })));
  cdp.ws.send(Buffer.from(JSON.stringify({ id: 77, method: 'Browser.getVersion' })), { binary: true });
  const { m, isBinary } = await within(10_000, answer, 'answer to a binary frame');
  assert.equal(m.id, 77);
  assert.match(m.result.product, /Chrome/);
  assert.equal(isBinary, false);
  cdp.ws.send(Buffer.from([0xff, 0xfe, 0x00, 0x80]), { binary: true });
  const { code } = await within(10_000, cdp.ws.closed, 'close after non-UTF-8 binary');
  assert.equal(code, 1003);
});

test('the bridge pings clients every --ping-interval (1s here) and the connection stays usable', async () => {
  const cdp = await Cdp.open((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
  try {
    let pings = 0;
    cdp.ws.on('ping', () => pings++);
    await waitFor('two pings from the bridge', () => pings >= 2, { timeoutMs: 6_000 });
    const v = await cdp.send('Browser.getVersion');
    assert.match(v.product, /Chrome/);
  } finally {
    await cdp.close();
  }
});

test('when Chrome drops a page socket (target closed), the client gets a close frame', async () => {
  const target = (await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' })).json;
  const cdp = await Cdp.open(target.webSocketDebuggerUrl);
  assert.equal((await cdp.send('Runtime.evaluate', { expression: '1+1', returnByValue: true })).result.value, 2);
  const closedTarget = await stack.get('cdp', `/json/close/${target.id}`);
  assert.equal(closedTarget.status, 200);
  const { code } = await within(10_000, cdp.ws.closed, 'close after the target went away');
  assert.notEqual(code, 1006, 'a close frame, not a dropped connection');
  console.log(`# page closed by Chrome: client got close code ${code}`);
});

test('when the client closes, the bridge completes the close handshake (a close frame back, not a dropped connection)', async () => {
  // The client closes first: the bridge must complete the close handshake (send
  // a close frame back, as Chrome itself does: it answers 1000), not just drop
  // the TCP connection, which the client sees as 1006 (abnormal closure).
  for (const sent of [1000, 4000]) {
    const cdp2 = await Cdp.open((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
    cdp2.ws.close(sent, 'bye');
    const closed2 = await within(10_000, cdp2.ws.closed, 'close handshake');
    assert.notEqual(closed2.code, 1006, `client sent close ${sent}: got no close frame back (1006), the handshake was not completed`);
  }
});
