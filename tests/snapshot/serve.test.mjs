// corral-snapshot serve: the bearer-gated snapshot server in front of a real
// Chromium under corral. Auth (401/503), 404 before the first snapshot,
// ETag/304, ?fresh=1 single-flight and its timeout, the last good snapshot
// kept when a harvest fails, token rotation by renaming a new file over the
// old, and the periodic --interval harvest.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, originServer, startServe, runSnapshot, waitFor, freePort, strayTemps } from './lib/stack.mjs';
import { writeStorage, setCookiesFor } from './lib/seed.mjs';

let stack;
let site;
let dir;
let tokenFile;
const serves = [];
const TOKEN = 'first-token-0123456789abcdef';
const bearer = (t) => ({ authorization: `Bearer ${t}` });

async function serve(args, opts) {
  const s = await startServe(args, opts);
  serves.push(s);
  return s;
}

before(async () => {
  stack = await startStack('serve');
  dir = fs.mkdtempSync(path.join(stack.dir, 'serve-'));
  tokenFile = path.join(dir, 'secret', 'token');
  fs.mkdirSync(path.dirname(tokenFile));
  fs.writeFileSync(tokenFile, `${TOKEN}\n`);
  site = await originServer({ setCookies: setCookiesFor('s') });
  const browser = await chromium.connectOverCDP(stack.cdp);
  const page = await browser.contexts()[0].newPage();
  await page.goto(`${site.origin}/setcookie?name=seed`);
  await page.evaluate(writeStorage, { t: 's' });
  await page.close();
  await browser.close();
});

after(async () => {
  for (const s of serves) await s.stop();
  await site?.close();
  await stack?.stop();
});

test('GET /healthz is 200; with no token configured /api/snapshot is 503, bearer or not', async () => {
  const env = { CORRAL_SNAPSHOT_TOKEN: undefined };
  const s = await serve(['--cdp', stack.cdp, '--out', path.join(dir, 'notoken.json'), '--profile', stack.profile], { env });
  assert.equal((await s.get('/healthz')).status, 200);
  const r = await s.get('/api/snapshot');
  assert.equal(r.status, 503);
  assert.match(r.json.error, /no token/);
  assert.equal((await s.get('/api/snapshot', bearer('anything'))).status, 503);
  assert.equal((await s.get('/api/snapshot?fresh=1', bearer(''))).status, 503);
});

test('an empty CORRAL_SNAPSHOT_TOKEN is refused at start (exit 2, says why)', async () => {
  const r = await runSnapshot(['serve', '--listen', '127.0.0.1:0', '--cdp', stack.cdp, '--out', path.join(dir, 'empty.json')], {
    env: { CORRAL_SNAPSHOT_TOKEN: '' },
    timeoutMs: 10_000,
  });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /CORRAL_SNAPSHOT_TOKEN: the token is empty/);
});

test('before the first snapshot: 401 without the token, 404 with it; a failed harvest is 502, logged, and writes nothing', async () => {
  const out = path.join(dir, 'never.json');
  const dead = `http://127.0.0.1:${await freePort()}`;
  const s = await serve(['--cdp', dead, '--out', out], { env: { CORRAL_SNAPSHOT_TOKEN: TOKEN } });
  assert.equal((await s.get('/api/snapshot')).status, 401);
  assert.equal((await s.get('/api/snapshot', bearer(TOKEN))).status, 404);
  const fresh = await s.get('/api/snapshot?fresh=1', bearer(TOKEN));
  assert.equal(fresh.status, 502);
  assert.match(fresh.json.detail, /cannot reach chromium/);
  await waitFor('the failure to be logged', () => /harvest failed/.test(s.log()));
  assert.equal(fs.existsSync(out), false);
  assert.equal((await s.get('/api/snapshot', bearer(TOKEN))).status, 404);
});

let main; // the serve under test from here on
let out;

