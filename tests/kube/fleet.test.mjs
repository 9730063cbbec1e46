// deploy/k8s-fleet (a StatefulSet of N browsers) under podman's Kubernetes
// runtime. podman 4.3 plays Pods, Deployments and claims, not StatefulSets, so
// this does what the StatefulSet controller and the kubelet would, from the
// rendered manifests and nothing else: for replica K, a Pod named SET-K with the
// set's pod template, the claim data-SET-K from its volumeClaimTemplate, and
// the template's environment with metadata.namespace and $(VAR) expanded
// (podman 4.3 does neither). Two replicas run at once:
//
//   both ready → each gets its own value (cookie, localStorage, IndexedDB) →
//   each reads its own, not the other's → each lets in its own DNS name
//   without a token and refuses its sibling's → kube down both, play again:
//   each still has its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect } from '../container/lib/browser.mjs';
import { waitFor } from '../lib/common.mjs';
import { HEADFUL, cleanup, createSecret, down, get, play, podman, publish, random, render, stopPod, tmpFile } from './lib/kube.mjs';
import { readAll, writeAll } from './lib/storage.mjs';

const ID = `${process.pid}`;
const SET = `corral-fleet-${ID}`;
const REPLICAS = 2;
const NAMESPACE = 'default';
const TOKENS = Object.fromEntries(
  ['CDP', 'LIVE', 'LIVE_VIEW', 'SNAPSHOT', 'API'].map((t) => [`CORRAL_${t}_TOKEN`, `fleet-${t.toLowerCase()}-${random()}`]),
);
const CHROMIUM_FLAGS = '--disable-gpu --lang=en-US --disable-background-networking --disable-component-update --disable-sync';

let secret, service;
const replicas = []; // { name, claim, docs, ports, file, url(port, path) }

/** The kubelet's $(VAR) expansion: variables defined earlier in the list. */
function expandEnv(list, podName) {
  const seen = {};
  return list.map((e) => {
    const ref = e.valueFrom?.fieldRef?.fieldPath;
    let out = e;
    if (ref === 'metadata.name') out = { name: e.name, value: podName };
    else if (ref === 'metadata.namespace') out = { name: e.name, value: NAMESPACE };
    else if ('value' in e) out = { name: e.name, value: String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => seen[v] ?? m) };
    if ('value' in out) seen[out.name] = out.value;
    return out;
  });
}

/** Replica K of the set as podman can play it: [Pod, PersistentVolumeClaim]. */
function replica(sts, k) {
  const name = `${SET}-${k}`;
  const tmpl = structuredClone(sts.spec.template);
  const vct = sts.spec.volumeClaimTemplates[0];
  const claim = `${vct.metadata.name}-${name}`;
  const spec = tmpl.spec;
  // The kubelet gives each pod its own emptyDir; podman 4.3 plays one as a
  // named volume under the volume's own name ("dshm"), shared by every pod
  // that names it, and two pods played at once race to create it ("volume
  // with name dshm already exists"). So each replica's gets its own name.
  const emptyDirs = new Map();
  for (const v of spec.volumes ?? []) {
    if (v.emptyDir) emptyDirs.set(v.name, `${name}-${v.name}`);
  }
  spec.volumes = (spec.volumes ?? []).map((v) => (emptyDirs.has(v.name) ? { ...v, name: emptyDirs.get(v.name) } : v));
  for (const c of spec.containers) {
    c.volumeMounts = (c.volumeMounts ?? []).map((m) => (emptyDirs.has(m.name) ? { ...m, name: emptyDirs.get(m.name) } : m));
  }
  spec.volumes = [...spec.volumes, { name: vct.metadata.name, persistentVolumeClaim: { claimName: claim } }];
  // A StatefulSet pod's hostname and subdomain (its DNS name, SET-K.SERVICE).
  spec.hostname = name;
  const c = spec.containers[0];
  c.image = HEADFUL;
  c.env = expandEnv(c.env, name).map((e) => (e.name === 'CHROMIUM_FLAGS' ? { ...e, value: CHROMIUM_FLAGS } : e));
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: tmpl.metadata.labels, annotations: tmpl.metadata.annotations }, spec };
  const pvc = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { ...vct.metadata, name: claim }, spec: vct.spec };
  return { name, claim, pod, pvc, scratch: [...emptyDirs.values()] };
}

