#!/usr/bin/env python3
"""Measures the real headful stack under corral and under supervisord, in one run.

Run through `bench/stack/run`, which installs the programs, builds corral and
corral-cdp, and starts this file as PID 1 of a fresh PID and network namespace
(`unshare --net --pid --ipc --fork --mount-proc`, loopback only). This file writes the
"stack" section of docs/benchmarks.md. Standard library only.

The same four programs on both sides — Xvfb, headful Chromium, x11vnc,
websockify/noVNC — plus a CDP front on :9222:
  corral       the real corral-cdp, a config shaped like supervisor.toml
               (x11/tcp readiness, binds_to, depends_on, rlimits, pre_start).
  supervisord  the seeds' way: priority ordering plus bash wrappers that wait with
               `until …; do sleep 1; done`, autorestart=true, and Debian's socat
               as the port relay (the unikernel seed's "ncat" on 9222).

What is measured (each side, several rounds, medians):
  cold     launch of the supervisor -> CDP /json/version 200 on :9222, the RFB
           banner on :5900, noVNC's page on :6080.
  chromium SIGKILL of the browser's main process -> /json/version 200 on :9222
           with a new browser guid.
  x11vnc   SIGKILL of x11vnc -> "RFB 003.008" readable on :5900 again.
  rss      VmRSS of the supervisor (and of the CDP front) with the stack idle.

Every wait polls a real condition with a deadline. The only plain sleeps are the
gaps between polls and the documented settle time after a recovery that lets
the new process outlive supervisord's startsecs / corral's backoff reset_after.
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
from benchlib import (  # noqa: E402  (bench/lib/benchlib.py, found from this file's path)
    CLK_TCK, NOT_MEASURED, UNSHARE_PID1, cell, corral_pid, cpu_model, exit_on_term,
    goal_mark, load_average, logger, machine, md_table, memory_kib, mib, proc_table,
    publish, read, render_section, supervisord_head, utc_now, version_of, wait_exit,
)

# Fixed ports, as in the images: free for sure, since this runs in its own
# network namespace.
CDP_PORT = 9222
CHROME_PORT = 9223
RFB_PORT = 5900
NOVNC_PORT = 6080
SCREEN = "1280x720x24"

# Poll gaps. CDP is an HTTP request per poll; under supervisord each one makes
# socat fork a child, so it is polled less often than the plain connects.
CDP_GAP_S = 0.010
PORT_GAP_S = 0.002
# After a recovery the new process runs this long before the next kill: past
# supervisord's startsecs (1 s; a process dying sooner is a failed start, put in
# BACKOFF) and corral's backoff reset_after (3 s in the bench config), so every
# kill measures a first restart on both sides.
SETTLE_S = 4.0
# Before the idle RSS readings: everything ready, then this long.
IDLE_SETTLE_S = 5.0
RFB_BANNER = b"RFB 003.008\n"

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--password-store=basic", f"--remote-debugging-port={CHROME_PORT}",
]


log = logger("bench/stack")
# What memory_kib() reads here, by these (shorter) keys.
MEMORY_FIELDS = (("rss", "VmRSS"), ("anon", "RssAnon"), ("file", "RssFile"))


# --------------------------------------------------------------------------
# /proc


def boottime_s():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def is_browser_main(argv):
    return (bool(argv) and argv[0].endswith("/chromium")
            and f"--remote-debugging-port={CHROME_PORT}" in argv
            and not any(a.startswith("--type=") for a in argv))


def is_x11vnc(argv):
    return bool(argv) and os.path.basename(argv[0]) == "x11vnc"


def find_one(pred, deadline_s=10.0):
    """(pid, starttime ticks) of the one live process whose argv matches."""
    end = time.monotonic() + deadline_s
    while True:
        hits = [(pid, st) for pid, (_, state, argv, st) in proc_table().items()
                if state != "Z" and pred(argv)]
        if len(hits) == 1:
            return hits[0]
        if time.monotonic() > end:
            raise TimeoutError(f"expected one matching process, found {hits}")
        time.sleep(0.005)


# Popen children this process waits for itself; every other child is an orphan
# adopted by us (PID 1 of the namespace), e.g. Chromium's helpers after a SIGKILL
# of the browser under supervisord, and is reaped here.
OWN_CHILDREN = set()


def reap_orphans():
    for pid, (ppid, state, _, _) in proc_table().items():
        if ppid == os.getpid() and state == "Z" and pid not in OWN_CHILDREN:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_everything_else(deadline_s=10.0):
    """SIGKILL to every other process of this namespace (all of them were started
    by this benchmark), each by its pid, then reap them."""
    me = os.getpid()
    end = time.monotonic() + deadline_s
    while True:
        others = [pid for pid, (_, state, _, _) in proc_table().items()
                  if pid != me and state != "Z"]
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not others or time.monotonic() > end:
            return
        time.sleep(0.01)


# --------------------------------------------------------------------------
# Probes


def cdp_version():
    """The browser guid from GET /json/version on :9222 if it answers 200 with a
    webSocketDebuggerUrl, else None."""
    conn = http.client.HTTPConnection("127.0.0.1", CDP_PORT, timeout=2)
    try:
        conn.putrequest("GET", "/json/version", skip_host=True)
        conn.putheader("Host", "127.0.0.1")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return None
        url = json.loads(body).get("webSocketDebuggerUrl", "")
        if "/devtools/browser/" not in url:
            return None
        return url.rsplit("/", 1)[1]
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def rfb_banner():
    try:
        with socket.create_connection(("127.0.0.1", RFB_PORT), timeout=2) as s:
            data = b""
            while len(data) < len(RFB_BANNER):
                chunk = s.recv(len(RFB_BANNER) - len(data))
                if not chunk:
                    break
                data += chunk
            return data == RFB_BANNER
    except OSError:
        return False


def novnc_page():
    conn = http.client.HTTPConnection("127.0.0.1", NOVNC_PORT, timeout=2)
    try:
        conn.request("GET", "/vnc.html")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_all(probes, t0, deadline_s, alive):
    """Polls each probe (name -> (fn, gap_s, accept)) until accept(result) holds
    for all; returns name -> ms since t0 (monotonic) of the first success."""
    done = {}
    due = {name: 0.0 for name in probes}
    end = t0 + deadline_s
    last_reap = time.monotonic()
    while len(done) < len(probes):
        now = time.monotonic()
        for name, (fn, gap, accept) in probes.items():
            if name in done or now < due[name]:
                continue
            ok = accept(fn())
            after = time.monotonic()
            if ok:
                done[name] = (after - t0) * 1000
            due[name] = after + gap
        if len(done) == len(probes):
            break
        now = time.monotonic()
        if now > end:
            missing = sorted(set(probes) - set(done))
            raise TimeoutError(f"not within {deadline_s}s: {', '.join(missing)}")
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the supervisor exited ({alive.returncode})")
        if now - last_reap > 0.2:
            reap_orphans()
            last_reap = now
        time.sleep(max(0.0, min(due[n] for n in probes if n not in done) - time.monotonic()))
    return done


def is_guid(x):
    return x is not None


# --------------------------------------------------------------------------
# The two stacks


class Stack:
    name = "?"

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.proc = None
        self.round = 0

    def display_files(self):
        n = self.args.display
        return [f"/tmp/.X11-unix/X{n}", f"/tmp/.X{n}-lock"]

    def clear_display(self):
        # A display left by a killed Xvfb (ours: every Xvfb of this namespace is
        # gone by now) would make the seeds' `[ -S socket ]` wait pass at once.
        for path in self.display_files():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def new_profile(self):
        self.round += 1
        path = os.path.join(self.workdir, f"profile-{self.round}")
        shutil.rmtree(path, ignore_errors=True)
        return path

    def chromium_argv(self, profile):
        return ["/usr/bin/chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                "--remote-allow-origins=*", "about:blank"]

    def x11vnc_argv(self):
        return ["/usr/bin/x11vnc", "-display", f":{self.args.display}",
                "-rfbport", str(RFB_PORT), "-localhost", "-forever", "-shared", "-nopw"]

    def xvfb_argv(self):
        return ["/usr/bin/Xvfb", f":{self.args.display}", "-screen", "0", SCREEN,
                "-nolisten", "tcp"]

    def websockify_argv(self):
        return ["/usr/bin/websockify", "--web", "/usr/share/novnc",
                f"127.0.0.1:{NOVNC_PORT}", f"127.0.0.1:{RFB_PORT}"]

    def spawn(self, argv, out):
        self.proc = subprocess.Popen(argv, stdout=open(os.path.join(self.workdir, out), "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        OWN_CHILDREN.add(self.proc.pid)
        return self.proc

    @property
    def pid(self):
        return self.proc.pid

    def bridge_pid(self):
        raise NotImplementedError

    def stop(self, deadline_s=45.0):
        if self.proc is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.proc.wait(timeout=deadline_s)
        except (ProcessLookupError, subprocess.TimeoutExpired, RuntimeError, TimeoutError) as e:
            log(f"{self.name} did not stop within {deadline_s}s ({e!r}); killing")
        finally:
            OWN_CHILDREN.discard(self.proc.pid)
            kill_everything_else()
            self.proc = None
            self.clear_display()


class Corral(Stack):
    name = "corral"

    def launch(self, profile):
        a, w = self.args, self.workdir
        q = json.dumps  # TOML basic strings accept JSON string escapes
        arr = lambda xs: "[" + ", ".join(q(x) for x in xs) + "]"  # noqa: E731
        toml = f"""# Written by bench/stack/measure.py: supervisor.toml's programs that make the
