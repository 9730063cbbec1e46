// Chromium's kept flags and extensions in the headful image, across container
// restarts: a flag set with PATCH /chromium/flags and an extension uploaded to
// /chromium/upload-extensions-and-restart are on Chromium's command line (read
// from /proc inside the container) and the extension's content script runs in a
// page (Playwright through the CDP bridge) — after the API's own restart, after
// `podman stop` + `podman start`, and after `podman restart`. Both live on the
// volume and `corral-api chromium-launch` applies them at every start.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HEADFUL, runContainer, waitReady, podman, cleanup, status, get } from './lib/podman.mjs';
import { connect, openPage } from './lib/browser.mjs';

const NAME = `corral-chromium-config-e2e-${process.pid}`;
const VOLUME = `${NAME}-data`;
const CDP_TOKEN = `cdp-${process.pid}-${Date.now()}`;
const API_TOKEN = `api-${process.pid}-${Date.now()}`;
const FLAG = '--corral-e2e-flag=kept';
let c;

/** The host ports podman published; they may change on `podman start`. */
async function refreshPorts() {
  for (const line of (await podman(['port', NAME])).split('\n')) {
    const m = line.match(/^(\d+)\/tcp -> [\d.]+:(\d+)$/);
    if (m) c.ports[m[1]] = Number(m[2]);
  }
}

async function api(method, path, body, headers = {}) {
  const res = await fetch(c.url(10001, path), {
    method,
    headers: { Authorization: `Bearer ${API_TOKEN}`, ...headers },
    body,
    signal: AbortSignal.timeout(90_000),
  });
  return { status: res.status, json: await res.json() };
}

// ---- a zip of an unpacked extension (stored entries), with node built-ins only
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function zip(files) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, text] of Object.entries(files)) {
    const n = Buffer.from(name);
    const data = Buffer.from(text);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += local.length + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(centrals.length / 2, 8);
  end.writeUInt16LE(centrals.length / 2, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const EXTENSION = zip({
  'manifest.json': JSON.stringify({
    manifest_version: 3,
    name: 'corral e2e',
    version: '1.0',
    content_scripts: [{ matches: ['<all_urls>'], js: ['cs.js'], run_at: 'document_start' }],
  }),
  'cs.js': 'document.documentElement.setAttribute("data-corral-ext", "ran");',
});

/** Chromium's argv inside the container, from /proc of the pid corral reports. */
async function chromiumArgs() {
  const { pid } = (await status(NAME)).chromium;
  const raw = await podman(['exec', NAME, 'cat', `/proc/${pid}/cmdline`]);
  return raw.split('\0').filter(Boolean);
}

/** The attribute the content script sets, in a fresh page (null if it did not run). */
async function contentScript() {
  const browser = await connect(c.url(9222), CDP_TOKEN);
  try {
    const { page } = await openPage(browser);
    // document_start: it ran before the page's own scripts could look.
    const got = await page.evaluate(() => document.documentElement.getAttribute('data-corral-ext'));
    await page.close();
    return got;
  } finally {
    await browser.close();
  }
}

async function checkApplied(when) {
  const args = await chromiumArgs();
  assert.ok(args.includes(FLAG), `${when}: ${FLAG} not in ${args.join(' ')}`);
  assert.ok(
    args.some((a) => a.startsWith('--load-extension=') && a.includes('/data/extensions/e2e')),
    `${when}: the extension is not loaded: ${args.join(' ')}`,
  );
  assert.equal(await contentScript(), 'ran', `${when}: the content script did not run`);
}

before(async () => {
  await cleanup({ containers: [NAME], volumes: [VOLUME] });
  c = await runContainer({
    name: NAME,
    image: HEADFUL,
    volume: VOLUME,
    hostname: 'chromium-config-e2e',
    ports: [9222, 9100, 10001],
    env: { CORRAL_CDP_TOKEN: CDP_TOKEN, CORRAL_API_TOKEN: API_TOKEN, API_LISTEN: '0.0.0.0:10001' },
  });
  await waitReady(c, 90_000);
});

after(async () => {
  await cleanup({ containers: [NAME], volumes: [VOLUME] });
});

test('flags and an extension set through the API survive container restarts', async () => {
  assert.equal(await contentScript(), null, 'no extension yet');

  const t0 = Date.now();
  const r = await api('PATCH', '/chromium/flags', JSON.stringify({ flags: [FLAG] }), {
    'Content-Type': 'application/json',
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  console.log(`PATCH /chromium/flags answered in ${Date.now() - t0} ms: ${JSON.stringify(r.json.restart)}`);
  assert.ok((await chromiumArgs()).includes(FLAG));

  const refused = await api('PATCH', '/chromium/flags', JSON.stringify({ flags: ['--user-data-dir=/tmp/x'] }), {
    'Content-Type': 'application/json',
  });
  assert.equal(refused.status, 400, JSON.stringify(refused.json));

  const form = new FormData();
  form.append('extensions.name', 'e2e');
  form.append('extensions.zip_file', new Blob([EXTENSION], { type: 'application/zip' }), 'e2e.zip');
  const t1 = Date.now();
  const up = await api('POST', '/chromium/upload-extensions-and-restart', form);
  assert.equal(up.status, 201, JSON.stringify(up.json));
  console.log(`upload-extensions-and-restart answered in ${Date.now() - t1} ms`);
  await checkApplied('after the upload');
  const listed = await api('GET', '/chromium/extensions');
  assert.deepEqual(
    listed.json.extensions.map((e) => e.name),
    ['e2e'],
  );

  await podman(['stop', '-t', '40', NAME], { timeoutMs: 90_000 });
  await podman(['start', NAME]);
  await refreshPorts();
  await waitReady(c, 90_000);
  await checkApplied('after podman stop + start');

  await podman(['restart', '-t', '40', NAME], { timeoutMs: 150_000 });
  await refreshPorts();
  await waitReady(c, 90_000);
  await checkApplied('after podman restart');
  const flags = await api('GET', '/chromium/flags');
  assert.deepEqual(flags.json.flags, [FLAG]);

  // Deleted: gone after the next start too.
  const del = await api('DELETE', '/chromium/extensions/e2e');
  assert.equal(del.status, 200, JSON.stringify(del.json));
  assert.equal(await contentScript(), null, 'the deleted extension still runs');
  assert.equal((await get(c.url(9100, '/readyz')))?.status, 200);
});
