// The headful image end to end, in real podman containers sharing one volume:
//
//   A (hostname corral-e2e-a): cold start → Playwright sets cookies and
//     localStorage → `corralctl restart chromium` keeps them → the snapshot
//     endpoint serves them (token; 401 without) → `podman stop` (SIGTERM) is
//     clean, ordered, exit 0, well within the grace.
//   B (corral-e2e-b, same volume): Chromium starts on A's profile and the data is
//     there → kill -9 Xvfb: x11vnc and chromium come back, noVNC shows a screen
//     → x11vnc's nofile is capped → 100 random SIGKILLs → no zombies → stop
//     leaves no process behind.
//   C (corral-e2e-c, same volume): the profile still opens and reads the cookie.
//
// The steps depend on each other and run in order (one file, one describe).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import WebSocket from 'ws';
import { ORIGIN, chromium, connect, openPage, readBack } from './lib/browser.mjs';
import {
  HEADFUL,
  cleanup,
  get,
  hostPids,
  inspect,
  logs,
  metrics,
  podman,
  runContainer,
  sh,
  status,
  stopContainer,
  waitFor,
  waitReady,
} from './lib/podman.mjs';

const ID = `${process.pid}`;
const VOLUME = `corral-e2e-${ID}`;
const NAMES = { a: `corral-e2e-${ID}-a`, b: `corral-e2e-${ID}-b`, c: `corral-e2e-${ID}-c` };
const TOKEN = `e2e-token-${ID}-${Math.random().toString(36).slice(2)}`;
const VIEW_TOKEN = `${TOKEN}-view`;
// Every listener's token through the environment, as a Secret would give them.
const TOKENS = { CORRAL_SNAPSHOT_TOKEN: TOKEN, CORRAL_CDP_TOKEN: TOKEN, CORRAL_LIVE_TOKEN: TOKEN, CORRAL_LIVE_VIEW_TOKEN: VIEW_TOKEN };
const PORTS = [9222, 9100, 6080, 8088];
const PROGRAMS = ['xvfb', 'chromium', 'x11vnc', 'novnc', 'journal', 'cdp', 'snapshot', 'api'];
const CHAOS_KILLS = Number(process.env.CHAOS_KILLS ?? 100);
const SHOTS = process.env.E2E_OUT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'corral-e2e-'));

const run = (key) =>
  runContainer({
    name: NAMES[key],
    image: HEADFUL,
    volume: VOLUME,
    hostname: `corral-e2e-${key}`,
    env: TOKENS,
    ports: PORTS,
  });

/** The status code of one raw HTTP exchange with 127.0.0.1:port. */
function rawStatus(port, request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
    let data = '';
    sock.on('data', (d) => (data += d));
    sock.on('end', () => resolve(Number(data.split(' ')[1])));
    sock.on('error', reject);
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer in 10 s')));
  });
}

const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const expires = () => Math.floor(Date.now() / 1000) + 86_400;

// What the profile should hold after the seeding step.
const DATA = {
  cookieFromResponse: 'e2e_session', // Set-Cookie on a route-fulfilled response
  cookieAdded: 'e2e_added', // context.addCookies
  lsKey: 'e2e_key',
  lsValue: `stored-${ID}`,
};

/** Chromium has written this cookie's row to its SQLite file (committed every ~30 s, or on a graceful exit). */
const cookieOnDisk = (c, name) =>
  sh(c.name, `cat /data/profile/Default/Cookies /data/profile/Default/Network/Cookies 2>/dev/null | grep -ac '${name}' || true`).then(
    (n) => Number(n) > 0,
  );
/** The localStorage key has reached the leveldb (commits lag ~5 s). */
const lsOnDisk = (c, key) =>
  sh(c.name, `cat '/data/profile/Default/Local Storage/leveldb/'* 2>/dev/null | grep -ac '${key}' || true`).then(
    (n) => Number(n) > 0,
  );

function assertData(got, label) {
  assert.equal(got.cookies[DATA.cookieFromResponse]?.value, 'from-response', `${label}: cookie set by a response`);
  assert.equal(got.cookies[DATA.cookieAdded]?.value, 'from-addCookies', `${label}: cookie added over CDP`);
  assert.match(got.documentCookie, /e2e_session=from-response/, `${label}: document.cookie`);
  assert.equal(got.localStorage[DATA.lsKey], DATA.lsValue, `${label}: localStorage`);
}