# headful stack (no corral-snapshot, corral-api, probe listener, user switch), temp paths.
[supervisor]
control_socket = {q(w + "/control.sock")}
log_dir = {q(w + "/corral-log")}
stop_timeout = "10s"
shutdown_timeout = "30s"
rlimits = {{ nofile = {a.nofile} }}

[programs.xvfb]
command = {arr(self.xvfb_argv())}
ready = {{ x11 = ":{a.display}", timeout = "10s" }}
restart = "always"
backoff = {{ initial = "200ms", max = "5s", reset_after = "10s" }}
critical = true
max_restarts = 10
restart_window = "60s"

[programs.chromium]
command = {arr(self.chromium_argv(profile))}
env = {{ DISPLAY = ":{a.display}" }}
binds_to = ["xvfb"]
pre_start = {arr([a.corral, "prep-profile", profile])}
ready = {{ tcp = "127.0.0.1:{CHROME_PORT}", timeout = "30s" }}
restart = "always"
backoff = {{ initial = "500ms", max = "10s", reset_after = "3s" }}
pre_stop = {arr([a.corral_cdp, "close-browser", "--upstream", f"127.0.0.1:{CHROME_PORT}", "--timeout", "6s"])}
stop_signal = "TERM"
kill_mode = "mixed"
stop_timeout = "15s"

