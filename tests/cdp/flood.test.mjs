// The connection cap: 10,000 idle connections against --max-connections 500
// (the oldest idle are closed to make room; real clients keep being served;
// the bridge's fds stay bounded), and a bridge whose every slot is a busy
// WebSocket refusing a newcomer with 503 "too many connections".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { chromium } from 'playwright-core';

import { startStack, waitFor, fdCount, hasAcceptedPeer } from './lib/stack.mjs';
import { openWs, wsRefusal, rawExchange, parseHttp, Cdp } from './lib/clients.mjs';

const MAX = 500;
const FLOOD = 10_000;
const BATCH = Number(process.env.FLOOD_BATCH ?? 250); // connections opened at once
let stack;
let evictedAnswered = null; // evicted idle connections that were told why (a status line)
let evictedTotal = null;
let evictedAnswers = [];

before(async () => {
  stack = await startStack({
    name: 'flood',
    bridges: {
      cdp: { args: ['--max-connections', String(MAX)], rlimits: 'nofile = 4096' },
      small: { args: ['--max-connections', '4'] },
    },
  });
});

after(async () => {
  await stack?.stop();
});

/** Opens one idle TCP connection; resolves once connected. */
function idleSocket(port, stats) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.info = { data: '', closedByServer: false };
    s.on('data', (d) => (s.info.data += d.toString('latin1')));
    s.on('end', () => {
      s.info.closedByServer = true;
      stats.closedByServer++;
      s.destroy();
    });
    s.on('error', () => {
      if (!s.info.closedByServer) {
        s.info.closedByServer = true;
        stats.closedByServer++;
      }
    });
    s.on('connect', () => resolve(s));
    s.on('close', () => resolve(s));
  });
}

test(`${FLOOD} idle connections against --max-connections ${MAX}: capped, oldest closed, real clients served, fds bounded`, { timeout: 180_000 }, async () => {
  const port = stack.ports.cdp;
  const pid = stack.bridgePid('cdp');
  await waitFor('a quiet bridge', async () => (await stack.get('cdp', '/json/version')).status === 200);
  const baseline = await waitFor('a stable fd count', async () => {
    const a = fdCount(pid);
    await new Promise((r) => setTimeout(r, 300));
    return fdCount(pid) === a ? a : null;
  });
  let maxFds = baseline;
  const sampler = setInterval(() => {
    try {
      maxFds = Math.max(maxFds, fdCount(pid));
    } catch {}
  }, 10);
  const stats = { closedByServer: 0 };
  const sockets = [];
  let flooding = true;

  const flood = (async () => {
    for (let i = 0; i < FLOOD; i += BATCH) {
      const batch = await Promise.all(Array.from({ length: BATCH }, () => idleSocket(port, stats)));
      sockets.push(...batch);
    }
    flooding = false;
  })();

  // Meanwhile, real clients: HTTP and Playwright over a WebSocket.
  let httpOk = 0;
  let pwOk = 0;
  const failures = [];
  while (flooding) {
    try {
      const r = await stack.get('cdp', '/json/version', { timeoutMs: 15_000 });
      if (r.status === 200) httpOk++;
      else failures.push(`HTTP ${r.status} ${r.text}`);
    } catch (e) {
      failures.push(`HTTP: ${e.message}`);
    }
    if (sockets.length >= FLOOD / 4 && pwOk < 3) {
      const browser = await chromium.connectOverCDP(stack.url('cdp'), { timeout: 30_000 });
      const page = await browser.contexts()[0].newPage();
      assert.equal(await page.evaluate(() => 6 * 7), 42);
      await page.close();
      await browser.close();
      pwOk++;
    }
  }
  await flood;
  // After the flood: still served at once.
  assert.equal((await stack.get('cdp', '/json/version', { timeoutMs: 5_000 })).status, 200);
  const browser = await chromium.connectOverCDP(stack.url('cdp'), { timeout: 30_000 });
  assert.equal(await (await browser.contexts()[0].newPage()).evaluate(() => 1 + 1), 2);
  await browser.close();

  // The bridge closes the oldest idle as each newcomer arrives; on a loaded
  // machine the last closes reach the clients a while after the flood ends.
  const openNow = () => sockets.filter((s) => !s.info.closedByServer).length;
  await waitFor('evictions to be seen by the clients', () => openNow() <= MAX, { timeoutMs: 30_000 }).catch(() => {});
  const stillOpen = sockets.filter((s) => !s.info.closedByServer).length;
  const evictedWithData = sockets.filter((s) => s.info.closedByServer && s.info.data).map((s) => s.info.data);
  evictedAnswered = evictedWithData.length;
  evictedTotal = sockets.filter((s) => s.info.closedByServer).length;
  evictedAnswers = evictedWithData;
  clearInterval(sampler);
  console.log(
    `# flood: ${FLOOD} opened, ${stats.closedByServer} closed by the bridge, ${stillOpen} still open; ` +
      `bridge fds: baseline ${baseline}, max ${maxFds}; real clients: ${httpOk} HTTP 200, ${pwOk} Playwright sessions; ` +
      `evicted sockets that received bytes: ${evictedWithData.length}${evictedWithData.length ? ` e.g. ${JSON.stringify(evictedWithData[0].slice(0, 80))}` : ' (closed with a bare FIN)'}`,
  );
  assert.deepEqual(failures, [], 'every real request during the flood succeeded');
  assert.ok(httpOk >= 5, `${httpOk} HTTP requests served during the flood`);
  assert.ok(pwOk >= 1, 'Playwright connected during the flood');
  assert.ok(stillOpen <= MAX, `${stillOpen} idle connections still open (cap ${MAX})`);
  assert.ok(stats.closedByServer >= FLOOD - MAX - 50, `${stats.closedByServer} closed by the bridge`);
  // Each newcomer is accepted first, then evicts the oldest idle connection, whose
  // task closes it a moment later: the count can overshoot the cap by what
  // arrives in one burst or two (on a loaded machine the closes can lag a
  // burst behind), but no more.
  assert.ok(maxFds <= baseline + MAX + 2 * BATCH + 40, `bridge fds peaked at ${maxFds} (baseline ${baseline}, cap ${MAX}, burst ${BATCH})`);

  for (const s of sockets) s.destroy();
  await waitFor(`the bridge's fd count back to ${baseline}`, () => fdCount(pid) <= baseline + 2, { timeoutMs: 20_000 });
});

