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
import datetime
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

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


def log(msg):
    print(f"[bench/init] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# /proc helpers


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def proc_table():
    """Maps pid -> (ppid, argv) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = read(f"/proc/{name}/stat")
            argv = read(f"/proc/{name}/cmdline").split("\0")
        except OSError:
            continue  # gone meanwhile
        # The comm field may hold spaces and parentheses: split after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(name)] = (ppid, [a for a in argv if a])
    return table


def descendants(root):
    """Pids below `root` (children, grandchildren, ...), not root itself."""
    table = proc_table()
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent:
                found.append(pid)
                frontier.append(pid)
    return found


def find_descendant(root, needle, deadline_s=10.0):
    """The pid of the process below `root` whose argv contains `needle` and which
    runs the test program itself (not a shell wrapper waiting to exec it)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        table = proc_table()
        for pid in descendants(root):
            argv = table.get(pid, (0, []))[1]
            if argv and needle in argv and argv[0].endswith("corral-testprog"):
                return pid
        time.sleep(0.005)
    raise TimeoutError(f"no process with {needle!r} under pid {root}")


def status_fields(pid):
    out = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def memory_kib(pid):
    """VmRSS, its anonymous and file-backed parts, and Pss of one process, in KiB."""
    st = status_fields(pid)
    mem = {key: int(st[field].split()[0]) for key, field in
           (("rss_kib", "VmRSS"), ("anon_kib", "RssAnon"), ("file_kib", "RssFile"))}
    for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            mem["pss_kib"] = int(line.split()[1])
    return mem


def cpu_counters(pid):
    """(CPU seconds from utime+stime, CPU ns from schedstat, context switches).

    /proc/PID/stat sums all threads but ticks at CLK_TCK (10 ms); schedstat gives
    nanoseconds, per thread. Context switches are per thread in
    /proc/PID/task/TID/status, so they are summed over every thread.
    """
    stat = read(f"/proc/{pid}/stat")
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    run_ns, switches = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            run_ns += int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
            st = status_fields(f"{pid}/task/{tid}")
        except OSError:
            continue
        switches += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return ticks / CLK_TCK, run_ns, switches


# --------------------------------------------------------------------------
# Waiting on real conditions


def accepts(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_accepting(port, deadline_s, alive=None):
    """Polls connect() until it succeeds; returns time.monotonic() of that moment."""
    end = time.monotonic() + deadline_s
    while True:
        if accepts(port):
            return time.monotonic()
        now = time.monotonic()
        if now > end:
            raise TimeoutError(f"127.0.0.1:{port} did not accept within {deadline_s}s")
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"supervisor exited ({alive.returncode}) before :{port} accepted")
        time.sleep(POLL_GAP_S)


def wait_exit(pid, deadline_s):
    """Blocks until `pid` (not our child) has exited, on a pidfd: no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], deadline_s)
        if not ready:
            raise TimeoutError(f"pid {pid} still alive after {deadline_s}s")
    finally:
        os.close(fd)


def free_ports(n):
    """n distinct TCP ports that are free now (the kernel picks them)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


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
        below = descendants(self.proc.pid)
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.proc.wait(timeout=deadline_s)
        except (ProcessLookupError, subprocess.TimeoutExpired, RuntimeError, TimeoutError) as e:
            log(f"{self.name} did not stop cleanly within {deadline_s}s ({e!r}); killing")
        finally:
            self.kill_all(below)

    def kill_all(self, pids=()):
        if self.proc is None:
            return
        for pid in set(pids) | set(descendants(self.proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pid in pids:
            wait_exit(pid, 10.0)
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
        # unshare --fork: corral becomes PID 1 of the namespace; --kill-child makes
        # sure nothing outlives this benchmark if unshare itself is killed.
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=KILL",
               self.args.corral, "--config", path]
        self.proc = subprocess.Popen(cmd, stdout=self.out(), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._pid = None
        return self.proc

    @property
    def pid(self):
        # The corral process is unshare's only child.
        if self._pid is None:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                kids = [p for p, (pp, _) in proc_table().items() if pp == self.proc.pid]
                if kids:
                    self._pid = kids[0]
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError(f"corral exited with {self.proc.returncode}; see {self.workdir}/corral.out")
                time.sleep(0.001)
            else:
                raise TimeoutError("corral did not start under unshare")
        return self._pid

    def out(self):
        return open(os.path.join(self.workdir, "corral.out"), "ab")


class Supervisord(Supervisor):
    """supervisord in the foreground (-n) as a plain child, files in the run dir."""

    name = "supervisord"

    def launch(self, programs):
        d = self.workdir
        os.makedirs(f"{d}/childlog", exist_ok=True)
        # The seeds' shape: a control socket for supervisorctl, logs to files.
        lines = [
            "[unix_http_server]", f"file={d}/supervisor.sock", "chmod=0700", "",
            "[supervisord]", "nodaemon=true", f"logfile={d}/supervisord.log",
            f"pidfile={d}/supervisord.pid", f"childlogdir={d}/childlog", "user=root", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{d}/supervisor.sock", "",
        ]
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
        mem_before = memory_kib(pid)
        cpu0, ns0, sw0 = cpu_counters(pid)
        time.sleep(idle_s)  # the measurement window itself
        cpu1, ns1, sw1 = cpu_counters(pid)
        mem_after = memory_kib(pid)
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


def version_of(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def supervisord_python(path):
    """The interpreter supervisord runs on: its #! line (Debian's /usr/bin/python3)."""
    try:
        with open(path) as f:
            first = f.readline()
    except OSError:
        return "python3"
    return first[2:].split()[0] if first.startswith("#!") else "python3"


def fmt_ms(samples):
    return f"{statistics.median(samples):.1f} / {max(samples):.1f}"


def render(results, args):
    c, s = results.get("corral"), results.get("supervisord")
    own = results["own"]
    own_sum = sum(own)
    na = "not measured"

    def cell(r, f):
        return f(r) if r else na

    def mib(kib):
        return f"{kib / 1024:.2f} MiB"

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
        rows = [(a, b, f"{x} {'✅' if met[a] else '❌ goal missed'}" if a in met else x, y)
                for a, b, x, y in rows]
    table = ["| measure | goal (corral) | corral | supervisord |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {x} | {y} |" for a, b, x, y in rows]

    own_txt = " + ".join(f"{m:.1f}" for m in own)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!-- bench:init:start (generated by bench/init/run; edits here are overwritten) -->",
        "## init",
        "",
        "corral against supervisord as the container's supervisor, on the same programs",
        "(`corral-testprog`), measured side by side in one run.",
        "",
        f"- command: `{args.command}`",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"Linux {platform.release()}, {platform.machine()}; load average at the start "
        f"{args.load_at_start} (other work on the machine shows up as outliers)",
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
        "<!-- bench:init:end -->",
    ])


def write_section(path, section):
    """Replaces the init section of the file (between its markers), keeps the rest."""
    start, end = "<!-- bench:init:start", "<!-- bench:init:end -->"
    try:
        text = read(path)
    except FileNotFoundError:
        text = "# Benchmarks\n\nEach section is written by the script named in it.\n"
    if start in text and end in text:
        before = text[: text.index(start)]
        after = text[text.index(end) + len(end):]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


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

    args.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
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

    section = render(results, args)
    print(section)
    if args.out:
        write_section(args.out, section)
        log(f"wrote the init section of {args.out}")


if __name__ == "__main__":
    main()