[programs.x11vnc]
command = {arr(self.x11vnc_argv())}
binds_to = ["xvfb"]
rlimits = {{ nofile = 4096 }}
ready = {{ tcp = "127.0.0.1:{RFB_PORT}" }}
restart = "always"
backoff = {{ initial = "200ms", max = "5s", reset_after = "3s" }}

[programs.novnc]
command = {arr(self.websockify_argv())}
depends_on = ["x11vnc"]
ready = {{ tcp = "127.0.0.1:{NOVNC_PORT}" }}
restart = "always"

[programs.cdp]
command = {arr([a.corral_cdp, "--listen", f"127.0.0.1:{CDP_PORT}", "--upstream", f"127.0.0.1:{CHROME_PORT}", "--wait-ready", "0s"])}
ready = {{ tcp = "127.0.0.1:{CDP_PORT}" }}
restart = "always"
"""
        path = os.path.join(w, "corral.toml")
        with open(path, "w") as f:
            f.write(toml)
        self._pid = None
        return self.spawn(UNSHARE_PID1 + [a.corral, "--config", path], "corral.out")

    @property
    def pid(self):
        # corral is unshare's only child (PID 1 of its namespace).
        if self._pid is None:
            self._pid = corral_pid(self.proc, f"{self.workdir}/corral.out")
        return self._pid

    def bridge_pid(self):
        return find_one(lambda argv: bool(argv) and argv[0].endswith("corral-cdp")
                        and "--listen" in argv)[0]


class Supervisord(Stack):
    name = "supervisord"

    def launch(self, profile):
        a, d = self.args, self.workdir
        xsock = f"/tmp/.X11-unix/X{a.display}"

        def sh(argv):
            # Inside bash -c "…": single-quote every word (the `*` of
            # --remote-allow-origins must not glob).
            return " ".join("'" + x.replace("'", "'\\''") + "'" for x in argv)

        wait_x = f"until [ -S {xsock} ]; do sleep 1; done"
        wait_rfb = (f"until (exec 3<>/dev/tcp/127.0.0.1/{RFB_PORT}) 2>/dev/null; "
                    "do sleep 1; done")
        programs = [
            ("xvfb", " ".join(self.xvfb_argv()), []),
            ("chromium", f'bash -c "{wait_x}; exec {sh(self.chromium_argv(profile))}"',
             [f'environment=DISPLAY=":{a.display}"']),
            # seed 001 caps the fd limit before x11vnc (corral: rlimits)
            ("x11vnc", f'bash -c "ulimit -n 4096; {wait_x}; exec {sh(self.x11vnc_argv())}"', []),
            ("novnc", f'bash -c "{wait_rfb}; exec {sh(self.websockify_argv())}"', []),
            ("cdp", f"/usr/bin/socat TCP-LISTEN:{CDP_PORT},bind=127.0.0.1,reuseaddr,fork "
                    f"TCP:127.0.0.1:{CHROME_PORT}", []),
        ]
        lines = ["; Written by bench/stack/measure.py: the seeds' shape.", *supervisord_head(d)]
        for i, (name, command, extra) in enumerate(programs):
            lines += [f"[program:{name}]", f"command={command}", f"priority={10 * (i + 1)}",
                      "autostart=true", "autorestart=true", *extra,
                      "stopasgroup=true", "killasgroup=true", ""]
        path = os.path.join(d, "supervisord.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        try:
            os.unlink(f"{d}/supervisord.log")  # one launch per log: see first_spawn_gap
        except FileNotFoundError:
            pass
        return self.spawn([a.supervisord, "-n", "-c", path], "supervisord.out")

    def first_spawn_gap(self):
        """ms from supervisord's "started" log line to its first "spawned:" line."""
        stamps = {}
        for line in read(f"{self.workdir}/supervisord.log").splitlines():
            for key, text in (("started", "supervisord started with pid"), ("spawned", "spawned:")):
                if text in line and key not in stamps:
                    stamps[key] = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        return (stamps["spawned"] - stamps["started"]).total_seconds() * 1000

    def bridge_pid(self):
        # The listening socat is supervisord's child; its forks serve connections.
        sup = self.pid
        hits = [pid for pid, (pp, st, argv, _) in proc_table().items()
                if pp == sup and st != "Z" and argv and argv[0].endswith("socat")]
        if len(hits) != 1:
            raise RuntimeError(f"expected one socat under supervisord, found {hits}")
        return hits[0]


