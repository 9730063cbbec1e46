// Nothing listens beyond loopback without a credential: the refusals happen
// at start, before a port is opened. The binaries run directly (no stack).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { BIN, freePort, waitFor } from './lib/stack.mjs';

/** Runs a binary with no CORRAL_* from our environment; resolves to { code, stderr } or, if still running after `untilMs`, kills it. */
function run(bin, args, { env = {}, untilMs = 15_000 } = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CORRAL_')));
  const child = spawn(path.join(BIN, bin), args, { env: { ...clean, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  return { child, exited, stderr: () => stderr };
}

const accepts = (port) =>
  new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

test('corral-cdp on 0.0.0.0 without a token exits 2 with the reason; nothing listened', async () => {
  const port = await freePort();
  const { exited } = run('corral-cdp', ['--listen', `0.0.0.0:${port}`, '--upstream', '127.0.0.1:1']);
  const { code, stderr } = await exited;
  assert.equal(code, 2, stderr);
  assert.match(stderr, new RegExp(`refusing to listen on 0\\.0\\.0\\.0:${port} without a token`));
  assert.match(stderr, /--insecure-no-auth/);
  assert.equal(await accepts(port), false);
});

test('corral-cdp on 0.0.0.0 starts with --insecure-no-auth, or with a token', async () => {
  for (const [args, env] of [[['--insecure-no-auth'], {}], [[], { CORRAL_CDP_TOKEN: 'startup-test-token-0123456789' }]]) {
    const port = await freePort();
    const p = run('corral-cdp', ['--listen', `0.0.0.0:${port}`, '--upstream', '127.0.0.1:1', ...args], { env });
    try {
      await Promise.race([
        waitFor(`corral-cdp ${args} to listen on ${port}`, () => accepts(port), { timeoutMs: 15_000 }),
        p.exited.then(({ code, stderr }) => {
          throw new Error(`exited ${code}: ${stderr}`);
        }),
      ]);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  }
});

test('corral-live without a token exits 2, on loopback too', async () => {
  for (const listen of ['127.0.0.1', '0.0.0.0']) {
    const port = await freePort();
    const { code, stderr } = await run('corral-live', ['--listen', `${listen}:${port}`, '--web', '/usr/share/novnc']).exited;
    assert.equal(code, 2, stderr);
    assert.match(stderr, /needs a token/);
    assert.equal(await accepts(port), false);
  }
});

test('corral-api beyond loopback without a token exits 2', async () => {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-security-startup-'));
  try {
    const { code, stderr } = await run('corral-api', ['--listen', `0.0.0.0:${port}`, '--fs-root', dir, '--socket', path.join(dir, 'none.sock')]).exited;
    assert.equal(code, 2, stderr);
    assert.match(stderr, /refusing to listen on 0\.0\.0\.0/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
