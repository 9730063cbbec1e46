// Nothing leaks: after 200 connect/close cycles of every kind (HTTP, WebSockets
// closed politely, WebSockets dropped abruptly, page sockets, Playwright and
// Puppeteer sessions), corral-cdp's open fd count is back at its baseline.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

import { startStack, waitFor, fdCount } from './lib/stack.mjs';
import { Cdp, openWs, rawExchange, within } from './lib/clients.mjs';

let stack;

before(async () => {
  stack = await startStack({ name: 'leak' });
});

after(async () => {
  await stack?.stop();
});

async function stableFdCount(pid) {
  return waitFor('a stable fd count', async () => {
    const a = fdCount(pid);
    await new Promise((r) => setTimeout(r, 300));
    return fdCount(pid) === a ? a : null;
  }, { timeoutMs: 20_000 });
}

test('200 connect/close cycles: the bridge fd count returns to its baseline', { timeout: 180_000 }, async () => {
  const pid = stack.bridgePid();
  const browserUrl = (await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl;
  const page = (await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' })).json;
  // Warm up every path once (lazily created runtime resources are not leaks).
  (await Cdp.open(browserUrl)).close();
  await stack.get('cdp', '/json/list');
  const baseline = await stableFdCount(pid);

  const kinds = {
    async http() {
      const r = await stack.get('cdp', '/json/list');
      assert.equal(r.status, 200);
    },
    async wsPolite() {
      const cdp = await Cdp.open(browserUrl);
      assert.ok((await cdp.send('Browser.getVersion')).product);
      await cdp.close();
    },
    async wsAbrupt() {
      // The client vanishes without a close frame (TCP reset).
      const cdp = await Cdp.open(browserUrl);
      assert.ok((await cdp.send('Target.getTargets')).targetInfos);
      cdp.ws.terminate();
    },
    async wsPage() {
      const cdp = await Cdp.open(page.webSocketDebuggerUrl);
      assert.equal((await cdp.send('Runtime.evaluate', { expression: '3*3', returnByValue: true })).result.value, 9);
      await cdp.close();
    },
    async wsNeverUsed() {
      const ws = await openWs(browserUrl);
      ws.close(1000);
      await ws.closed;
    },
    async halfRequest() {
      // Half a request, then the client goes away.
      await rawExchange(stack.ports.cdp, ['GET /json/version HTTP/1.1\r\n'], { timeoutMs: 50 });
    },
    async refusedUpgrade() {
      const ws = await openWs(`ws://127.0.0.1:${stack.ports.cdp}/nope`).catch((e) => e);
      assert.equal(ws.status, 404);
    },
  };
  const names = Object.keys(kinds);
  const counts = Object.fromEntries(names.map((n) => [n, 0]));
  let cycles = 0;
  // 180 cycles, 6 at a time, of the raw kinds...
  for (let i = 0; i < 180; i += 6) {
    await Promise.all(
      Array.from({ length: 6 }, (_, j) => {
        const name = names[(i + j) % names.length];
        counts[name]++;
        cycles++;
        return within(20_000, kinds[name](), name);
      }),
    );
  }
  // ...and 20 with the real clients.
  for (let i = 0; i < 10; i++) {
    const pw = await chromium.connectOverCDP(stack.url('cdp'), { timeout: 30_000 });
    const p = await pw.contexts()[0].newPage();
    assert.equal(await p.evaluate(() => 1), 1);
    await p.close();
    await pw.close();
    const pp = await puppeteer.connect({ browserURL: stack.url('cdp'), defaultViewport: null });
    assert.ok((await pp.pages()).length >= 1);
    await pp.disconnect();
    cycles += 2;
  }
  const peak = fdCount(pid);
  const settled = await waitFor(`fd count back to the baseline ${baseline} (±3)`, () => {
    const n = fdCount(pid);
    return n <= baseline + 3 ? n : null;
  }, { timeoutMs: 20_000, intervalMs: 100 }).catch((e) => {
    throw new Error(`${e.message}; now ${fdCount(pid)} (${JSON.stringify(counts)})`);
  });
  console.log(`# ${cycles} cycles ${JSON.stringify(counts)} + 10 Playwright + 10 Puppeteer; fds: baseline ${baseline}, right after ${peak}, settled ${settled}`);
  assert.equal(cycles, 200);
  // And the bridge is still fine.
  assert.equal((await stack.get('cdp', '/json/version')).status, 200);
  await stack.get('cdp', `/json/close/${page.id}`);
});
