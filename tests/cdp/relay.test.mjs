// The frame relay: corral-cdp passes frames on as they arrive, so its memory
// does not follow the message size. A 200 MiB message from Chromium, byte for
// byte against the same message read from Chromium's own port; a client that
// stops reading (the bridge stops reading Chromium's socket instead of
// buffering, and its other connections keep their latency); fragmented client
// messages with pings between the fragments; a client closing, and Chromium
// dying, in the middle of a large frame.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import { startStack, waitFor } from './lib/stack.mjs';
import { openWs, Cdp, within } from './lib/clients.mjs';

const MiB = 1024 * 1024;
let stack;
let pid;
let page;

before(async () => {
  stack = await startStack({ name: 'relay' });
  pid = stack.bridgePid();
  page = (await stack.get('cdp', '/json/new?about:blank', { method: 'PUT' })).json;
  // Warm up: the bridge's per-thread buffers and runtime are allocated once.
  const cdp = await Cdp.open(page.webSocketDebuggerUrl);
  await cdp.send('Runtime.evaluate', { expression: '"x".repeat(1 << 20)', returnByValue: true });
  await cdp.close();
});

after(async () => {
  await stack?.stop();
});

const status = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const rssKiB = () => status('VmRSS');
/** VmHWM since the last reset: the exact peak, not a sample. */
const peakKiB = () => status('VmHWM');
const resetPeak = () => fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
const mib = (kib) => (kib / 1024).toFixed(2);

const directUrl = (target) => `ws://127.0.0.1:${stack.upstream}/devtools/page/${target.id}`;

/**
 * An expression whose value is a string of about `mib` MiB, the same every
 * time: ASCII with two- and three-byte characters, so fragments cut UTF-8
 * sequences.
 */
const bigString = (mib) =>
  `(() => { let c = ''; for (let i = 0; c.length < 65536; i++) c += 'abcdefghijklmnopqrstuvwxyz0123456789é€ '[(i * 7919) % 39]; return c.repeat(${mib * 16}); })()`;

/** Sends one CDP call on a raw `ws` and resolves to the answer's raw bytes. */
function rawCall(ws, id, method, params) {
  return new Promise((resolve, reject) => {
    const onMessage = (data) => {
      // Answers start with their id; anything else (events) is skipped.
      if (data.subarray(0, 20).toString('latin1').startsWith(`{"id":${id},`)) {
        ws.off('message', onMessage);
        resolve(data);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', (code) => reject(new Error(`closed (${code}) before answer ${id}`)));
    ws.send(JSON.stringify({ id, method, params }));
  });
}

/**
 * The largest receive queue of the bridge's sockets to Chromium: bytes
 * Chromium sent that the bridge leaves unread (back-pressure).
 */
function upstreamRxQueue() {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {}
  }
  const port = stack.upstream.toString(16).toUpperCase().padStart(4, '0');
  let max = 0;
  for (const line of fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[2].endsWith(`:${port}`) && inodes.has(f[9])) max = Math.max(max, parseInt(f[4].split(':')[1], 16));
  }
  return max;
}

/** p50 of `n` Browser.getVersion round trips, in ms. */
async function p50(cdp, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await cdp.send('Browser.getVersion');
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)];
}

