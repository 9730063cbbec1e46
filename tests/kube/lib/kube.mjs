// The Kubernetes manifests under podman's Kubernetes runtime (`podman kube
// play`, Debian bookworm's podman 4.3), as tests/kube/README.md describes.
//
// The manifests are rendered the way `kubectl apply -k` would (deploy/k8s/check.py
// --render: `kubectl kustomize` when kubectl is here, else its built-in subset),
// then given to `podman kube play` as they are, but for what every test run on a
// shared machine needs (unique names, host ports picked here on 127.0.0.1) and
// for podman 4.3's known gaps, each worked around here and listed in
// docs/deploy.md#podman-kube-play:
//   - a Secret in the YAML becomes a podman secret that its own secretKeyRef
//     lookup cannot parse (stored as YAML, read as JSON): the Secret is given
//     to podman as `podman secret create NAME` of its data (JSON, base64 values,
//     what the lookup reads), and left out of the YAML;
//   - a PersistentVolumeClaim whose volume exists fails the play ("volume
//     already exists"): on a second play the claim is left out and the Pod uses
//     the volume it made the first time;
//   - ulimits: kube play has no --ulimit, and podman's defaults exceed what this
//     machine may set: a containers.conf (CONTAINERS_CONF) sets default_ulimits.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { freePort } from '../../lib/common.mjs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const execFileP = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const PYTHON = process.env.CORRAL_K8S_PYTHON ?? path.join(ROOT, 'target/k8s-venv/bin/python');
export const HEADFUL = process.env.CORRAL_HEADFUL_IMAGE ?? 'localhost/corral-headful:dev';

const CONF_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-kube-'));
const CONF = path.join(CONF_DIR, 'containers.conf');
fs.writeFileSync(
  CONF,
  `# tests/kube: podman kube play has no --ulimit; these machines refuse podman's defaults.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
`,
);
const ENV = { ...process.env, CONTAINERS_CONF: CONF };