test('auth: 401 for a missing, wrong, or non-Bearer token (with WWW-Authenticate), 200 with ETag for the right one', async () => {
  out = path.join(dir, 'state', 'storage-state.json');
  main = await serve(['--cdp', stack.cdp, '--out', out, '--profile', stack.profile, '--token-file', tokenFile, '--interval', '1h']);
  await waitFor('the first periodic harvest', () => main.harvested() >= 1, { timeoutMs: 60_000 });
  for (const headers of [{}, bearer('wrong'), bearer(`${TOKEN}x`), bearer(TOKEN.slice(0, -1)), { authorization: `Basic ${TOKEN}` }, { authorization: TOKEN }]) {
    const r = await main.get('/api/snapshot', headers);
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    assert.ok(!r.body.includes('"cookies"'), 'a 401 leaked the snapshot');
  }
  const r = await main.get('/api/snapshot', bearer(TOKEN));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.match(r.headers.get('etag'), /^"[0-9a-f]+"$/);
  assert.equal(r.body, fs.readFileSync(out, 'utf8'), 'served bytes == the file');
  assert.ok(r.json.origins.some((o) => o.origin === site.origin && o.indexedDB.length === 2));
  assert.ok(r.json.cookies.some((c) => c.name === 'srv_s'));
  assert.equal(fs.statSync(out).mode & 0o777, 0o600);
});

test('304 on If-None-Match with the current ETag, 200 on another', async () => {
  const r = await main.get('/api/snapshot', bearer(TOKEN));
  const etag = r.headers.get('etag');
  const nm = await main.get('/api/snapshot', { ...bearer(TOKEN), 'if-none-match': etag });
  assert.equal(nm.status, 304);
  assert.equal(nm.body, '');
  assert.equal(nm.headers.get('etag'), etag);
  const other = await main.get('/api/snapshot', { ...bearer(TOKEN), 'if-none-match': '"0000"' });
  assert.equal(other.status, 200);
  // 304 needs the token too.
  assert.equal((await main.get('/api/snapshot', { 'if-none-match': etag })).status, 401);
});

test('?fresh=1: concurrent requests share one harvest (single-flight) and get the same bytes', async () => {
  const before = main.harvested();
  site.requests.length = 0;
  const rs = await Promise.all(Array.from({ length: 8 }, () => main.get('/api/snapshot?fresh=1', bearer(TOKEN))));
  for (const r of rs) assert.equal(r.status, 200);
  assert.equal(new Set(rs.map((r) => r.body)).size, 1);
  assert.equal(new Set(rs.map((r) => r.headers.get('etag'))).size, 1);
  assert.equal(main.harvested() - before, 1, `harvests for 8 concurrent ?fresh=1: ${main.harvested() - before}`);
  assert.deepEqual(site.requests, [], 'a harvest contacted the origin server');
  // A later ?fresh=1 harvests again.
  assert.equal((await main.get('/api/snapshot?fresh=1', bearer(TOKEN))).status, 200);
  assert.equal(main.harvested() - before, 2);
});

test('?fresh=1 sees storage written a moment ago', async () => {
  const browser = await chromium.connectOverCDP(stack.cdp);
  const page = await browser.contexts()[0].newPage();
  await page.goto(`${site.origin}/page?name=now`);
  const stamp = `v-${Date.now()}`;
  await page.evaluate((v) => localStorage.setItem('just-now', v), stamp);
  const r = await main.get('/api/snapshot?fresh=1', bearer(TOKEN));
  await page.close();
  await browser.close();
  assert.equal(r.status, 200);
  const o = r.json.origins.find((x) => x.origin === site.origin);
  assert.equal(o.localStorage.find((i) => i.name === 'just-now')?.value, stamp);
});