# --------------------------------------------------------------------------
# Measurements


def stack_probes():
    return {
        "cdp": (cdp_version, CDP_GAP_S, is_guid),
        "rfb": (rfb_banner, PORT_GAP_S, bool),
        "novnc": (novnc_page, PORT_GAP_S, bool),
    }


LOADS = []


def note_load():
    LOADS.append(os.getloadavg()[0])


def cold_round(stack):
    note_load()
    stack.clear_display()
    profile = stack.new_profile()
    t0 = time.monotonic()
    proc = stack.launch(profile)
    try:
        times = wait_all(stack_probes(), t0, 90, proc)
        if isinstance(stack, Supervisord):
            times["first_spawn"] = stack.first_spawn_gap()
    finally:
        stack.stop()
        shutil.rmtree(profile, ignore_errors=True)
    log(f"{stack.name} cold: " + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items()))
    return times


def kill_and_wait(kind, stack):
    """SIGKILL of the browser main process or x11vnc; ms until served again, and
    ms until the new process was forked (its /proc starttime, 10 ms ticks)."""
    pred = is_browser_main if kind == "chromium" else is_x11vnc
    victim, _ = find_one(pred)
    old_guid = cdp_version() if kind == "chromium" else None
    if kind == "chromium" and old_guid is None:
        raise RuntimeError("CDP not answering before the kill")
    t0, b0 = time.monotonic(), boottime_s()
    os.kill(victim, signal.SIGKILL)
    # The dying process could still answer for a moment: poll once it is gone.
    wait_exit(victim, 10)
    if kind == "chromium":
        probes = {"back": (cdp_version, CDP_GAP_S, lambda g: g is not None and g != old_guid)}
    else:
        probes = {"back": (rfb_banner, PORT_GAP_S, bool)}
    back = wait_all(probes, t0, 60, stack.proc)["back"]
    t_back = time.monotonic()
    new_pid, start_ticks = find_one(pred)
    # The start time is floored to a tick: the fork came 0-10 ms after it.
    spawned = max(0.0, (start_ticks / CLK_TCK - b0) * 1000)
    reap_orphans()
    return back, spawned, t_back


