// corral-snapshot restore: a harvested storageState (with a 5 MB localStorage
// value, a 5 MB IndexedDB record and encoded values: Date, Map, Set) loaded
// into a fresh profile, then read back in real pages. A malformed file
// applies nothing (exit 2); Chromium down is a clear error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, originServer, runSnapshot } from './lib/stack.mjs';
import { writeStorage, describeStorage, storageIsEmpty, setCookiesFor, writeHuge, hashLong } from './lib/seed.mjs';

const MB5 = 5 * 1024 * 1024;
// Chromium's localStorage quota is 10 MiB per origin counted in UTF-16 code
// units (2 bytes each): 5 MiB characters do not fit, 5 000 000 do.
const LS_CHARS = 5_000_000;

let stack;
let servers;
let dir;
let file;
let harvested;
const expected = {};

async function inPage(origin, fn, arg) {
  const browser = await chromium.connectOverCDP(stack.cdp);
  try {
    const page = await browser.contexts()[0].newPage();
    await page.goto(`${origin}/page?name=check`);
    const r = await page.evaluate(fn, arg);
    await page.close();
    return r;
  } finally {
    await browser.close();
  }
}

async function browserCookies() {
  const browser = await chromium.connectOverCDP(stack.cdp);
  try {
    const s = await browser.newBrowserCDPSession();
    return (await s.send('Storage.getCookies')).cookies;
  } finally {
    await browser.close();
  }
}

before(async () => {
  stack = await startStack('restore');
  dir = fs.mkdtempSync(path.join(stack.dir, 'files-'));
  file = path.join(dir, 'state.json');
  servers = {
    r1: await originServer({ setCookies: setCookiesFor('r1') }),
    r2: await originServer({ host: 'localhost', setCookies: setCookiesFor('r2') }),
  };
  const browser = await chromium.connectOverCDP(stack.cdp);
  for (const t of ['r1', 'r2']) {
    const page = await browser.contexts()[0].newPage();
    const step = (what) => process.env.DEBUG_SNAPSHOT_TESTS && console.error(`[restore] ${t}: ${what}`);
    await page.goto(`${servers[t].origin}/setcookie?name=seed`);
    step('loaded');
    await page.evaluate(writeStorage, { t });
    step('written');
    if (t === 'r1') await page.evaluate(writeHuge, { lsChars: LS_CHARS, idbChars: MB5 });
    step('huge written');
    expected[t] = await page.evaluate(describeStorage);
    if (t === 'r1') expected.huge = await page.evaluate(hashLong);
    step('described');
    await page.close();
  }
  await browser.close();
});

after(async () => {
  for (const s of Object.values(servers ?? {})) await s.close();
  await stack?.stop();
});

test('harvest carries a 5 MB localStorage value and a 5 MB IndexedDB record whole', async () => {
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', file, '--profile', stack.profile]);
  assert.equal(r.code, 0, r.stderr);
  harvested = JSON.parse(fs.readFileSync(file, 'utf8'));
  const o = harvested.origins.find((x) => x.origin === servers.r1.origin);
  const huge = o.localStorage.find((i) => i.name === 'huge').value;
  assert.equal(huge.length, LS_CHARS);
  assert.ok(huge.endsWith('END'));
  const rec = o.indexedDB.find((d) => d.name === 'big').stores[0].records[0];
  assert.equal(rec.key, 'five-mb');
  const text = rec.value?.text ?? rec.valueEncoded?.o?.find((e) => e.k === 'text')?.v;
  assert.equal(text?.length, MB5, 'the 5 MB IndexedDB string');
  assert.equal(harvested.cookies.length, 6);
});

test('into a fresh profile: the profile is empty first', async () => {
  await stack.stopChromium();
  fs.rmSync(stack.profile, { recursive: true, force: true });
  fs.mkdirSync(stack.profile);
  await stack.startChromium();
  assert.deepEqual(await browserCookies(), []);
  for (const t of ['r1', 'r2']) assert.equal(await inPage(servers[t].origin, storageIsEmpty), true);
});

