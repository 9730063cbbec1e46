// corral-snapshot harvest against a real Chromium under corral:
// cookies, localStorage and IndexedDB written through real pages on three
// origins (plus one whose server is gone by harvest time), the tabs closed,
// Chromium restarted (TERM, so it writes what it holds), then one harvest.
// It must find every item, disturb nothing the user has open, contact no
// origin server, and produce a file Playwright's newContext({ storageState })
// loads.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, originServer, runSnapshot, waitFor, strayTemps, CHROMIUM, CHROMIUM_FLAGS } from './lib/stack.mjs';
import { writeStorage, describeStorage, setCookiesFor, localOf } from './lib/seed.mjs';

// Keys a site could write; the last two hold lone UTF-16 surrogates, which are
// not Unicode and cannot be written in JSON as text.
const ODD = {
  'emoji 😀': 'v 😀',
  'combining e\u0301': 'e\u0301 decomposed',
  'zwj 👩‍👩‍👧': 'family',
  'rtl שלום': 'עולם',
  'nul\u0000inside': 'v\u0000v',
  'bom \uFEFF': '\uFEFF',
  'astral 𝄞': '𝄞 \u{10FFFF}',
  'quote "\\ </script>': '<\u2028\u2029>',
};
const LONE = { 'lone high \uD800 x': 'lone low \uDC00 value', 'lone \uDFFF': 'ok' };
const wellFormed = (s) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

let stack;
let servers; // tag -> origin server
const expected = {}; // origin -> describeStorage() right after writing
let outDir;
let out;
let harvest; // the runSnapshot result
let state; // the parsed file
const seen = {}; // what the user's tab and the servers looked like around the harvest

before(async () => {
  stack = await startStack('harvest');
  outDir = fs.mkdtempSync(path.join(stack.dir, 'out-'));
  out = path.join(outDir, 'storage-state.json');
  servers = {
    a: await originServer({ setCookies: setCookiesFor('a') }),
    b: await originServer({ setCookies: setCookiesFor('b') }),
    c: await originServer({ host: 'localhost', setCookies: setCookiesFor('c') }),
    dead: await originServer({ setCookies: setCookiesFor('dead') }),
    user: await originServer(),
  };

  // Write through real pages in the running browser, then close the tabs.
  let browser = await chromium.connectOverCDP(stack.cdp);
  const ctx = browser.contexts()[0];
  for (const t of ['a', 'b', 'c', 'dead']) {
    const page = await ctx.newPage();
    await page.goto(`${servers[t].origin}/setcookie?name=seed-${t}`);
    const extraLocal = t === 'a' ? { ...ODD, ...LONE } : {};
    await page.evaluate(writeStorage, { t, extraLocal });
    expected[servers[t].origin] = await page.evaluate(describeStorage);
    await page.close();
  }
  await browser.close(); // connectOverCDP: disconnects, the browser stays
  await waitFor('the seeding tabs to be closed', async () => {
    const urls = (await stack.targets()).filter((t) => t.type === 'page').map((t) => t.url);
    return urls.every((u) => !u.startsWith('http'));
  });

  // Chromium writes its cookie store every 30 s and on a clean exit, but not
  // on SIGTERM: close it cleanly once so the
  // cookies are on disk (the todo test at the end shows the SIGTERM loss), let
  // corral start it again, then restart it the way
  // corral does (TERM, wait, start). Then take the "dead" origin's server
  // away: its storage is only in the profile now.
  await stack.closeBrowserAndWaitRestart();
  await stack.restartChromium();
  await servers.dead.close();

  // A user tab, open and focused, with storage written just now (maybe not yet on disk).
  browser = await chromium.connectOverCDP(stack.cdp);
  const userPage = await browser.contexts()[0].newPage();
  await userPage.goto(`${servers.user.origin}/page?name=user`);
  await waitFor('the user page to report its load', () => servers.user.loads.user === 1);
  await userPage.bringToFront();
  await userPage.evaluate(() => {
    window.__mark = 'set-before-harvest';
    localStorage.setItem('fresh', 'written seconds ago');
    document.cookie = 'session_user=1; path=/';
  });
  const look = () =>
    userPage.evaluate(() => ({
      url: location.href,
      name: window.name,
      mark: window.__mark,
      navigations: performance.getEntriesByType('navigation').length,
      timeOrigin: performance.timeOrigin,
      hasFocus: document.hasFocus(),
      visibility: document.visibilityState,
      hidden: document.hidden,
    }));
  seen.userBefore = await look();
  seen.targetsBefore = await stack.targets();
  seen.requestsBefore = Object.fromEntries(Object.entries(servers).map(([t, s]) => [t, s.requests.length]));
  seen.loadsBefore = { ...servers.user.loads };

  harvest = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', out, '--profile', stack.profile]);

  seen.requestsAfter = Object.fromEntries(Object.entries(servers).map(([t, s]) => [t, s.requests.length]));
  seen.targetsAfter = await stack.targets();
  seen.userAfter = await look();
  seen.userPageUrl = userPage.url();
  seen.loadsAfter = { ...servers.user.loads };
  await browser.close();
  if (harvest.code === 0) state = JSON.parse(fs.readFileSync(out, 'utf8'));
});

