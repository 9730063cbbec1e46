#!/usr/bin/env python3
"""Measures corral's control plane against supervisord's, in one run.

Run through `bench/control/run`, which builds the binaries, installs supervisord,
hyperfine and wrk, and cleans up after this script whatever happens; this file
only measures and writes the "control" section of docs/benchmarks.md.
Standard library only.

What is measured (each for corral and for supervisord, same 5 programs):
  ctl     `corralctl status` / `supervisorctl -c CONF status` as a whole process
          (fork+exec+connect+answer+exit), with hyperfine: median, p99, mean.
  load    200 concurrent keep-alive connections for 10 s with wrk: corral's
          GET /readyz, supervisord's POST /RPC2 supervisor.getAllProcessInfo (the
          closest thing a probe of supervisord can ask; not the same endpoint).
          Requests/s, latency p50/p99, errors, and the supervisor's RSS and CPU
          during the load.
  idle    VmRSS of the supervisor with its control socket and HTTP listener on,
          before the load and after it.

Every wait polls a real condition (a connect, an HTTP answer, a file, the fd count)
with a deadline; the only plain sleeps are the poll gaps, the sampling period
during the load and the documented settle pause before an idle reading.
"""

import argparse
import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
from benchlib import (  # noqa: E402  (bench/lib/benchlib.py, found from this file's path)
    RSS_FIELDS, UNSHARE_PID1, cell, corral_pid, cpu_counters, exit_on_term, forget_pid,
    free_ports, goal_mark, load_average, logger, machine_line, md_table, memory_kib, mib,
    nproc, open_fds, publish, read, record_pid, render_section, stop_tree, summary,
    supervisord_head, supervisord_python, tcp_accepts, utc_now, version_of, wait_for,
)

PROGRAMS = 5
# Between two polls of a condition.
POLL_GAP_S = 0.005
# The supervisor's RSS and CPU are sampled this often while wrk runs.
SAMPLE_EVERY_S = 0.1
# Pause before an idle reading (as bench/init): start-up or load bookkeeping done.
SETTLE_S = 2.0
# Deadline for a supervisor and its 5 programs to be up and ready.
START_DEADLINE_S = 30.0
# What supervisord's XML-RPC probe asks, encoded once; wrk sends exactly this.
RPC_BODY = xmlrpc.client.dumps((), "supervisor.getAllProcessInfo")


log = logger("bench/control")
# What memory_kib() reads here: VmRSS and its parts, and VmHWM (the peak).
MEMORY_FIELDS = RSS_FIELDS + (("hwm_kib", "VmHWM"),)


def unix_accepts(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        return s.connect_ex(path) == 0


def http_call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The two supervisors


class Supervisor:
    name = "?"

    def __init__(self, args, workdir, ports, http_port):
        self.args, self.workdir = args, workdir
        self.ports, self.http_port = ports, http_port
        self.proc = None
        os.makedirs(workdir, exist_ok=True)

    def programs(self):
        return [(f"listen{i + 1}", [self.args.testprog, "listen", f"127.0.0.1:{p}", "wait"])
                for i, p in enumerate(self.ports)]

    def spawn(self, cmd, out_name):
        out = open(os.path.join(self.workdir, out_name), "ab")
        # Own session: a Ctrl-C on the terminal reaches this script, which then
        # stops the supervisor the ordinary way (stop()).
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        record_pid(self.args.pidfile, self.proc.pid)
        return self.proc

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, deadline_s=30.0):
        """SIGTERM to the supervisor, then SIGKILL to whatever of it is left."""
        if self.proc is None:
            return
        try:
            stop_tree(self.proc, lambda: self.pid, self.name, log, deadline_s)
        finally:
            forget_pid(self.args.pidfile, self.proc.pid)
            self.proc = None


