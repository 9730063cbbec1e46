// What the Node end-to-end suites (tests/cdp, tests/snapshot, tests/container)
// have in common: polling with a deadline, free TCP ports and X displays, /proc
// lookups, the Xvfb + Chromium part of a generated supervisor.toml
// (`xvfbChromium`), and the real `corral` run from it as PID 1 of a fresh PID
// namespace (`CorralStack`, which each suite's Stack extends). The suites' own
// libs import from here and re-export what their test files use.
//
// Node built-ins only: each suite has its own package.json and node_modules,
// none of which is visible from this directory.
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

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = process.env.CORRAL_BIN_DIR ?? path.join(ROOT, 'target', 'debug');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Chromium's flags in the tests/cdp and tests/snapshot stacks (and for a browser a test launches itself). */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--no-default-browser-check',
  '--password-store=basic',
  '--disable-dev-shm-usage',
  '--disable-gpu',
];

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

const PORT_LOCKS = '/tmp/corral-test-ports';
const heldPorts = new Set();
process.on('exit', () => {
  for (const p of heldPorts) fs.rmSync(path.join(PORT_LOCKS, String(p)), { force: true });
});

/** Whether process PID still exists (signal 0 probes without sending). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Claims PORT for this process with a lock file; a dead owner's lock is taken over. */
function claim(port) {
  fs.mkdirSync(PORT_LOCKS, { recursive: true, mode: 0o1777 });
  const lock = path.join(PORT_LOCKS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      heldPorts.add(port);
      return true;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const owner = Number(fs.readFileSync(lock, 'utf8'));
      if (owner && alive(owner)) return false;
      fs.rmSync(lock, { force: true });
    }
  }
  return false;
}

/** Whether PORT can be bound on every address right now. */
function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
}

/**
 * A TCP port free on every address (so on 127.0.0.1 too), kept for this
 * process until it exits. Drawn below the kernel's ephemeral range
 * (ip_local_port_range starts at 32768), so an outgoing connection's source
 * port cannot take it between this check and the bind of whoever uses it, and
 * claimed with a lock file in /tmp/corral-test-ports, so test files running
 * at once never draw the same port (a port 0 bind can hand a just-closed port
 * to the next caller: CI saw `podman kube play` fail with EADDRINUSE).
 */
export async function freePort() {
  const [low, high] = [20000, 32768];
  for (let tries = 0; tries < 500; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (heldPorts.has(port) || !claim(port)) continue;
    if (await bindable(port)) return port;
    heldPorts.delete(port);
    fs.rmSync(path.join(PORT_LOCKS, String(port)), { force: true });
  }
  throw new Error(`no free TCP port in ${low}..${high} after 500 tries`);
}

/**
 * An X display number with no server (no socket, no lock file). The search
 * starts at `base + (pid % slots) * stride` and tries `span` numbers, so
 * processes (and suites, with their own `base`) running at once start apart.
 */
export function freeDisplay({ base = 200, slots = 200, stride = 4, span = 800 } = {}) {
  const start = base + (process.pid % slots) * stride;
  for (let n = start; n < start + span; n++) {
    if (!fs.existsSync(`/tmp/.X11-unix/X${n}`) && !fs.existsSync(`/tmp/.X${n}-lock`)) return n;
  }
  throw new Error('no free X display');
}

/** A value as TOML: basic strings and arrays of them are JSON-compatible. */
export const toml = (v) => JSON.stringify(v);

/** A file's text, or '' when it cannot be read (not written yet, or gone). */
export function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

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

/** `corralctl --socket SOCKET ARGS…`; resolves to its stdout. */
export async function corralctl(socket, args, { timeoutMs = 60_000 } = {}) {
  const { stdout } = await execFileP(path.join(BIN, 'corralctl'), ['--socket', socket, ...args], {
    timeout: timeoutMs,
  });
  return stdout;
}

/**
 * What a suite's stack starts from: a temp dir `corral-SUITE-NAME-…` (with
 * profile/ and logs/), a free DevTools port for Chromium (`upstream`), and the
 * start of its supervisor.toml (`cfg`): [supervisor] with `stopTimeout`, Xvfb on
 * `display`, and Chromium (restart = "always") on that display, profile and
 * port. The caller appends the rest of [programs.chromium] and its own
 * programs, then writes `cfg` to `config`.
 */
export async function xvfbChromium({ suite, name, display, stopTimeout }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `corral-${suite}-${name}-`));
  const upstream = await freePort();
  const profile = path.join(dir, 'profile');
  fs.mkdirSync(profile);
  fs.mkdirSync(path.join(dir, 'logs'));
  const socket = path.join(dir, 'control.sock');
  const chromiumArgs = [
    CHROMIUM,
    ...CHROMIUM_FLAGS,
    '--hide-crash-restore-bubble',
    `--remote-debugging-port=${upstream}`,
    `--user-data-dir=${profile}`,
    '--window-size=1280,720',
    '--window-position=0,0',
    'about:blank',
  ];
  const cfg = `# generated by tests/${suite}/lib/stack.mjs for ${name}
[supervisor]
control_socket = ${toml(socket)}
log_dir = ${toml(path.join(dir, 'logs'))}
stop_timeout = ${toml(stopTimeout)}
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
`;
  return { dir, upstream, profile, socket, config: path.join(dir, 'supervisor.toml'), cfg };
}

/**
 * The real corral as PID 1 of a fresh PID namespace, run from the
 * supervisor.toml at `config`, its output appended to `dir`/corral.out.
 * Construct with at least { dir, config, socket }, then `await launch(ready)`;
 * call `stop()` in an after() hook.
 */
export class CorralStack {
  constructor(fields) {
    Object.assign(this, fields);
  }

  /**
   * Starts `unshare --pid --ipc --fork --mount-proc corral -c CONFIG`, waits for
   * corral's host pid (`corralPid`), then for `ready()`. On failure stops
   * everything and throws with the tail of corral's output.
   */
  async launch(ready) {
    const out = fs.openSync(path.join(this.dir, 'corral.out'), 'a');
    const child = spawn('unshare', ['--pid', '--ipc', '--fork', '--mount-proc', path.join(BIN, 'corral'), '-c', this.config], {
      stdio: ['ignore', out, out],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    fs.closeSync(out);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      this.corralPid = await waitFor('corral to start under unshare', () => {
        const kids = childrenOf(child.pid);
        return kids.length ? kids[0] : null;
      }, { timeoutMs: 10_000, intervalMs: 20 });
      await ready();
    } catch (e) {
      const log = this.log();
      await this.stop();
      throw new Error(`${e.message}\n--- corral output (tail) ---\n${log.slice(-4000)}`);
    }
  }

  /** What corral has written to its stdout and stderr so far (corral.out). */
  log() {
    return readText(path.join(this.dir, 'corral.out'));
  }

  /** `corralctl ARGS…` against this stack's corral, given 60 s. */
  async ctl(...args) {
    return corralctl(this.socket, args, { timeoutMs: 60_000 });
  }

  /**
   * `corralctl shutdown`; if corral has not exited 10 s later, SIGKILL to it
   * (the namespace's PID 1: every process in it goes down). Then removes the
   * temp dir unless KEEP_TMP is set. Safe to call twice.
   */
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await corralctl(this.socket, ['shutdown'], { timeoutMs: 40_000 });
    } catch {
      // fall through to the kill below
    }
    const done = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r(null), 10_000))]);
    if (!done) {
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
