// The stack under test: the real `corral` as PID 1 of a fresh PID namespace
// (`unshare --pid --fork --mount-proc`), supervising Xvfb, Debian's Chromium and
// one or more `corral-cdp` bridges, from a supervisor.toml generated per test file.
//
// Nothing here sleeps to synchronise: readiness and every "it is back" are real
// conditions polled with a deadline (`waitFor`).

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const BIN = process.env.CORRAL_BIN_DIR ?? path.join(ROOT, 'target', 'debug');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Polls `check` until it returns a truthy value (which is returned), or throws after `timeoutMs`. */
export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A TCP port that was free a moment ago on every address. */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '0.0.0.0', resolve);
  });
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** An X display number with no server (no socket, no lock file). */
export function freeDisplay() {
  const start = 200 + (process.pid % 200) * 4;
  for (let n = start; n < start + 800; n++) {
    if (!fs.existsSync(`/tmp/.X11-unix/X${n}`) && !fs.existsSync(`/tmp/.X${n}-lock`)) return n;
  }
  throw new Error('no free X display');
}

const toml = (v) => JSON.stringify(v); // TOML basic strings and arrays of them are JSON-compatible

/** Pids of the direct children of `pid` (host pid namespace). */
export function childrenOf(pid) {
  try {
    const dir = `/proc/${pid}/task`;
    return fs
      .readdirSync(dir)
      .flatMap((t) => fs.readFileSync(`${dir}/${t}/children`, 'utf8').trim().split(/\s+/))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Number of open fds of a (host) pid. */
export function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Whether process `pid` holds an accepted TCP socket whose peer is
 * 127.0.0.1:`peerPort`: the exact "the bridge has accepted this connection".
 * A connection still in the listen backlog has inode 0 in /proc/net/tcp and is
 * in no fd table, so it does not count.
 */
export function hasAcceptedPeer(pid, peerPort) {
  const hexPort = peerPort.toString(16).toUpperCase().padStart(4, '0');
  const inodes = fs
    .readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[2] === `0100007F:${hexPort}` && f[9] !== '0')
    .map((f) => `socket:[${f[9]}]`);
  if (inodes.length === 0) return false;
  const dir = `/proc/${pid}/fd`;
  for (const fd of fs.readdirSync(dir)) {
    try {
      if (inodes.includes(fs.readlinkSync(`${dir}/${fd}`))) return true;
    } catch {}
  }
  return false;
}

export function threadCount(pid) {
  return fs.readdirSync(`/proc/${pid}/task`).length;
}

/**
 * Starts corral with xvfb, chromium and the given bridges.
 *   bridges: { NAME: { args: [...], env: {...}, rlimits: 'nofile = 4096' } }
 * Returns a Stack; call `stop()` in an after() hook.
 */
export async function startStack({ name, bridges = { cdp: {} }, chromiumBackoff } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `corral-cdp-${name}-`));
  const display = freeDisplay();
  const upstream = await freePort();
  const ports = {};
  for (const b of Object.keys(bridges)) ports[b] = await freePort();
  const profile = path.join(dir, 'profile');
  fs.mkdirSync(profile);
  fs.mkdirSync(path.join(dir, 'logs'));
  const socket = path.join(dir, 'control.sock');

  const chromiumArgs = [
    CHROMIUM,
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--no-default-browser-check',
    '--password-store=basic',
    '--disable-dev-shm-usage',
    '--disable-gpu',
    '--hide-crash-restore-bubble',
    `--remote-debugging-port=${upstream}`,
    `--user-data-dir=${profile}`,
    '--window-size=1280,720',
    '--window-position=0,0',
    '--remote-allow-origins=*',
    'about:blank',
  ];
  let cfg = `# generated by tests/cdp/lib/stack.mjs for ${name}
[supervisor]
control_socket = ${toml(socket)}
log_dir = ${toml(path.join(dir, 'logs'))}
stop_timeout = "5s"
shutdown_timeout = "30s"
rlimits = { nofile = 16384 }

[programs.xvfb]
command = ["Xvfb", ":${display}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"]
ready = { x11 = ":${display}", timeout = "30s" }
restart = "always"

[programs.chromium]
command = ${toml(chromiumArgs)}
env = { DISPLAY = ":${display}" }
binds_to = ["xvfb"]
pre_start = ["sh", "-c", ${toml(`rm -f '${profile}'/Singleton*`)}]
ready = { tcp = "127.0.0.1:${upstream}", timeout = "60s" }
restart = "always"
stop_timeout = "5s"
`;
  if (chromiumBackoff) cfg += `backoff = ${chromiumBackoff}\n`;
  for (const [b, spec] of Object.entries(bridges)) {
    const cmd = [
      path.join(BIN, 'corral-cdp'),
      '--listen',
      `0.0.0.0:${ports[b]}`,
      '--upstream',
      `127.0.0.1:${upstream}`,
      ...(spec.args ?? []),
    ];
    cfg += `
[programs.${b}]
command = ${toml(cmd)}
ready = { tcp = "0.0.0.0:${ports[b]}", timeout = "30s" }
restart = "always"
stop_timeout = "5s"
`;
    if (spec.env) {
      cfg += `env = { ${Object.entries(spec.env).map(([k, v]) => `${k} = ${toml(v)}`).join(', ')} }\n`;
    }
    if (spec.rlimits) cfg += `rlimits = { ${spec.rlimits} }\n`;
  }
  const config = path.join(dir, 'supervisor.toml');
  fs.writeFileSync(config, cfg);

  const out = fs.openSync(path.join(dir, 'corral.out'), 'a');
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', path.join(BIN, 'corral'), '-c', config], {
    stdio: ['ignore', out, out],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
  });
  fs.closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stack = new Stack({ name, dir, display, upstream, ports, socket, config, child, exited });
  try {
    stack.corralPid = await waitFor('corral to start under unshare', () => {
      const kids = childrenOf(child.pid);
      return kids.length ? kids[0] : null;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    for (const b of Object.keys(bridges)) {
      await waitFor(`${b} to answer /json/version with 200`, async () => {
        const r = await stack.get(b, '/json/version', { headers: stack.authFor(bridges[b]) });
        return r.status === 200;
      }, { timeoutMs: 60_000 });
    }
  } catch (e) {
    const log = stack.log();
    await stack.stop();
    throw new Error(`${e.message}\n--- corral output (tail) ---\n${log.slice(-4000)}`);
  }
  stack.bridgeSpecs = bridges;
  return stack;
}

export class Stack {
  constructor(fields) {
    Object.assign(this, fields);
  }

  url(bridge = 'cdp', host = '127.0.0.1') {
    return `http://${host}:${this.ports[bridge]}`;
  }

  authFor(spec) {
    return spec?.token ? { authorization: `Bearer ${spec.token}` } : {};
  }

  log() {
    try {
      return fs.readFileSync(path.join(this.dir, 'corral.out'), 'utf8');
    } catch {
      return '';
    }
  }

  /** GET (or other method) to a bridge; never throws on HTTP errors. */
  async get(bridge, p, { method = 'GET', headers = {}, host = '127.0.0.1', timeoutMs = 15_000 } = {}) {
    const res = await fetch(`http://${host}:${this.ports[bridge]}${p}`, {
      method,
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  async ctl(...args) {
    const { stdout } = await execFileP(path.join(BIN, 'corralctl'), ['--socket', this.socket, ...args], {
      timeout: 60_000,
    });
    return stdout;
  }

  async status(name) {
    const all = JSON.parse(await this.ctl('--json', 'status', name));
    return all.find((p) => p.name === name);
  }

  /** Host pid of a program's main process: a direct child of corral whose argv matches. */
  hostPid(match) {
    const pid = childrenOf(this.corralPid).find((p) => match(cmdline(p)));
    if (!pid) throw new Error('process not found under corral');
    return pid;
  }

  chromiumPid() {
    return this.hostPid((argv) => argv.some((a) => a === `--remote-debugging-port=${this.upstream}`));
  }

  bridgePid(bridge = 'cdp') {
    return this.hostPid((argv) => argv.some((a) => a.endsWith('corral-cdp')) && argv.includes(`0.0.0.0:${this.ports[bridge]}`));
  }

  /** Waits until corral reports chromium RUNNING and ready with a different pid than `oldNsPid`. */
  async waitChromiumBack(oldNsPid, timeoutMs = 60_000) {
    return waitFor('chromium to be RUNNING again', async () => {
      const s = await this.status('chromium');
      return s.state === 'RUNNING' && s.ready && s.pid !== oldNsPid ? s : null;
    }, { timeoutMs, intervalMs: 100 });
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await execFileP(path.join(BIN, 'corralctl'), ['--socket', this.socket, 'shutdown'], { timeout: 40_000 });
    } catch {
      // fall through to the kill below
    }
    const done = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r(null), 10_000))]);
    if (!done) {
      // SIGKILL to the namespace's PID 1 takes every process in it down.
      try {
        if (this.corralPid) process.kill(this.corralPid, 'SIGKILL');
      } catch {}
      try {
        this.child.kill('SIGKILL');
      } catch {}
      await this.exited;
    }
    if (!process.env.KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A program's output as corral logged it (log_dir/NAME.log). */
Stack.prototype.programLog = function programLog(name) {
  try {
    return fs.readFileSync(path.join(this.dir, 'logs', `${name}.log`), 'utf8');
  } catch {
    return '';
  }
};

/** How many WebSockets a bridge has opened so far (its "websocket open" log lines). */
Stack.prototype.wsOpened = function wsOpened(bridge = 'cdp') {
  return (this.programLog(bridge).match(/websocket open/g) ?? []).length;
};