test('?fresh=1 is bounded by --fresh-timeout (504) when Chromium does not answer', async () => {
  // A DevTools port that accepts connections and never answers.
  const held = [];
  const mute = net.createServer((sock) => held.push(sock));
  await new Promise((r) => mute.listen(0, '127.0.0.1', r));
  try {
    const s = await serve(['--cdp', `http://127.0.0.1:${mute.address().port}`, '--out', path.join(dir, 'mute.json'), '--fresh-timeout', '700ms'], {
      env: { CORRAL_SNAPSHOT_TOKEN: TOKEN },
    });
    const t0 = Date.now();
    const r = await s.get('/api/snapshot?fresh=1', bearer(TOKEN));
    const ms = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.ok(ms < 5_000, `answered after ${ms} ms`);
    assert.equal((await s.get('/healthz')).status, 200);
  } finally {
    for (const sock of held) sock.destroy();
    mute.close();
  }
});

test('a failed harvest keeps the last good snapshot (file and served bytes) and logs why', async () => {
  const good = await main.get('/api/snapshot', bearer(TOKEN));
  const bytes = fs.readFileSync(out);
  const mtime = fs.statSync(out).mtimeMs;
  await stack.stopChromium();
  try {
    const r = await main.get('/api/snapshot?fresh=1', bearer(TOKEN));
    assert.equal(r.status, 502);
    assert.match(r.json.detail, /cannot reach chromium/);
    await waitFor('the failure to be logged', () => /harvest failed, keeping the last good snapshot/.test(main.log()));
    const after = await main.get('/api/snapshot', bearer(TOKEN));
    assert.equal(after.status, 200);
    assert.equal(after.headers.get('etag'), good.headers.get('etag'));
    assert.equal(after.body, good.body);
    assert.ok(fs.readFileSync(out).equals(bytes));
    assert.equal(fs.statSync(out).mtimeMs, mtime);
    assert.deepEqual(strayTemps(path.dirname(out)), []);
  } finally {
    await stack.startChromium();
  }
  assert.equal((await main.get('/api/snapshot?fresh=1', bearer(TOKEN))).status, 200, 'harvests again once Chromium is back');
});

test('token rotation: a new file renamed over the old takes effect without a restart (old 401, new 200)', async () => {
  const NEW = 'second-token-fedcba9876543210';
  const tmp = path.join(path.dirname(tokenFile), '.token.new');
  fs.writeFileSync(tmp, `${NEW}\n`);
  fs.renameSync(tmp, tokenFile);
  await waitFor('the new token to be accepted', async () => (await main.get('/api/snapshot', bearer(NEW))).status === 200, { timeoutMs: 10_000 });
  assert.equal((await main.get('/api/snapshot', bearer(TOKEN))).status, 401);
  assert.equal(main.child.exitCode, null, 'serve restarted');
  // And back, Kubernetes-style (..data symlink swap is also a rename).
  fs.writeFileSync(tmp, TOKEN);
  fs.renameSync(tmp, tokenFile);
  await waitFor('the first token to be accepted again', async () => (await main.get('/api/snapshot', bearer(TOKEN))).status === 200, { timeoutMs: 10_000 });
  assert.equal((await main.get('/api/snapshot', bearer(NEW))).status, 401);
});

test('--interval harvests periodically and rewrites the file', async () => {
  const o = path.join(dir, 'periodic.json');
  const s = await serve(['--cdp', stack.cdp, '--out', o, '--profile', stack.profile, '--interval', '1s'], {
    env: { CORRAL_SNAPSHOT_TOKEN: TOKEN },
  });
  await waitFor('3 periodic harvests', () => s.harvested() >= 3, { timeoutMs: 30_000 });
  assert.ok(JSON.parse(fs.readFileSync(o, 'utf8')).origins.some((x) => x.origin === site.origin));
  assert.deepEqual(strayTemps(dir), []);
});

test('a restarted serve answers at once with the file already on disk', async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const s = await serve(['--cdp', dead, '--out', out], { env: { CORRAL_SNAPSHOT_TOKEN: TOKEN } });
  const r = await s.get('/api/snapshot', bearer(TOKEN));
  assert.equal(r.status, 200);
  assert.equal(r.body, fs.readFileSync(out, 'utf8'));
});
