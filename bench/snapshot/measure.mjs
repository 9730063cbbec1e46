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
  const runHarvest = () =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      execFile(opt.snapshot, ['harvest', '--cdp', cdp, '--out', harvestOut, '--profile', profile], (err, _o, stderr) => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (err) reject(new Error(stderr));
        else resolve(ms);
      });
    });
  await runHarvest(); // warm-up (page cache, Chromium's renderer pool)
  const harvestMs = [];
  for (let i = 0; i < RUNS; i++) harvestMs.push(await runHarvest());
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

  const h = stats(harvestMs);
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
| \`corral-snapshot harvest --profile …\`, whole process | < 500 ms | ${f1(h.median)}${ok(h.median)} | ${f1(h.p95)} | ${f1(h.min)} / ${f1(h.max)} | ${harvestOrigins} | ${harvestKeys} |
| \`GET /api/snapshot?fresh=1\` round trip (\`serve\`) | < 500 ms | ${f1(fr.median)}${ok(fr.median)} | ${f1(fr.p95)} | ${f1(fr.min)} / ${f1(fr.max)} | ${freshOrigins} | |
| Playwright \`connectOverCDP\` + \`storageState({ indexedDB: true })\` |  | ${f1(pt.median)} | ${f1(pt.p95)} | ${f1(pt.min)} / ${f1(pt.max)} | ${pwOrigins} | ${pwKeys} |
| … of which \`storageState()\` alone |  | ${f1(ps.median)} | ${f1(ps.p95)} | ${f1(ps.min)} / ${f1(ps.max)} | | |

How the figures are made (bench/snapshot/measure.mjs):

- Chromium (\`${CHROMIUM}\`, persistent \`--user-data-dir\` in a temp dir) runs headful under its own Xvfb. Each origin is an HTTP server of the benchmark on a 127.0.0.1 port; a real page of it writes ${KEYS} localStorage keys (~80 chars each), ${IDB_RECORDS} IndexedDB records (with a Date and an index) and a cookie. Then the tabs are closed and Chromium is shut down with \`Browser.close\` and started again: only \`about:blank\` is open when measuring.
- **harvest**: wall time of \`corral-snapshot harvest --cdp … --out … --profile …\` from spawn to exit (connect, cookies, origin discovery from the profile, one hidden intercepted page reading each origin, atomic write).
- **?fresh=1**: \`corral-snapshot serve\` on the same browser; time from sending the request to the whole JSON body received.
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
