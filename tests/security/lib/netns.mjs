// A stranger on the network: a network namespace of the test's own, joined to
// this machine by a veth pair (host side HOST_ADDR, namespace side NS_ADDR,
// a /30 of 10.253.0.0/16). Code runs inside it as `ip netns exec NS node …`;
// its traffic reaches only this machine, never beyond.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const LIB = new URL('./stack.mjs', import.meta.url).href;

export class Netns {
  static async create() {
    const n = process.pid % 16000;
    const ns = new Netns();
    ns.name = `corral-sec-${process.pid}`;
    ns.hostIf = `csh${process.pid}`.slice(0, 15);
    ns.nsIf = `csn${process.pid}`.slice(0, 15);
    const a = Math.floor(n / 64);
    const b = (n % 64) * 4;
    ns.hostAddr = `10.253.${a}.${b + 1}`;
    ns.nsAddr = `10.253.${a}.${b + 2}`;
    const ip = (...args) => run('ip', args);
    await ip('netns', 'add', ns.name);
    ns.created = true;
    await ip('link', 'add', ns.hostIf, 'type', 'veth', 'peer', 'name', ns.nsIf);
    await ip('link', 'set', ns.nsIf, 'netns', ns.name);
    await ip('addr', 'add', `${ns.hostAddr}/30`, 'dev', ns.hostIf);
    await ip('link', 'set', ns.hostIf, 'up');
    await ip('netns', 'exec', ns.name, 'ip', 'addr', 'add', `${ns.nsAddr}/30`, 'dev', ns.nsIf);
    await ip('netns', 'exec', ns.name, 'ip', 'link', 'set', ns.nsIf, 'up');
    await ip('netns', 'exec', ns.name, 'ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Runs an ES module body inside the namespace (`lib` is tests/security/lib/stack.mjs); resolves to its JSON on stdout. */
  async node(body, { timeoutMs = 30_000 } = {}) {
    const code = `import * as lib from ${JSON.stringify(LIB)};\nconst out = await (async () => { ${body} })();\nprocess.stdout.write(JSON.stringify(out));\nprocess.exit(0);`;
    const { stdout } = await run('ip', ['netns', 'exec', this.name, process.execPath, '--input-type=module', '-e', code], {
      timeout: timeoutMs,
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    return JSON.parse(stdout);
  }

  /** 'connected', or the error code of a TCP connect from inside the namespace. */
  async tcpConnect(host, port) {
    return this.node(`
      const net = await import('node:net');
      return await new Promise((resolve) => {
        const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port}, timeout: 5000 });
        s.once('connect', () => { s.destroy(); resolve('connected'); });
        s.once('timeout', () => { s.destroy(); resolve('timeout'); });
        s.once('error', (e) => resolve(e.code));
      });`);
  }

  async remove() {
    if (!this.created) return;
    this.created = false;
    await run('ip', ['netns', 'del', this.name]).catch(() => {});
    await run('ip', ['link', 'del', this.hostIf]).catch(() => {});
  }
}