// The issue asks for the oldest to be "refused clearly": an evicted idle
// connection gets a 503 answer saying why before the close, not a bare FIN a
// client cannot tell from a crash.
test('evicted idle connections are told why (a 503 status line before the close)', () => {
  assert.ok(evictedAnswered >= evictedTotal * 0.9, `${evictedAnswered} of ${evictedTotal} evicted connections were answered`);
  for (const data of evictedAnswers) {
    assert.match(String(data), /^HTTP\/1\.1 503 /, 'an evicted connection is answered with a 503');
    assert.match(String(data), /too many connections/);
  }
});

test('every slot a busy WebSocket: a newcomer gets 503 "too many connections" at once; a freed slot admits again', async () => {
  const port = stack.ports.small;
  const url = (await stack.get('small', '/json/version')).json.webSocketDebuggerUrl;
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await openWs(url));
  const t0 = Date.now();
  const r = parseHttp((await rawExchange(port, ['GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'], { timeoutMs: 5_000 })).data);
  assert.ok(Date.now() - t0 < 1_000);
  assert.equal(r.status, 503, r.body);
  assert.equal(r.json.error, 'too many connections');
  assert.match(r.json.detail, /4 connections/);
  const e = await wsRefusal(url);
  assert.equal(e.status, 503);
  assert.equal(e.json?.error, 'too many connections');
  // The WebSockets already open are unharmed.
  const cdp = new Cdp(held[0]);
  assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/);
  // One closes: its slot is free again.
  held[3].close(1000);
  await waitFor('a slot to be free again', async () => (await stack.get('small', '/json/version')).status === 200, { timeoutMs: 10_000 });
  // Two busy, two idle: a newcomer evicts the oldest idle, not a WebSocket.
  // Each step waits until the bridge has really let go of / accepted a socket
  // (its fd table), so the order of the two idle connections is certain.
  const smallPid = stack.bridgePid('small');
  const held2Port = held[2]._socket.localPort;
  held[2].close(1000);
  await held[2].closed;
  await waitFor('the bridge to release held[2]', () => !hasAcceptedPeer(smallPid, held2Port), { timeoutMs: 5_000 });
  const idle1 = await rawExchangeStart(port);
  await waitFor('the bridge to accept idle1', () => hasAcceptedPeer(smallPid, idle1.sock.localPort), { timeoutMs: 5_000 });
  const idle2 = await rawExchangeStart(port);
  await waitFor('the bridge to accept idle2', () => hasAcceptedPeer(smallPid, idle2.sock.localPort), { timeoutMs: 5_000 });
  // Now: held[0], held[1] busy; idle1, idle2 idle; 4 of 4.
  const served = await stack.get('small', '/json/version');
  assert.equal(served.status, 200, served.text);
  await waitFor('the oldest idle connection to be closed', () => idle1.closed, { timeoutMs: 5_000 });
  assert.match(idle1.data, /^HTTP\/1\.1 503 /, 'the evicted connection was told why');
  assert.equal(idle2.closed, false, 'the newer idle connection is kept');
  assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/, 'busy WebSockets are never evicted');
  idle2.sock.destroy();
  for (const ws of held) ws.terminate();
});

/** An idle connection whose `closed` flag turns true when the server closes it. */
function rawExchangeStart(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const st = { sock, closed: false, data: '' };
    // Read what arrives (an eviction's 503): a paused socket never emits 'end'.
    sock.on('data', (d) => (st.data += d));
    sock.on('end', () => (st.closed = true));
    sock.on('close', () => (st.closed = true));
    sock.on('error', () => (st.closed = true));
    sock.on('connect', () => resolve(st));
  });
}
