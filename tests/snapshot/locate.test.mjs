// The contract's one-shot command, `corral-snapshot harvest --cdp URL --out
// FILE` — no --profile — against a real Chromium under corral: storage
// written on three origins, the tabs closed, Chromium restarted, then the
// command must find every origin's localStorage and IndexedDB by finding
// the profile itself, by either route (/proc of the process on the DevTools
// port; chrome://version when /proc cannot tell). When the profile cannot be
// found, it must say so and exit non-zero (unless --open-tabs-only), and
// `serve` the same.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, originServer, runSnapshot, SNAPSHOT, waitFor } from './lib/stack.mjs';
import { writeStorage, setCookiesFor, localOf } from './lib/seed.mjs';

let stack;
let servers;
let outDir;

before(async () => {
  stack = await startStack('locate');
  outDir = fs.mkdtempSync('/tmp/corral-snapshot-locate-out-');
  servers = {};
  for (const t of ['a', 'b', 'c']) servers[t] = await originServer({ setCookies: setCookiesFor(t) });
  const browser = await chromium.connectOverCDP(stack.cdp);
  const ctx = browser.contexts()[0];
  for (const t of ['a', 'b', 'c']) {
    const page = await ctx.newPage();
    await page.goto(`${servers[t].origin}/setcookie?name=seed-${t}`);
    await page.evaluate(writeStorage, { t });
    await page.close();
  }
  await browser.close();
  await waitFor('the seeding tabs to be closed', async () =>
    (await stack.targets()).filter((t) => t.type === 'page').every((t) => !t.url.startsWith('http')),
  );
  // Closed cleanly (everything on disk), started again: the storage of the
  // three origins is only in the profile now, no tab shows them.
  await stack.closeBrowserAndWaitRestart();
});

after(async () => {
  for (const s of Object.values(servers ?? {})) await s.close().catch(() => {});
  await stack?.stop();
  if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
});

function assertEveryOrigin(file) {
  const state = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const t of ['a', 'b', 'c']) {
    const origin = servers[t].origin;
    assert.equal(localOf(state, origin)?.greeting, `hello ${t}`, `${origin} localStorage missing`);
    const o = state.origins.find((x) => x.origin === origin);
    assert.deepEqual(o.indexedDB.map((d) => d.name).sort(), ['app', 'cache'], `${origin} IndexedDB missing`);
  }
  return state;
}

/** argv run with the stack's directory (its profile) hidden behind an empty tmpfs. */
const hidingProfile = (argv) => [
  'unshare',
  ['--mount', 'sh', '-c', 'mount -t tmpfs none "$0" && exec "$@"', stack.dir, ...argv],
];

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test('harvest --cdp --out, no --profile: every origin of the closed tabs, found through /proc', async () => {
  const out = path.join(outDir, 'proc.json');
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /found Chromium's profile.*Proc/);
  assertEveryOrigin(out);
});

test('the same through chrome://version when /proc cannot tell (an address /proc does not map)', async () => {
  // ::ffff:127.0.0.1 reaches the same loopback port but is not an address
  // the /proc route treats as local: the scratch page reads chrome://version.
  const url = stack.cdp.replace('127.0.0.1', '[::ffff:127.0.0.1]');
  const out = path.join(outDir, 'version.json');
  const r = await runSnapshot(['harvest', '--cdp', url, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /found Chromium's profile.*ChromeVersion/);
  assertEveryOrigin(out);
  const targets = (await stack.targets()).map((t) => t.url);
  assert.ok(!targets.some((u) => u.startsWith('chrome://version')), `left behind: ${targets}`);
});

test('profile not reachable: a clear error, exit non-zero, no file', async () => {
  const out = path.join(outDir, 'missing.json');
  const [cmd, args] = hidingProfile([SNAPSHOT, 'harvest', '--cdp', stack.cdp, '--out', out]);
  const r = await run(cmd, args);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot find Chromium's profile .*--profile DIR, or --open-tabs-only/);
  assert.ok(!fs.existsSync(out));
});

test('--open-tabs-only: exit 0 without a profile, cookies kept, closed tabs not found', async () => {
  const out = path.join(outDir, 'tabs.json');
  const [cmd, args] = hidingProfile([SNAPSHOT, 'harvest', '--cdp', stack.cdp, '--out', out, '--open-tabs-only']);
  const r = await run(cmd, args);
  assert.equal(r.code, 0, r.stderr);
  const state = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.ok(state.cookies.some((c) => c.name === 'srv_a'));
  // Cookie domains are 127.0.0.1 without a port: not the seeded origins.
  assert.equal(localOf(state, servers.a.origin), undefined);
});

test('serve without --profile that cannot find it: the same error, exit non-zero', async () => {
  const [cmd, args] = hidingProfile([
    SNAPSHOT, 'serve', '--listen', '127.0.0.1:0', '--cdp', stack.cdp, '--out', path.join(outDir, 'serve.json'),
  ]);
  const r = await run(cmd, args);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot find Chromium's profile/);
});
