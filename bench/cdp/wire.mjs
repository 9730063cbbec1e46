// The bridge's own delay on the first byte of an answer, measured on the wire.
//
// At the client, "first byte through the bridge − first byte direct" mixes the
// bridge's delay with how long Chromium takes to make each answer, which for a
// 33 MB answer varies by milliseconds from call to call. On the wire the two
// are apart: tcpdump on lo timestamps (in the kernel) the first segment of
// each answer that Chromium sends the bridge and the first one the bridge
// sends the client; the difference is what the bridge adds to the first byte.
//
// Needs tcpdump and the right to capture (root, as bench/cdp/run runs).

import { spawn, execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

// A WebSocket control frame is at most 2 + 4 + 125 bytes: a segment longer
// than that carries data (an answer), a shorter one may be a ping or pong.
const CONTROL_MAX = 131;
// A request (Runtime.evaluate …) is longer than a pong (6 bytes masked).
const REQUEST_MIN = 20;

/**
 * Starts capturing, on lo, the client's connection to the bridge and every
 * segment Chromium's port sends that is not for the direct client (that is,
 * to the bridge). Resolves once tcpdump listens.
 */
export async function startCapture({ bridgePort, clientPort, chromiumPort, directClientPort }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cdp-wire-"));
  const file = path.join(dir, "capture.pcap");
  const filter = `tcp and ((src port ${clientPort} and dst port ${bridgePort}) or ` +
    `(src port ${bridgePort} and dst port ${clientPort}) or ` +
    `(src port ${chromiumPort} and not dst port ${directClientPort}))`;
  const p = spawn("tcpdump", ["-i", "lo", "-n", "-s", "96", "-w", file, filter], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump not listening within 10 s: ${err}`)), 10_000);
    p.stderr.on("data", (d) => {
      err += d;
      if (/listening on/.test(err)) { clearTimeout(timer); resolve(); }
    });
    p.once("error", (e) => { clearTimeout(timer); reject(e); });
    p.once("exit", (code) => { clearTimeout(timer); reject(new Error(`tcpdump exited (${code}): ${err.trim()}`)); });
  });
  return {
    /** Stops the capture; per answer, µs from Chromium's first segment to the bridge's. */
    async stop() {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGINT");
      await exited;
      const { stdout } = await promisify(execFile)("tcpdump", ["-r", file, "-n", "-tt", "-q"], { maxBuffer: 256 << 20 });
      fs.rmSync(dir, { recursive: true, force: true });
      return delays(stdout, { bridgePort, clientPort, chromiumPort });
    },
  };
}

// `tcpdump -q` lines: "1733345678.123456 IP 127.0.0.1.45678 > 127.0.0.1.9222: tcp 101".
function delays(text, { bridgePort, clientPort, chromiumPort }) {
  const out = [];
  let state = "idle";
  let upAt = 0;
  for (const line of text.split("\n")) {
    const m = /^(\d+)\.(\d+) IP6? \S+\.(\d+) > \S+\.(\d+): tcp (\d+)/.exec(line);
    if (!m) continue;
    // Microseconds since the epoch, exact (a double holds them).
    const t = Number(m[1]) * 1e6 + Number(m[2].padEnd(6, "0").slice(0, 6));
    const [src, dst, len] = [Number(m[3]), Number(m[4]), Number(m[5])];
    if (src === clientPort && dst === bridgePort && len > REQUEST_MIN) {
      state = "request";
    } else if (src === chromiumPort && len > CONTROL_MAX && state === "request") {
      upAt = t;
      state = "answer";
    } else if (src === bridgePort && dst === clientPort && len > CONTROL_MAX && state === "answer") {
      out.push(t - upAt);
      state = "idle";
    }
  }
  return out;
}
