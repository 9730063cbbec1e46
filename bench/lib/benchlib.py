"""Helpers shared by the benchmarks' measuring scripts (bench/*/measure.py).

Each bench/NAME/measure.py imports this file from bench/lib, found from its own
path, so it works from any working directory and in a fresh clone:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
    from benchlib import ...

Standard library only, like the scripts. What is here:
  /proc       read(), the process table and trees (proc_table, children_of,
              descendants, kill_tree, stop_tree, corral_pid), memory from
              /proc/PID/status and smaps_rollup, CPU from stat and schedstat,
              open fds, waiting on a pidfd for a pid's exit.
  waiting     wait_for(): poll a condition with a deadline (and a process that
              must stay alive); tcp_accepts(); free_ports().
  numbers     percentile() (nearest rank) and summary() (median, p99, mean,
              min, max).
  the pid file  record_pid()/forget_pid(): what a run's shell trap kills if the
              script could not clean up itself.
  the report  the section of docs/benchmarks.md between its markers
              (render_section, write_section, publish), markdown tables, the
              report's common cells and lines (mib, cell, goal_mark, utc_now,
              machine_line, version_of, ...).
"""

import collections
import datetime
import math
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# corral as PID 1 of a fresh PID namespace, as it runs in the container;
# --kill-child makes sure nothing outlives a benchmark if unshare itself is killed.
UNSHARE_PID1 = ["unshare", "--pid", "--ipc", "--fork", "--mount-proc", "--kill-child=KILL"]

NOT_MEASURED = "not measured"


def logger(name):
    """A log(msg) that prints `[NAME] msg` on stderr."""
    def log(msg):
        print(f"[{name}] {msg}", file=sys.stderr, flush=True)
    return log


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# --------------------------------------------------------------------------
# /proc: processes


Proc = collections.namedtuple("Proc", "ppid state argv starttime")
Proc.__doc__ = "One process of /proc: ppid, state letter, argv, start time (clock ticks since boot)."


def stat_fields(pid):
    """The fields of /proc/PID/stat after the comm field, from `state` on
    (comm may hold spaces and parentheses: split after the last ')')."""
    stat = read(f"/proc/{pid}/stat")
    return stat[stat.rindex(")") + 2:].split()


def proc_table():
    """Maps pid -> Proc for every live process (of this PID namespace)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            rest = stat_fields(name)
            argv = read(f"/proc/{name}/cmdline").split("\0")
        except OSError:
            continue  # gone meanwhile
        table[int(name)] = Proc(int(rest[1]), rest[0], [a for a in argv if a], int(rest[19]))
    return table


def children_of(pid):
    return [p for p, proc in proc_table().items() if proc.ppid == pid]


def descendants(root):
    """Pids below `root` (children, grandchildren, ...), not root itself."""
    table = proc_table()
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, proc in table.items():
            if proc.ppid == parent:
                found.append(pid)
                frontier.append(pid)
    return found


def wait_exit(pid, deadline_s):
    """Blocks until `pid` (not our child) has exited, on a pidfd: no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], deadline_s)[0]:
            raise TimeoutError(f"pid {pid} still alive after {deadline_s}s")
    finally:
        os.close(fd)