/** `podman ARGS…` with the kube containers.conf; resolves to trimmed stdout. */
export async function podman(args, { allowFail = false, timeoutMs = 180_000 } = {}) {
  try {
    const { stdout } = await execFileP('podman', args, { env: ENV, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim();
  } catch (e) {
    if (allowFail) return null;
    const how = e.code != null ? `exit ${e.code}` : e.signal ? `killed by ${e.signal}` : e.message;
    throw new Error(`podman ${args.join(' ')}: ${how}: ${e.stderr?.trim() || '(no stderr)'}${e.stdout?.trim() ? `\nstdout: ${e.stdout.trim()}` : ''}`);
  }
}

/** Random hex, for tokens. */
export const random = (n = 24) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');

/** deploy/k8s or deploy/k8s-fleet rendered with these tokens: [doc…]. */
export async function render(dir, tokens) {
  const file = path.join(CONF_DIR, `tokens-${random(4)}.env`);
  fs.writeFileSync(file, Object.entries(tokens).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  const { stdout } = await execFileP(PYTHON, [path.join(ROOT, 'deploy/k8s/check.py'), '--render', path.join(ROOT, dir), '--tokens-env', file], {
    maxBuffer: 16 * 1024 * 1024,
  });
  fs.rmSync(file);
  return stdout.trim().split('\n').map((l) => JSON.parse(l));
}

/**
 * Publishes every containerPort of the pod spec on 127.0.0.1 at a free port;
 * returns { containerPort: hostPort }.
 */
export async function publish(podSpec) {
  const ports = {};
  for (const c of podSpec.containers) {
    for (const p of c.ports ?? []) {
      p.hostIP = '127.0.0.1';
      p.hostPort = await freePort(); // kube play publishes only hostPorts
      ports[p.containerPort] = p.hostPort;
    }
  }
  return ports;
}

/** The podman secret a secretKeyRef of podman 4.3 can read: the Secret's data, as JSON. */
export async function createSecret(secret) {
  const data = secret.data ?? Object.fromEntries(Object.entries(secret.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  await podman(['secret', 'rm', secret.metadata.name], { allowFail: true });
  // From a file: podman takes `-` only from a FIFO, and node's stdin pipes are sockets.
  const file = path.join(CONF_DIR, `secret-${random(4)}.json`);
  fs.writeFileSync(file, JSON.stringify(data), { mode: 0o600 });
  try {
    await podman(['secret', 'create', secret.metadata.name, file]);
  } finally {
    fs.rmSync(file);
  }
}

/** Writes DOCS as a YAML stream (one JSON document each: JSON is YAML) and plays it. */
export async function play(docs, file) {
  fs.writeFileSync(file, docs.map((d) => JSON.stringify(d, null, 1)).join('\n---\n') + '\n');
  return podman(['kube', 'play', file]);
}

/**
 * `podman kube down FILE`: the file's pods must be gone before they are
 * played again. podman 4.3 has now and then (2 of ~30 runs, under load)
 * exited non-zero from a kube down of two pods at once, with nothing on
 * stderr but its warning about healthcheck timers without systemd, and left
 * the pod: if a pod is still there, once more, saying so on stderr; if it
 * is still there after that, the error. allowFail: clean-up, no checks.
 */
export async function down(file, { allowFail = false } = {}) {
  if (allowFail) return podman(['kube', 'down', file], { allowFail });
  try {
    return await podman(['kube', 'down', file]);
  } catch (e) {
    const pods = fs
      .readFileSync(file, 'utf8')
      .split('\n---\n')
      .map((d) => JSON.parse(d))
      .filter((d) => d.kind === 'Pod')
      .map((d) => d.metadata.name);
    const left = [];
    for (const pod of pods) if ((await podman(['pod', 'exists', pod], { allowFail: true })) !== null) left.push(pod);
    console.error(`tests/kube: ${e.message}\ntests/kube: pods left: ${left.join(' ') || 'none'}`);
    if (left.length === 0) return null;
    return podman(['kube', 'down', file]);
  }
}

/**
 * `podman pod stop -t GRACE POD`, then checks that corral (in container CTR)
 * stopped in order and exited 0. podman 4.3's `kube down` stops a pod with a
 * grace of 0 s (SIGTERM and SIGKILL at once: corral logs no shutdown and
 * Chromium's cookies of the last ~30 s are lost), unlike a Kubernetes pod
 * deletion, which grants terminationGracePeriodSeconds: this is that grace.
 */
export async function stopPod(pod, ctr, grace) {
  await podman(['pod', 'stop', '-t', String(grace), pod], { timeoutMs: (grace + 30) * 1000 });
  const exit = [...(await logs(ctr)).matchAll(/"message":"corral exiting","exit_code":(\d+)/g)].pop();
  if (exit?.[1] !== '0') throw new Error(`${ctr}: corral did not log a clean exit after pod stop (${exit?.[0] ?? 'no exit line'})`);
}

/** `podman logs [--since SINCE] CTR`: both streams, as one string. */
export async function logs(ctr, { since } = {}) {
  const args = ['logs', ...(since ? ['--since', since] : []), ctr];
  const { stdout, stderr } = await execFileP('podman', args, { env: ENV, maxBuffer: 256 * 1024 * 1024 });
  return stdout + stderr;
}

export const tmpFile = (name) => path.join(CONF_DIR, name);

/** GET with a short timeout; { status, text } or null when unreachable. */
export async function get(url, { headers = {}, timeoutMs = 5_000 } = {}) {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  } catch {
    return null;
  }
}

export async function inspect(name, format) {
  return podman(['inspect', '--format', format, name]);
}

/** `corralctl --json status` inside the container: { NAME: {state, pid, restarts…} }. */
export async function status(name) {
  const list = JSON.parse(await podman(['exec', name, 'corralctl', '--json', 'status']));
  return Object.fromEntries(list.map((p) => [p.name, p]));
}

/** Removes pods (by kube file), volumes and secrets, ignoring the ones that are gone. */
export async function cleanup({ files = [], volumes = [], secrets = [] }) {
  for (const f of files) if (fs.existsSync(f)) await down(f, { allowFail: true });
  for (const v of volumes) await podman(['volume', 'rm', '-f', v], { allowFail: true });
  for (const s of secrets) await podman(['secret', 'rm', s], { allowFail: true });
}
