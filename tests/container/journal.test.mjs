// The cookie journal in the headful image, killed the way a node or an OOM
// killer does it: `podman kill -s KILL` (no shutdown at all), then `podman
// start` of the same container (its /tmp and the /data volume kept).
// Chromium writes its cookie store at most every 30 s; a cookie set 2 s
// before the kill must be there after the restart, and one deleted 2 s
// before must stay deleted, JOURNAL_ROUNDS (20) times in a row. Checked with
// Playwright through the image's CDP bridge.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HEADFUL, runContainer, waitReady, podman, cleanup, waitFor, inspect } from './lib/podman.mjs';
import { connect, openPage, ORIGIN } from './lib/browser.mjs';

const ROUNDS = Number(process.env.JOURNAL_ROUNDS ?? 20);
const NAME = `corral-journal-e2e-${process.pid}`;
const VOLUME = `${NAME}-data`;
let c;

/** The host ports podman published; they may change on `podman start`. */
// The container's bridge always has a token (docs/security.md).
const TOKEN = `journal-${process.pid}-${Date.now()}`;

async function refreshPorts() {
  for (const line of (await podman(['port', NAME])).split('\n')) {
    const m = line.match(/^(\d+)\/tcp -> [\d.]+:(\d+)$/);
    if (m) c.ports[m[1]] = Number(m[2]);
  }
}

async function inPage(fn) {
  const browser = await connect(c.url(9222), TOKEN);
  try {
    const { page } = await openPage(browser);
    await page.evaluate(fn);
    await page.close();
  } finally {
    await browser.close();
  }
}

async function cookieNames() {
  const browser = await connect(c.url(9222), TOKEN);
  try {
    return Object.fromEntries((await browser.contexts()[0].cookies(`${ORIGIN}/`)).map((k) => [k.name, k.value]));
  } finally {
    await browser.close();
  }
}

before(async () => {
  await cleanup({ containers: [NAME], volumes: [VOLUME] });
  c = await runContainer({ name: NAME, image: HEADFUL, volume: VOLUME, hostname: 'journal-e2e', ports: [9222, 9100], env: { CORRAL_CDP_TOKEN: TOKEN } });
  await waitReady(c, 90_000);
  await inPage(`(() => { for (let i = 0; i < ${ROUNDS}; i++) document.cookie = 'del_' + i + '=1; max-age=86400; path=/'; })()`);
  // A clean restart (its pre_stop closes Chromium over CDP): the store is written.
  await podman(['exec', NAME, 'corralctl', 'restart', 'chromium'], { timeoutMs: 90_000 });
  await waitReady(c, 90_000);
  assert.equal((await cookieNames()).del_0, '1');
});

after(async () => {
  await cleanup({ containers: [NAME], volumes: [VOLUME] });
});

test(`podman kill -s KILL: a cookie set 2 s before is back, one deleted stays deleted (${ROUNDS} of ${ROUNDS})`, async () => {
  const bad = [];
  let applied = 0;
  for (let i = 0; i < ROUNDS; i++) {
    await inPage(`(() => {
      document.cookie = 'set_${i}=v${i}; max-age=86400; path=/';
      document.cookie = 'del_${i}=; max-age=0; path=/';
    })()`);
    // The scenario, not a synchronisation: the change is 2 s old at the kill.
    await new Promise((r) => setTimeout(r, 2_000));
    await podman(['kill', '-s', 'KILL', NAME]);
    await waitFor('the container to exit', async () => (await inspect(NAME, '{{.State.Status}}')).trim() === 'exited', { timeoutMs: 30_000 });
    await podman(['start', NAME]);
    await refreshPorts();
    await waitReady(c, 90_000);
    const got = await cookieNames();
    const missing = [...Array(i + 1).keys()].filter((j) => got[`set_${j}`] !== `v${j}`);
    const back = [...Array(i + 1).keys()].filter((j) => `del_${j}` in got);
    if (missing.length || back.length) bad.push({ round: i, missing, back });
    const prom = await podman(['exec', NAME, 'cat', '/data/snapshots/cookies.journal.json.prom'], { allowFail: true });
    if (/replay_applied 1/.test(prom ?? '')) applied++;
  }
  assert.deepEqual(bad, [], `rounds with lost or resurrected cookies: ${JSON.stringify(bad)}`);
  assert.ok(applied >= ROUNDS / 2, `the journal was replayed in only ${applied} of ${ROUNDS} restarts`);
  console.log(`journal replayed in ${applied} of ${ROUNDS} restarts; ${ROUNDS - bad.length}/${ROUNDS} rounds exact`);
});
