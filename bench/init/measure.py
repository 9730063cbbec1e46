#!/usr/bin/env python3
"""Measures corral against supervisord on the same programs, in one run.

Run through `bench/init/run`, which builds the binaries and installs supervisord;
this file only measures and writes the "init" section of docs/benchmarks.md.
Standard library only, so it runs on any machine with Python 3.9+.

What is measured (each for corral and for supervisord):
  idle     RSS/PSS of the supervisor process, and its CPU time and context switches
           over a window, with 5 programs running and ready.
  restart  SIGKILL of a TCP-listening program -> its replacement accepts again.
  cold     launch of the supervisor -> the last of a 4-program dependency chain
           accepts, against the sum of the programs' own start times.

Every wait polls a real condition (a TCP connect, a pid's exit, a file) with a
deadline; the only plain sleeps are the measurement window itself, the few hundred
microseconds between connect attempts, and the documented pause that lets a
restarted program outlive supervisord's startsecs / corral's backoff reset_after.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
from benchlib import (  # noqa: E402  (bench/lib/benchlib.py, found from this file's path)
    UNSHARE_PID1, cell, corral_pid, cpu_counters, descendants, free_ports, goal_mark,
    load_average, logger, machine_line, md_table, memory_kib, mib, nproc, proc_table,
    pss_kib, publish, render_section, stop_tree, supervisord_head, supervisord_python,
    tcp_accepts, utc_now, version_of, wait_exit, wait_for,
)

# Start-up delays of the cold-start chain, in the order they depend on each other.
CHAIN_DELAYS_MS = [100, 150, 200, 250]
# How many programs run during the idle measurement.
IDLE_PROGRAMS = 5
# Gap between connect attempts while polling a port: short against the latencies
# measured (milliseconds) and long enough not to starve the programs of CPU.
POLL_GAP_S = 0.0003
# A restarted program must be up longer than this before the next SIGKILL, so
# that each kill measures a *first* restart: supervisord counts a process that
# dies within startsecs (1 s) as a failed start and backs off, and corral's
# backoff only resets after reset_after (set to 1s in the bench config).
SETTLE_AFTER_RESTART_S = 2.0


log = logger("bench/init")


def find_descendant(root, needle, deadline_s=10.0):
    """The pid of the process below `root` whose argv contains `needle` and which
    runs the test program itself (not a shell wrapper waiting to exec it)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        table = proc_table()
        for pid in descendants(root):
            argv = table[pid].argv if pid in table else []
            if argv and needle in argv and argv[0].endswith("corral-testprog"):
                return pid
        time.sleep(0.005)
    raise TimeoutError(f"no process with {needle!r} under pid {root}")


def memory(pid):
    """VmRSS, its anonymous and file-backed parts, and Pss of one process, in KiB."""
    return dict(memory_kib(pid), pss_kib=pss_kib(pid))


def wait_accepting(port, deadline_s, alive=None):
    """Polls connect() until it succeeds; returns time.monotonic() of that moment."""
    return wait_for(f"127.0.0.1:{port} accepts", lambda: tcp_accepts(port) and time.monotonic(),
                    deadline_s, alive, gap_s=POLL_GAP_S)


# --------------------------------------------------------------------------
# The two supervisors


class Supervisor:
    """Starts one supervisor on a config it writes, and tears it down for sure."""

    name = "?"

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.proc = None

    def launch(self, programs):
        """Writes a config for `programs` and starts the supervisor; returns its Popen.

        programs: dicts with name, argv, port, and optionally after (the name of the
        program it depends on) and after_port (that program's port, for wrappers).
        """
        raise NotImplementedError

    @property
    def pid(self):
        """The pid of the supervisor process itself (what RSS and CPU are read from)."""
        return self.proc.pid

    def stop(self, deadline_s=30.0):
        """SIGTERM, then wait for every process it started to be gone."""
        if self.proc is None:
            return
        try:
            for pid in stop_tree(self.proc, lambda: self.pid, self.name, log, deadline_s):
                wait_exit(pid, 10.0)
        finally:
            self.proc = None