class Corral(Supervisor):
    """corral as PID 1 of a fresh PID namespace, control socket + http listener."""

    name = "corral"

    def launch(self):
        self.socket = os.path.join(self.workdir, "control.sock")
        lines = [
            "[supervisor]",
            f'control_socket = "{self.socket}"',
            f'http = "127.0.0.1:{self.http_port}"',
            f'log_dir = "{self.workdir}/corral-log"',
            'stop_timeout = "5s"',
            "",
        ]
        for name, argv in self.programs():
            lines += [f"[programs.{name}]",
                      "command = [" + ", ".join(f'"{a}"' for a in argv) + "]",
                      f'ready = {{ tcp = "{argv[2]}" }}',
                      'restart = "always"', ""]
        self.conf = os.path.join(self.workdir, "corral.toml")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        self._pid = None
        proc = self.spawn(UNSHARE_PID1 + [self.args.corral, "--config", self.conf], "corral.out")
        wait_for("corral's control socket accepts", lambda: unix_accepts(self.socket),
                 START_DEADLINE_S, proc)
        for port in self.ports + [self.http_port]:
            wait_for(f"127.0.0.1:{port} accepts", lambda: tcp_accepts(port), START_DEADLINE_S, proc)
        wait_for("GET /readyz answers 200", lambda: self.probe_once()[0] == 200,
                 START_DEADLINE_S, proc)
        return proc

    @property
    def pid(self):
        # corral itself is unshare's only child.
        if self._pid is None:
            self._pid = corral_pid(self.proc, os.path.join(self.workdir, "corral.out"))
        return self._pid

    def ctl_argv(self):
        return [self.args.corralctl, "--socket", self.socket, "status"]

    def check_ctl(self, out):
        rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
        return len(rows) == PROGRAMS and all(r[1] == "RUNNING" for r in rows)

    def probe_once(self):
        return http_call(self.http_port, "GET", "/readyz")

    def wrk_script(self):
        return ""

    def url(self):
        return f"http://127.0.0.1:{self.http_port}/readyz"


