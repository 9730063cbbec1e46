// --ready-program: the bridge lets clients reach Chromium only while corral
// reports the chromium program ready. In the shipped supervisor.toml that
// readiness is `corral-snapshot replay` (the cookie journal restored after
// an unclean stop), and Chromium's DevTools port answers well before it: a
// client let in on the port alone could see (and save over) a profile that
// has not got its last cookies back yet (issue 11).
//
// Here Chromium's readiness is a gate file the test controls, so "not ready
// while DevTools answers" lasts exactly as long as the test wants. A second
// bridge without the flag shows what the flag changes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { startStack, waitFor } from './lib/stack.mjs';
import { wsRefusal } from './lib/clients.mjs';

let stack;
let gateDir;
let gate;

before(async () => {
  gateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-cdp-ready-'));
  gate = path.join(gateDir, 'restored');
  fs.writeFileSync(gate, '');
  stack = await startStack({
    name: 'ready',
    chromiumReady: `{ exec = ["test", "-e", ${JSON.stringify(gate)}], timeout = "120s" }`,
    bridges: {
      held: { args: ['--ready-program', 'chromium', '--control-socket', '{SOCKET}'] },
      plain: {},
    },
  });
});

after(async () => {
  await stack?.stop();
  if (gateDir) fs.rmSync(gateDir, { recursive: true, force: true });
});

async function chromiumStatus() {
  try {
    return await stack.ctl('status', 'chromium');
  } catch (e) {
    return `${e.stdout ?? ''}${e.message}`;
  }
}

async function upstreamAnswers() {
  try {
    const r = await fetch(`http://127.0.0.1:${stack.upstream}/json/version`, { signal: AbortSignal.timeout(2000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

test('while chromium is not ready, the held bridge answers 503 though DevTools answers; once ready, clients get in', async () => {
  const before = await stack.get('held', '/json/version');
  assert.equal(before.status, 200, 'the held bridge lets clients in while chromium is ready');

  // Chromium dies (as after an unclean stop) and comes back; its readiness
  // check now fails until the gate file is back.
  fs.rmSync(gate);
  await stack.ctl('signal', 'KILL', 'chromium');
  await waitFor('a new Chromium answering on its DevTools port, not yet ready', async () => {
    if (!(await upstreamAnswers())) return false;
    return /STARTING/.test(await chromiumStatus());
  }, { timeoutMs: 60_000 });

  const held = await stack.get('held', '/json/version');
  assert.equal(held.status, 503, `held bridge while not ready: ${held.status} ${held.text}`);
  assert.match(held.json?.detail ?? '', /chromium is not ready/, held.text);
  const refusal = await wsRefusal(`ws://127.0.0.1:${stack.ports.held}/`);
  assert.equal(refusal.status, 503, 'a WebSocket through the held bridge is refused while not ready');
  // The same Chromium through a bridge without the flag: let in at once.
  const plain = await stack.get('plain', '/json/version');
  assert.equal(plain.status, 200, 'the plain bridge follows the port alone');
  // Still not ready: the refusal is not a one-off.
  assert.match(await chromiumStatus(), /STARTING/);

  fs.writeFileSync(gate, '');
  await waitFor('the held bridge to let clients in once chromium is ready', async () => {
    const r = await stack.get('held', '/json/version');
    return r.status === 200;
  }, { timeoutMs: 30_000 });
  const browser = await chromium.connectOverCDP(`http://127.0.0.1:${stack.ports.held}`);
  try {
    const page = await browser.contexts()[0].newPage();
    assert.equal(await page.evaluate(() => 6 * 7), 42);
    await page.close();
  } finally {
    await browser.close();
  }
});