class Corral(Supervisor):
    """corral as PID 1 of a fresh PID namespace, as it runs in the container."""

    name = "corral"

    def launch(self, programs):
        path = os.path.join(self.workdir, "corral.toml")
        lines = [
            "[supervisor]",
            f'control_socket = "{self.workdir}/control.sock"',
            f'log_dir = "{self.workdir}/corral-log"',
            'stop_timeout = "5s"',
            "",
        ]
        for p in programs:
            argv = ", ".join(f'"{a}"' for a in p["argv"])
            lines += [f"[programs.{p['name']}]", f"command = [{argv}]"]
            if p.get("after"):
                lines.append(f'depends_on = ["{p["after"]}"]')
            lines.append(f'ready = {{ tcp = "127.0.0.1:{p["port"]}" }}')
            lines.append('restart = "always"')
            # reset_after small, so a program that was up >1 s restarts at once.
            lines.append('backoff = { initial = "100ms", max = "2s", reset_after = "1s" }')
            lines.append("")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        # unshare --fork: corral becomes PID 1 of the namespace.
        cmd = UNSHARE_PID1 + [self.args.corral, "--config", path]
        self.proc = subprocess.Popen(cmd, stdout=self.out(), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._pid = None
        return self.proc

    @property
    def pid(self):
        # The corral process is unshare's only child.
        if self._pid is None:
            self._pid = corral_pid(self.proc, f"{self.workdir}/corral.out")
        return self._pid

    def out(self):
        return open(os.path.join(self.workdir, "corral.out"), "ab")


class Supervisord(Supervisor):
    """supervisord in the foreground (-n) as a plain child, files in the run dir."""

    name = "supervisord"

    def launch(self, programs):
        d = self.workdir
        # The seeds' shape: a control socket for supervisorctl, logs to files.
        lines = supervisord_head(d)
        for i, p in enumerate(programs):
            command = " ".join(p["argv"])
            if p.get("after_port"):
                # What the seeds do for ordering: priority only orders the spawns,
                # so each program's command waits in a shell loop for the port of
                # the one before it, checking once a second. nc is not installed
                # here; bash's /dev/tcp does the same connect as `nc -z`.
                command = ("bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null; "
                           "do sleep 1; done; exec %s'" % (p["after_port"], command))
            lines += [
                f"[program:{p['name']}]", f"command={command}",
                f"priority={10 * (i + 1)}", "autostart=true", "autorestart=true",
                "startsecs=1", "stopasgroup=true", "killasgroup=true",
                "stopwaitsecs=5", "",
            ]
        path = os.path.join(d, "supervisord.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        out = open(os.path.join(d, "supervisord.out"), "ab")
        self.proc = subprocess.Popen([self.args.supervisord, "-n", "-c", path],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        return self.proc


# --------------------------------------------------------------------------
# The measurements


def idle_and_restart(sup, testprog, idle_s, repeats):
    ports = free_ports(IDLE_PROGRAMS)
    programs = [{"name": f"idle{i + 1}", "port": port,
                 "argv": [testprog, "listen", f"127.0.0.1:{port}", "wait"]}
                for i, port in enumerate(ports)]
    proc = sup.launch(programs)
    try:
        for port in ports:
            wait_accepting(port, 30, alive=proc)
        pid = sup.pid
        # Let the supervisor finish start-up bookkeeping (supervisord moves its
        # programs to RUNNING after startsecs=1) before the idle window opens.
        time.sleep(SETTLE_AFTER_RESTART_S)
        mem_before = memory(pid)
        cpu0, ns0, sw0, _ = cpu_counters(pid, switches=True)
        time.sleep(idle_s)  # the measurement window itself
        cpu1, ns1, sw1, _ = cpu_counters(pid, switches=True)
        mem_after = memory(pid)
        # Report the reading with the larger RSS: growth while idle must show.
        idle = max(mem_before, mem_after, key=lambda m: m["rss_kib"])
        idle.update({
            "cpu_s": cpu1 - cpu0, "cpu_ns": ns1 - ns0, "switches": sw1 - sw0,
            "threads": len(os.listdir(f"/proc/{pid}/task")),
        })
        log(f"{sup.name} idle: {idle}")

        # Restart latency on the first program: SIGKILL -> accepting again.
        port = ports[0]
        latencies = []
        for _ in range(repeats):
            victim = find_descendant(proc.pid, f"127.0.0.1:{port}")
            t0 = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            # The killed listener could still accept for a moment: only start
            # polling once the kernel reports the process gone.
            wait_exit(victim, 10)
            t1 = wait_accepting(port, 30, alive=proc)
            latencies.append((t1 - t0) * 1000)
            time.sleep(SETTLE_AFTER_RESTART_S)
        log(f"{sup.name} restart ms: {[round(x, 1) for x in latencies]}")
        return idle, latencies
    finally:
        sup.stop()


def chain_programs(testprog, ports, wrap_after):
    programs = []
    for i, (delay, port) in enumerate(zip(CHAIN_DELAYS_MS, ports)):
        p = {"name": f"chain{i + 1}", "port": port,
             "argv": [testprog, "delay", str(delay), "listen", f"127.0.0.1:{port}", "wait"]}
        if i > 0:
            p["after"] = f"chain{i}"
            if wrap_after:
                p["after_port"] = ports[i - 1]
        programs.append(p)
    return programs


def own_start_ms(testprog, repeats):
    """Each chain program started alone: exec -> accepting, median of repeats."""
    medians = []
    for delay in CHAIN_DELAYS_MS:
        samples = []
        for _ in range(repeats):
            (port,) = free_ports(1)
            t0 = time.monotonic()
            child = subprocess.Popen([testprog, "delay", str(delay), "listen",
                                      f"127.0.0.1:{port}", "wait"])
            try:
                t1 = wait_accepting(port, 10, alive=child)
            finally:
                child.kill()
                child.wait()
            samples.append((t1 - t0) * 1000)
        medians.append(statistics.median(samples))
    return medians


def cold_start(sup, testprog, repeats, seeds_style):
    samples = []
    for _ in range(repeats):
        ports = free_ports(len(CHAIN_DELAYS_MS))
        programs = chain_programs(testprog, ports, wrap_after=seeds_style)
        t0 = time.monotonic()
        proc = sup.launch(programs)
        try:
            t1 = wait_accepting(ports[-1], 60, alive=proc)
            samples.append((t1 - t0) * 1000)
        finally:
            sup.stop()
    log(f"{sup.name} cold start ms: {[round(x, 1) for x in samples]}")
    return samples


# --------------------------------------------------------------------------
# Report


def fmt_ms(samples):
    return f"{statistics.median(samples):.1f} / {max(samples):.1f}"


def render(results, args):
    c, s = results.get("corral"), results.get("supervisord")
    own = results["own"]
    own_sum = sum(own)
    rows = [
        ("idle RSS (VmRSS) of the supervisor, 5 programs", "< 4 MiB",
         cell(c, lambda r: mib(r["idle"]["rss_kib"])), cell(s, lambda r: mib(r["idle"]["rss_kib"]))),
        ("… of which anonymous / file-backed", "",
         cell(c, lambda r: f'{mib(r["idle"]["anon_kib"])} / {mib(r["idle"]["file_kib"])}'),
         cell(s, lambda r: f'{mib(r["idle"]["anon_kib"])} / {mib(r["idle"]["file_kib"])}')),
        ("idle PSS (smaps_rollup)", "",
         cell(c, lambda r: mib(r["idle"]["pss_kib"])), cell(s, lambda r: mib(r["idle"]["pss_kib"]))),
        (f"idle CPU over {args.idle_seconds:g} s (utime+stime)", "0",
         cell(c, lambda r: f'{r["idle"]["cpu_s"] * 1000:.0f} ms'),
         cell(s, lambda r: f'{r["idle"]["cpu_s"] * 1000:.0f} ms')),
        (f"idle CPU over {args.idle_seconds:g} s (schedstat)", "0",
         cell(c, lambda r: f'{r["idle"]["cpu_ns"] / 1e6:.2f} ms'),
         cell(s, lambda r: f'{r["idle"]["cpu_ns"] / 1e6:.2f} ms')),
        (f"idle wakeups over {args.idle_seconds:g} s (context switches, all threads)", "0",
         cell(c, lambda r: str(r["idle"]["switches"])), cell(s, lambda r: str(r["idle"]["switches"]))),
        ("threads", "",
         cell(c, lambda r: str(r["idle"]["threads"])), cell(s, lambda r: str(r["idle"]["threads"]))),
        (f"SIGKILL → accepting again, ms, median / max of {args.repeats}", "",
         cell(c, lambda r: fmt_ms(r["restart"])), cell(s, lambda r: fmt_ms(r["restart"]))),
        (f"cold start of the 4-chain to all-ready, ms, median / max of {args.cold_repeats}",
         f"≤ {own_sum * 1.1:.0f} (own sum + 10%)",
         cell(c, lambda r: fmt_ms(r["cold"])), cell(s, lambda r: fmt_ms(r["cold"]))),
        ("… over the programs' own sum", "≤ +10%",
         cell(c, lambda r: f'{(statistics.median(r["cold"]) / own_sum - 1) * 100:+.1f}%'),
         cell(s, lambda r: f'{(statistics.median(r["cold"]) / own_sum - 1) * 100:+.1f}%')),
    ]
    # Whether corral met each goal, by row title; rows without a goal are left out.
    if c:
        met = {
            rows[0][0]: c["idle"]["rss_kib"] < 4 * 1024,
            rows[3][0]: c["idle"]["cpu_s"] == 0,
            rows[4][0]: c["idle"]["cpu_ns"] == 0,
            rows[5][0]: c["idle"]["switches"] == 0,
            rows[8][0]: statistics.median(c["cold"]) <= own_sum * 1.1,
        }
        rows = [(a, b, f"{x} {goal_mark(met[a])}" if a in met else x, y)
                for a, b, x, y in rows]
    table = md_table(("measure", "goal (corral)", "corral", "supervisord"), rows)

    own_txt = " + ".join(f"{m:.1f}" for m in own)
    return render_section("init", [
        "",
        "corral against supervisord as the container's supervisor, on the same programs",
        "(`corral-testprog`), measured side by side in one run.",
        "",
        f"- command: `{args.command}`",
        f"- date: {utc_now()}",
        machine_line(nproc(), args.load_at_start),
        f"- corral: {args.corral_version}",
        f"- supervisord: {version_of([args.supervisord, '--version'])} on "
        f"{version_of([supervisord_python(args.supervisord), '--version'])}",
        "",
        *table,
        "",
        "How each figure is made (bench/init/measure.py):",
        "",
        "- **idle**: 5 programs `corral-testprog listen 127.0.0.1:PORT wait`, all accepting, "
        f"then {SETTLE_AFTER_RESTART_S:.0f} s to settle and a {args.idle_seconds:g} s window. "
        "RSS is VmRSS of the supervisor process alone (not its programs; for corral not the "
        "`unshare` parent), split into RssAnon and RssFile (file-backed: the binary's and "
        "libraries' pages, shareable), PSS from /proc/PID/smaps_rollup; the reading with the "
        "larger RSS of the ones before and after the window. CPU is utime+stime of "
        "/proc/PID/stat (10 ms ticks) and the "
        "nanosecond run time of /proc/PID/task/*/schedstat; wakeups are voluntary + "
        "nonvoluntary context switches summed over the process's threads.",
        "- **restart**: on the same set, SIGKILL to the first program's pid, wait on a pidfd "
        "until it is gone, then connect() to its port every "
        f"{POLL_GAP_S * 1e6:.0f} µs until one succeeds; time from the kill. Between kills "
        f"the new process runs {SETTLE_AFTER_RESTART_S:.0f} s, past supervisord's startsecs "
        "(1 s) and corral's backoff `reset_after = \"1s\"`, so every kill is a first restart. "
        "corral: `restart = \"always\"`, `ready = { tcp = … }`, "
        "`backoff = { initial = \"100ms\", max = \"2s\", reset_after = \"1s\" }`; "
        "supervisord: `autorestart=true`, `startsecs=1`.",
        f"- **cold**: programs `corral-testprog delay D listen PORT wait` with D = "
        f"{', '.join(map(str, CHAIN_DELAYS_MS))} ms, each needing the one before it "
        "accepting; time from launching the supervisor (Popen) until the last port accepts. "
        f"The programs' own start times, each started alone the same way (median of "
        f"{args.cold_repeats}): {own_txt} = **{own_sum:.1f} ms**. corral: `depends_on` + "
        "`ready = { tcp = … }`. supervisord, as the seeds do it: `priority` only orders the "
        "spawns, so programs 2–4 run `bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/PREV) "
        "2>/dev/null; do sleep 1; done; exec corral-testprog …'` (the seeds' `nc -z` loop; "
        "nc is not installed, bash's /dev/tcp makes the same connect).",
        "- corral runs as PID 1 of a fresh PID namespace (`unshare --pid --fork "
        "--mount-proc`), as in the container; supervisord runs as `supervisord -n -c CONF`, "
        "a plain child, with its socket, pidfile and logs in the run's temp directory. "
        "Neither has an HTTP listener: corral's `[supervisor] http` is left out, "
        "supervisord has its unix control socket as in the seeds.",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corral", required=True)
    ap.add_argument("--corral-version", default="unknown")
    ap.add_argument("--testprog", required=True)
    ap.add_argument("--supervisord", default="/usr/bin/supervisord")
    ap.add_argument("--only", choices=["corral", "supervisord"],
                    help="measure one side only (while developing)")
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--repeats", type=int, default=10, help="restart measurements")
    ap.add_argument("--cold-repeats", type=int, default=5)
    ap.add_argument("--out", help="markdown file to write the section into")
    ap.add_argument("--command", default="bench/init/run")
    args = ap.parse_args()
    # The configs written into the run's temp dir need absolute paths.
    args.corral = os.path.abspath(args.corral)
    args.testprog = os.path.abspath(args.testprog)

    args.load_at_start = load_average()
    results = {}
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        log(f"own start times of the chain programs (run dir {tmp})")
        results["own"] = own_start_ms(args.testprog, args.cold_repeats)
        log(f"own ms: {[round(x, 1) for x in results['own']]} sum {sum(results['own']):.1f}")
        sides = [("corral", Corral, False), ("supervisord", Supervisord, True)]
        for name, cls, seeds_style in sides:
            if args.only and args.only != name:
                continue
            workdir = os.path.join(tmp, name)
            os.makedirs(workdir)
            log(f"{name}: idle {args.idle_seconds}s and {args.repeats} restarts")
            idle, restart = idle_and_restart(cls(args, workdir), args.testprog,
                                             args.idle_seconds, args.repeats)
            log(f"{name}: {args.cold_repeats} cold starts")
            cold = cold_start(cls(args, workdir), args.testprog,
                              args.cold_repeats, seeds_style)
            results[name] = {"idle": idle, "restart": restart, "cold": cold}

    publish("init", render(results, args), args.out, log)


if __name__ == "__main__":
    main()
