// The headless image in a real podman container: Chromium --headless=new with
// no X server, the sidecars as in the headful image; its chromium stops with
// SIGINT (a graceful Chromium shutdown), so data written just before a restart
// or a `podman stop` is on disk afterwards.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, openPage, readBack } from './lib/browser.mjs';
import {
  HEADLESS,
  cleanup,
  get,
  inspect,
  logs,
  podman,
  runContainer,
  status,
  stopContainer,
  waitReady,
} from './lib/podman.mjs';

const ID = `${process.pid}`;
const VOLUME = `corral-e2e-headless-${ID}`;
const NAMES = [`corral-e2e-headless-${ID}-a`, `corral-e2e-headless-${ID}-b`];
const TOKEN = `e2e-headless-${ID}`;
const TOKENS = { CORRAL_SNAPSHOT_TOKEN: TOKEN, CORRAL_CDP_TOKEN: TOKEN };
const PORTS = [9222, 9100, 8088];
const expires = () => Math.floor(Date.now() / 1000) + 86_400;
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

const run = (i) =>
  runContainer({
    name: NAMES[i],
    image: HEADLESS,
    volume: VOLUME,
    hostname: `corral-headless-${i}`,
    env: TOKENS,
    ports: PORTS,
  });

async function write(c, tag) {
  const browser = await connect(c.url(9222), TOKEN);
  try {
    const { context, page } = await openPage(browser);
    await context.addCookies([{ name: tag, value: tag, domain: 'corral-e2e.test', path: '/', expires: expires() }]);
    await page.evaluate((k) => localStorage.setItem(k, k), tag);
  } finally {
    await browser.close();
  }
}

async function read(c) {
  const browser = await connect(c.url(9222), TOKEN);
  try {
    return await readBack(browser);
  } finally {
    await browser.close();
  }
}

describe('headless image in a real container', { timeout: 5 * 60_000 }, () => {
  let A, B;

  before(async () => {
    await podman(['image', 'exists', HEADLESS]).catch(() => {
      throw new Error(`${HEADLESS} is missing: run scripts/build-images`);
    });
    await cleanup({ containers: NAMES, volumes: [VOLUME] });
    await podman(['volume', 'create', VOLUME]);
  });

  after(async () => {
    if (process.env.KEEP_CONTAINERS) return;
    await cleanup({ containers: NAMES, volumes: [VOLUME] });
  });

  it('cold start: chromium, cdp, snapshot, api ready; no X server', async (t) => {
    const t0 = Date.now();
    A = await run(0);
    await waitReady(A, 90_000);
    t.diagnostic(`cold start (podman run → /readyz 200): ${secs(Date.now() - t0)}`);
    const st = await status(A.name);
    assert.deepEqual(Object.keys(st).sort(), ['api', 'cdp', 'chromium', 'snapshot']);
    for (const p of Object.values(st)) assert.equal(p.state, 'RUNNING', p.name);
    await podman(['healthcheck', 'run', A.name]);
    const cmd = await podman(['exec', A.name, 'sh', '-c', 'tr "\\0" " " < /proc/$(corralctl pid chromium)/cmdline']);
    assert.match(cmd, /--headless=new/);
    const version = JSON.parse((await get(A.url(9222, '/json/version'), { headers: { Authorization: `Bearer ${TOKEN}` } })).text);
    assert.match(version['User-Agent'], /HeadlessChrome/);
  });

  it('data written just before `corralctl restart chromium` survives it (stop_signal INT)', async () => {
    await write(A, 'e2e_before_restart');
    await podman(['exec', A.name, 'corralctl', 'restart', 'chromium']);
    await waitReady(A);
    const got = await read(A);
    assert.equal(got.cookies.e2e_before_restart?.value, 'e2e_before_restart');
    assert.equal(got.localStorage.e2e_before_restart, 'e2e_before_restart');
  });

  it('data written just before `podman stop` is in the next container; stop is clean', async (t) => {
    await write(A, 'e2e_before_stop');
    const ms = await stopContainer(A.name, 40);
    t.diagnostic(`podman stop -t 40: ${secs(ms)}`);
    assert.equal(await inspect(A.name, '{{.State.ExitCode}}'), '0');
    const text = await logs(A.name);
    assert.match(text, /corral exiting exit_code=0/);
    const order = [...text.slice(text.lastIndexOf('shutting down')).matchAll(/INFO stopped program=(\S+)/g)].map((m) => m[1]);
    assert.ok(order.indexOf('snapshot') < order.indexOf('chromium'), `snapshot before chromium: ${order}`);
    B = await run(1);
    await waitReady(B, 90_000);
    const got = await read(B);
    for (const k of ['e2e_before_restart', 'e2e_before_stop']) {
      assert.equal(got.cookies[k]?.value, k, `cookie ${k}`);
      assert.equal(got.localStorage[k], k, `localStorage ${k}`);
    }
    const snap = await get(B.url(8088, '/api/snapshot?fresh=1'), {
      headers: { Authorization: `Bearer ${TOKEN}` },
      timeoutMs: 60_000,
    });
    assert.equal(snap?.status, 200);
    assert.ok(JSON.parse(snap.text).cookies.some((c) => c.name === 'e2e_before_stop'));
  });
});