class Supervisord(Supervisor):
    """supervisord in the foreground (-n), unix socket for supervisorctl and an
    inet_http_server for the XML-RPC load."""

    name = "supervisord"

    def launch(self):
        d = self.workdir
        self.socket = f"{d}/supervisor.sock"
        lines = supervisord_head(d, http_port=self.http_port)
        for name, argv in self.programs():
            lines += [f"[program:{name}]", f"command={' '.join(argv)}", "autostart=true",
                      "autorestart=true", "startsecs=1", "stopasgroup=true",
                      "killasgroup=true", "stopwaitsecs=5", ""]
        self.conf = os.path.join(d, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        proc = self.spawn([self.args.supervisord, "-n", "-c", self.conf], "supervisord.out")
        wait_for("supervisord's unix socket accepts", lambda: unix_accepts(self.socket),
                 START_DEADLINE_S, proc)
        for port in self.ports + [self.http_port]:
            wait_for(f"127.0.0.1:{port} accepts", lambda: tcp_accepts(port), START_DEADLINE_S, proc)
        # RUNNING comes after startsecs (1 s): until then supervisorctl status exits 3.
        wait_for("every program RUNNING over XML-RPC", lambda: self.all_running(),
                 START_DEADLINE_S, proc)
        return proc

    def all_running(self):
        status, body = self.probe_once()
        if status != 200:
            return False
        (infos,), _ = xmlrpc.client.loads(body)
        return len(infos) == PROGRAMS and all(i["statename"] == "RUNNING" for i in infos)

    def ctl_argv(self):
        return [self.args.supervisorctl, "-c", self.conf, "status"]

    def check_ctl(self, out):
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return len(rows) == PROGRAMS and all(r[1] == "RUNNING" for r in rows)

    def probe_once(self):
        return http_call(self.http_port, "POST", "/RPC2", RPC_BODY.encode(),
                         {"Content-Type": "text/xml"})

    def wrk_script(self):
        return ('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "text/xml"\n'
                f"wrk.body = [[{RPC_BODY}]]\n")

    def url(self):
        return f"http://127.0.0.1:{self.http_port}/RPC2"


# --------------------------------------------------------------------------
# The measurements


# wrk's `done` hook prints one JSON line with what its summary has.
WRK_DONE = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
'''


def measure_ctl(sup, args):
    argv = sup.ctl_argv()
    first = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if first.returncode != 0 or not sup.check_ctl(first.stdout):
        raise RuntimeError(f"{shlex.join(argv)} exited {first.returncode}, printed:\n"
                           f"{first.stdout}{first.stderr}")
    out = os.path.join(sup.workdir, "hyperfine.json")
    # -N: no shell in between, so the time is the command's own process alone.
    subprocess.run(["hyperfine", "-N", "--style", "basic", "--warmup", str(args.warmup),
                    "--runs", str(args.runs), "--export-json", out, shlex.join(argv)],
                   check=True, stdout=sys.stderr)
    res = json.loads(read(out))["results"][0]
    times = [t * 1000 for t in res["times"]]
    if any(res.get("exit_codes") or []):
        raise RuntimeError(f"{sup.name}: some status calls failed: {res['exit_codes']}")
    ctl = {**summary(times), "runs": len(times)}
    log(f"{sup.name} status ms: " + ", ".join(f"{k} {v:.2f}" for k, v in ctl.items()))
    return ctl


def measure_load(sup, args):
    status, body = sup.probe_once()
    if status != 200:
        raise RuntimeError(f"{sup.name}: {sup.url()} answered {status} before the load: {body!r}")
    script = os.path.join(sup.workdir, "wrk.lua")
    with open(script, "w") as f:
        f.write(sup.wrk_script() + WRK_DONE)
    pid = sup.pid
    fds_before = open_fds(pid)
    mem0 = memory_kib(pid, MEMORY_FIELDS)
    cpu_s0, ns0, _, _ = cpu_counters(pid)
    t0 = time.monotonic()
    wrk = subprocess.Popen(["wrk", "-t", str(args.threads), "-c", str(args.connections),
                            "-d", f"{args.load_seconds:g}s", "--timeout", args.wrk_timeout,
                            "--latency", "-s", script, sup.url()],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Sample while it runs; communicate() on a thread drains wrk's output.
    output = {}
    reader = threading.Thread(target=lambda: output.setdefault("out", wrk.communicate()[0]))
    reader.start()
    peak_rss, peak_threads, peak_fds = mem0["rss_kib"], 0, fds_before
    try:
        while reader.is_alive():
            try:
                peak_rss = max(peak_rss, memory_kib(pid, MEMORY_FIELDS)["rss_kib"])
                peak_threads = max(peak_threads, cpu_counters(pid)[3])
                peak_fds = max(peak_fds, open_fds(pid))
            except OSError:
                raise RuntimeError(f"{sup.name} died during the load")
            reader.join(SAMPLE_EVERY_S)
    finally:
        # On an error or a TERM, the load stops with us.
        if wrk.poll() is None:
            wrk.kill()
            reader.join()
    wall = time.monotonic() - t0
    cpu_s1, ns1, _, _ = cpu_counters(pid)
    mem1 = memory_kib(pid, MEMORY_FIELDS)
    text = output["out"]
    sys.stderr.write(text)
    lines = [line for line in text.splitlines() if line.startswith("WRKJSON ")]
    if wrk.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{text}")
    w = json.loads(lines[-1][len("WRKJSON "):])
    errors = {k: w[k] for k in ("connect", "read", "write", "status", "timeout")}
    load = {
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "requests": w["requests"],
        "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000, "mean_ms": w["mean_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "errors": errors, "error_total": sum(errors.values()),
        "cpu_ms": (cpu_s1 - cpu_s0) * 1000, "cpu_ns": ns1 - ns0, "wall_s": wall,
        "cpu_pct": (ns1 - ns0) / 1e9 / wall * 100,
        "peak_rss_kib": max(peak_rss, mem1["rss_kib"]), "hwm_kib": mem1["hwm_kib"],
        "threads": peak_threads, "peak_fds": peak_fds, "fds_before": fds_before,
    }
    status, body = sup.probe_once()
    if status != 200:
        raise RuntimeError(f"{sup.name}: {sup.url()} answered {status} after the load")
    log(f"{sup.name} load: {load}")
    return load


def measure_side(cls, args, name):
    ports = free_ports(PROGRAMS + 1)
    sup = cls(args, os.path.join(args.workdir, name), ports[:PROGRAMS], ports[PROGRAMS])
    log(f"{name}: starting with {PROGRAMS} programs")
    try:
        sup.launch()
        pid = sup.pid
        time.sleep(SETTLE_S)
        before = memory_kib(pid, MEMORY_FIELDS)
        fds_idle = open_fds(pid)
        log(f"{name}: idle before {before}; {args.runs} status calls")
        ctl = measure_ctl(sup, args)
        log(f"{name}: {args.connections} connections for {args.load_seconds:g}s")
        load = measure_load(sup, args)
        # wrk has exited and closed its connections; the supervisor closes its side
        # when it reads the EOF. Wait for that (fd count back) before settling.
        wait_for(f"{name} closes the load's connections",
                 lambda: open_fds(pid) <= fds_idle, 30)
        time.sleep(SETTLE_S)
        after = memory_kib(pid, MEMORY_FIELDS)
        log(f"{name}: idle after {after}")
        return {"ctl": ctl, "load": load, "idle_before": before, "idle_after": after}
    finally:
        sup.stop()


# --------------------------------------------------------------------------
# Report


def render(results, args):
    c, s = results.get("corral"), results.get("supervisord")

    def ms(v):
        return f"{v:.2f} ms"

    def errs(r):
        e = r["load"]["errors"]
        parts = [f"{v} {k}" for k, v in e.items() if v]
        return f"{r['load']['error_total']}" + (f" ({', '.join(parts)})" if parts else "")

    conns, secs = args.connections, args.load_seconds
    rows = [
        (f"`status` as a whole process, median of {args.runs}", "< 5 ms",
         cell(c, lambda r: ms(r["ctl"]["median"])), cell(s, lambda r: ms(r["ctl"]["median"])), "ctl_median"),
        ("… p99", "< 5 ms",
         cell(c, lambda r: ms(r["ctl"]["p99"])), cell(s, lambda r: ms(r["ctl"]["p99"])), "ctl_p99"),
        ("… mean / min / max", "",
         cell(c, lambda r: f'{r["ctl"]["mean"]:.2f} / {r["ctl"]["min"]:.2f} / {r["ctl"]["max"]:.2f} ms'),
         cell(s, lambda r: f'{r["ctl"]["mean"]:.2f} / {r["ctl"]["min"]:.2f} / {r["ctl"]["max"]:.2f} ms'), None),
        (f"probe under {conns} connections for {secs:g} s: requests/s", "",
         cell(c, lambda r: f'{r["load"]["rps"]:,.0f}'), cell(s, lambda r: f'{r["load"]["rps"]:,.0f}'), None),
        ("… latency p50 / p99", "",
         cell(c, lambda r: f'{r["load"]["p50_ms"]:.2f} / {r["load"]["p99_ms"]:.2f} ms'),
         cell(s, lambda r: f'{r["load"]["p50_ms"]:.2f} / {r["load"]["p99_ms"]:.2f} ms'), None),
        ("… latency mean / max", "",
         cell(c, lambda r: f'{r["load"]["mean_ms"]:.2f} / {r["load"]["max_ms"]:.2f} ms'),
         cell(s, lambda r: f'{r["load"]["mean_ms"]:.2f} / {r["load"]["max_ms"]:.2f} ms'), None),
        ("… errors (non-2xx, socket errors, timeouts)", "0",
         cell(c, errs), cell(s, errs), "errors"),
        ("… supervisor CPU during the load (schedstat, % of one CPU)", "",
         cell(c, lambda r: f'{r["load"]["cpu_pct"]:.0f}%'), cell(s, lambda r: f'{r["load"]["cpu_pct"]:.0f}%'), None),
        ("… supervisor peak RSS during the load (VmRSS sampled / VmHWM)", "",
         cell(c, lambda r: f'{mib(r["load"]["peak_rss_kib"])} / {mib(r["load"]["hwm_kib"])}'),
         cell(s, lambda r: f'{mib(r["load"]["peak_rss_kib"])} / {mib(r["load"]["hwm_kib"])}'), None),
        ("… supervisor threads during the load", "",
         cell(c, lambda r: str(r["load"]["threads"])), cell(s, lambda r: str(r["load"]["threads"])), None),
        ("idle RSS (VmRSS), control socket + HTTP listener on, before the load", "< 4 MiB (init's idle goal)",
         cell(c, lambda r: mib(r["idle_before"]["rss_kib"])), cell(s, lambda r: mib(r["idle_before"]["rss_kib"])), "idle_before"),
        ("idle RSS (VmRSS) after the load", "< 4 MiB (init's idle goal)",
         cell(c, lambda r: mib(r["idle_after"]["rss_kib"])), cell(s, lambda r: mib(r["idle_after"]["rss_kib"])), "idle_after"),
        ("… anonymous before → after / file-backed after", "",
         cell(c, lambda r: f'{mib(r["idle_before"]["anon_kib"])} → {mib(r["idle_after"]["anon_kib"])} / {mib(r["idle_after"]["file_kib"])}'),
         cell(s, lambda r: f'{mib(r["idle_before"]["anon_kib"])} → {mib(r["idle_after"]["anon_kib"])} / {mib(r["idle_after"]["file_kib"])}'), None),
    ]
    if c:
        met = {
            "ctl_median": c["ctl"]["median"] < 5,
            "ctl_p99": c["ctl"]["p99"] < 5,
            "errors": c["load"]["error_total"] == 0,
            "idle_before": c["idle_before"]["rss_kib"] < 4 * 1024,
            "idle_after": c["idle_after"]["rss_kib"] < 4 * 1024,
        }
        rows = [(a, b, f"{x} {goal_mark(met[k])}" if k in met else x, y, k)
                for a, b, x, y, k in rows]
    table = md_table(("measure", "goal (corral)", "corral", "supervisord"),
                     [(a, b, x, y) for a, b, x, y, _ in rows])

    return render_section("control", [
        "",
        "corral's control plane (`corralctl`, the `[supervisor] http` probe listener) against",
        "supervisord's (`supervisorctl`, its XML-RPC over HTTP), each supervising the same 5",
        "programs, measured side by side in one run.",
        "",
        f"- command: `{args.command}`",
        f"- date: {utc_now()}",
        machine_line(nproc(), args.load_at_start),
        f"- corral: {args.corral_version}; corralctl: {version_of([args.corralctl, '--version'])}",
        f"- supervisord: {version_of([args.supervisord, '--version'])} on "
        f"{version_of([supervisord_python(args.supervisord), '--version'])}",
        f"- load tools: {version_of(['hyperfine', '--version'])}; "
        f"{version_of(['wrk', '-v']).split(' Copyright')[0]}",
        "",
        *table,
        "",
        "How each figure is made (bench/control/measure.py):",
        "",
        "- **setup**: 5 programs `corral-testprog listen 127.0.0.1:PORT wait`. corral runs as "
        "PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`) with "
        "`control_socket` in the run's temp directory, `http = \"127.0.0.1:PORT\"` and "
        "`ready = { tcp = … }` on each program; supervisord runs as `supervisord -n -c CONF`, "
        "a plain child, with a `[unix_http_server]` socket in the temp directory (for "
        "supervisorctl, through `[supervisorctl] serverurl`), an `[inet_http_server]` on "
        "127.0.0.1:PORT and `[rpcinterface:supervisor]`. The run waits (polling, with a "
        "deadline) until the socket and every port accept and the probe answers 200 with every "
        "program ready (corral's `/readyz`) / RUNNING (supervisord's getAllProcessInfo), then "
        f"{SETTLE_S:g} s to settle.",
        f"- **`status`**: `corralctl --socket SOCK status` and `supervisorctl -c CONF status`, "
        "each checked once to exit 0 and list 5 RUNNING programs, then timed by "
        f"`hyperfine -N --warmup {args.warmup} --runs {args.runs}` (no shell: fork+exec of the "
        "client, connect, request, answer, exit). p99 is the nearest-rank 99th percentile of "
        "the runs. supervisorctl's time is mostly the Python interpreter starting and importing "
        "supervisor; that is what an exec probe of supervisord pays on every call.",
        f"- **probe under load**: `wrk -t{args.threads} -c{conns} -d{secs:g}s --timeout "
        f"{args.wrk_timeout} --latency` on 127.0.0.1 only. corral: `GET /readyz`. supervisord "
        "has no readiness endpoint; the closest equivalent, what a probe of supervisord would "
        "have to call, is `POST /RPC2` with `supervisor.getAllProcessInfo` (XML-RPC, all 5 "
        "programs' states) — **not the same endpoint**: its answer is larger and built by "
        "Python, so the comparison is of what each supervisor makes a probe cost, not of equal "
        "work. wrk is closed-loop: each of the connections (kept alive) sends its next request "
        "as soon as the answer arrives, so latency here is mostly queueing "
        f"(≈ {conns} / requests per second), not the cost of one idle probe. Errors are wrk's "
        "non-2xx/3xx answers plus its connect/read/write errors and timeouts; the probe is "
        "checked to answer 200 before and after the load. wrk runs on the same 2 CPUs as the "
        "supervisor, so the requests/s are bounded by the machine, not only the supervisor. "
        f"CPU is the supervisor's schedstat run time (all threads) over wrk's run, as a share "
        f"of one CPU (corral runs one tokio thread for its loop and listeners); RSS is VmRSS "
        f"sampled every {SAMPLE_EVERY_S * 1000:.0f} ms during the load, and VmHWM (the "
        "process's peak since it started) after it.",
        "- **idle RSS**: VmRSS of the supervisor process alone (for corral not the `unshare` "
        "parent, and not its programs), read after the settle pause before the `status` calls, "
        "and again after the load: once the supervisor has closed every load connection (its "
        f"open fd count back to the idle one, polled) and {SETTLE_S:g} s more; split into "
        "RssAnon and RssFile (file-backed: the binary's and libraries' pages, shareable). "
        "What grew between the two readings is memory the supervisor kept after serving the "
        "load (heap it freed but did not give back to the system, or what it still holds).",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corral", required=True)
    ap.add_argument("--corral-version", default="unknown")
    ap.add_argument("--corralctl", required=True)
    ap.add_argument("--testprog", required=True)
    ap.add_argument("--supervisord", default="/usr/bin/supervisord")
    ap.add_argument("--supervisorctl", default="/usr/bin/supervisorctl")
    ap.add_argument("--workdir", required=True, help="the run's temp directory")
    ap.add_argument("--pidfile", help="where to list the supervisors started, for the caller's trap")
    ap.add_argument("--only", choices=["corral", "supervisord"],
                    help="measure one side only (while developing)")
    ap.add_argument("--runs", type=int, default=300, help="status calls timed")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--load-seconds", type=float, default=10)
    ap.add_argument("--wrk-timeout", default="5s",
                    help="wrk counts an answer slower than this as a timeout error")
    ap.add_argument("--out", help="markdown file to write the section into")
    ap.add_argument("--command", default="bench/control/run")
    args = ap.parse_args()
    if not 0 < args.load_seconds <= 60:
        ap.error("--load-seconds: the load is kept bounded, at most 60 s")
    for attr in ("corral", "corralctl", "testprog", "workdir"):
        setattr(args, attr, os.path.abspath(getattr(args, attr)))
    # A TERM from the wrapper's trap unwinds through the finally blocks (stop()).
    exit_on_term()

    args.load_at_start = load_average()
    results = {}
    for name, cls in (("corral", Corral), ("supervisord", Supervisord)):
        if args.only and args.only != name:
            continue
        results[name] = measure_side(cls, args, name)

    publish("control", render(results, args), args.out, log)


if __name__ == "__main__":
    main()
