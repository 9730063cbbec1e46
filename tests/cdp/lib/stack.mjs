// The stack under test: the real `corral` as PID 1 of a fresh PID namespace
// (`unshare --pid --fork --mount-proc`), supervising Xvfb, Debian's Chromium and
// one or more `corral-cdp` bridges, from a supervisor.toml generated per test file.
// Starting and stopping corral, polling and free ports/displays are shared with
// the other suites (tests/lib/common.mjs).
//
// Nothing here sleeps to synchronise: readiness and every "it is back" are real
// conditions polled with a deadline (`waitFor`).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CorralStack, BIN, childrenOf, freeDisplay, freePort, readText, toml, waitFor, xvfbChromium } from '../../lib/common.mjs';

export { ROOT, BIN, CHROMIUM, waitFor, freePort, freeDisplay, childrenOf } from '../../lib/common.mjs';

/** The /etc/hosts alias clients.test.mjs adds for 127.0.0.1. */
export const ALIAS_HOST = 'corral-cdp-alias.test';

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
export async function startStack({ name, bridges = { cdp: {} }, chromiumBackoff, chromiumReady } = {}) {
  const display = freeDisplay();
  const { dir, upstream, socket, config, cfg: generated } = await xvfbChromium({ suite: 'cdp', name, display, stopTimeout: '5s' });
  // chromiumReady: another readiness check for Chromium (a TOML inline table).
  const base = chromiumReady ? generated.replace(/^ready = \{ tcp = .*$/m, (line) => {
    assert(line.includes(`:${upstream}"`), line);
    return `ready = ${chromiumReady}`;
  }) : generated;
  const ports = {};
  for (const b of Object.keys(bridges)) ports[b] = await freePort();
  let cfg = `${base}stop_timeout = "5s"\n`;
  if (chromiumBackoff) cfg += `backoff = ${chromiumBackoff}\n`;
  for (const [b, spec] of Object.entries(bridges)) {
    // `{SOCKET}` in a bridge's args: corral's control socket.
    const args = (spec.args ?? []).map((a) => a.replaceAll('{SOCKET}', socket));
    const cmd = [
      path.join(BIN, 'corral-cdp'),
      '--listen',
      `127.0.0.1:${ports[b]}`,
      '--upstream',
      `127.0.0.1:${upstream}`,
      // Names the suites use besides IP literals and localhost (an
      // /etc/hosts alias, this machine's name, a proxy's name): let in
      // without a token, as an operator would with --allow-host
      // (docs/security.md).
      '--allow-host',
      `${ALIAS_HOST},${os.hostname()},cdp.example.internal`,
      ...args,
    ];
    cfg += `
[programs.${b}]
command = ${toml(cmd)}
ready = { tcp = "127.0.0.1:${ports[b]}", timeout = "30s" }
restart = "always"
stop_timeout = "5s"
`;
    if (spec.env) {
      cfg += `env = { ${Object.entries(spec.env).map(([k, v]) => `${k} = ${toml(v)}`).join(', ')} }\n`;
    }
    if (spec.rlimits) cfg += `rlimits = { ${spec.rlimits} }\n`;
  }
  fs.writeFileSync(config, cfg);

  const stack = new Stack({ name, dir, display, upstream, ports, socket, config });
  await stack.launch(async () => {
    for (const b of Object.keys(bridges)) {
      await waitFor(`${b} to answer /json/version with 200`, async () => {
        const r = await stack.get(b, '/json/version', { headers: stack.authFor(bridges[b]) });
        return r.status === 200;
      }, { timeoutMs: 60_000 });
    }
  });
  stack.bridgeSpecs = bridges;
  return stack;
}

export class Stack extends CorralStack {
  url(bridge = 'cdp', host = '127.0.0.1') {
    return `http://${host}:${this.ports[bridge]}`;
  }

  authFor(spec) {
    return spec?.token ? { authorization: `Bearer ${spec.token}` } : {};
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
    return this.hostPid((argv) => argv.some((a) => a.endsWith('corral-cdp')) && argv.includes(`127.0.0.1:${this.ports[bridge]}`));
  }

  /** Waits until corral reports chromium RUNNING and ready with a different pid than `oldNsPid`. */
  async waitChromiumBack(oldNsPid, timeoutMs = 60_000) {
    return waitFor('chromium to be RUNNING again', async () => {
      const s = await this.status('chromium');
      return s.state === 'RUNNING' && s.ready && s.pid !== oldNsPid ? s : null;
    }, { timeoutMs, intervalMs: 100 });
  }
}

/** A program's output as corral logged it (log_dir/NAME.log). */
Stack.prototype.programLog = function programLog(name) {
  return readText(path.join(this.dir, 'logs', `${name}.log`));
};

/** How many WebSockets a bridge has opened so far (its "websocket open" log lines). */
Stack.prototype.wsOpened = function wsOpened(bridge = 'cdp') {
  return (this.programLog(bridge).match(/websocket open/g) ?? []).length;
};
