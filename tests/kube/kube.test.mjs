// deploy/k8s under podman's Kubernetes runtime (`podman kube play`):
//
//   play the rendered kustomization → the claim is a podman volume at /data,
//   every port published, /readyz 200 → the Secret's tokens reached the
//   programs (Playwright connects through :9222 with the CDP token; 401
//   without; the snapshot and corral-api tokens are the Secret's) → what podman
//   made of the three probes, the restart policy and the grace period →
//   cookies, localStorage and IndexedDB written → `podman kube down` and play
//   again: all three still there → kill -9 Chromium: corral restarts it (its
//   restart count +1, a new pid), the container is not restarted (podman's
//   restart count unchanged, corral still the same PID 1) → corral SIGKILLed
//   from the host (an OOM kill): podman's restart policy starts the container
//   again in the pod, and x11vnc's shared memory does not pile up in the
//   pod's IPC namespace.
//
// The steps depend on each other and run in order (one file, one describe).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../container/lib/browser.mjs';
import { waitFor } from '../lib/common.mjs';
import { HEADFUL, cleanup, createSecret, down, get, inspect, logs, play, podman, publish, random, render, status, stopPod, tmpFile } from './lib/kube.mjs';
import { readAll, writeAll } from './lib/storage.mjs';

const ID = `${process.pid}`;
const NAME = `corral-kube-${ID}`;
const CLAIM = `${NAME}-data`;
// Deployment NAME → pod NAME-pod-0, its container NAME-pod-0-CONTAINER (podman's naming).
const POD = `${NAME}-pod-0`;
const CTR = `${POD}-corral`;
const TOKENS = Object.fromEntries(
  ['CDP', 'LIVE', 'LIVE_VIEW', 'SNAPSHOT', 'API'].map((t) => [`CORRAL_${t}_TOKEN`, `kube-${t.toLowerCase()}-${random()}`]),
);
const FIRST = tmpFile(`${NAME}.yaml`);
const SECOND = tmpFile(`${NAME}-again.yaml`);
const CHROMIUM_FLAGS = '--disable-gpu --lang=en-US --disable-background-networking --disable-component-update --disable-sync';

let docs, secret, ports;
const url = (port, p = '') => `http://127.0.0.1:${ports[port]}${p}`;
const cdp = () => connect(url(9222), TOKENS.CORRAL_CDP_TOKEN);
const ready = (what, timeoutMs = 120_000) =>
  waitFor(`${what}: /readyz 200`, async () => (await get(url(9100, '/readyz')))?.status === 200, { timeoutMs, intervalMs: 250 });