def kill_tree(proc, pids=()):
    """SIGKILL to `pids` and to every process below the Popen `proc` now, each by
    its pid, then to proc itself; reaps proc."""
    for pid in set(pids) | set(descendants(proc.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def stop_tree(proc, supervisor_pid, name, log, deadline_s=30.0):
    """Stops a supervisor started as the Popen `proc`: SIGTERM to supervisor_pid()
    (proc's own pid, or corral's under unshare), up to deadline_s for proc to
    exit, then SIGKILL to whatever of it is left (kill_tree). Returns the pids
    that were below proc before the SIGTERM."""
    below = descendants(proc.pid)
    try:
        os.kill(supervisor_pid(), signal.SIGTERM)
        proc.wait(timeout=deadline_s)
    except (ProcessLookupError, subprocess.TimeoutExpired, RuntimeError, TimeoutError) as e:
        log(f"{name} did not stop within {deadline_s:g}s ({e!r}); killing")
    finally:
        kill_tree(proc, below)
    return below


def corral_pid(proc, out_path, deadline_s=10.0):
    """The pid of corral started as UNSHARE_PID1 + [corral, ...] by the Popen
    `proc`: unshare's only child, PID 1 of the new namespace."""
    end = time.monotonic() + deadline_s
    while True:
        kids = children_of(proc.pid)
        if kids:
            return kids[0]
        if proc.poll() is not None:
            raise RuntimeError(f"corral exited ({proc.returncode}); see {out_path}")
        if time.monotonic() > end:
            raise TimeoutError("corral did not start under unshare")
        time.sleep(0.001)


# --------------------------------------------------------------------------
# /proc: memory and CPU


def status_fields(pid):
    """/proc/PID/status as field -> value (PID may be "PID/task/TID")."""
    out = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def status_kib(pid, field):
    """One "N kB" field of /proc/PID/status (VmRSS, VmHWM, ...) in KiB; KeyError
    when the process has no such field."""
    return int(status_fields(pid)[field].split()[0])


# The memory_kib() figures most scripts read: key -> field of /proc/PID/status.
RSS_FIELDS = (("rss_kib", "VmRSS"), ("anon_kib", "RssAnon"), ("file_kib", "RssFile"))


def memory_kib(pid, fields=RSS_FIELDS):
    """Fields of /proc/PID/status in KiB, one reading: {key: KiB} for (key, field)
    in `fields`."""
    st = status_fields(pid)
    return {key: int(st[field].split()[0]) for key, field in fields}


def pss_kib(pid):
    """Pss of /proc/PID/smaps_rollup in KiB."""
    for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise KeyError("Pss")


def cpu_ticks(pid):
    """utime + stime of the whole process (all threads, also exited ones), in
    CLK_TCK ticks (10 ms)."""
    fields = stat_fields(pid)
    return int(fields[11]) + int(fields[12])


def cpu_counters(pid, switches=False):
    """(CPU seconds from utime+stime, CPU ns from schedstat, context switches,
    threads).

    /proc/PID/stat sums all threads but ticks at CLK_TCK (10 ms); schedstat gives
    nanoseconds, per thread, so it is summed over /proc/PID/task. Context
    switches (voluntary + nonvoluntary, also per thread) are summed only with
    switches=True, else 0. A thread gone while read is left out of the sums;
    threads counts every entry of /proc/PID/task.
    """
    seconds = cpu_ticks(pid) / CLK_TCK
    run_ns, count, tids = 0, 0, os.listdir(f"/proc/{pid}/task")
    for tid in tids:
        try:
            run_ns += int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
            if switches:
                st = status_fields(f"{pid}/task/{tid}")
                count += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
        except OSError:
            continue
    return seconds, run_ns, count, len(tids)


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------
# Waiting on real conditions


def wait_for(what, check, deadline_s, alive=None, gap_s=0.005):
    """Polls check() every gap_s until it returns a true value; returns that
    value. An OSError from check() counts as not yet. Raises RuntimeError if the
    Popen `alive` exits first, TimeoutError after deadline_s."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the supervisor exited ({alive.returncode}) before {what}")
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {deadline_s:g}s")
        time.sleep(gap_s)


def tcp_accepts(port):
    """Whether a connect() to 127.0.0.1:port succeeds now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_ports(n):
    """n distinct TCP ports of 127.0.0.1 that are free now (the kernel picks them)."""
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
# Numbers


def percentile(samples, p):
    """Nearest rank: the smallest sample with at least p% of them at or below it."""
    s = sorted(samples)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(samples):
    """median, p99 (nearest rank), mean, min and max of samples, in that order."""
    return {"median": statistics.median(samples), "p99": percentile(samples, 99),
            "mean": statistics.fmean(samples), "min": min(samples), "max": max(samples)}


def load_average():
    """The 1, 5 and 15 minute load averages, as "0.12 0.34 0.56"."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------
# The pid file the shell wrapper reads in its trap, to kill what a script
# started if it could not clean up itself (e.g. it was killed).


def record_pid(path, pid):
    if path:
        with open(path, "a") as f:
            f.write(f"{pid}\n")


def forget_pid(path, pid):
    if path and os.path.exists(path):
        keep = [line for line in read(path).split() if line != str(pid)]
        with open(path, "w") as f:
            f.write("".join(f"{p}\n" for p in keep))


def exit_on_term():
    """A SIGTERM (the wrapper's trap; ignored without a handler by a PID 1)
    exits with 143 through the finally blocks, as Ctrl-C does."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# --------------------------------------------------------------------------
# supervisord, the baseline


def supervisord_head(workdir, http_port=None):
    """The fixed sections of a supervisord.conf in the seeds' shape (a unix
    control socket for supervisorctl, logs and pidfile in `workdir`, and with
    http_port an [inet_http_server] on 127.0.0.1); makes workdir/childlog."""
    d = workdir
    os.makedirs(f"{d}/childlog", exist_ok=True)
    inet = ["[inet_http_server]", f"port=127.0.0.1:{http_port}", ""] if http_port else []
    return [
        "[unix_http_server]", f"file={d}/supervisor.sock", "chmod=0700", "",
        *inet,
        "[supervisord]", "nodaemon=true", f"logfile={d}/supervisord.log",
        f"pidfile={d}/supervisord.pid", f"childlogdir={d}/childlog", "user=root", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{d}/supervisor.sock", "",
    ]


def supervisord_python(path):
    """The interpreter supervisord runs on: its #! line (Debian's /usr/bin/python3)."""
    try:
        with open(path) as f:
            first = f.readline()
    except OSError:
        return "python3"
    return first[2:].split()[0] if first.startswith("#!") else "python3"


# --------------------------------------------------------------------------
# The report: one section of docs/benchmarks.md


def version_of(cmd):
    """The first line a `--version`-like command prints, or "unknown"."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cpu_model():
    """The "model name" of /proc/cpuinfo."""
    try:
        for line in read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine(detail):
    """"N CPUs (DETAIL), Linux RELEASE, ARCH"."""
    return f"{os.cpu_count()} CPUs ({detail}), Linux {platform.release()}, {platform.machine()}"


def machine_line(detail, load_at_start):
    """The report's "- machine:" line, with the load average at the start."""
    return (f"- machine: {machine(detail)}; load average at the start {load_at_start} "
            "(other work on the machine shows up as outliers)")


def nproc():
    """"nproc N": the CPUs this process may run on."""
    return f"nproc {len(os.sched_getaffinity(0))}"


def mib(kib):
    return f"{kib / 1024:.2f} MiB"


def cell(result, fmt):
    """fmt(result), or "not measured" for a side that was not measured."""
    return fmt(result) if result else NOT_MEASURED


def goal_mark(ok):
    return "✅" if ok else "❌ goal missed"


def md_table(header, rows):
    """A markdown table's lines: the header row, the rule, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def markers(name):
    """The start marker's fixed part and the end marker of section NAME."""
    return f"<!-- bench:{name}:start", f"<!-- bench:{name}:end -->"


def render_section(name, lines):
    """Section NAME: its start marker, `## NAME`, the lines, its end marker."""
    start, end = markers(name)
    return "\n".join([
        f"{start} (generated by bench/{name}/run; edits here are overwritten) -->",
        f"## {name}",
        *lines,
        end,
    ])


def write_section(path, name, section):
    """Replaces section NAME of the markdown file (between its markers), keeps
    the rest; appends the section when the file does not have it yet."""
    start, end = markers(name)
    try:
        text = read(path)
    except FileNotFoundError:
        text = "# Benchmarks\n\nEach section is written by the script named in it.\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def publish(name, section, out, log):
    """Prints the section and, with `out`, writes it into that file."""
    print(section)
    if out:
        write_section(out, name, section)
        log(f"wrote the {name} section of {out}")