def long_round(stack, kills):
    """One launch: idle RSS, then `kills` SIGKILLs of Chromium and of x11vnc."""
    note_load()
    stack.clear_display()
    profile = stack.new_profile()
    t0 = time.monotonic()
    proc = stack.launch(profile)
    out = {"rss": [], "bridge": [], "chromium": [], "chromium_spawn": [],
           "x11vnc": [], "x11vnc_spawn": []}
    try:
        wait_all(stack_probes(), t0, 90, proc)
        time.sleep(IDLE_SETTLE_S)
        sup, bridge = stack.pid, stack.bridge_pid()
        for _ in range(5):
            out["rss"].append(memory_kib(sup, MEMORY_FIELDS))
            out["bridge"].append(memory_kib(bridge, MEMORY_FIELDS))
            time.sleep(0.5)
        for kind in ("chromium", "x11vnc"):
            for _ in range(kills):
                back, spawned, t_back = kill_and_wait(kind, stack)
                out[kind].append(back)
                out[kind + "_spawn"].append(spawned)
                log(f"{stack.name} {kind} SIGKILL -> back {back:.0f} ms (new process after {spawned:.0f} ms)")
                time.sleep(max(0.0, t_back + SETTLE_S - time.monotonic()))
    finally:
        stack.stop()
        shutil.rmtree(profile, ignore_errors=True)
    return out


# --------------------------------------------------------------------------
# Report


def deb_version(pkg):
    return version_of(["dpkg-query", "-W", "-f=${Version}", pkg])


def med(xs):
    return statistics.median(xs)


def ms_cell(xs):
    return f"{med(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})"


