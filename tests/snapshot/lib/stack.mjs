// The setup under test: the real `corral` as PID 1 of a fresh PID namespace
// (`unshare --pid --fork --mount-proc`) supervising Xvfb and Debian's Chromium
// with a persistent --user-data-dir in a temp dir; origin servers of our own on
// 127.0.0.1 ports that count every request; and target/debug/corral-snapshot,
// run by the tests as a child process (harvest / serve / restore). Starting and
// stopping corral, polling and free ports/displays are shared with the other
// suites (tests/lib/common.mjs).
//
// Nothing here sleeps to synchronise: every "it is ready / back / done" is a
// real condition polled with a deadline (`waitFor`).

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CorralStack, BIN, corralctl, freeDisplay as anyFreeDisplay, freePort, toml, waitFor, xvfbChromium } from '../../lib/common.mjs';

export { ROOT, BIN, CHROMIUM, CHROMIUM_FLAGS, waitFor, freePort } from '../../lib/common.mjs';

export const SNAPSHOT = path.join(BIN, 'corral-snapshot');

/** An X display number with no server, searched for from 1200 (tests/cdp starts at 200). */
export function freeDisplay() {
  return anyFreeDisplay({ base: 1200, slots: 300, stride: 3, span: 900 });
}

/**
 * Starts corral with xvfb and chromium (restart = "always", stop_signal TERM so
 * Chromium flushes cookies and localStorage). Call `stop()` in an after() hook.
 */
export async function startStack(name) {
  const display = freeDisplay();
  const { dir, upstream, profile, socket, config, cfg: base } = await xvfbChromium({
    suite: 'snapshot',
    name,
    display,
    stopTimeout: '10s',
  });
  const cfg =
    base +
    `# As the product's supervisor.toml: close over CDP (cookies written), then
# TERM to the browser process, its group left to drain.
pre_stop = ${toml([path.join(BIN, 'corral-cdp'), 'close-browser', '--upstream', `127.0.0.1:${upstream}`, '--timeout', '6s'])}
stop_signal = "TERM"
kill_mode = "mixed"
stop_timeout = "15s"
`;
  fs.writeFileSync(config, cfg);
  const stack = new Stack({ name, dir, display, upstream, profile, socket, config });
  await stack.launch(() => stack.waitCdp());
  return stack;
}

export class Stack extends CorralStack {
  constructor(fields) {
    super(fields);
    this.cdp = `http://127.0.0.1:${fields.upstream}`;
  }

  async json(p) {
    const res = await fetch(`${this.cdp}${p}`, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) throw new Error(`${p}: HTTP ${res.status}`);
    return res.json();
  }

  /** Waits until Chromium's DevTools answers /json/version. */
  async waitCdp(timeoutMs = 60_000) {
    return waitFor('chromium to answer /json/version', () => this.json('/json/version'), { timeoutMs });
  }

  /** As CorralStack's, with 90 s: `restart`/`stop` wait for chromium's graceful stop (stop_timeout 15 s) and a restart for its ready start. */
  async ctl(...args) {
    return corralctl(this.socket, args, { timeoutMs: 90_000 });
  }

  /** Graceful restart: TERM (Chromium writes cookies and localStorage), then start and wait ready. */
  async restartChromium() {
    await this.ctl('restart', 'chromium');
    await this.waitCdp();
  }