/** Stop lines after "shutting down", in order: [program…]. */
function stopOrder(text) {
  const from = text.lastIndexOf('shutting down');
  assert.ok(from >= 0, 'corral logged "shutting down"');
  return [...text.slice(from).matchAll(/INFO stopped(?: \([^)]*\))? program=(\S+)/g)].map((m) => m[1]);
}

function assertReverseOrder(order) {
  assert.deepEqual([...order].sort(), [...PROGRAMS].sort(), `every program stopped once: ${order}`);
  const before = (a, b) => assert.ok(order.indexOf(a) < order.indexOf(b), `${a} stopped before ${b}: ${order}`);
  before('snapshot', 'chromium'); // depends_on
  before('chromium', 'xvfb'); // binds_to
  before('x11vnc', 'xvfb'); // binds_to
  before('novnc', 'x11vnc'); // depends_on
}

describe('headful image in real containers', { timeout: 25 * 60_000 }, () => {
  let A, B, C;

  before(async () => {
    await podman(['image', 'exists', HEADFUL]).catch(() => {
      throw new Error(`${HEADFUL} is missing: run scripts/build-images`);
    });
    await cleanup({ containers: Object.values(NAMES), volumes: [VOLUME] });
    await podman(['volume', 'create', VOLUME]);
  });

  after(async () => {
    if (process.env.KEEP_CONTAINERS) return;
    await cleanup({ containers: Object.values(NAMES), volumes: [VOLUME] });
  });

  it('cold start: /readyz 200, every program RUNNING, HEALTHCHECK passes', async (t) => {
    const t0 = Date.now();
    A = await run('a');
    await waitReady(A, 90_000);
    const ms = Date.now() - t0;
    t.diagnostic(`cold start (podman run → /readyz 200): ${secs(ms)}`);
    const st = await status(A.name);
    for (const p of PROGRAMS) assert.equal(st[p]?.state, 'RUNNING', `${p}: ${JSON.stringify(st[p])}`);
    assert.match(await inspect(A.name, '{{.Config.StopSignal}}'), /^(15|SIGTERM|TERM)$/);
    await podman(['healthcheck', 'run', A.name]); // corralctl health, exit 0
    // The user and the volume: Chromium runs as `browser`, which owns /data.
    assert.equal(await sh(A.name, 'ps -o user= -p "$(corralctl pid chromium)"'), 'browser');
    assert.equal(await sh(A.name, 'stat -c %U /data /data/profile | sort -u'), 'browser');
  });

  it('Playwright over the published :9222 sets cookies and localStorage', async () => {
    const browser = await connect(A.url(9222), TOKEN);
    try {
      const { context, page } = await openPage(browser, {
        setCookies: [`${DATA.cookieFromResponse}=from-response; Path=/; Max-Age=86400`],
      });
      await context.addCookies([
        { name: DATA.cookieAdded, value: 'from-addCookies', domain: 'corral-e2e.test', path: '/', expires: expires() },
      ]);
      await page.evaluate(([k, v]) => localStorage.setItem(k, v), [DATA.lsKey, DATA.lsValue]);
      assertData(await readBack(browser), 'before any restart');
    } finally {
      await browser.close(); // a CDP connection: closes the connection, not the browser
    }
  });

  it('the data reaches the profile on disk (cookies ≤ ~30 s, localStorage ≤ ~5 s)', async (t) => {
    // How long Chromium keeps writes in memory (the stop paths that must flush
    // them are tested next). The restart test below then runs on committed data.
    const t0 = Date.now();
    await waitFor('localStorage in leveldb', () => lsOnDisk(A, DATA.lsValue), { timeoutMs: 20_000, intervalMs: 500 });
    const tLs = Date.now() - t0;
    await waitFor('cookies in the Cookies file', async () => (await cookieOnDisk(A, DATA.cookieFromResponse)) && cookieOnDisk(A, DATA.cookieAdded), {
      timeoutMs: 45_000,
      intervalMs: 500,
    });
    t.diagnostic(`on disk: localStorage after ${secs(tLs)}, cookies after ${secs(Date.now() - t0)}`);
  });

  it('`corralctl restart chromium` keeps cookies and localStorage', async (t) => {
    const before = (await status(A.name)).chromium.pid;
    const t0 = Date.now();
    await podman(['exec', A.name, 'corralctl', 'restart', 'chromium']);
    t.diagnostic(`corralctl restart chromium: ${secs(Date.now() - t0)}`);
    assert.notEqual((await status(A.name)).chromium.pid, before);
    await waitReady(A);
    const browser = await connect(A.url(9222), TOKEN);
    try {
      assertData(await readBack(browser), 'after corralctl restart chromium');
    } finally {
      await browser.close();
    }
  });

  // Chromium stops through `pre_stop = corral-cdp close-browser` (Browser.close,
  // a graceful shutdown that commits everything); SIGTERM alone would lose them.
  it('writes made just before `corralctl restart chromium` survive it', async (t) => {
    const browser = await connect(A.url(9222), TOKEN);
    const { context, page } = await openPage(browser, { setCookies: ['e2e_late_response=late; Path=/; Max-Age=86400'] });
    await context.addCookies([
      { name: 'e2e_late_added', value: 'late', domain: 'corral-e2e.test', path: '/', expires: expires() },
    ]);
    await page.evaluate(() => localStorage.setItem('e2e_late', 'late'));
    await browser.close();
    const t0 = Date.now();
    await podman(['exec', A.name, 'corralctl', 'restart', 'chromium']);
    t.diagnostic(`corralctl restart chromium right after the writes: ${secs(Date.now() - t0)}`);
    await waitReady(A);
    const b2 = await connect(A.url(9222), TOKEN);
    try {
      const got = await readBack(b2);
      const kept = {
        localStorage: got.localStorage.e2e_late === 'late',
        cookieFromResponse: got.cookies.e2e_late_response?.value === 'late',
        cookieFromAddCookies: got.cookies.e2e_late_added?.value === 'late',
      };
      t.diagnostic(`kept across the restart: ${JSON.stringify(kept)}`);
      assert.deepEqual(kept, { localStorage: true, cookieFromResponse: true, cookieFromAddCookies: true });
    } finally {
      await b2.close();
    }
  });

  it('the snapshot endpoint serves them with the token (?fresh=1), 401 without', async () => {
    const url = A.url(8088, '/api/snapshot?fresh=1');
    assert.equal((await get(url))?.status, 401, 'no token');
    assert.equal((await get(url, { headers: { Authorization: 'Bearer wrong' } }))?.status, 401, 'wrong token');
    const r = await get(url, { headers: { Authorization: `Bearer ${TOKEN}` }, timeoutMs: 60_000 });
    assert.equal(r?.status, 200, r?.text);
    const state = JSON.parse(r.text);
    const cookies = Object.fromEntries(state.cookies.map((c) => [c.name, c]));
    assert.equal(cookies[DATA.cookieFromResponse]?.value, 'from-response');
    assert.equal(cookies[DATA.cookieAdded]?.domain, 'corral-e2e.test');
    const origin = state.origins.find((o) => o.origin === ORIGIN);
    assert.ok(origin, `origin ${ORIGIN} in ${JSON.stringify(state.origins.map((o) => o.origin))}`);
    assert.deepEqual(
      origin.localStorage.find((e) => e.name === DATA.lsKey),
      { name: DATA.lsKey, value: DATA.lsValue },
    );
  });

  it('from outside: every port refuses without its token and refuses web Origins; the view token logs in; x11vnc wants a password; no token in the logs', async (t) => {
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    assert.equal((await get(A.url(9222, '/json/version')))?.status, 401, 'CDP without the token');
    assert.equal((await get(A.url(9222, '/json/version'), { headers: bearer }))?.status, 200, 'CDP with it');
    assert.equal((await get(A.url(9222, `/json/version?token=${TOKEN}`)))?.status, 200, 'CDP with ?token=');
    const evil = { ...bearer, Origin: 'http://evil.example' };
    assert.equal((await get(A.url(9222, '/json/version'), { headers: evil }))?.status, 403, 'a web page, even with the token');
    assert.equal((await get(A.url(8088, '/api/snapshot'), { headers: evil }))?.status, 403, 'snapshot from a web page');
    // DNS rebinding: a foreign name with its own Origin, no token.
    const rebound = await rawStatus(A.ports[9222], 'GET /json/version HTTP/1.1\r\nHost: rebind.example:9222\r\nConnection: close\r\n\r\n');
    assert.ok(rebound === 401 || rebound === 403, `rebinding: ${rebound}`);
    // The live view's WebSocket: nothing without the token, nothing from a web page.
    const rfb = (query, headers = {}) =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${A.ports[6080]}/websockify${query}`, ['binary'], { headers });
        const timer = setTimeout(() => resolve('timeout'), 10_000);
        ws.on('message', (d) => {
          clearTimeout(timer);
          resolve(Buffer.from(d).toString('latin1'));
          ws.close();
        });
        ws.on('unexpected-response', (_req, res) => {
          clearTimeout(timer);
          resolve(res.statusCode);
        });
        ws.on('error', () => {});
      });
    assert.equal(await rfb(''), 401, 'noVNC without the token');
    assert.equal(await rfb(`?token=${TOKEN}`, { Origin: 'http://evil.example' }), 403, 'noVNC from a web page');
    assert.match(await rfb(`?token=${TOKEN}`), /^RFB 003\.00\d\n/, 'noVNC with the live token');
    assert.match(await rfb(`?token=${VIEW_TOKEN}`), /^RFB 003\.00\d\n/, 'noVNC with the view token');
    // x11vnc answers WebSockets on its own port too: it must want a password.
    const vnc = await sh(A.name, 'tr "\\0" " " < /proc/$(corralctl pid x11vnc)/cmdline');
    assert.match(vnc, /-passwdfile /);
    assert.doesNotMatch(vnc, /-nopw/);
    assert.match(vnc, /-localhost/);
    const out = await logs(A.name);
    for (const tok of [TOKEN, VIEW_TOKEN]) assert.ok(!out.includes(tok), 'a token in podman logs');
    t.diagnostic('401 without tokens, 403 for web Origins, RFB with the live and the view token');
  });

  it('`podman stop -t 40` (SIGTERM): ordered, clean, exit 0, well within the grace', async (t) => {
    const ms = await stopContainer(A.name, 40);
    t.diagnostic(`podman stop -t 40: ${secs(ms)}`);
    assert.ok(ms < 20_000, `stop took ${ms} ms`);
    assert.equal(await inspect(A.name, '{{.State.ExitCode}}'), '0');
    const text = await logs(A.name);
    assert.match(text, /corral exiting exit_code=0/);
    const order = stopOrder(text);
    t.diagnostic(`stop order: ${order.join(' → ')}`);
    assertReverseOrder(order);
  });

  it('a new container (same volume, other hostname) starts Chromium on the profile and has the data', async (t) => {
    const t0 = Date.now();
    B = await run('b');
    await waitReady(B, 90_000);
    t.diagnostic(`second start on the volume: ${secs(Date.now() - t0)}`);
    const prep = (await logs(B.name)).match(/corral prep-profile: .*/g);
    t.diagnostic(`prep-profile: ${prep ? prep.join('; ') : 'nothing stale'}`);
    const browser = await connect(B.url(9222), TOKEN);
    try {
      assertData(await readBack(browser), 'in a new container on the same volume');
    } finally {
      await browser.close();
    }
  });

  it('kill -9 Xvfb: x11vnc and chromium come back with new pids, noVNC shows the screen', async (t) => {
    const st0 = await status(B.name);
    const xvfb = await podman(['exec', B.name, 'corralctl', 'pid', 'xvfb']);
    assert.equal(Number(xvfb), st0.xvfb.pid);
    const t0 = Date.now();
    await podman(['exec', B.name, 'kill', '-9', xvfb]);
    const st = await waitFor(
      'xvfb, x11vnc and chromium back with new pids',
      async () => {
        const s = await status(B.name);
        return ['xvfb', 'x11vnc', 'chromium'].every((p) => s[p].state === 'RUNNING' && s[p].ready && s[p].pid !== st0[p].pid) && s;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await waitReady(B);
    t.diagnostic(`Xvfb killed → all back: ${secs(Date.now() - t0)}; pids ${['xvfb', 'x11vnc', 'chromium'].map((p) => `${p} ${st0[p].pid}→${st[p].pid}`).join(', ')}`);

    // The RFB handshake through corral-live, with the live token.
    const banner = await new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${B.ports[6080]}/websockify?token=${TOKEN}`, ['binary']);
      const timer = setTimeout(() => reject(new Error('no RFB banner in 10 s')), 10_000);
      ws.on('message', (d) => {
        clearTimeout(timer);
        resolve(Buffer.from(d).toString('latin1'));
        ws.close();
      });
      ws.on('error', reject);
    });
    assert.match(banner, /^RFB 003\.00\d\n/);
    t.diagnostic(`noVNC/corral-live banner: ${JSON.stringify(banner)}`);

    // Something bright on the container's screen...
    const browser = await connect(B.url(9222), TOKEN);
    const { page } = await openPage(browser, { url: `${ORIGIN}/screen` });
    await page.bringToFront();
    // ...seen through noVNC by a headless Chromium on the host.
    const viewer = await chromium.launch({
      executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
    try {
      const v = await viewer.newPage({ viewport: { width: 1280, height: 800 } });
      // The banner's one-click URL: / redirects to noVNC with the token in its WebSocket path.
      await v.goto(`http://127.0.0.1:${B.ports[6080]}/?token=${TOKEN}`);
      const share = await waitFor(
        'noVNC canvas with a non-black screen',
        async () => {
          const f = await v.evaluate(() => {
            const c = document.querySelector('canvas');
            if (!c || !c.width || !c.height) return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
            return lit / (d.length / 4);
          });
          return f > 0.3 && f;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      const shot = path.join(SHOTS, 'novnc.png');
      await v.screenshot({ path: shot });
      t.diagnostic(`noVNC screen: ${(share * 100).toFixed(0)}% non-black pixels; screenshot ${shot}`);
    } finally {
      await viewer.close();
      await browser.close();
    }
  });

  it("x11vnc's nofile is 4096 while the container's limit is 20000", async (t) => {
    const limits = async (pid) => {
      const text = await sh(B.name, `cat /proc/${pid}/limits`);
      const m = text.match(/^Max open files\s+(\d+)\s+(\d+)/m);
      return { soft: Number(m[1]), hard: Number(m[2]) };
    };
    const x11vnc = await limits(await podman(['exec', B.name, 'corralctl', 'pid', 'x11vnc']));
    const init = await limits(1);
    const chrome = await limits(await podman(['exec', B.name, 'corralctl', 'pid', 'chromium']));
    t.diagnostic(`nofile soft/hard: corral ${init.soft}/${init.hard}, x11vnc ${x11vnc.soft}/${x11vnc.hard}, chromium ${chrome.soft}/${chrome.hard}`);
    assert.equal(init.soft, 20000);
    assert.equal(x11vnc.soft, 4096);
    assert.ok(x11vnc.hard <= init.hard);
    assert.ok(chrome.soft > 4096, 'the cap is x11vnc\'s only');
  });

  it(`chaos: ${CHAOS_KILLS} random SIGKILLs, every program comes back, no zombies`, { timeout: 14 * 60_000 }, async (t) => {
    // A program killed again before it has been up for its backoff's
    // reset_after (supervisor.toml: chromium 30 s, the others 10 s) restarts
    // after a growing delay (up to 10 s for chromium, 30 s by default): that is
    // corral doing its job, but 100 kills would then measure backoff. So each
    // victim is drawn at random among the programs up for at least that long
    // (which also keeps Xvfb, critical with max_restarts = 10 in 60 s, well
    // below that).
    const resetAfter = (p) => (p === 'chromium' ? 30 : 10) + 0.5;
    const counts = Object.fromEntries(PROGRAMS.map((p) => [p, 0]));
    const recoveries = [];
    const zombieSeen = new Map(); // "pid comm" → check index it was first seen at
    let seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1e9);
    t.diagnostic(`CHAOS_SEED=${seed}`);
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    const t0 = Date.now();
    const zombies = async () =>
      (await sh(B.name, 'ps -eo pid=,stat=,comm='))
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter(([, stat]) => stat?.startsWith('Z'))
        .map(([pid, , comm]) => `${pid} ${comm}`);

    const slow = [];
    for (let i = 0; i < CHAOS_KILLS; i++) {
      if (t.signal.aborted) return; // timed out: stop killing, let the next tests run
      const eligible = await waitFor(
        'a program up for longer than its reset_after',
        async () => {
          const m = await metrics(B);
          const now = Date.now() / 1000;
          const up = (p) => now - m[`corral_program_start_time_seconds{program="${p}"}`] >= resetAfter(p);
          // Killing Xvfb restarts chromium too (binds_to): only when chromium
          // is eligible as well, or chromium would never be up for 30 s.
          const ok = PROGRAMS.filter((p) => up(p) && (p !== 'xvfb' || up('chromium')));
          return ok.length && { ok, m };
        },
        { timeoutMs: 40_000, intervalMs: 250 },
      );
      const name = eligible.ok[Math.floor(rand() * eligible.ok.length)];
      const key = `corral_program_restarts_total{program="${name}"}`;
      const before = eligible.m[key];
      const k0 = Date.now();
      const pid = await sh(B.name, `p=$(corralctl pid ${name}) && kill -9 "$p" && echo "$p"`);
      assert.match(pid, /^\d+$/, `killed ${name}`);
      counts[name]++;
      await waitFor(
        `${name} (kill ${i + 1}, pid ${pid}) restarted and /readyz 200`,
        async () => (await metrics(B))[key] > before && (await get(B.url(9100, '/readyz')))?.status === 200,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      const took = Date.now() - k0;
      recoveries.push(took);
      if (took > 5_000) {
        slow.push(`#${i + 1} ${name} ${secs(took)}`);
        console.error(`chaos: kill #${i + 1} of ${name} took ${secs(took)} to recover`);
      }
      if (i % 10 === 9) {
        // A zombie may exist for an instant (between a death and its reaping);
        // one still there 10 kills later was never reaped.
        for (const z of await zombies()) {
          if (zombieSeen.has(z)) assert.fail(`zombie not reaped across checks: ${z}`);
          zombieSeen.set(z, i);
        }
        for (const [z, at] of zombieSeen) if (at < i) zombieSeen.delete(z);
      }
    }
    const total = Date.now() - t0;
    await waitFor('no zombies', async () => (await zombies()).length === 0, { timeoutMs: 10_000, intervalMs: 200 });
    const st = await status(B.name);
    for (const p of PROGRAMS) assert.equal(st[p].state, 'RUNNING', `${p} after chaos`);
    const sorted = [...recoveries].sort((a, b) => a - b);
    const m = await metrics(B);
    t.diagnostic(
      `chaos: ${CHAOS_KILLS} kills in ${secs(total)}; per program ${JSON.stringify(counts)}; ` +
        `back in median ${secs(sorted[Math.floor(sorted.length / 2)])}, p90 ${secs(sorted[Math.floor(sorted.length * 0.9)])}, max ${secs(sorted.at(-1))}; ` +
        `corral_reaped_total ${m.corral_reaped_total}; slower than 5 s: ${slow.join(', ') || 'none'}`,
    );
  });

  it('after chaos, `podman stop` is clean and leaves no process behind', async (t) => {
    const pids = await hostPids(B.name);
    const starts = new Map(pids.map((p) => [p, procStart(p)]));
    const ms = await stopContainer(B.name, 40);
    t.diagnostic(`podman stop -t 40 after chaos: ${secs(ms)} (${pids.length} processes before)`);
    assert.ok(ms < 20_000, `stop took ${ms} ms`);
    assert.equal(await inspect(B.name, '{{.State.ExitCode}}'), '0');
    const text = await logs(B.name);
    assert.match(text, /corral exiting exit_code=0/);
    assertReverseOrder(stopOrder(text));
    const left = pids.filter((p) => starts.get(p) !== null && procStart(p) === starts.get(p));
    assert.deepEqual(left, [], 'processes of the container still alive');
  });

  it('the profile still opens: a third container gets Chromium ready and reads the data', async (t) => {
    const t0 = Date.now();
    C = await run('c');
    await waitReady(C, 90_000);
    t.diagnostic(`third start on the volume: ${secs(Date.now() - t0)}`);
    const browser = await connect(C.url(9222), TOKEN);
    try {
      assertData(await readBack(browser), 'after chaos, in a third container');
    } finally {
      await browser.close();
    }
  });
});

/** Start time (field 22 of /proc/PID/stat) of a host pid, or null when gone: tells a pid from its reuse. */
function procStart(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return null;
  }
}