/** Status of one raw HTTP/1.1 GET of noVNC's page (public: no token needed) from 127.0.0.1:port with this Host header. */
function statusWithHost(port, host) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(`GET /vnc.html HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let data = '';
    sock.on('data', (d) => (data += d));
    sock.on('end', () => resolve(Number(data.split(' ')[1])));
    sock.on('error', reject);
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer in 10 s')));
  });
}

const ready = (r, timeoutMs = 150_000) =>
  waitFor(`${r.name}: /readyz 200`, async () => (await get(r.url(9100, '/readyz')))?.status === 200, { timeoutMs, intervalMs: 250 });

describe('deploy/k8s-fleet: one pod per replica under podman kube play', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    await podman(['image', 'exists', HEADFUL]).catch(() => {
      throw new Error(`${HEADFUL} is missing: run scripts/build-images`);
    });
    const docs = await render('deploy/k8s-fleet', TOKENS);
    secret = docs.find((d) => d.kind === 'Secret');
    service = docs.find((d) => d.kind === 'Service');
    const sts = docs.find((d) => d.kind === 'StatefulSet');
    assert.ok(sts.spec.replicas >= REPLICAS, `the overlay asks for ${sts.spec.replicas} replicas`);
    for (let k = 0; k < REPLICAS; k++) {
      const r = replica(sts, k);
      r.ports = await publish(r.pod.spec);
      r.file = tmpFile(`${r.name}.yaml`);
      r.url = (port, path = '') => `http://127.0.0.1:${r.ports[port]}${path}`;
      r.dns = `${r.name}.${service.metadata.name}.${NAMESPACE}.svc.cluster.local`;
      replicas.push(r);
    }
    await cleanup({ files: replicas.map((r) => r.file), volumes: replicas.flatMap((r) => [r.claim, ...r.scratch]), secrets: [secret.metadata.name] });
    await createSecret(secret);
  });

  after(async () => {
    if (process.env.KEEP_CONTAINERS) return;
    await cleanup({ files: replicas.map((r) => r.file), volumes: replicas.flatMap((r) => [r.claim, ...r.scratch]), secrets: [secret?.metadata.name].filter(Boolean) });
  });

  it('two replicas at once, each on its own claim, both ready', async (t) => {
    const t0 = Date.now();
    await Promise.all(replicas.map((r) => play([r.pvc, r.pod], r.file)));
    await Promise.all(replicas.map((r) => ready(r)));
    t.diagnostic(`${REPLICAS} replicas played → all /readyz 200: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const r of replicas) {
      const mounts = JSON.parse(await podman(['inspect', '--format', '{{json .Mounts}}', `${r.name}-corral`]));
      assert.equal(mounts.find((m) => m.Destination === '/data')?.Name, r.claim, `${r.name} mounts ${r.claim}`);
      for (const v of r.scratch) assert.ok(mounts.some((m) => m.Name === v), `${r.name} mounts its own ${v}`);
    }
  });

  it('each replica keeps its own profile', async () => {
    for (const [k, r] of replicas.entries()) {
      const b = await connect(r.url(9222), TOKENS.CORRAL_CDP_TOKEN);
      await writeAll(b, `replica-${k}-${ID}`);
      await b.close();
    }
    for (const [k, r] of replicas.entries()) {
      const b = await connect(r.url(9222), TOKENS.CORRAL_CDP_TOKEN);
      const v = `replica-${k}-${ID}`;
      assert.deepEqual(await readAll(b), { cookie: v, local: v, idb: v }, `${r.name} reads its own, not a sibling's`);
      await b.close();
    }
  });

  it("each replica lets in its own DNS name without a token and refuses its sibling's", async () => {
    const [a, b] = replicas;
    assert.equal(await statusWithHost(a.ports[6080], a.dns), 200, `${a.name} serves noVNC's page to ${a.dns}`);
    assert.equal(await statusWithHost(b.ports[6080], b.dns), 200, `${b.name} serves noVNC's page to ${b.dns}`);
    const cross = await statusWithHost(b.ports[6080], a.dns);
    assert.ok(cross >= 400 && cross < 500, `${b.name} refuses Host ${a.dns}: ${cross}`);
    const foreign = await statusWithHost(a.ports[6080], 'evil.example');
    assert.ok(foreign >= 400 && foreign < 500, `a foreign name is refused: ${foreign}`);
  });

  it('pod stop + kube down both, play again: each still has its own profile', async () => {
    // The grace a Kubernetes pod deletion gives (podman 4.3's kube down gives none).
    await Promise.all(replicas.map((r) => stopPod(r.name, `${r.name}-corral`, r.pod.spec.terminationGracePeriodSeconds)));
    await Promise.all(replicas.map((r) => down(r.file)));
    // The claims' volumes exist: podman 4.3 refuses to play a claim twice.
    await Promise.all(replicas.map((r) => play([r.pod], r.file)));
    await Promise.all(replicas.map((r) => ready(r)));
    for (const [k, r] of replicas.entries()) {
      const b = await connect(r.url(9222), TOKENS.CORRAL_CDP_TOKEN);
      const v = `replica-${k}-${ID}`;
      assert.deepEqual(await readAll(b), { cookie: v, local: v, idb: v }, `${r.name} after down + play`);
      await b.close();
    }
  });
});
