// The bearer token: on (from --token-file, or from CORRAL_CDP_TOKEN) and off.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

import { startStack } from './lib/stack.mjs';
import { wsRefusal, Cdp } from './lib/clients.mjs';

const FILE_TOKEN = 'file-token-0123456789abcdef';
const ENV_TOKEN = 'env-token-fedcba9876543210';
let stack;
let secrets;

before(async () => {
  secrets = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-cdp-auth-'));
  const tokenFile = path.join(secrets, 'token');
  fs.writeFileSync(tokenFile, `${FILE_TOKEN}\n`, { mode: 0o600 });
  stack = await startStack({
    name: 'auth',
    bridges: {
      file: { args: ['--token-file', tokenFile], token: FILE_TOKEN },
      env: { env: { CORRAL_CDP_TOKEN: ENV_TOKEN }, token: ENV_TOKEN },
      open: {},
    },
  });
});

after(async () => {
  await stack?.stop();
  if (secrets) fs.rmSync(secrets, { recursive: true, force: true });
});

for (const [bridge, token] of [['file', FILE_TOKEN], ['env', ENV_TOKEN]]) {
  test(`token on (${bridge}): 401 without or with a wrong token, 200 with Bearer or ?token=`, async () => {
    for (const [p, method] of [['/json/version', 'GET'], ['/json/list', 'GET'], ['/json/new?about:blank', 'PUT'], ['/nope', 'GET']]) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${token}` }, { authorization: `Bearer ${token}x` }]) {
        const r = await stack.get(bridge, p, { method, headers });
        assert.equal(r.status, 401, `${method} ${p} ${JSON.stringify(headers)}: ${r.text}`);
        assert.equal(r.json.error, 'unauthorized');
        assert.equal(r.headers.get('www-authenticate'), 'Bearer');
        assert.ok(!r.text.includes(token), 'the token is never echoed');
      }
      const wrongQuery = await stack.get(bridge, `${p}${p.includes('?') ? '&' : '?'}token=wrong`, { method });
      assert.equal(wrongQuery.status, 401);
    }
    const bearer = await stack.get(bridge, '/json/version', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 200);
    const query = await stack.get(bridge, `/json/version?token=${token}`);
    assert.equal(query.status, 200);
    assert.ok(query.json.webSocketDebuggerUrl.includes(`:${stack.ports[bridge]}/devtools/browser/`));
    // ?token= is cut from the query before it reaches Chrome: the new page's URL is about:blank.
    const put = await stack.get(bridge, `/json/new?token=${token}&about:blank`, { method: 'PUT' });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.url, 'about:blank');
    assert.ok(!put.text.includes(token));
    const close = await stack.get(bridge, `/json/close/${put.json.id}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(close.status, 200);
  });

  test(`token on (${bridge}): WebSocket upgrade 401 without the token; works with Bearer or ?token=`, async () => {
    const wsUrl = (await stack.get(bridge, `/json/version?token=${token}`)).json.webSocketDebuggerUrl;
    for (const url of [wsUrl, `${wsUrl}?token=wrong`, `ws://127.0.0.1:${stack.ports[bridge]}/`]) {
      const e = await wsRefusal(url);
      assert.equal(e.status, 401, `${url}: ${e.body}`);
      assert.equal(e.json?.error, 'unauthorized');
    }
    const e = await wsRefusal(wsUrl, { headers: { authorization: 'Bearer wrong' } });
    assert.equal(e.status, 401);
    for (const [url, opts] of [[`${wsUrl}?token=${token}`, {}], [wsUrl, { headers: { authorization: `Bearer ${token}` } }]]) {
      const cdp = await Cdp.open(url, opts);
      assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/);
      await cdp.close();
    }
  });
}

test('token on: Playwright (headers) and Puppeteer (headers) connect and evaluate', async () => {
  const auth = { authorization: `Bearer ${FILE_TOKEN}` };
  await assert.rejects(chromium.connectOverCDP(stack.url('file'), { timeout: 10_000 }), /401|nauthorized/);
  const pw = await chromium.connectOverCDP(stack.url('file', 'localhost'), { headers: auth, timeout: 30_000 });
  try {
    const page = await pw.contexts()[0].newPage();
    assert.equal(await page.evaluate(() => 40 + 2), 42);
    await page.close();
  } finally {
    await pw.close();
  }
  const wsUrl = (await stack.get('file', '/json/version', { headers: auth })).json.webSocketDebuggerUrl;
  // Puppeteer rejects with the ws ErrorEvent: its message names the 401.
  await assert.rejects(puppeteer.connect({ browserWSEndpoint: wsUrl }), (e) => /401/.test(String(e?.message ?? e?.error?.message ?? e)));
  for (const opts of [{ browserWSEndpoint: wsUrl, headers: auth }, { browserWSEndpoint: `${wsUrl}?token=${FILE_TOKEN}` }]) {
    const pp = await puppeteer.connect({ ...opts, defaultViewport: null });
    try {
      const page = await pp.newPage();
      assert.equal(await page.evaluate(() => 40 + 2), 42);
      await page.close();
    } finally {
      await pp.disconnect();
    }
  }
});

test('token off: no credentials needed for HTTP, WebSocket, Playwright and Puppeteer; a stray Authorization is ignored', async () => {
  const r = await stack.get('open', '/json/version');
  assert.equal(r.status, 200);
  assert.equal((await stack.get('open', '/json/version', { headers: { authorization: 'Bearer whatever' } })).status, 200);
  const cdp = await Cdp.open(r.json.webSocketDebuggerUrl);
  assert.match((await cdp.send('Browser.getVersion')).product, /Chrome/);
  await cdp.close();
  const pw = await chromium.connectOverCDP(stack.url('open'), { timeout: 30_000 });
  assert.ok(pw.isConnected());
  await pw.close();
  const pp = await puppeteer.connect({ browserURL: stack.url('open'), defaultViewport: null });
  assert.ok(pp.connected);
  await pp.disconnect();
});
