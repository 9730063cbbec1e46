// What an attacker has: a web server of its own (here on 127.0.0.1, reached by
// the user's browser as http://evil.test:PORT or, after DNS rebinding, as
// http://rebind.test:PORT) whose page tries every route to the stack; and the
// user's everyday browser — a separate headless /usr/bin/chromium with its own
// temp profile, names mapped to 127.0.0.1 by --host-resolver-rules so nothing
// leaves the machine.

import http from 'node:http';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { CHROMIUM, CHROMIUM_FLAGS, freePort } from './stack.mjs';

/** The attack page's script: tries WebSockets and fetches, reports what it got. */
export const ATTACK_JS = `
window.tryWs = (url, { protocols, send } = {}) => new Promise((resolve) => {
  const r = { url, opened: false, messages: [], error: false, closeCode: null };
  let ws;
  try { ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url); }
  catch (e) { r.threw = String(e); return resolve(r); }
  ws.binaryType = 'arraybuffer';
  let t;
  const end = () => { clearTimeout(t); try { ws.close(); } catch {} resolve(r); };
  t = setTimeout(end, 5000);
  ws.onopen = () => { r.opened = true; if (send) ws.send(send); };
  ws.onmessage = (ev) => {
    r.messages.push(typeof ev.data === 'string' ? ev.data.slice(0, 300)
      : 'binary:' + String.fromCharCode(...new Uint8Array(ev.data).slice(0, 12)));
    clearTimeout(t); t = setTimeout(end, 300);
  };
  ws.onerror = () => { r.error = true; };
  ws.onclose = (ev) => { r.closeCode = ev.code; end(); };
});
// The RFB handshake as far as a page can take it without a password: the
// banner, the security types offered, then "none" chosen and the answer.
window.tryRfbNone = (url) => new Promise((resolve) => {
  const r = { url, banner: null, types: null, after: null, closed: false };
  let ws;
  try { ws = new WebSocket(url, ['binary']); } catch (e) { r.threw = String(e); return resolve(r); }
  ws.binaryType = 'arraybuffer';
  let buf = new Uint8Array(0);
  let stage = 0;
  const done = () => { clearTimeout(t); try { ws.close(); } catch {} resolve(r); };
  const t = setTimeout(done, 5000);
  ws.onmessage = (ev) => {
    const d = new Uint8Array(ev.data);
    const n = new Uint8Array(buf.length + d.length);
    n.set(buf); n.set(d, buf.length); buf = n;
    if (stage === 0 && buf.length >= 12) {
      r.banner = String.fromCharCode(...buf.slice(0, 12)); buf = buf.slice(12);
      ws.send(new TextEncoder().encode('RFB 003.008\\n')); stage = 1;
    }
    if (stage === 1 && buf.length >= 1 && buf.length >= 1 + buf[0]) {
      r.types = [...buf.slice(1, 1 + buf[0])]; buf = buf.slice(1 + buf[0]);
      ws.send(new Uint8Array([1])); stage = 2;
    }
    if (stage === 2 && buf.length >= 4) { r.after = [...buf.slice(0, 4)]; done(); }
  };
  ws.onclose = () => { r.closed = true; done(); };
  ws.onerror = () => {};
});
window.tryFetch = async (url, init = {}) => {
  const r = { url, method: init.method || 'GET', mode: init.mode || 'cors' };
  try {
    const res = await fetch(url, init);
    r.type = res.type; r.status = res.status;
    try { r.body = (await res.text()).slice(0, 300); } catch (e) { r.bodyError = String(e); }
  } catch (e) { r.failed = String(e); }
  return r;
};
`;

/**
 * The attacker's server on 127.0.0.1: `/attack` (the page), `/canary` (counted:
 * a tab the attack managed to open would load it), anything else a small page.
 * Also a WebSocket server accepting any Origin (`controlWs`): the positive
 * control that the browser does let this page reach loopback WebSockets.
 */
export async function hostileServer() {
  const port = await freePort();
  const canary = { hits: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/canary') canary.hits++;
    if (url.pathname === '/cors') {
      res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' });
      return res.end('readable');
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html><head><title>${url.pathname === '/attack' ? 'totally harmless' : 'page'}</title><link rel="icon" href="data:,"></head><body><script>${ATTACK_JS}</script></body></html>`);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const wsPort = await freePort();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: wsPort });
  wss.on('connection', (ws) => ws.send('control: any origin welcome'));
  await new Promise((r) => wss.once('listening', r));
  return {
    port,
    wsPort,
    canary,
    canaryUrl: `http://127.0.0.1:${port}/canary`,
    async close() {
      await new Promise((r) => wss.close(r));
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The user's everyday browser: headless, its own temp profile, evil.test and rebind.test mapped to 127.0.0.1. */
export async function everydayBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, '--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1'],
  });
}