def render(res, args, images, load_end):
    c, s = res.get("corral"), res.get("supervisord")

    def ratio_row(title, get, goal):
        if not (c and s):
            return (title, f"≤ {goal}×", NOT_MEASURED, "")
        r = med(get(c)) / med(get(s))
        return (title, f"≤ {goal}×", f"{r:.2f}× {goal_mark(r <= goal)}", "1×")

    n_cold = len(c["cold"]["cdp"]) if c else len(s["cold"]["cdp"])
    n_kill = len(c["chromium"]) if c else len(s["chromium"])
    n_rss = len(c["rss"]) if c else len(s["rss"])
    rows = [
        (f"cold start → CDP answering on :9222 (`/json/version` 200), ms, median (min–max) of {n_cold}",
         "≤ 0.6 × supervisord", cell(c, lambda r: ms_cell(r["cold"]["cdp"])),
         cell(s, lambda r: ms_cell(r["cold"]["cdp"]))),
        ratio_row("… corral / supervisord (medians)", lambda r: r["cold"]["cdp"], 0.6),
        ("… supervisord: its \"started\" log line → its first \"spawned:\" line, ms", "", "",
         cell(s, lambda r: ms_cell(r["cold"]["first_spawn"]))),
        ("cold start → RFB banner on :5900, ms", "", cell(c, lambda r: ms_cell(r["cold"]["rfb"])),
         cell(s, lambda r: ms_cell(r["cold"]["rfb"]))),
        ("cold start → noVNC page on :6080 (`/vnc.html` 200), ms", "",
         cell(c, lambda r: ms_cell(r["cold"]["novnc"])), cell(s, lambda r: ms_cell(r["cold"]["novnc"]))),
        (f"Chromium SIGKILL → CDP 200 on :9222 with a new browser guid, ms, median (min–max) of {n_kill}",
         "", cell(c, lambda r: ms_cell(r["chromium"])), cell(s, lambda r: ms_cell(r["chromium"]))),
        ("… SIGKILL → new browser process forked, ms (to 10 ms)", "",
         cell(c, lambda r: ms_cell(r["chromium_spawn"])), cell(s, lambda r: ms_cell(r["chromium_spawn"]))),
        ("… corral / supervisord (medians)", "",
         f"{med(c['chromium']) / med(s['chromium']):.2f}×" if c and s else NOT_MEASURED, "1×" if c and s else ""),
        (f"x11vnc SIGKILL → `RFB 003.008` on :5900 again, ms, median (min–max) of {n_kill}",
         "≤ 0.2 × supervisord", cell(c, lambda r: ms_cell(r["x11vnc"])), cell(s, lambda r: ms_cell(r["x11vnc"]))),
        ("… SIGKILL → new x11vnc process forked, ms (to 10 ms)", "",
         cell(c, lambda r: ms_cell(r["x11vnc_spawn"])), cell(s, lambda r: ms_cell(r["x11vnc_spawn"]))),
        ratio_row("… corral / supervisord (medians)", lambda r: r["x11vnc"], 0.2),
        (f"supervisor RSS (VmRSS), stack idle, median of {n_rss}", "",
         cell(c, lambda r: mib(med([m["rss"] for m in r["rss"]]))),
         cell(s, lambda r: mib(med([m["rss"] for m in r["rss"]])))),
        ("… anonymous / file-backed", "",
         cell(c, lambda r: f'{mib(med([m["anon"] for m in r["rss"]]))} / {mib(med([m["file"] for m in r["rss"]]))}'),
         cell(s, lambda r: f'{mib(med([m["anon"] for m in r["rss"]]))} / {mib(med([m["file"] for m in r["rss"]]))}')),
        ("CDP front's RSS (corral-cdp / socat's listener), median", "",
         cell(c, lambda r: mib(med([m["rss"] for m in r["bridge"]]))),
         cell(s, lambda r: mib(med([m["rss"] for m in r["bridge"]])))),
        ("supervisor + CDP front", "",
         cell(c, lambda r: mib(med([m["rss"] for m in r["rss"]]) + med([m["rss"] for m in r["bridge"]]))),
         cell(s, lambda r: mib(med([m["rss"] for m in r["rss"]]) + med([m["rss"] for m in r["bridge"]])))),
    ]
    table = md_table(("measure", "goal (corral)", "corral", "supervisord"), rows)

    img = ["| image | size (podman) | id | created |", "|---|---|---|---|"]
    for im in images:
        if im.get("size") is None:
            img.append(f"| `{im['name']}` | not built | | |")
        else:
            img.append(f"| `{im['name']}` | {im['size'] / 1e6:,.0f} MB ({im['size'] / 2**20:,.0f} MiB) "
                       f"| {im['id'][:12]} | {im['created']} |")

    d = args.display
    chrome_cmd = " ".join(CHROMIUM_FLAGS)
    return render_section("stack", [
        "",
        "The headful stack — Xvfb, headful Chromium, x11vnc, websockify/noVNC, and CDP on :9222 —",
        "under corral (with corral-cdp) and under supervisord the way the seeds glue it (priority,",
        "bash `sleep 1` waits, a port relay on 9222), measured side by side in one run; plus the",
        "image sizes.",
        "",
        f"- command: `{args.command}`",
        f"- date: {utc_now()}",
        f"- machine: {machine(cpu_model())}; load average at the start {args.load_at_start}, at the end "
        f"{load_end}, 1-minute load at each launch {min(LOADS):.2f}–{max(LOADS):.2f} (other "
        "work on the machine shows up as outliers: min–max given)",
        f"- corral: {args.corral_version}; corral-cdp: {args.cdp_version}",
        f"- supervisord: {version_of([args.supervisord, '--version'])} (Debian supervisor "
        f"{deb_version('supervisor')}) on {version_of(['python3', '--version'])}; socat {deb_version('socat')}",
        f"- programs (Debian packages, the same binaries on both sides): chromium {deb_version('chromium')}, "
        f"xvfb {deb_version('xvfb')}, x11vnc {deb_version('x11vnc')}, websockify "
        f"{deb_version('websockify')}, novnc {deb_version('novnc')}",
        "",
        *table,
        "",
        "Images (`podman image inspect` at the start of the run; built by `scripts/build-images`):",
        "",
        *img,
        "",
        "How each figure is made (bench/stack/measure.py):",
        "",
        "- **where**: the measuring process is PID 1 of a fresh PID and network namespace "
        "(`unshare --net --pid --ipc --fork --mount-proc`, loopback only), so the fixed ports "
        f"{CDP_PORT}, {CHROME_PORT}, {RFB_PORT}, {NOVNC_PORT} are the stack's alone and nothing "
        "outlives the run. X display "
        f":{d} (a number no other X server on the machine used). One side runs at a time.",
        "- **the programs, identical on both sides**: `Xvfb :N -screen 0 1280x720x24 -nolisten tcp`; "
        f"`chromium {chrome_cmd} --user-data-dir=FRESH_DIR --remote-allow-origins=* about:blank` "
        "with `DISPLAY=:N` (Debian's `/usr/bin/chromium` script, which execs the binary; a new empty "
        "profile every launch); `x11vnc -display :N -rfbport 5900 -localhost -forever -shared -nopw` "
        "with RLIMIT_NOFILE 4096; `websockify --web /usr/share/novnc 127.0.0.1:6080 127.0.0.1:5900`.",
        "- **corral**: corral as PID 1 of its own PID namespace (`unshare --pid --ipc --fork --mount-proc`), "
        "config written per launch with supervisor.toml's programs for these four plus `cdp`: xvfb "
        "`ready = { x11 }`, `critical`; chromium `binds_to = [\"xvfb\"]`, `pre_start = corral "
        "prep-profile`, `ready = { tcp = 9223 }`, `pre_stop = corral-cdp close-browser`, "
        "`kill_mode = \"mixed\"`; x11vnc `binds_to = [\"xvfb\"]`, `rlimits = { nofile = 4096 }`, "
        "`ready = { tcp = 5900 }`; novnc `depends_on = [\"x11vnc\"]`; cdp = the release "
        f"`corral-cdp --listen 127.0.0.1:{CDP_PORT} --upstream 127.0.0.1:{CHROME_PORT} --wait-ready 0s` "
        "(no dependency: it answers 503 while Chromium is down); all `restart = \"always\"`; "
        f"`[supervisor] rlimits = {{ nofile = {args.nofile} }}` (supervisor.toml's 65536, capped "
        "to this machine's hard limit). Differences from supervisor.toml: no corral-snapshot, "
        "corral-api or probe listener, no `user` (runs as root, `--no-sandbox` as there), the "
        "chromium/x11vnc backoff `reset_after` is 3 s instead of 30 s/10 s so kills a few seconds "
        "apart each measure a first restart (with 30 s a kill within 30 s of the last start waits "
        "`initial` = 500 ms first), and the Chromium flags are the ones above.",
        "- **supervisord**: `supervisord -n -c CONF`, a plain child, the seeds' shape: "
        "`[unix_http_server]` socket, every program `autostart=true`, `autorestart=true`, default "
        "`startsecs` (1 s), `stopasgroup`/`killasgroup`, `priority` 10 xvfb, 20 chromium, "
        "30 x11vnc, 40 novnc, 50 cdp — priority only orders the spawns, so the waits are bash: "
        f"chromium `bash -c \"until [ -S /tmp/.X11-unix/XN ]; do sleep 1; done; exec chromium …\"`, "
        "x11vnc `bash -c \"ulimit -n 4096; until [ -S /tmp/.X11-unix/XN ]; do sleep 1; done; exec "
        "x11vnc …\"` (seed 001 caps the fd limit the same way), novnc `bash -c \"until (exec "
        "3<>/dev/tcp/127.0.0.1/5900) 2>/dev/null; do sleep 1; done; exec websockify …\"` (the "
        "seeds' `nc -z`/`netstat` loop), and cdp = Debian's "
        f"`socat TCP-LISTEN:{CDP_PORT},bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:{CHROME_PORT}` "
        "(the unikernel seed's ncat relay; a relay rewrites nothing, so while Chromium is down a "
        "client's connection is accepted and closed at once).",
        "- **CDP answering**: `GET /json/version` on 127.0.0.1:9222 with `Host: 127.0.0.1` "
        "(Chromium accepts IP-literal hosts), counted when it answers 200 with a "
        "`webSocketDebuggerUrl` of `/devtools/browser/GUID`; polled every "
        f"{CDP_GAP_S * 1000:.0f} ms (each poll is a fork of socat on the supervisord side). "
        "**RFB**: connect to 127.0.0.1:5900 and read 12 bytes, counted when they are "
        f"`RFB 003.008\\n`; **noVNC**: `GET /vnc.html` on 127.0.0.1:6080 answers 200; both polled "
        f"every {PORT_GAP_S * 1000:.0f} ms. Every poll has a 2 s timeout and the whole wait a deadline.",
        f"- **cold**: time from launching the supervisor (Popen) until each answers. {n_cold} rounds "
        "per side, alternating corral/supervisord as C S S C …, after one unmeasured warm-up launch "
        "per side (page cache); each launch with a fresh profile, the whole stack stopped (SIGTERM to "
        "the supervisor, then anything left SIGKILLed) and the display's socket/lock files checked "
        "gone before the next.",
        f"- **kills**: two more launches per side (C S S C), each ready, then {IDLE_SETTLE_S:.0f} s "
        f"idle, then SIGKILL of the browser's main process (`/usr/lib/chromium/chromium` with "
        f"`--remote-debugging-port={CHROME_PORT}` and no `--type=`) {n_kill // 2} times, then of "
        f"x11vnc {n_kill // 2} times. The poll starts once a pidfd says the process is gone; time is "
        "from the kill. Chromium counts as back at the first 200 from :9222 whose guid differs from "
        "the one before the kill (corral-cdp answers 503 meanwhile, socat drops the connection). "
        f"After each recovery the new process runs {SETTLE_S:.0f} s before the next kill (past "
        "supervisord's startsecs and corral's reset_after: every kill is a first restart). The "
        "'new process forked' rows take the new process's start time from /proc/PID/stat "
        "(10 ms ticks): the supervisor's reaction (for corral including `pre_start`), the rest "
        "of the time being the program's own start.",
        "- **reading it**: supervisord spawns nothing before its main loop's first `poll()` returns "
        "(1 s timeout; the row above is from its own log), and the wrappers' first check usually comes "
        "before Xvfb has made its socket, so chromium and x11vnc start after one `sleep 1` more; "
        "websockify's wrapper finds x11vnc not yet listening and sleeps once more. corral starts "
        "Xvfb at once and each program as soon as what it needs is ready (checks at 0, 1, 2, 4, "
        "8 ms, then every 10 ms), and corral-cdp needs nothing, so CDP answers as soon as "
        "Chromium's port does. After a SIGKILL, supervisord reaps in the step after its respawn "
        "pass, so the respawn waits for a later wakeup of `poll()` (1 s timeout): x11vnc's new "
        "process comes ~1 s after the kill, at times ~2 s (when the exit is reaped only after a "
        "second wakeup). Chromium's helper processes (zygotes, GPU, "
        "renderers) share the browser's stdout/stderr pipes to supervisord; when they go, "
        "supervisord wakes early, so after a Chromium kill both supervisors respawn within tens of "
        "ms (corral after `pre_start`) and the time is mostly Chromium's own start.",
        f"- **RSS**: VmRSS (RssAnon / RssFile) from /proc/PID/status of the supervisor process "
        f"alone (for corral not the `unshare` parent) and of the CDP front's listening process, "
        f"read 5 times 0.5 s apart after {IDLE_SETTLE_S:.0f} s idle in each kill launch, before "
        "the kills; medians.",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corral", required=True)
    ap.add_argument("--corral-version", default="unknown")
    ap.add_argument("--corral-cdp", required=True)
    ap.add_argument("--cdp-version", default="unknown")
    ap.add_argument("--supervisord", default="/usr/bin/supervisord")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--display", type=int, required=True)
    ap.add_argument("--nofile", type=int, default=65536)
    ap.add_argument("--cold-rounds", type=int, default=6, help="per side (even)")
    ap.add_argument("--kills", type=int, default=6, help="of each kind per side (even)")
    ap.add_argument("--only", choices=["corral", "supervisord"])
    ap.add_argument("--images", help="JSON file with the image sizes")
    ap.add_argument("--load-at-start", default=None)
    ap.add_argument("--out")
    ap.add_argument("--command", default="bench/stack/run")
    args = ap.parse_args()
    args.corral = os.path.abspath(args.corral)
    args.corral_cdp = os.path.abspath(args.corral_cdp)
    if args.load_at_start is None:
        args.load_at_start = load_average()

    # As PID 1 of the namespace, signals without a handler are ignored: make
    # TERM run the cleanup (finally blocks) like Ctrl-C does.
    exit_on_term()

    sides = {"corral": Corral(args, os.path.join(args.workdir, "corral")),
             "supervisord": Supervisord(args, os.path.join(args.workdir, "supervisord"))}
    names = [n for n in ("corral", "supervisord") if not args.only or args.only == n]
    # A B B A …: drift over the run falls on both sides alike.
    def order(n):
        seq = []
        for i in range(n):
            seq += names if i % 2 == 0 else names[::-1]
        return seq

    res = {n: {"cold": {"cdp": [], "rfb": [], "novnc": []}, "rss": [], "bridge": [],
               "chromium": [], "chromium_spawn": [], "x11vnc": [], "x11vnc_spawn": []}
           for n in names}
    try:
        for n in names:
            log(f"{n}: warm-up launch (not counted)")
            cold_round(sides[n])
        for n in order(args.cold_rounds):
            for k, v in cold_round(sides[n]).items():
                res[n]["cold"].setdefault(k, []).append(v)
        for n in order(2):
            log(f"{n}: idle RSS, {args.kills // 2} Chromium and {args.kills // 2} x11vnc kills")
            for k, v in long_round(sides[n], args.kills // 2).items():
                res[n][k] += v
    finally:
        for st in sides.values():
            st.stop()
        kill_everything_else()

    load_end = load_average()
    images = []
    if args.images and os.path.exists(args.images):
        with open(args.images) as f:
            images = json.load(f)
    for n in names:
        log(f"{n}: {json.dumps(res[n])}")
    publish("stack", render(res, args, images, load_end), args.out, log)


if __name__ == "__main__":
    main()