test('a 200 MiB message from Chromium passes byte-identical; the bridge stays within a few MiB', { timeout: 240_000 }, async () => {
  const viaBridge = await openWs(page.webSocketDebuggerUrl);
  const direct = await openWs(directUrl(page));
  try {
    // 170 Mi characters, some of them two or three bytes: over 200 MiB of JSON.
    const params = { expression: bigString(170), returnByValue: true };
    const want = await rawCall(direct, 1, 'Runtime.evaluate', params);
    assert.ok(want.length >= 200 * MiB, `the message is ${(want.length / MiB).toFixed(1)} MiB`);
    const before = rssKiB();
    resetPeak();
    const got = await rawCall(viaBridge, 1, 'Runtime.evaluate', params);
    const peak = peakKiB();
    const after = rssKiB(); // its connection still open
    const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
    console.log(`# ${(got.length / MiB).toFixed(1)} MiB message; bridge RSS ${mib(before)} MiB before, peak ${mib(peak)}, after ${mib(after)} (connection open)`);
    assert.equal(got.length, want.length);
    assert.equal(sha(got), sha(want), 'the same bytes as Chromium sent');
    assert.ok(peak - before < 8 * 1024, `bridge RSS peaked ${mib(peak - before)} MiB above ${mib(before)} MiB`);
    assert.ok(after - before < 2 * 1024, `bridge RSS ${mib(after - before)} MiB above before with the connection open`);
  } finally {
    viaBridge.close(1000);
    direct.close(1000);
  }
});

test('a client that stops reading: the bridge leaves Chromium\'s bytes unread instead of buffering; other connections keep their latency', { timeout: 180_000 }, async () => {
  const other = await Cdp.open((await stack.get('cdp', '/json/version')).json.webSocketDebuggerUrl);
  const slow = await openWs(page.webSocketDebuggerUrl);
  try {
    await p50(other, 50); // warm-up
    const baseline = await p50(other, 200);
    const before = rssKiB();
    resetPeak();
    const answer = rawCall(slow, 7, 'Runtime.evaluate', { expression: bigString(100), returnByValue: true });
    slow.pause();
    // Back-pressure reached the bridge: Chromium's bytes wait in the kernel,
    // unread by the bridge (a real condition, polled).
    const queued = await waitFor('bytes from Chromium left unread by the bridge', () => {
      const q = upstreamRxQueue();
      return q > 1 * MiB ? q : null;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    const during = await p50(other, 200);
    const held = rssKiB();
    slow.resume();
    const got = await within(60_000, answer, 'the slow client\'s answer after it reads again');
    const peak = peakKiB();
    console.log(
      `# slow client: ${(queued / MiB).toFixed(1)} MiB left in the bridge's socket from Chromium; bridge RSS ${mib(before)} MiB before, ` +
        `${mib(held)} while held, peak ${mib(peak)}; other connection p50 ${baseline.toFixed(3)} ms before, ${during.toFixed(3)} ms during`,
    );
    assert.ok(got.length >= 100 * MiB, 'the whole answer arrives once the client reads');
    assert.equal(JSON.parse(got).result.result.value.length, 100 * 16 * 65536);
    assert.ok(held - before < 4 * 1024, `bridge RSS ${mib(held - before)} MiB above before while the client does not read`);
    assert.ok(peak - before < 8 * 1024, `bridge RSS peaked ${mib(peak - before)} MiB above before`);
    assert.ok(during <= baseline * 3 + 2, `other connection's p50: ${during.toFixed(3)} ms during vs ${baseline.toFixed(3)} ms before`);
  } finally {
    slow.close(1000);
    await other.close();
  }
});

test('fragmented client messages with pings between the fragments are relayed; pongs come back in order', { timeout: 60_000 }, async () => {
  const ws = await openWs(page.webSocketDebuggerUrl);
  try {
    const pongs = [];
    ws.on('pong', (d) => pongs.push(d.toString()));
    let id = 100;
    // Small ones cut every few bytes (inside multi-byte characters too), a
    // 24 MiB one in 1 MiB fragments; text, and binary holding UTF-8.
    for (const [size, cut, binary] of [[40, 3, false], [300, 1, false], [2000, 7, true], [24 * MiB, MiB, false], [3 * MiB, 100_000, true]]) {
      const s = 'aé€'.repeat(Math.ceil(size / 6));
      const msg = Buffer.from(JSON.stringify({ id: ++id, method: 'Runtime.evaluate', params: { expression: `${JSON.stringify(s)}.length`, returnByValue: true } }));
      const answer = new Promise((resolve) => {
        const on = (data) => {
          const m = JSON.parse(data);
          if (m.id === id) {
            ws.off('message', on);
            resolve(m);
          }
        };
        ws.on('message', on);
      });
      const sent = [];
      for (let at = 0, n = 0; at < msg.length; at += cut, n++) {
        ws.send(msg.subarray(at, at + cut), { binary, fin: at + cut >= msg.length });
        if (n % 3 === 0) {
          const p = `p${id}-${n}`;
          ws.ping(p);
          sent.push(p);
        }
      }
      const m = await within(30_000, answer, `answer ${id}`);
      assert.equal(m.result.result.value, s.length, `message ${id} (${msg.length} bytes in ${cut}-byte fragments) arrived whole`);
      await waitFor(`pongs for message ${id}`, () => sent.every((p) => pongs.includes(p)), { timeoutMs: 10_000, intervalMs: 10 });
      const mine = pongs.filter((p) => p.startsWith(`p${id}-`));
      assert.deepEqual(mine, sent, 'each ping answered once, in order, with its payload');
    }
  } finally {
    ws.close(1000);
    await ws.closed;
  }
});

/** Opens `url`, asks for a large answer, and resolves once `bytes` of it have arrived. */
async function midFrame(url, bytes) {
  const ws = await openWs(url);
  const state = { received: 0, messages: 0, sizes: [] };
  ws.on('message', (m) => {
    state.messages++;
    state.sizes.push(m.length);
  });
  const arrived = new Promise((resolve) => {
    ws._socket.on('data', (d) => {
      state.received += d.length;
      if (state.received >= bytes) resolve();
    });
  });
  ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression: bigString(150), returnByValue: true } }));
  await within(60_000, arrived, 'the first bytes of the large answer');
  return { ws, state };
}

