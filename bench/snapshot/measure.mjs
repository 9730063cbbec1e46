// bench/snapshot/measure.mjs: fresh-harvest latency of corral-snapshot against
// Playwright's storageState over connectOverCDP, on the same running browser
// and profile, with every tab closed (the seeds' situation). Run bench/snapshot/run.
//
//   node bench/snapshot/measure.mjs --snapshot target/release/corral-snapshot \
//        --version "…" --command "…" --out docs/benchmarks.md [--runs 10]

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    snapshot: { type: 'string' },
    version: { type: 'string', default: '' },
    command: { type: 'string', default: 'bench/snapshot/run' },
    out: { type: 'string' },
    runs: { type: 'string', default: '10' },
    origins: { type: 'string', default: '10' },
    keys: { type: 'string', default: '100' },
  },
});
const RUNS = Number(opt.runs);
const ORIGINS = Number(opt.origins);
const KEYS = Number(opt.keys);
const IDB_RECORDS = 5;
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
  '--no-default-browser-check', '--password-store=basic', '--disable-dev-shm-usage', '--disable-gpu', '--hide-crash-restore-bubble',
  '--window-size=1280,720', '--window-position=0,0'];

const log = (...a) => console.error('bench/snapshot:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { median: s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2, p95: q(0.95), min: s[0], max: s[s.length - 1] };
};
const f1 = (x) => x.toFixed(1);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-snapshot-'));
const profile = path.join(dir, 'profile');
let display = 1900 + (process.pid % 50);
while (fs.existsSync(`/tmp/.X11-unix/X${display}`)) display++;
const cdpPort = await freePort();
const cdp = `http://127.0.0.1:${cdpPort}`;
const children = [];
const spawnKid = (cmd, args, env = {}) => {
  const c = spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, ...env } });
  c.exitedP = new Promise((r) => c.once('exit', r));
  children.push(c);
  return c;
};
const servers = [];

