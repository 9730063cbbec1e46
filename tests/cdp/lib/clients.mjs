// Small clients for the tests: raw TCP exchanges (for malformed input), raw
// WebSockets (the `ws` package, to see close codes and pings), and a minimal
// CDP session on top of one.

import net from 'node:net';
import WebSocket from 'ws';

/**
 * Connects, writes `chunks` (strings or Buffers, with `gapMs` between them),
 * and collects what the server sends until it closes the connection or
 * `timeoutMs` passes. `ms` is the time from connect to the server's close.
 */
export function rawExchange(port, chunks, { host = '127.0.0.1', timeoutMs = 20_000, gapMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    const bufs = [];
    let t0;
    let settled = false;
    const finish = (closedByServer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(bufs).toString('latin1'), closedByServer, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', async () => {
      t0 = Date.now();
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    sock.on('data', (d) => bufs.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => (bufs.length || t0 ? finish(true) : reject(e)));
  });
}

/** Parses a raw HTTP answer into status, headers and body. */
export function parseHttp(data) {
  const i = data.indexOf('\r\n\r\n');
  const head = i < 0 ? data : data.slice(0, i);
  const body = i < 0 ? '' : data.slice(i + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers = {};
  for (const l of lines) {
    const k = l.indexOf(':');
    if (k > 0) headers[l.slice(0, k).trim().toLowerCase()] = l.slice(k + 1).trim();
  }
  let json;
  try {
    json = JSON.parse(body);
  } catch {}
  return { status: m ? Number(m[1]) : null, headers, body, json };
}

/** Opens a WebSocket; resolves once open, rejects with the HTTP status if refused. */
export function openWs(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024, ...options });
    ws.closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const err = new Error(`WebSocket refused: HTTP ${res.statusCode}: ${body}`);
        err.status = res.statusCode;
        err.body = body;
        try {
          err.json = JSON.parse(body);
        } catch {}
        ws.terminate();
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

/** The HTTP status (and body) a WebSocket upgrade is refused with; throws if it opens. */
export async function wsRefusal(url, options) {
  try {
    const ws = await openWs(url, options);
    ws.terminate();
  } catch (e) {
    if (e.status) return e;
    throw e;
  }
  throw new Error(`expected ${url} to be refused, but it opened`);
}

/** A minimal CDP session over a raw WebSocket. */
export class Cdp {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.binaryMessages = 0;
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.binaryMessages++;
      const msg = JSON.parse(data.toString());
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(`${msg.error.code}: ${msg.error.message}`));
        else resolve(msg.result);
      } else {
        this.events.push(msg);
      }
    });
    ws.on('close', () => {
      for (const { reject } of this.pending.values()) reject(new Error('WebSocket closed'));
      this.pending.clear();
    });
  }

  static async open(url, options) {
    return new Cdp(await openWs(url, options));
  }

  send(method, params = {}, sessionId) {
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify(msg));
    });
  }

  close() {
    this.ws.close(1000);
    return this.ws.closed;
  }
}

/** Rejects if `p` does not settle within `ms`. */
export function within(ms, p, what = 'operation') {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}