describe('deploy/k8s under podman kube play', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    await podman(['image', 'exists', HEADFUL]).catch(() => {
      throw new Error(`${HEADFUL} is missing: run scripts/build-images`);
    });
    const all = await render('deploy/k8s', TOKENS);
    secret = all.find((d) => d.kind === 'Secret');
    docs = all.filter((d) => d.kind !== 'Secret');
    const dep = docs.find((d) => d.kind === 'Deployment');
    const pvc = docs.find((d) => d.kind === 'PersistentVolumeClaim');
    const spec = dep.spec.template.spec;
    dep.metadata.name = NAME;
    pvc.metadata.name = CLAIM;
    spec.volumes.find((v) => v.persistentVolumeClaim).persistentVolumeClaim.claimName = CLAIM;
    const c = spec.containers[0];
    c.image = HEADFUL;
    // The closed network here: keep Chromium from dialling out (the manifest's flags, plus these).
    c.env.find((e) => e.name === 'CHROMIUM_FLAGS').value = CHROMIUM_FLAGS;
    ports = await publish(spec);
    await cleanup({ files: [FIRST, SECOND], volumes: [CLAIM], secrets: [secret.metadata.name] });
    await createSecret(secret);
  });

  after(async () => {
    if (process.env.KEEP_CONTAINERS) return;
    await cleanup({ files: [FIRST, SECOND], volumes: [CLAIM], secrets: [secret?.metadata.name].filter(Boolean) });
  });

  it('plays: the claim becomes a volume at /data, the ports are published, /readyz 200', async (t) => {
    const t0 = Date.now();
    await play(docs, FIRST);
    await ready('first play');
    t.diagnostic(`kube play → /readyz 200: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const mounts = JSON.parse(await inspect(CTR, '{{json .Mounts}}'));
    const data = mounts.find((m) => m.Destination === '/data');
    assert.equal(data?.Type, 'volume', `/data is a volume: ${JSON.stringify(mounts)}`);
    assert.equal(data.Name, CLAIM, 'the volume is the claim');
    assert.ok(await podman(['volume', 'exists', CLAIM]).then(() => true), 'podman volume exists');
    // Every containerPort is reachable on its hostPort.
    assert.equal((await get(url(9100, '/livez')))?.status, 200, 'probes port');
    for (const p of [9222, 6080, 8088]) assert.ok(await get(url(p, '/')), `port ${p} answers`);
  });

  it("the Secret's tokens reach the programs: CDP, snapshot and API accept them, refuse without", async () => {
    assert.equal((await get(url(9222, '/json/version')))?.status, 401, 'CDP without the token');
    const browser = await cdp();
    assert.match(browser.version(), /\d+\./, 'Playwright connected through :9222 with the token');
    await browser.close();
    assert.equal((await get(url(8088, '/api/snapshot')))?.status, 401, 'snapshot without the token');
    const snap = await get(url(8088, '/api/snapshot?fresh=1'), { headers: { Authorization: `Bearer ${TOKENS.CORRAL_SNAPSHOT_TOKEN}` }, timeoutMs: 30_000 });
    assert.equal(snap?.status, 200, `snapshot with the Secret's token: ${snap?.status} ${snap?.text.slice(0, 200)}`);
    // corral-api listens on the pod's loopback only (not in the Service):
    // ask it from inside, with bash's /dev/tcp (the image has no curl).
    const api = (token) =>
      podman(['exec', CTR, 'bash', '-c',
        `exec 3<>/dev/tcp/127.0.0.1/10001 && printf 'GET /programs HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\nAuthorization: Bearer ${token}\\r\\n\\r\\n' >&3 && head -n 1 <&3`]);
    assert.match(await api(TOKENS.CORRAL_API_TOKEN), / 200 /, "corral-api accepts the Secret's token");
    assert.match(await api('wrong'), / 401 /, 'corral-api refuses another');
    const env = await podman(['exec', CTR, 'sh', '-c', 'tr "\\0" "\\n" < /proc/1/environ | grep -c "^CORRAL_.*_TOKEN=kube-"']);
    assert.equal(Number(env), 5, 'corral (PID 1) has the five tokens of the Secret');
  });

  it('probes: what podman made of startupProbe, livenessProbe and readinessProbe', async (t) => {
    const dep = docs.find((d) => d.kind === 'Deployment');
    const c = dep.spec.template.spec.containers[0];
    assert.ok(c.startupProbe && c.livenessProbe && c.readinessProbe, 'the manifest has all three');
    const hc = JSON.parse(await inspect(CTR, '{{json .Config.Healthcheck}}'));
    t.diagnostic(`container healthcheck: ${JSON.stringify(hc)}`);
    // livenessProbe → the container's healthcheck (podman 4.3's setupLivenessProbe),
    // with its period, timeout and threshold.
    assert.ok(hc?.Test?.join(' ').includes(c.livenessProbe.httpGet.path), 'the healthcheck is the livenessProbe');
    assert.equal(hc.Interval, c.livenessProbe.periodSeconds * 1e9, 'periodSeconds → interval');
    assert.equal(hc.Timeout, c.livenessProbe.timeoutSeconds * 1e9, 'timeoutSeconds → timeout');
    assert.equal(hc.Retries, c.livenessProbe.failureThreshold, 'failureThreshold → retries');
    // startupProbe and readinessProbe leave no trace (nothing of /readyz).
    assert.ok(!JSON.stringify(hc).includes('/readyz'), 'no healthcheck from startupProbe/readinessProbe');
    // And what podman does with that healthcheck here: a named port (`probes`)
    // is not resolved (port 0) and the command is `curl`, which the image does
    // not have, so running it reports unhealthy while /livez answers 200.
    const run = await podman(['healthcheck', 'run', CTR], { allowFail: true });
    t.diagnostic(`podman healthcheck run: ${run ?? 'unhealthy (exit 1)'}; /livez: ${(await get(url(9100, '/livez')))?.status}`);
    const restart = await inspect(CTR, '{{.HostConfig.RestartPolicy.Name}}');
    const stopTimeout = await inspect(CTR, '{{.Config.StopTimeout}}');
    t.diagnostic(`restart policy ${restart}; stop timeout ${stopTimeout}s (terminationGracePeriodSeconds ${dep.spec.template.spec.terminationGracePeriodSeconds})`);
    assert.equal(restart, 'always', 'restartPolicy (default Always) → podman restart policy always');
  });

  it('pod stop + podman kube down, then play again: cookies, localStorage and IndexedDB are kept', async (t) => {
    const value = `kept-${random(6)}`;
    let browser = await cdp();
    await writeAll(browser, value);
    assert.deepEqual(await readAll(browser), { cookie: value, local: value, idb: value }, 'written');
    await browser.close();

    // The grace a Kubernetes pod deletion gives (podman 4.3's kube down gives none).
    const grace = docs.find((d) => d.kind === 'Deployment').spec.template.spec.terminationGracePeriodSeconds;
    const t0 = Date.now();
    await stopPod(POD, CTR, grace);
    t.diagnostic(`pod stop -t ${grace} (corral's ordered stop, exit 0): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await down(FIRST);
    assert.equal(await podman(['pod', 'exists', POD], { allowFail: true }), null, 'the pod is gone');
    await podman(['volume', 'exists', CLAIM]);

    // The claim's volume exists now: podman 4.3 refuses to play a claim twice.
    await play(docs.filter((d) => d.kind !== 'PersistentVolumeClaim'), SECOND);
    await ready('second play');
    browser = await cdp();
    const got = await readAll(browser);
    await browser.close();
    assert.deepEqual(got, { cookie: value, local: value, idb: value }, `after kube down + play: ${JSON.stringify(got)}`);
  });

  it('kill -9 Chromium inside the pod: corral restarts it, the container is not restarted', async (t) => {
    const before = await status(CTR);
    const restartsBefore = Number(await inspect(CTR, '{{.RestartCount}}'));
    const startedBefore = await inspect(CTR, '{{.State.StartedAt}}');
    const pid1 = await podman(['exec', CTR, 'cat', '/proc/1/comm']);
    assert.equal(pid1, 'corral', 'corral is PID 1');
    const t0 = Date.now();
    await podman(['exec', CTR, 'kill', '-9', String(before.chromium.pid)]);
    await waitFor(
      'chromium back: new pid, restarts +1, ready',
      async () => {
        const s = (await status(CTR).catch(() => null))?.chromium;
        return s && s.pid && s.pid !== before.chromium.pid && s.restarts === before.chromium.restarts + 1 && s.ready;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    await ready('after the kill');
    t.diagnostic(`chromium killed → back and /readyz 200: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(Number(await inspect(CTR, '{{.RestartCount}}')), restartsBefore, 'podman did not restart the container');
    assert.equal(await inspect(CTR, '{{.State.StartedAt}}'), startedBefore, 'the same container run');
    const browser = await cdp();
    assert.equal((await readAll(browser)).cookie?.startsWith('kept-'), true, 'the restarted Chromium has the profile');
    await browser.close();
  });
  // An OOM kill of PID 1 takes the whole container down with SIGKILL; the
  // kubelet (here podman's restart policy) starts it again in the same pod,
  // whose IPC namespace the pause container holds. x11vnc's MIT-SHM segments
  // (~40) are not removed on SIGKILL: without prep-x11 clearing them they
  // would pile up there at every such restart until shmget fails.
  it("corral SIGKILLed, the container restarted in the pod: x11vnc's shared memory does not pile up", async (t) => {
    const shm = async () => Number(await podman(['exec', CTR, 'sh', '-c', 'tail -n +2 /proc/sysvipc/shm | wc -l']));
    const ipcNs = () => podman(['exec', CTR, 'readlink', '/proc/1/ns/ipc']);
    const before = await shm();
    assert.ok(before >= 20, `x11vnc's segments are there before the kill: ${before}`);
    const nsBefore = await ipcNs();
    const restartsBefore = Number(await inspect(CTR, '{{.RestartCount}}'));
    const hostPid = await inspect(CTR, '{{.State.Pid}}');
    const t0 = Date.now();
    process.kill(Number(hostPid), 'SIGKILL'); // as the OOM killer does: not `podman kill`, which the policy ignores
    await waitFor('the container restarted by its policy', async () => Number(await inspect(CTR, '{{.RestartCount}}')) === restartsBefore + 1, {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    await ready('after the container restart');
    t.diagnostic(`corral SIGKILLed → container restarted and /readyz 200: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(await ipcNs(), nsBefore, "the new container is in the pod's IPC namespace (what makes the leak possible)");
    const after = await shm();
    const removed = (await logs(CTR, { since: new Date(t0).toISOString() })).match(/removed (\d+) orphaned shared-memory segments/);
    t.diagnostic(`segments in the pod's IPC namespace: ${before} before the kill, ${after} after the restart; prep-x11: ${removed?.[0] ?? 'nothing removed'}`);
    assert.ok(removed && Number(removed[1]) >= 20, "prep-x11 removed the killed x11vnc's segments");
    assert.ok(after < before + 20, `segments do not pile up: ${before} → ${after}`);
  });
});

