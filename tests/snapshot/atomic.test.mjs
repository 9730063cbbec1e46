// The snapshot file under SIGKILL: corral-snapshot killed at random points of
// a harvest (and of a serve ?fresh=1), 30 + 10 times. After every kill the
// file is absent (before the first good harvest) or byte-identical to a
// complete good snapshot — never partial. Temp files (.snapshot-*.tmp) that a
// SIGKILL leaves are counted and reported; they never replace the file.
// Scratch targets left behind by a killed harvest are reported too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, originServer, runSnapshot, startServe, strayTemps, waitFor, SNAPSHOT } from './lib/stack.mjs';
import { writeStorage, setCookiesFor } from './lib/seed.mjs';

let stack;
const servers = [];
let good; // the bytes of a complete harvest
let harvestMs;

async function pageTargets() {
  const browser = await chromium.connectOverCDP(stack.cdp);
  try {
    const s = await browser.newBrowserCDPSession();
    const { targetInfos } = await s.send('Target.getTargets');
    return targetInfos.filter((t) => t.type === 'page').length;
  } finally {
    await browser.close();
  }
}

function checkFile(out, when) {
  if (!fs.existsSync(out)) return 'absent';
  const bytes = fs.readFileSync(out);
  JSON.parse(bytes.toString('utf8')); // throws on a partial file
  assert.ok(bytes.equals(good), `${when}: the file differs from the good snapshot (${bytes.length} vs ${good.length} bytes)`);
  assert.equal(fs.statSync(out).mode & 0o777, 0o600);
  return 'good';
}

before(async () => {
  stack = await startStack('atomic');
  const browser = await chromium.connectOverCDP(stack.cdp);
  for (let i = 0; i < 4; i++) {
    const s = await originServer({ setCookies: setCookiesFor(`k${i}`) });
    servers.push(s);
    const page = await browser.contexts()[0].newPage();
    await page.goto(`${s.origin}/setcookie?name=seed`);
    await page.evaluate(writeStorage, { t: `k${i}`, extraLocal: { filler: 'x'.repeat(200_000) } });
    await page.close();
  }
  await browser.close();
  const ref = path.join(stack.dir, 'reference.json');
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', ref, '--profile', stack.profile]);
  assert.equal(r.code, 0, r.stderr);
  good = fs.readFileSync(ref);
  // Time three warm ones and keep the fastest: the kills are spread over
  // [0, 1.3 × that]. One slow run (a loaded machine) would spread the kills
  // past the end of most harvests.
  const times = [];
  for (let i = 0; i < 3; i++) {
    const r2 = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', ref, '--profile', stack.profile]);
    assert.ok(fs.readFileSync(ref).equals(good), 'two harvests of unchanged storage differ');
    times.push(r2.ms);
  }
  harvestMs = Math.min(...times);
});

after(async () => {
  for (const s of servers) await s.close();
  await stack?.stop();
});

test('SIGKILL at random points of `harvest` (30 times or more): the file is absent or a complete good snapshot', async (t) => {
  const dir = fs.mkdtempSync(path.join(stack.dir, 'kill-'));
  const out = path.join(dir, 'storage-state.json');
  const targetsBefore = await pageTargets();
  const outcomes = { killed: 0, finished: 0, absent: 0, good: 0 };
  // At least 30 runs, and on until 10 of them were killed mid-way (a run
  // that finishes before its kill is a valid outcome, just not the one under
  // test); 100 runs at most.
  for (let i = 0; i < 100 && (i < 30 || outcomes.killed < 10); i++) {
    const delay = Math.floor(Math.random() * harvestMs * 1.3);
    const child = spawn(SNAPSHOT, ['harvest', '--cdp', stack.cdp, '--out', out, '--profile', stack.profile], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const timer = setTimeout(() => child.kill('SIGKILL'), delay);
    const { code, signal } = await exited;
    clearTimeout(timer);
    if (signal === 'SIGKILL') outcomes.killed++;
    else {
      assert.equal(code, 0, `run ${i} failed`);
      outcomes.finished++;
    }
    outcomes[checkFile(out, `after run ${i} (kill at ${delay} ms)`)]++;
    for (const n of strayTemps(dir)) assert.notEqual(path.join(dir, n), out);
  }
  const temps = strayTemps(dir);
  const targetsAfter = await pageTargets();
  t.diagnostic(`harvest ≈ ${harvestMs} ms; ${JSON.stringify(outcomes)}; temp files left by SIGKILL: ${temps.length}; page targets before ${targetsBefore}, after ${targetsAfter}`);
  assert.ok(outcomes.killed >= 10, `only ${outcomes.killed} runs were killed mid-way`);
  // A clean harvest afterwards still works and gives the same bytes.
  const r = await runSnapshot(['harvest', '--cdp', stack.cdp, '--out', out, '--profile', stack.profile]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(checkFile(out, 'after a clean run'), 'good');
  t.after(() => {
    // Reported, not failed on: a SIGKILL gives the process no chance to clean up.
    if (temps.length) t.diagnostic(`stray temp files: ${temps.join(' ')}`);
  });
});

test('a SIGKILLed harvest leaves no scratch target behind in the browser', async () => {
  // Kill many harvests mid-way, then count the page targets Chromium has.
  const before = await pageTargets();
  const dir = fs.mkdtempSync(path.join(stack.dir, 'leak-'));
  for (let i = 0; i < 10; i++) {
    const child = spawn(SNAPSHOT, ['harvest', '--cdp', stack.cdp, '--out', path.join(dir, 's.json'), '--profile', stack.profile], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    setTimeout(() => child.kill('SIGKILL'), Math.max(1, Math.floor(harvestMs * 0.6)));
    await exited;
  }
  // Chromium closes a dead client's scratch target as it notices the
  // disconnect, asynchronously: wait (with a deadline) for the count to settle.
  let afterKills;
  await waitFor('the page targets to return to their count before', async () => (afterKills = await pageTargets()) === before, { timeoutMs: 15_000 }).catch(() => {});
  assert.equal(afterKills, before, `page targets: ${before} before, ${afterKills} after 10 killed harvests`);
});

test('SIGKILL of `serve` during ?fresh=1 (10 times): the file is absent or a complete good snapshot', async (t) => {
  const dir = fs.mkdtempSync(path.join(stack.dir, 'serve-kill-'));
  const out = path.join(dir, 'storage-state.json');
  const outcomes = { absent: 0, good: 0 };
  for (let i = 0; i < 10; i++) {
    // --interval 1h: the start-up harvest runs at once; ?fresh=1 joins or starts another.
    const s = await startServe(['--cdp', stack.cdp, '--out', out, '--profile', stack.profile, '--interval', '1h'], {
      env: { CORRAL_SNAPSHOT_TOKEN: 'tok' },
    });
    const req = s.get('/api/snapshot?fresh=1', { authorization: 'Bearer tok' }).catch(() => null);
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * harvestMs * 1.3)));
    s.child.kill('SIGKILL');
    await s.exited;
    await req;
    outcomes[checkFile(out, `after serve kill ${i}`)]++;
  }
  t.diagnostic(`${JSON.stringify(outcomes)}; temp files left: ${strayTemps(dir).length}`);
});