after(async () => {
  for (const s of Object.values(servers ?? {})) await s.close().catch(() => {});
  await stack?.stop();
});

test('harvest exits 0 and writes a storageState file, mode 0600, with no temp files left', () => {
  assert.equal(harvest.code, 0, `harvest failed: ${harvest.stderr}`);
  assert.equal(fs.statSync(out).mode & 0o777, 0o600);
  assert.deepEqual(strayTemps(outDir), []);
  assert.ok(Array.isArray(state.cookies) && Array.isArray(state.origins));
});

test('it finds exactly the origins with storage: the three seeded, the one whose server is gone, and the open tab', () => {
  const origins = state.origins.map((o) => o.origin).sort();
  const want = [servers.a, servers.b, servers.c, servers.dead, servers.user].map((s) => s.origin).sort();
  assert.deepEqual(origins, want);
});

test('every cookie is there, with Playwright attributes (HttpOnly, SameSite, path, expiry, session -1)', () => {
  const byName = Object.fromEntries(state.cookies.map((c) => [c.name, c]));
  for (const t of ['a', 'b', 'c', 'dead']) {
    const domain = t === 'c' ? 'localhost' : '127.0.0.1';
    const srv = byName[`srv_${t}`];
    assert.ok(srv, `srv_${t} missing; cookies: ${state.cookies.map((c) => `${c.domain} ${c.path} ${c.name}`).join(", ")}`);
    assert.equal(srv.value, `v_${t}`);
    assert.equal(srv.domain, domain);
    assert.equal(srv.path, '/');
    assert.equal(srv.httpOnly, true);
    assert.equal(srv.secure, false);
    assert.equal(srv.sameSite, 'Strict');
    assert.ok(srv.expires > Date.now() / 1000 + 80_000, `srv_${t} expires ${srv.expires}`);
    const lax = byName[`lax_${t}`];
    assert.deepEqual([lax?.value, lax?.path, lax?.sameSite, lax?.httpOnly], [`l_${t}`, '/setcookie', 'Lax', false]);
    const js = byName[`js_${t}`];
    assert.deepEqual([js?.value, js?.domain, js?.sameSite, js?.httpOnly], [`hello-${t}`, domain, 'Lax', false]);
  }
  const session = byName.session_user;
  assert.ok(session, 'the session cookie of the open tab is missing');
  assert.equal(session.expires, -1);
  assert.equal(state.cookies.length, 4 * 3 + 1, `unexpected cookies: ${state.cookies.map((c) => c.name)}`);
});

test('every localStorage item of the seeded origins, and the item the open tab wrote seconds ago', () => {
  for (const t of ['b', 'c', 'dead']) {
    assert.deepEqual(localOf(state, servers[t].origin), {
      greeting: `hello ${t}`,
      json: JSON.stringify({ a: 1, t }),
      unicode: 'héllo wörld 日本語 😀',
      empty: '',
    });
  }
  assert.deepEqual(localOf(state, servers.user.origin), { fresh: 'written seconds ago' });
});

test('odd Unicode keys: harvest succeeds, well-formed keys and values are exact, lone surrogates become U+FFFD', () => {
  const local = localOf(state, servers.a.origin);
  for (const [k, v] of Object.entries(ODD)) assert.equal(local[k], v, `key ${JSON.stringify(k)}`);
  for (const [k, v] of Object.entries(LONE)) {
    assert.equal(local[wellFormed(k)], wellFormed(v), `lone-surrogate key ${JSON.stringify(k)} (documented: U+FFFD)`);
  }
  assert.equal(Object.keys(local).length, 4 + Object.keys(ODD).length + Object.keys(LONE).length);
});