  /**
   * Browser.close: Chromium's own clean shutdown, which writes the cookie
   * store (a SIGTERM does not: see restart.test.mjs); corral (restart =
   * "always") starts it again. Waits for the new browser.
   */
  async closeBrowserAndWaitRestart() {
    const old = (await this.json('/json/version')).webSocketDebuggerUrl;
    const browser = await chromium.connectOverCDP(this.cdp);
    const session = await browser.newBrowserCDPSession();
    await session.send('Browser.close').catch(() => {});
    await browser.close().catch(() => {});
    await waitFor('chromium to come back after Browser.close', async () => {
      const v = await this.json('/json/version');
      return v.webSocketDebuggerUrl !== old;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    // DevTools answers before corral calls the new Chromium ready (its
    // readiness check may still be replaying the cookie journal): a test
    // that changed cookies before that would race the replay.
    await waitFor('chromium ready again', async () => JSON.parse(await this.ctl('--json', 'status', 'chromium'))[0].ready, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
  }

  async stopChromium() {
    await this.ctl('stop', 'chromium');
    await waitFor('chromium DevTools to refuse connections', async () => {
      try {
        await this.json('/json/version');
        return false;
      } catch {
        return true;
      }
    });
  }

  async startChromium() {
    await this.ctl('start', 'chromium');
    await this.waitCdp();
  }

  /** Page targets as /json/list shows them, as comparable {id, url, type}. */
  async targets() {
    const list = await this.json('/json/list');
    return list.map((t) => ({ id: t.id, type: t.type, url: t.url })).sort((a, b) => a.id.localeCompare(b.id));
  }
}

/**
 * An origin server on 127.0.0.1 that counts every request it gets.
 *   GET /page?name=X     an HTML page that reports each load to /load?name=X
 *   GET /setcookie?...   the page plus the Set-Cookie headers given in `cookies`
 *   GET /load?name=X     counted in `loads[X]`
 * The pages carry `<link rel=icon href="data:,">` so Chromium asks for no favicon.
 * `host` is the name used in URLs (127.0.0.1 or localhost).
 */
export async function originServer({ host = '127.0.0.1', port, setCookies = [] } = {}) {
  const requests = [];
  const loads = {};
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/load') {
      const n = url.searchParams.get('name') ?? '';
      loads[n] = (loads[n] ?? 0) + 1;
      res.writeHead(204, { 'cache-control': 'no-store' });
      return res.end();
    }
    const name = url.searchParams.get('name') ?? 'page';
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
    if (url.pathname === '/setcookie') headers['set-cookie'] = setCookies;
    res.writeHead(200, headers);
    res.end(`<!doctype html><html><head><title>${name}</title><link rel="icon" href="data:,"></head>
<body><h1>${name}</h1><script>
window.name = String(Number(window.name || 0) + 1);
fetch('/load?name=${encodeURIComponent(name)}', { cache: 'no-store' });
</script></body></html>`);
  });
  server.keepAliveTimeout = 1; // no idle keep-alive connections held by Chromium
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port ?? 0, '127.0.0.1', resolve);
  });
  const p = server.address().port;
  return {
    server,
    port: p,
    origin: `http://${host}:${p}`,
    requests,
    loads,
    async close() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Runs corral-snapshot to completion; never throws on a non-zero exit. */
export function runSnapshot(args, { env = {}, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    execFile(SNAPSHOT, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/**
 * Starts `corral-snapshot serve` with JSON logs collected in memory.
 * Returns { child, port, log(), harvested(), get(path, headers), stop() }.
 */
export async function startServe(args, { env = {}, waitHealthy = true } = {}) {
  const port = await freePort();
  // An `undefined` in `env` removes that variable.
  const fullEnv = { ...process.env, CORRAL_LOG_FORMAT: 'json', RUST_LOG: 'info', ...env };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const child = spawn(SNAPSHOT, ['serve', '--listen', `127.0.0.1:${port}`, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: fullEnv,
  });
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  child.stderr.on('data', (d) => (text += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const serve = {
    child,
    port,
    exited,
    log: () => text,
    lines() {
      return text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l);
          } catch {
            return {};
          }
        });
    },
    /** How many harvests finished ("harvested" log lines). */
    harvested() {
      return this.lines().filter((l) => l.message === 'harvested').length;
    },
    async get(p, headers = {}, timeoutMs = 60_000) {
      const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
      const body = await res.text();
      let json;
      try {
        json = JSON.parse(body);
      } catch {}
      return { status: res.status, headers: res.headers, body, json };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 5_000))]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  if (waitHealthy) {
    await waitFor(`corral-snapshot serve on ${port} to answer /healthz`, async () => (await serve.get('/healthz', {}, 2_000)).status === 200, {
      timeoutMs: 15_000,
    });
  }
  return serve;
}

/** The files in `dir` whose names look like corral-snapshot's temporary files. */
export function strayTemps(dir) {
  return fs.readdirSync(dir).filter((n) => /^\.snapshot-.*\.tmp$/.test(n));
}