const MALFORMED = {
  'not JSON': '{"cookies": [',
  'no origins key': JSON.stringify({ cookies: [] }),
  'origins not an array': JSON.stringify({ cookies: [], origins: {} }),
  'a cookie without a name': JSON.stringify({ cookies: [{ value: 'x', domain: '127.0.0.1', path: '/', expires: -1, httpOnly: false, secure: false, sameSite: 'Lax' }], origins: [] }),
  'sameSite None without secure': JSON.stringify({ cookies: [{ name: 'n', value: 'x', domain: '127.0.0.1', path: '/', expires: -1, httpOnly: false, secure: false, sameSite: 'None' }], origins: [] }),
  'a bad sameSite': JSON.stringify({ cookies: [{ name: 'n', value: 'x', domain: '127.0.0.1', path: '/', expires: -1, httpOnly: false, secure: false, sameSite: 'lax' }], origins: [] }),
  'a non-http origin': JSON.stringify({ cookies: [], origins: [{ origin: 'file:///etc', localStorage: [] }] }),
  'a localStorage item without a value': JSON.stringify({ cookies: [], origins: [{ origin: 'http://127.0.0.1:1', localStorage: [{ name: 'a' }] }] }),
};

test('malformed storage states: exit 2 with the reason, and nothing applied', async (t) => {
  // Valid parts first (a cookie, an origin with localStorage), the flaw last:
  // a restore that applied as it went would leave these behind.
  const good = harvested.cookies[0];
  const validStart = {
    cookies: [{ ...good, name: 'must_not_appear' }],
    origins: [{ origin: servers.r1.origin, localStorage: [{ name: 'must_not_appear', value: '1' }] }],
  };
  const cases = {
    ...MALFORMED,
    'valid cookie and origin, then a bad origin': JSON.stringify({
      ...validStart,
      origins: [...validStart.origins, { origin: 'javascript:alert(1)', localStorage: [] }],
    }),
    'valid cookie and origin, then an origin with a path': JSON.stringify({
      ...validStart,
      origins: [...validStart.origins, { origin: `${servers.r2.origin}/path`, localStorage: [{ name: 'a', value: 'b' }] }],
    }),
  };
  for (const [name, text] of Object.entries(cases)) {
    const f = path.join(dir, `bad-${name.replace(/\W+/g, '-')}.json`);
    fs.writeFileSync(f, text);
    const r = await runSnapshot(['restore', '--cdp', stack.cdp, '--in', f]);
    t.diagnostic(`${name}: exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
    assert.equal(r.code, 2, `${name}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(r.stderr, /nothing was restored/, name);
  }
  assert.deepEqual(await browserCookies(), [], 'a cookie was applied');
  for (const s of ['r1', 'r2']) assert.equal(await inPage(servers[s].origin, storageIsEmpty), true, `${s} has storage`);
});

test('a missing input file: exit 2', async () => {
  const r = await runSnapshot(['restore', '--cdp', stack.cdp, '--in', path.join(dir, 'absent.json')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot read/);
});

test('Chromium down: restore exits non-zero with a clear error', async () => {
  await stack.stopChromium();
  try {
    const r = await runSnapshot(['restore', '--cdp', stack.cdp, '--in', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot reach chromium/i);
  } finally {
    await stack.startChromium();
  }
  assert.deepEqual(await browserCookies(), []);
});

test('restore loads cookies, localStorage and IndexedDB (Date, Map, Set, 5 MB values) readable in real pages', async () => {
  const r = await runSnapshot(['restore', '--cdp', stack.cdp, '--in', file]);
  assert.equal(r.code, 0, r.stderr);
  const cookies = await browserCookies();
  const key = (c) => `${c.domain} ${c.path} ${c.name}=${c.value} httpOnly=${c.httpOnly} ${c.sameSite ?? 'Lax'}`;
  assert.deepEqual(cookies.map(key).sort(), harvested.cookies.map(key).sort());
  for (const t of ['r1', 'r2']) {
    const got = await inPage(servers[t].origin, describeStorage);
    assert.deepEqual(got.local, expected[t].local, `${t} localStorage`);
    assert.deepEqual(got.indexedDB, expected[t].indexedDB, `${t} IndexedDB`);
  }
  assert.deepEqual(await inPage(servers.r1.origin, hashLong), expected.huge);
});

test('what restore wrote is in the persistent profile: after a restart a harvest gives the same state', async () => {
  await stack.closeBrowserAndWaitRestart();
  await stack.restartChromium();
  const again = path.join(dir, 'again.json');
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', again, '--profile', stack.profile]);
  assert.equal(r.code, 0, r.stderr);
  const state = JSON.parse(fs.readFileSync(again, 'utf8'));
  const norm = (s) => ({
    cookies: s.cookies.map((c) => ({ ...c, expires: Math.round(c.expires) })).sort((a, b) => a.name.localeCompare(b.name)),
    origins: [...s.origins].sort((a, b) => a.origin.localeCompare(b.origin)),
  });
  assert.deepEqual(norm(state), norm(harvested));
});