test('every IndexedDB database, store, index and record, with Date/Map/Set values and keys encoded', () => {
  for (const t of ['a', 'b', 'c', 'dead']) {
    const o = state.origins.find((x) => x.origin === servers[t].origin);
    const dbs = Object.fromEntries(o.indexedDB.map((d) => [d.name, d]));
    assert.deepEqual(Object.keys(dbs).sort(), ['app', 'cache']);
    assert.equal(dbs.app.version, 3);
    assert.equal(dbs.cache.version, 1);
    const stores = Object.fromEntries(dbs.app.stores.map((s) => [s.name, s]));
    assert.deepEqual(Object.keys(stores).sort(), ['auto', 'kv', 'users']);

    const users = stores.users;
    assert.equal(users.keyPath, 'id');
    assert.equal(users.autoIncrement, false);
    const idx = Object.fromEntries(users.indexes.map((i) => [i.name, i]));
    assert.deepEqual([idx.by_email.keyPath, idx.by_email.unique, idx.by_email.multiEntry], ['email', true, false]);
    assert.deepEqual([idx.by_tags.keyPath, idx.by_tags.unique, idx.by_tags.multiEntry], ['tags', false, true]);
    assert.deepEqual(
      users.records.map((r) => r.value),
      [
        { id: 1, email: `ann@${t}.test`, tags: ['admin', 'x'], name: 'Ann' },
        { id: 2, email: `bob@${t}.test`, tags: ['x'], name: 'Bob', nested: { deep: [1, 2, { three: 3 }] } },
        { id: 3, email: `cy@${t}.test`, tags: [], name: `Cy ${t}` },
      ],
    );

    const kv = stores.kv;
    assert.equal(kv.keyPath, undefined);
    assert.equal(kv.records.length, 6);
    const rec = (key) => kv.records.find((r) => r.key === key);
    assert.deepEqual(rec('date').valueEncoded, { d: '2024-01-02T03:04:05.000Z' });
    assert.ok(rec('map').valueEncoded?.m, `map not encoded: ${JSON.stringify(rec('map'))}`);
    assert.ok(rec('set').valueEncoded?.s, `set not encoded: ${JSON.stringify(rec('set'))}`);
    assert.deepEqual(rec('plain').value, { plain: true, n: [1, 2, 3], s: t });
    assert.equal(rec(42).value, `number key ${t}`);
    const dateKey = kv.records.find((r) => r.keyEncoded);
    assert.deepEqual(dateKey?.keyEncoded, { d: '2020-06-06T00:00:00.000Z' });
    assert.equal(dateKey.value, 'date key');

    assert.equal(stores.auto.autoIncrement, true);
    assert.deepEqual(
      stores.auto.records.map((r) => [r.key, r.value]),
      [
        [1, 'first'],
        [2, { second: t }],
      ],
    );

    const compound = dbs.cache.stores[0];
    assert.deepEqual(compound.keyPathArray, ['a', 'b']);
    assert.deepEqual(compound.indexes[0].keyPathArray, ['b', 'a']);
    assert.deepEqual(
      compound.records.map((r) => r.value),
      [
        { a: 'x', b: 1, v: `one ${t}` },
        { a: 'y', b: 2, v: `two ${t}` },
      ],
    );
  }
});

test("the harvest did not navigate, reload or focus the user's tab", () => {
  assert.equal(seen.userPageUrl, `${servers.user.origin}/page?name=user`);
  assert.deepEqual(seen.userAfter, seen.userBefore);
  assert.equal(seen.userAfter.mark, 'set-before-harvest', 'the page was reloaded (its JS state is gone)');
  assert.deepEqual(seen.loadsAfter, seen.loadsBefore, 'the user page loaded again');
});

test('the harvest left no target behind (/json/list before == after)', () => {
  assert.deepEqual(seen.targetsAfter, seen.targetsBefore);
});

test('the harvest made no request to any origin server (pages fulfilled locally)', () => {
  assert.deepEqual(seen.requestsAfter, seen.requestsBefore);
});

