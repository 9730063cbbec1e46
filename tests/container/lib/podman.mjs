// Real podman containers of the corral images, as scripts/build-images makes
// them (localhost/corral-headful:dev, localhost/corral-headless:dev).
//
// podman runs the way /work/shared/research/containers-here.md says works on
// these machines: runc, the cgroupfs manager, explicit ulimits. Every port is
// published on 127.0.0.1 at a port podman picks. Nothing here sleeps to
// synchronise: each "it is up / it is back" is a real condition polled with a
// deadline (`waitFor`).

import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { waitFor as pollUntil } from '../../lib/common.mjs';

const execFileP = promisify(execFile);

export const PODMAN = ['--runtime', 'runc', '--cgroup-manager=cgroupfs'];
export const ULIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];
export const HEADFUL = process.env.CORRAL_HEADFUL_IMAGE ?? 'localhost/corral-headful:dev';
export const HEADLESS = process.env.CORRAL_HEADLESS_IMAGE ?? 'localhost/corral-headless:dev';
// The closed network here: keep Chromium from dialling out (and logging about it).
export const CHROMIUM_FLAGS =
  '--disable-background-networking --disable-component-update --disable-sync --no-default-browser-check';

/** Runs `podman ARGS…`; resolves to trimmed stdout, rejects with stderr in the message. */
export async function podman(args, { timeoutMs = 120_000, allowFail = false } = {}) {
  try {
    const { stdout } = await execFileP('podman', [...PODMAN, ...args], {
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (e) {
    if (allowFail) return null;
    throw new Error(`podman ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** `podman exec NAME sh -c SCRIPT` */
export const sh = (name, script, opts) => podman(['exec', name, 'sh', '-c', script], opts);

/** `waitFor` of tests/lib/common.mjs, polling every 100 ms unless told otherwise. */
export function waitFor(what, check, { intervalMs = 100, ...opts } = {}) {
  return pollUntil(what, check, { ...opts, intervalMs });
}

/** GET with a short timeout; resolves to { status, text, headers } or null when unreachable. */
export async function get(url, { headers = {}, timeoutMs = 5_000 } = {}) {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text(), headers: res.headers };
  } catch {
    return null;
  }
}

/**
 * A container of IMAGE on VOLUME (mounted at /data) with every port of the
 * image published on 127.0.0.1. Returns { name, ports: { 9222: n, … }, url(port, path) }.
 */
export async function runContainer({ name, image, volume, hostname, env = {}, ports }) {
  const args = ['run', '-d', '--name', name, '--hostname', hostname, ...ULIMITS, '-v', `${volume}:/data`];
  for (const p of ports) args.push('-p', `127.0.0.1::${p}`);
  for (const [k, v] of Object.entries({ CHROMIUM_FLAGS, ...env })) args.push('-e', `${k}=${v}`);
  args.push(image);
  await podman(args);
  const published = {};
  for (const line of (await podman(['port', name])).split('\n')) {
    const m = line.match(/^(\d+)\/tcp -> [\d.]+:(\d+)$/);
    if (m) published[m[1]] = Number(m[2]);
  }
  for (const p of ports) if (!published[p]) throw new Error(`port ${p} of ${name} not published: ${JSON.stringify(published)}`);
  return {
    name,
    ports: published,
    url: (port, path = '') => `http://127.0.0.1:${published[port]}${path}`,
  };
}

/** Resolves once /readyz on the published probe port answers 200. */
export async function waitReady(c, timeoutMs = 60_000) {
  return waitFor(`${c.name} /readyz 200`, async () => (await get(c.url(9100, '/readyz')))?.status === 200, {
    timeoutMs,
  });
}

/** `corralctl --json status` inside the container, as { NAME: {state, pid, restarts, ready…} }. */
export async function status(name) {
  const list = JSON.parse(await podman(['exec', name, 'corralctl', '--json', 'status']));
  return Object.fromEntries(list.map((p) => [p.name, p]));
}

/** Prometheus text → { 'metric{program="x"}': value }. */
export async function metrics(c) {
  const r = await get(c.url(9100, '/metrics'));
  if (!r || r.status !== 200) throw new Error(`/metrics: ${r?.status}`);
  const out = {};
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function logs(name) {
  // corral writes its own logs and the programs' output to stdout/stderr: both.
  const { stdout, stderr } = await execFileP('podman', [...PODMAN, 'logs', name], { maxBuffer: 256 * 1024 * 1024 });
  return stdout + stderr;
}

/** `podman stop -t GRACE NAME`, timed. */
export async function stopContainer(name, grace = 40) {
  const t0 = Date.now();
  await podman(['stop', '-t', String(grace), name], { timeoutMs: (grace + 30) * 1000 });
  return Date.now() - t0;
}

export async function inspect(name, format) {
  return podman(['inspect', '--format', format, name]);
}

/** Host pids of every process of the container (`podman top NAME hpid`). */
export async function hostPids(name) {
  const out = await podman(['top', name, 'hpid']);
  return out
    .split('\n')
    .slice(1)
    .map((l) => Number(l.trim()))
    .filter(Boolean);
}

/** Removes containers and volumes, ignoring the ones that are gone. For after() hooks. */
export async function cleanup({ containers = [], volumes = [] }) {
  for (const c of containers) await podman(['rm', '-f', '-t', '0', c], { allowFail: true });
  for (const v of volumes) await podman(['volume', 'rm', '-f', v], { allowFail: true });
}

export { spawn };