async function cleanup() {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  for (const s of servers) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

try {
  const xvfb = spawnKid('Xvfb', [`:${display}`, '-screen', '0', '1280x720x24', '-nolisten', 'tcp']);
  await waitFor('Xvfb', () => fs.existsSync(`/tmp/.X11-unix/X${display}`));
  let browserProc;
  const startChromium = async () => {
    browserProc = spawnKid(CHROMIUM, [...FLAGS, `--remote-debugging-port=${cdpPort}`, `--user-data-dir=${profile}`, 'about:blank'], { DISPLAY: `:${display}` });
    await waitFor('chromium', async () => (await fetch(`${cdp}/json/version`)).ok);
  };
  await startChromium();

  // Seed: ORIGINS origins × KEYS localStorage keys + a few IndexedDB records, through real pages.
  for (let i = 0; i < ORIGINS; i++) {
    const s = http.createServer((q, r) => {
      r.writeHead(200, { 'content-type': 'text/html', 'set-cookie': `c${i}=v; Max-Age=86400; Path=/` });
      r.end('<!doctype html><link rel="icon" href="data:,"><p>bench');
    });
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
  }
  let browser = await chromium.connectOverCDP(cdp);
  for (const s of servers) {
    const page = await browser.contexts()[0].newPage();
    await page.goto(`http://127.0.0.1:${s.address().port}/`);
    await page.evaluate(async ({ keys, records }) => {
      for (let k = 0; k < keys; k++) localStorage.setItem(`key-${k}`, `value ${k} `.repeat(8));
      const db = await new Promise((resolve, reject) => {
        const r = indexedDB.open('bench', 1);
        r.onupgradeneeded = () => r.result.createObjectStore('items', { keyPath: 'id' }).createIndex('by_name', 'name');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const tx = db.transaction('items', 'readwrite');
      for (let n = 0; n < records; n++) tx.objectStore('items').put({ id: n, name: `item ${n}`, at: new Date(n * 1e9), tags: ['a', 'b'] });
      await new Promise((r) => (tx.oncomplete = r));
      db.close();
    }, { keys: KEYS, records: IDB_RECORDS });
    await page.close();
  }
  // Close every seeding tab, then restart Chromium cleanly (Browser.close writes
  // the cookie store; SIGTERM does not), so nothing is open but about:blank.
  const session = await browser.newBrowserCDPSession();
  await session.send('Browser.close').catch(() => {});
  await browser.close().catch(() => {});
  await browserProc.exitedP;
  await startChromium();
  const openPages = (await (await fetch(`${cdp}/json/list`)).json()).filter((t) => t.type === 'page').map((t) => t.url);
  log(`seeded ${ORIGINS} origins; open pages after restart: ${openPages.join(' ')}`);

  // 1. corral-snapshot harvest, as a whole process.
  const harvestOut = path.join(dir, 'harvest.json');
  const runHarvest = (extra = []) =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const out = extra.length ? `${harvestOut}.each` : harvestOut;
      execFile(opt.snapshot, ['harvest', '--cdp', cdp, '--out', out, '--profile', profile, ...extra], (err, _o, stderr) => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (err) reject(new Error(stderr));
        else resolve(ms);
      });
    });
  await runHarvest(); // warm-up (page cache, Chromium's renderer pool)
  // Interleaved with the original path (one navigation per origin, kept as
  // --navigate-each-origin), so both see the same machine load.
  const harvestMs = [];
  const eachMs = [];
  for (let i = 0; i < RUNS; i++) {
    harvestMs.push(await runHarvest());
    eachMs.push(await runHarvest(['--navigate-each-origin']));
  }
  const eachSame = fs.readFileSync(harvestOut, 'utf8') === fs.readFileSync(`${harvestOut}.each`, 'utf8');
  const harvested = JSON.parse(fs.readFileSync(harvestOut, 'utf8'));
  const harvestOrigins = harvested.origins.filter((o) => o.localStorage.length || o.indexedDB?.length).length;
  const harvestKeys = harvested.origins.reduce((n, o) => n + o.localStorage.length, 0);
  log(`harvest: ${harvestMs.map(f1).join(' ')} ms; ${harvestOrigins} origins`);

  // 2. serve ?fresh=1 round trip.
  const servePort = await freePort();
  const serve = spawnKid(opt.snapshot, ['serve', '--listen', `127.0.0.1:${servePort}`, '--cdp', cdp, '--out', path.join(dir, 'serve.json'),
    '--profile', profile, '--interval', '1h'], { CORRAL_SNAPSHOT_TOKEN: 'bench-token' });
  const auth = { authorization: 'Bearer bench-token' };
  await waitFor('serve', async () => (await fetch(`http://127.0.0.1:${servePort}/api/snapshot`, { headers: auth })).status === 200);
  const freshMs = [];
  let freshOrigins = 0;
  for (let i = 0; i <= RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const r = await fetch(`http://127.0.0.1:${servePort}/api/snapshot?fresh=1`, { headers: auth });
    const body = await r.json();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 200) throw new Error(`?fresh=1: ${r.status}`);
    freshOrigins = body.origins.length;
    if (i > 0) freshMs.push(ms); // the first is the warm-up
  }
  serve.kill('SIGTERM');
  log(`fresh: ${freshMs.map(f1).join(' ')} ms; ${freshOrigins} origins`);

  // 3. Playwright: connectOverCDP + context.storageState({ indexedDB: true }), as the seeds' harvester did.
  const pwTotal = [];
  const pwState = [];
  let pwOrigins = 0;
  let pwKeys = 0;
  for (let i = 0; i <= RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const b = await chromium.connectOverCDP(cdp);
    const t1 = process.hrtime.bigint();
    const state = await b.contexts()[0].storageState({ indexedDB: true });
    const t2 = process.hrtime.bigint();
    await b.close();
    pwOrigins = state.origins.length;
    pwKeys = state.origins.reduce((n, o) => n + o.localStorage.length, 0);
    if (i > 0) {
      pwTotal.push(Number(t2 - t0) / 1e6);
      pwState.push(Number(t2 - t1) / 1e6);
    }
  }
  log(`playwright: ${pwTotal.map(f1).join(' ')} ms; ${pwOrigins} origins`);

  // 4. The cookie journal's CPU: `corral-snapshot journal` (500 ms poll, as
  // under corral) on this browser, idle and with 10 cookie changes a second.
  const journalFile = path.join(dir, 'journal', 'cookies.journal.json');
  const clkTck = 100; // USER_HZ on Linux
  const cpuOf = (pid) => {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / clkTck; // utime + stime, seconds
  };
  const chromiumCpu = () => {
    // The browser and all its helpers (Chromium's processes are its descendants).
    const kids = (pid) => fs.readdirSync(`/proc/${pid}/task`).flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    let total = 0;
    const walk = (pid) => {
      try {
        total += cpuOf(pid);
        kids(pid).forEach(walk);
      } catch {}
    };
    walk(browserProc.pid);
    return total;
  };
  const WINDOW_S = Number(process.env.JOURNAL_WINDOW_S ?? 30);
  const journalArgs = ['--cdp', cdp, '--file', journalFile, '--profile', profile];
  const measureWindow = async (journalPid, changesPerSecond) => {
    const b = changesPerSecond ? await chromium.connectOverCDP(cdp) : null;
    const s = b && (await b.newBrowserCDPSession());
    const c0 = journalPid ? cpuOf(journalPid) : 0;
    const k0 = chromiumCpu();
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < WINDOW_S * 1000) {
      if (s) {
        await s.send('Storage.setCookies', { cookies: [{ name: 'churn', value: String(n++), domain: '127.0.0.1', path: '/', expires: Date.now() / 1000 + 3600 }] });
        await sleep(1000 / changesPerSecond);
      } else await sleep(200);
    }
    const secs = (Date.now() - t0) / 1000;
    const out = { journal: journalPid ? ((cpuOf(journalPid) - c0) / secs) * 3600 : 0, chromium: ((chromiumCpu() - k0) / secs) * 3600, changes: n };
    if (b) await b.close();
    return out;
  };
  const base = await measureWindow(null, 0);
  const journal = spawn(opt.snapshot, ['journal', ...journalArgs, '--interval', '500ms'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CORRAL_LOG: 'debug' } });
  let journalLog = '';
  journal.stderr.on('data', (d) => (journalLog += d));
  children.push(journal);
  await waitFor('the first journal', () => fs.existsSync(journalFile));
  const written = () => (journalLog.match(/cookie journal written/g) ?? []).length;
  const idleStart = written();
  const idle = await measureWindow(journal.pid, 0);
  const writes0 = written();
  const idleWrites = writes0 - idleStart;
  const busy = await measureWindow(journal.pid, 10);
  const busyWrites = (journalLog.match(/cookie journal written/g) ?? []).length - writes0;
  log(`journal cpu s/h: idle ${f1(idle.journal)}, 10 changes/s ${f1(busy.journal)} (${busyWrites} writes); chromium ${f1(base.chromium)} / ${f1(idle.chromium)} / ${f1(busy.chromium)}`);

  // 5. Restore on start: cookies the store does not have yet (set just now,
  // journaled), Chromium SIGKILLed, started again; time `replay` (Chromium's
  // readiness check under corral) from spawn to exit.
  // The journal program would replay too on reconnecting; it is stopped
  // before each kill so the timed replay is the one that works.
  journal.kill('SIGTERM');
  await new Promise((r) => journal.once('exit', r));
  const replayMs = [];
  const replayOwn = [];
  let restored = 0;
  for (let i = 0; i < Math.min(RUNS, 5); i++) {
    const j = spawn(opt.snapshot, ['journal', ...journalArgs, '--interval', '500ms'], { stdio: 'ignore' });
    children.push(j);
    const b = await chromium.connectOverCDP(cdp);
    const s = await b.newBrowserCDPSession();
    const fresh = [...Array(20).keys()].map((k) => ({ name: `r${i}_${k}`, value: 'v', domain: '127.0.0.1', path: '/', expires: Date.now() / 1000 + 3600 }));
    await s.send('Storage.setCookies', { cookies: fresh });
    await b.close();
    await waitFor('the journal to hold the new cookies', () => fs.readFileSync(journalFile, 'utf8').includes(`r${i}_19`));
    j.kill('SIGTERM');
    await new Promise((r) => j.once('exit', r));
    browserProc.kill('SIGKILL');
    await browserProc.exitedP;
    await startChromium();
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) =>
      execFile(opt.snapshot, ['replay', ...journalArgs], (err, _o, stderr) => (err ? reject(new Error(stderr)) : resolve())),
    );
    replayMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    replayOwn.push(Number(/replay_seconds ([0-9.]+)/.exec(fs.readFileSync(`${journalFile}.prom`, 'utf8'))[1]) * 1000);
    const b2 = await chromium.connectOverCDP(cdp);
    const names = (await (await b2.newBrowserCDPSession()).send('Storage.getCookies')).cookies.map((c) => c.name);
    await b2.close();
    restored += fresh.filter((c) => names.includes(c.name)).length;
  }
  log(`replay: ${replayMs.map(f1).join(' ')} ms; ${restored} of ${replayMs.length * 20} cookies back`);

  const h = stats(harvestMs);
  const he = stats(eachMs);
  const rp = stats(replayMs);
  const ro = stats(replayOwn);
  const fr = stats(freshMs);
  const pt = stats(pwTotal);
  const ps = stats(pwState);
  const chromiumVersion = (await (await fetch(`${cdp}/json/version`)).json()).Browser;
  const ok = (x) => (x < 500 ? ' ✅' : ' ❌');
  const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
  const section = `<!-- bench:snapshot:start (generated by bench/snapshot/run; edits here are overwritten) -->
## snapshot

A fresh storage-state harvest of a profile with ${ORIGINS} origins × ${KEYS} localStorage
keys and ${IDB_RECORDS} IndexedDB records each, all tabs closed and Chromium restarted since
(the seeds' situation): corral-snapshot against Playwright's
\`context.storageState({ indexedDB: true })\` over \`chromium.connectOverCDP\`, on the same
running browser and profile, in one run.

- command: \`${opt.command}\`
- date: ${date} UTC
- machine: ${os.cpus().length} CPUs (nproc ${os.availableParallelism?.() ?? os.cpus().length}), Linux ${os.release()}, ${os.arch()}; load average at the start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine shows up as outliers)
- ${opt.version}; ${chromiumVersion} (Debian, headful under Xvfb); playwright-core ${JSON.parse(fs.readFileSync(new URL('./node_modules/playwright-core/package.json', import.meta.url))).version}; node ${process.version}

| measure (${RUNS} runs after one warm-up) | goal | median ms | p95 ms | min / max ms | origins found (of ${ORIGINS}) | localStorage keys found |
|---|---|---|---|---|---|---|
| \`corral-snapshot harvest --profile …\`, whole process | < 100 ms | ${f1(h.median)}${h.median < 100 ? ' ✅' : ' ❌'} | ${f1(h.p95)} | ${f1(h.min)} / ${f1(h.max)} | ${harvestOrigins} | ${harvestKeys} |
| … the previous implementation (\`--navigate-each-origin\`: one navigation per origin), same runs interleaved${eachSame ? ', byte-identical output' : ', OUTPUT DIFFERS'} |  | ${f1(he.median)} | ${f1(he.p95)} | ${f1(he.min)} / ${f1(he.max)} | | |
| \`GET /api/snapshot?fresh=1\` round trip (\`serve\`) | < 500 ms | ${f1(fr.median)}${ok(fr.median)} | ${f1(fr.p95)} | ${f1(fr.min)} / ${f1(fr.max)} | ${freshOrigins} | |
| Playwright \`connectOverCDP\` + \`storageState({ indexedDB: true })\` |  | ${f1(pt.median)} | ${f1(pt.p95)} | ${f1(pt.min)} / ${f1(pt.max)} | ${pwOrigins} | ${pwKeys} |
| … of which \`storageState()\` alone |  | ${f1(ps.median)} | ${f1(ps.p95)} | ${f1(ps.min)} / ${f1(ps.max)} | | |

Cookie journal (\`corral-snapshot journal --interval 500ms\`, as under corral), CPU over ${WINDOW_S} s windows, as seconds of CPU per hour:

| measure | journal process, CPU s/h | Chromium (all processes), CPU s/h | journal writes |
|---|---|---|---|
| no journal running (baseline) | | ${f1(base.chromium)} | |
| idle (no cookie changes) | ${f1(idle.journal)} | ${f1(idle.chromium)} | ${idleWrites} |
| ~10 cookie changes per second (\`Storage.setCookies\`, then 100 ms; ${busy.changes} changes in ${WINDOW_S} s) | ${f1(busy.journal)} | ${f1(busy.chromium)} | ${busyWrites} (at most one per 500 ms poll) |

Restore on start (Chromium SIGKILLed with 20 journaled cookies its store lacks, started again, \`corral-snapshot replay\` run once DevTools answers; ${replayMs.length} runs): whole process median ${f1(rp.median)} ms (min ${f1(rp.min)}, max ${f1(rp.max)}), of which the replay command's own time (connect, cookie-store read, CDP calls; from its FILE.prom) median ${f1(ro.median)} ms; ${restored} of ${replayMs.length * 20} cookies back.

How the figures are made (bench/snapshot/measure.mjs):

- Chromium (\`${CHROMIUM}\`, persistent \`--user-data-dir\` in a temp dir) runs headful under its own Xvfb. Each origin is an HTTP server of the benchmark on a 127.0.0.1 port; a real page of it writes ${KEYS} localStorage keys (~80 chars each), ${IDB_RECORDS} IndexedDB records (with a Date and an index) and a cookie. Then the tabs are closed and Chromium is shut down with \`Browser.close\` and started again: only \`about:blank\` is open when measuring.
- **harvest**: wall time of \`corral-snapshot harvest --cdp … --out … --profile …\` from spawn to exit (connect, cookies, origin discovery from the profile, one hidden intercepted page reading each origin, atomic write).
- **?fresh=1**: \`corral-snapshot serve\` on the same browser; time from sending the request to the whole JSON body received.
- **journal CPU**: utime + stime of the \`corral-snapshot journal\` process (and, for Chromium, of the browser process and all its descendants) from /proc over each window, scaled to an hour; clock ticks are 10 ms, so the idle figure is only as fine as that over ${WINDOW_S} s. The Chromium column shows what the 500 ms \`Storage.getCookies\` poll costs the browser (idle row against the baseline) on a machine with other work: read it as an order of magnitude.
- **Playwright**: a new \`connectOverCDP\` each time, as the seeds' hourly harvester did, then \`browser.contexts()[0].storageState({ indexedDB: true })\`. Playwright reads storage only of origins it saw in its own connection, so with no tab open it finds ${pwOrigins} of the ${ORIGINS} origins.
<!-- bench:snapshot:end -->`;

  let doc = fs.existsSync(opt.out) ? fs.readFileSync(opt.out, 'utf8') : '# Benchmarks\n';
  const re = /<!-- bench:snapshot:start[\s\S]*?<!-- bench:snapshot:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(opt.out, doc);
  console.log(section);
  void xvfb;
} finally {
  await cleanup();
}
