// The cookie journal against a real Chromium under corral, killed for real:
// SIGKILL of corral, PID 1 of its namespace (every process dies with it, as
// in an OOM kill or a power cut), then corral started again on the same
// profile. Chromium writes its cookie store at most every 30 s, so without
// the journal a cookie set 2 s before the kill is lost and one deleted 2 s
// before comes back. Checked with Playwright over CDP after each restart,
// 20 times; then that a journal older than the cookie store is not applied,
// and that a launch is replayed once only (the journal program starting
// after a client changed cookies does not undo the change).
// The stack is the product's: Xvfb with `corral prep-x11` (the kill leaves
// its lock), Chromium ready only after `corral-snapshot replay`, and the
// `corral-snapshot journal` program.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Stack, originServer, waitFor, freeDisplay, SNAPSHOT, BIN } from './lib/stack.mjs';
import { xvfbChromium, toml } from '../lib/common.mjs';

const ROUNDS = Number(process.env.JOURNAL_ROUNDS ?? 20);
let fields; // what a Stack is made of; the same for every launch
let stack;
let site;
let journal;

async function launch() {
  stack = new Stack(fields);
  await stack.launch(async () => {
    await stack.waitCdp();
    await waitFor('chromium to be ready (journal replayed)', async () => {
      const [st] = JSON.parse(await stack.ctl('--json', 'status', 'chromium'));
      return st.ready;
    }, { timeoutMs: 60_000 });
  });
}

/** SIGKILL of corral: the namespace goes with it. Nothing is shut down. */
async function killNamespace() {
  process.kill(stack.corralPid, 'SIGKILL');
  await stack.exited;
}

async function cookies() {
  const browser = await chromium.connectOverCDP(stack.cdp);
  try {
    const s = await browser.newBrowserCDPSession();
    return Object.fromEntries((await s.send('Storage.getCookies')).cookies.map((c) => [c.name, c.value]));
  } finally {
    await browser.close();
  }
}

/** Runs `fn(page)` in a new tab on the site, then closes it. */
async function onSite(fn) {
  const browser = await chromium.connectOverCDP(stack.cdp);
  try {
    const page = await browser.contexts()[0].newPage();
    await page.goto(`${site.origin}/page?name=journal`);
    await page.evaluate(fn);
    await page.close();
  } finally {
    await browser.close();
  }
}

const prom = () => {
  try {
    return Object.fromEntries(
      fs
        .readFileSync(`${journal}.prom`, 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split(' '))
        .map(([k, v]) => [k.replace('corral_snapshot_journal_replay_', ''), Number(v)]),
    );
  } catch {
    return {};
  }
};

before(async () => {
  const display = freeDisplay();
  const base = await xvfbChromium({ suite: 'snapshot', name: 'journal', display, stopTimeout: '10s' });
  journal = path.join(base.dir, 'snapshots', 'cookies.journal.json');
  const jargs = ['--cdp', `http://127.0.0.1:${base.upstream}`, '--file', journal, '--profile', base.profile];
  const cfg = base.cfg
    .replace('[programs.xvfb]\n', `[programs.xvfb]\npre_start = ${toml([path.join(BIN, 'corral'), 'prep-x11', `:${display}`])}\n`)
    .replace(
      `ready = { tcp = "127.0.0.1:${base.upstream}", timeout = "60s" }`,
      `ready = { exec = ${toml([SNAPSHOT, 'replay', ...jargs])}, timeout = "60s" }`,
    ) +
    `pre_stop = ${toml([path.join(BIN, 'corral-cdp'), 'close-browser', '--upstream', `127.0.0.1:${base.upstream}`, '--timeout', '6s'])}
stop_signal = "TERM"
kill_mode = "mixed"
stop_timeout = "15s"

[programs.journal]
command = ${toml([SNAPSHOT, 'journal', ...jargs, '--interval', '500ms'])}
depends_on = ["chromium"]
restart = "always"
`;
  assert.match(cfg, /replay/);
  fs.writeFileSync(base.config, cfg);
  fields = { name: 'journal', dir: base.dir, display, upstream: base.upstream, profile: base.profile, socket: base.socket, config: base.config };
  site = await originServer();
  await launch();
  // Cookies to delete later, one per round, in the cookie store on disk
  // (Browser.close writes it), so that without the journal they come back.
  await onSite(`(() => { for (let i = 0; i < ${ROUNDS}; i++) document.cookie = 'del_' + i + '=1; max-age=86400; path=/'; })()`);
  await stack.closeBrowserAndWaitRestart();
  const c = await cookies();
  assert.equal(c.del_0, '1', 'seed cookies not kept over a clean restart');
});

after(async () => {
  await site?.close().catch(() => {});
  await stack?.stop();
});