test('a client closing in the middle of a large frame gets its close code back after that frame; the bridge carries on', { timeout: 120_000 }, async () => {
  const { ws, state } = await midFrame(page.webSocketDebuggerUrl, 2 * MiB);
  ws.close(4001, 'enough');
  const { code } = await within(30_000, ws.closed, 'the close handshake');
  console.log(`# close sent after ${(state.received / MiB).toFixed(1)} MiB of the answer: code ${code}; messages ${JSON.stringify(state.sizes)}`);
  assert.equal(code, 4001, 'the bridge echoed the close once Chromium\'s frame had passed, not a dropped connection (1006)');
  // The frame in passage was finished (frames are never cut), so the
  // answer arrived whole before the echo; nothing partial.
  assert.equal(state.messages, 1);
  assert.ok(state.sizes[0] > 150 * MiB, `the whole answer (${state.sizes[0]} bytes)`);
  await waitFor('the bridge to log the close', () => /client closed \(4001\)/.test(stack.programLog('cdp')), { timeoutMs: 10_000 });
  const cdp = await Cdp.open(page.webSocketDebuggerUrl);
  assert.equal((await cdp.send('Runtime.evaluate', { expression: '6*7', returnByValue: true })).result.value, 42);
  await cdp.close();
});

test('Chromium dying in the middle of a large frame: the client\'s connection ends (1006), no partial message', { timeout: 120_000 }, async () => {
  // Frames pass as Chromium framed them (chromedriver takes each frame for
  // a message), so no close frame can go inside one: the connection ends.
  // Between frames the client gets 1011 (the restart tests).
  const { ws, state } = await midFrame(page.webSocketDebuggerUrl, 2 * MiB);
  process.kill(stack.chromiumPid(), 'SIGKILL');
  const { code } = await within(30_000, ws.closed, 'the close after Chromium died');
  console.log(`# Chromium killed after ${(state.received / MiB).toFixed(1)} MiB of the answer: code ${code}`);
  assert.equal(code, 1006);
  assert.equal(state.messages, 0, 'no partial message was delivered');
});