test('Playwright browser.newContext({ storageState }) on /usr/bin/chromium sees every item', async (t) => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  t.after(() => browser.close());
  const ctx = await browser.newContext({ storageState: out });
  // The dead origin's server is gone: answer its page locally.
  await ctx.route(`${servers.dead.origin}/**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>dead</title>' }),
  );
  const cookies = await ctx.cookies();
  assert.deepEqual(
    cookies.map((c) => `${c.domain} ${c.name}=${c.value}`).sort(),
    state.cookies.map((c) => `${c.domain} ${c.name}=${c.value}`).sort(),
  );
  for (const tag of ['a', 'b', 'c', 'dead']) {
    const origin = servers[tag].origin;
    const page = await ctx.newPage();
    await page.goto(`${origin}/page?name=check-${tag}`);
    const got = await page.evaluate(describeStorage);
    await page.close();
    const want = structuredClone(expected[origin]);
    want.local = Object.fromEntries(Object.entries(want.local).map(([k, v]) => [wellFormed(k), typeof v === 'string' ? wellFormed(v) : v]));
    assert.deepEqual(got.local, want.local, `${origin} localStorage`);
    assert.deepEqual(got.indexedDB, want.indexedDB, `${origin} IndexedDB`);
  }
});

// The golden file: the same profile harvested by the original path, one
// navigation per origin (--navigate-each-origin), must give the very same
// bytes as the default path, which loads same-host origins (here a, b, dead
// and user, all on 127.0.0.1) as iframes of one document.
test('same bytes as the original one-navigation-per-origin path (golden file made by it)', async () => {
  const golden = path.join(outDir, 'golden.json');
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', golden, '--profile', stack.profile, '--navigate-each-origin']);
  assert.equal(r.code, 0, r.stderr);
  const again = path.join(outDir, 'again.json');
  const r2 = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', again, '--profile', stack.profile], { env: { CORRAL_LOG: 'debug' } });
  assert.equal(r2.code, 0, r2.stderr);
  // It did read them as frames (no fallback to a navigation each): the
  // 127.0.0.1 group (a, b, dead, user and the cookie-domain guess
  // http://127.0.0.1) and the localhost one (c and http://localhost).
  assert.match(r2.stderr, /frames loaded: 5/);
  assert.match(r2.stderr, /frames loaded: 2/);
  assert.doesNotMatch(r2.stderr, /not read as a frame/);
  assert.equal(fs.readFileSync(again, 'utf8'), fs.readFileSync(golden, 'utf8'));
  assert.equal(fs.readFileSync(out, 'utf8'), fs.readFileSync(golden, 'utf8'), 'the first harvest differs from the golden file');
});

test('Chromium down: harvest exits non-zero with a clear error and the old file is unchanged', async () => {
  const before = fs.readFileSync(out);
  const mtime = fs.statSync(out).mtimeMs;
  await stack.stopChromium();
  try {
    const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', out, '--profile', stack.profile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot reach chromium/i);
    assert.ok(fs.readFileSync(out).equals(before), 'the old snapshot was changed');
    assert.equal(fs.statSync(out).mtimeMs, mtime);
    assert.deepEqual(strayTemps(outDir), []);
  } finally {
    await stack.startChromium();
  }
});

// Chromium 156 (Debian) does not write its cookie store on SIGTERM: a TERM
// restart would lose the persistent cookies of the last ~30 s. The stack (as
// the product's supervisor.toml) closes it over CDP first (pre_stop:
// corral-cdp close-browser), which writes them.
test('a corralctl restart chromium keeps a persistent cookie set just before it', async () => {
  const browser = await chromium.connectOverCDP(stack.cdp);
  const page = await browser.contexts()[0].newPage();
  await page.goto(`${servers.a.origin}/page?name=term`);
  await page.evaluate(() => (document.cookie = 'term_cookie=1; max-age=86400; path=/'));
  await page.close();
  await browser.close();
  await stack.restartChromium();
  const b2 = await chromium.connectOverCDP(stack.cdp);
  const s = await b2.newBrowserCDPSession();
  const names = (await s.send('Storage.getCookies')).cookies.map((c) => c.name);
  await b2.close();
  assert.ok(names.includes('term_cookie'), `after a TERM restart the cookies are: ${names.join(', ')}`);
});