test(`a cookie set 2 s before SIGKILL of the namespace is there after the restart, one deleted stays deleted (${ROUNDS} of ${ROUNDS})`, async () => {
  const results = [];
  let applied = 0;
  for (let i = 0; i < ROUNDS; i++) {
    await onSite(`(() => {
      document.cookie = 'set_${i}=v${i}; max-age=86400; path=/';
      document.cookie = 'del_${i}=; max-age=0; path=/';
    })()`);
    // The scenario, not a synchronisation: the change is 2 s old at the kill.
    await new Promise((r) => setTimeout(r, 2_000));
    const killedAt = Date.now() / 1000;
    await killNamespace();
    await launch();
    const c = await cookies();
    const p = prom();
    if (process.env.JOURNAL_DEBUG) console.log(fs.readFileSync(`${journal}.prom`, 'utf8').split('\n')[0], JSON.stringify(c));
    // Applied by this start, and it had work to do: the store still held
    // the deleted cookie and lacked the new one (so without the journal
    // this round would have failed).
    if (p.applied === 1 && p.timestamp_seconds > killedAt && p.cookies_set >= 1 && p.cookies_deleted >= 1) applied++;
    const missing = [...Array(i + 1).keys()].filter((j) => c[`set_${j}`] !== `v${j}`).map((j) => `set_${j}`);
    const back = [...Array(i + 1).keys()].filter((j) => `del_${j}` in c).map((j) => `del_${j}`);
    results.push({ round: i, missing, back });
  }
  const bad = results.filter((r) => r.missing.length || r.back.length);
  assert.deepEqual(bad, [], `rounds with lost or resurrected cookies: ${JSON.stringify(bad)}`);
  // Chromium's own 30 s write may land inside the 2 s now and then; then the
  // store is newer and the journal rightly stays unapplied. Most rounds must
  // be the journal's doing, or this test did not test it.
  assert.ok(applied >= ROUNDS / 2, `the journal was replayed in only ${applied} of ${ROUNDS} restarts`);
  console.log(`journal replayed in ${applied} of ${ROUNDS} restarts; ${ROUNDS - bad.length}/${ROUNDS} rounds exact`);
});

test('a journal older than the cookie store is not applied (a newer cookie is not deleted)', async () => {
  await stack.ctl('stop', 'journal');
  await onSite(`(() => { document.cookie = 'newer=1; max-age=86400; path=/'; })()`);
  // Browser.close writes the store: now newer than the journal, which lacks "newer".
  await stack.closeBrowserAndWaitRestart();
  await waitFor('chromium ready again', async () => JSON.parse(await stack.ctl('--json', 'status', 'chromium'))[0].ready);
  const killedAt = Date.now() / 1000;
  await killNamespace();
  await launch();
  const c = await cookies();
  assert.equal(c.newer, '1', 'the stale journal deleted a cookie the profile held');
  const p = prom();
  assert.ok(p.timestamp_seconds > killedAt, 'the replay did not record itself');
  assert.equal(p.applied, 0);
});

test('a replay happens once per Chromium launch: the journal program starting later does not undo what a client did since', async () => {
  const journaled = (name) => (fs.existsSync(journal) ? JSON.parse(fs.readFileSync(journal, 'utf8')).cookies.some((c) => c.name === name) : false);
  await onSite(`(() => { document.cookie = 'early=1; max-age=86400; path=/'; })()`);
  await waitFor('the journal to hold the cookie "early"', async () => journaled('early'), { timeoutMs: 10_000 });
  await stack.ctl('stop', 'journal');
  // An unclean Chromium exit: its store lacks "early", the journal has it,
  // so Chromium's readiness check replays the journal (and marks the launch).
  const old = (await stack.json('/json/version')).webSocketDebuggerUrl;
  await stack.ctl('signal', 'KILL', 'chromium');
  await waitFor('a new Chromium, ready', async () => {
    const v = await stack.json('/json/version').catch(() => null);
    const [st] = JSON.parse(await stack.ctl('--json', 'status', 'chromium'));
    return v && v.webSocketDebuggerUrl !== old && st.ready;
  }, { timeoutMs: 60_000, intervalMs: 100 });
  const replayed = fs.readFileSync(`${journal}.replayed`, 'utf8');
  const now = (await stack.json('/json/version')).webSocketDebuggerUrl;
  assert.ok(now.endsWith(`/${replayed}`) && !old.endsWith(`/${replayed}`), `the marker (${replayed}) names the new launch (${now})`);
  assert.equal((await cookies()).early, '1', 'the readiness replay brought "early" back');
  // A client changes cookies after Chromium is ready; then the journal
  // program starts (as after its own restart) with a journal lacking them.
  await onSite(`(() => { document.cookie = 'late=1; max-age=86400; path=/'; document.cookie = 'early=; max-age=0; path=/'; })()`);
  await stack.ctl('start', 'journal');
  await waitFor('the journal to record the client\'s change', async () => journaled('late') && !journaled('early'), { timeoutMs: 10_000 });
  const c = await cookies();
  assert.equal(c.late, '1', 'the journal program replayed an old journal over a cookie set after the start');
  assert.ok(!('early' in c), 'the journal program brought back a cookie deleted after the start');
});
