#!/usr/bin/env python3
"""Measures corral-api: exec round trips, a streamed directory zip, a zip upload.

Run through `bench/api/run`, which builds the release corral-api and cleans up
after this script whatever happens; this file starts corral-api itself (on a free
127.0.0.1 port, with a token, `--fs-root` in the run's temp directory), measures,
stops it, and writes the "api" section of docs/benchmarks.md. Standard library only.

What is measured, all in one run against one corral-api process:
  exec      POST /process/exec {"argv":["true"]}: round trip on one keep-alive
            connection and with a new connection per request; beside it, GET
            /healthz on a keep-alive connection (the HTTP floor) and `true` spawned
            by this client itself (posix_spawn + waitpid; subprocess.run with
            pipes), so the API's own share is visible. Blocks of each, interleaved.
  download  GET /fs/download_dir_zip of a directory of incompressible 1 MiB files,
            a small one and a large one: time, throughput, and corral-api's RSS
            sampled every 50 ms (and VmHWM) against its idle RSS just before.
  upload    POST /fs/upload_zip of a zip of 10,000 small files (made with zipfile):
            time, files/s, and a check that exactly those files landed, byte for byte.
  screen    /computer/screenshot (1280x720), /computer/click_mouse, /computer/cursor
            and PATCH /display against a real Xvfb showing a real Chromium page, beside
            `ffmpeg -f x11grab` and `xdotool` spawned per call (bench/api/computer.py).

Every wait polls a real condition with a deadline; the only plain sleeps are poll
gaps, the 50 ms sampling period and a documented settle pause before idle readings.
"""

import argparse
import hashlib
import http.client
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
import computer  # noqa: E402  (bench/api/computer.py, next to this file)
from benchlib import (  # noqa: E402  (bench/lib/benchlib.py, found from this file's path)
    CLK_TCK, cpu_model, cpu_ticks, exit_on_term, free_ports, goal_mark, load_average, logger,
    machine_line, md_table, mib, open_fds, publish, read, record_pid, render_section,
    status_kib, summary, utc_now,
)

MIB = 1024 * 1024
POLL_GAP_S = 0.01
SAMPLE_EVERY_S = 0.05
# Pause before an idle RSS reading: the previous transfer's threads and buffers settle.
SETTLE_S = 1.0
START_DEADLINE_S = 10.0
# Bounds on each request, so a misbehaving server cannot hang the run.
REQUEST_TIMEOUT_S = 120.0
EXEC_BODY = json.dumps({"argv": ["true"]}).encode()
# `upload_zip` accepts at most this many entries (MAX_ZIP_ENTRIES): the test sits at it.
UPLOAD_FILES = 10_000
UPLOAD_DIRS = 100
UPLOAD_SEED = 20251121


log = logger("bench/api")


def summary_ms(ns):
    ms = [x / 1e6 for x in ns]
    return {"n": len(ms), **summary(ms)}


# --------------------------------------------------------------------------
# corral-api, the process

def reset_hwm(pid):
    """VmHWM back to the current RSS (writing 5 to clear_refs), so a later VmHWM
    is the peak of what follows."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """VmRSS of PID every 50 ms on its own thread, until stopped."""

    def __init__(self, pid):
        self.pid, self.peak, self.n = pid, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
                self.n += 1
            except (OSError, KeyError):
                return
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))


class Api:
    def __init__(self, args):
        self.args = args
        (self.port,) = free_ports(1)
        self.token = secrets.token_urlsafe(24)
        self.root = os.path.join(args.workdir, "root")
        os.makedirs(self.root)
        self.stderr_path = os.path.join(args.workdir, "corral-api.stderr")
        env = dict(os.environ, CORRAL_API_TOKEN=self.token)
        env.pop("CORRAL_LOG_FORMAT", None)
        argv = [args.api, "--listen", f"127.0.0.1:{self.port}", "--fs-root", self.root,
                # No corral here: /programs would answer 503; nothing measured uses it.
                "--socket", os.path.join(args.workdir, "no-corral.sock"),
                # The screen of bench/api/computer.py; --fit-windows as in the image.
                "--display", args.display, "--fit-windows"]
        self.argv = argv
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        record_pid(args.pidfile, self.proc.pid)
        self.pid = self.proc.pid
        self.headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"corral-api exited {self.proc.returncode} at start:\n"
                                   + read(self.stderr_path))
            try:
                status, body = self.call("GET", "/healthz", auth=False, timeout=1)
                if status == 200 and json.loads(body) == {"ok": True}:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"corral-api did not answer /healthz within {START_DEADLINE_S:g} s")
            time.sleep(POLL_GAP_S)
        # The token is required: the same request without it is 401.
        status, _ = self.call("POST", "/process/exec", EXEC_BODY, auth=False)
        if status != 401:
            raise RuntimeError(f"/process/exec without the token answered {status}, not 401")

    def conn(self, timeout=REQUEST_TIMEOUT_S):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          blocksize=256 * 1024)

    def call(self, method, path, body=None, auth=True, timeout=REQUEST_TIMEOUT_S, headers=None):
        c = self.conn(timeout)
        try:
            h = dict(self.headers) if auth else {}
            h.update(headers or {})
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def open_fds(self):
        return open_fds(self.pid)

    def idle_rss(self, fds):
        """VmRSS once corral-api holds no more descriptors than when idle (polled),
        after the settle pause."""
        deadline = time.monotonic() + 30
        while self.open_fds() > fds and time.monotonic() < deadline:
            time.sleep(POLL_GAP_S)
        time.sleep(SETTLE_S)
        return status_kib(self.pid, "VmRSS")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# --------------------------------------------------------------------------
# (a) exec round trips

def timed_block(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def check_exec(status, body):
    if status != 200:
        raise RuntimeError(f"/process/exec answered {status}: {body[:300]!r}")
    r = json.loads(body)
    if r.get("exit_code") != 0 or r.get("timed_out"):
        raise RuntimeError(f"/process/exec of true: {r}")


def measure_exec(api, args):
    true_path = shutil.which("true")
    ka = api.conn()
    answers = []

    def exec_keepalive():
        ka.request("POST", "/process/exec", body=EXEC_BODY, headers=api.headers)
        r = ka.getresponse()
        answers.append((r.status, r.read()))

    def exec_new_connection():
        c = api.conn()
        try:
            c.request("POST", "/process/exec", body=EXEC_BODY, headers=api.headers)
            r = c.getresponse()
            answers.append((r.status, r.read()))
        finally:
            c.close()

    def healthz_keepalive():
        ka.request("GET", "/healthz")
        r = ka.getresponse()
        answers.append((r.status, r.read()))

    def posix_spawn_true():
        pid = os.posix_spawn(true_path, ["true"], os.environ)
        _, st = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(st) != 0:
            raise RuntimeError("true failed")

    def subprocess_true():
        r = subprocess.run([true_path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("true failed")

    kinds = {
        "exec_ka": exec_keepalive,
        "exec_new": exec_new_connection,
        "healthz_ka": healthz_keepalive,
        "spawn": posix_spawn_true,
        "subprocess": subprocess_true,
    }
    # Warm-up: connections, the allocator, the page cache of `true`.
    for fn in kinds.values():
        timed_block(fn, args.warmup)
    answers.clear()
    samples = {k: [] for k in kinds}
    cpu = 0
    block = args.block
    rounds = math.ceil(args.requests / block)
    order = list(kinds)
    for i in range(rounds):
        # A B C D E, then E D C B A: drift over the run falls on every kind alike.
        for k in (order if i % 2 == 0 else order[::-1]):
            before = cpu_ticks(api.pid) if k == "exec_ka" else None
            samples[k] += timed_block(kinds[k], block)
            if before is not None:
                cpu += cpu_ticks(api.pid) - before
    ka.close()
    for status, body in answers:
        if body.startswith(b'{"ok"'):
            if status != 200:
                raise RuntimeError(f"/healthz answered {status}")
        else:
            check_exec(status, body)
    res = {k: summary_ms(v) for k, v in samples.items()}
    res["cpu_per_exec_ms"] = cpu / CLK_TCK * 1000 / len(samples["exec_ka"])
    res["answers_checked"] = len(answers)
    return res


# --------------------------------------------------------------------------
# (b) download_dir_zip

def make_random_dir(path, files, size):
    os.makedirs(path)
    for i in range(files):
        with open(os.path.join(path, f"f{i:03d}.bin"), "wb") as f:
            f.write(os.urandom(size))


def measure_download(api, args, name, files, idle_fds):
    src = os.path.join(api.root, name)
    make_random_dir(src, files, MIB)
    src_bytes = files * MIB
    out_path = os.path.join(args.workdir, f"{name}.zip")
    idle = api.idle_rss(idle_fds)
    hwm_ok = reset_hwm(api.pid)
    c = api.conn()
    got = 0
    with Sampler(api.pid) as s, open(out_path, "wb") as out:
        t0 = time.perf_counter()
        c.request("GET", f"/fs/download_dir_zip?path=/{name}", headers=api.headers)
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"download_dir_zip answered {r.status}: {r.read()[:300]!r}")
        first = None
        while True:
            chunk = r.read(MIB)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter() - t0
            got += len(chunk)
            out.write(chunk)
        elapsed = time.perf_counter() - t0
    c.close()
    hwm = status_kib(api.pid, "VmHWM") if hwm_ok else None
    after = api.idle_rss(idle_fds)
    # The zip is whole and right: every file, every CRC, the sizes.
    with zipfile.ZipFile(out_path) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        bad = z.testzip()
        unpacked = sum(i.file_size for i in infos)
        names_ok = sorted(i.filename for i in infos) == sorted(os.listdir(src))
    if len(infos) != files or bad is not None or unpacked != src_bytes or not names_ok:
        raise RuntimeError(f"{name}.zip: {len(infos)} files (want {files}), bad entry {bad}, "
                           f"{unpacked} bytes (want {src_bytes}), names match: {names_ok}")
    os.unlink(out_path)
    shutil.rmtree(src)
    return {"files": files, "src_bytes": src_bytes, "zip_bytes": got, "seconds": elapsed,
            "first_byte_ms": first * 1000, "idle_kib": idle, "peak_kib": s.peak,
            "samples": s.n, "hwm_kib": hwm, "after_kib": after}


# --------------------------------------------------------------------------
# (c) upload_zip

def upload_contents():
    """The 10,000 (name, bytes) of the upload, the same every run."""
    rng = random.Random(UPLOAD_SEED)
    per_dir = UPLOAD_FILES // UPLOAD_DIRS
    for i in range(UPLOAD_FILES):
        n = rng.randrange(100, 1001)
        data = rng.randbytes(n // 2).hex().encode()[:n]
        yield f"d{i // per_dir:02d}/f{i:05d}.txt", data


def measure_upload(api, args, idle_fds):
    zpath = os.path.join(args.workdir, "upload.zip")
    expected = {}
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in upload_contents():
            z.writestr(name, data)
            expected[name] = hashlib.sha256(data).digest()
    zip_bytes = os.path.getsize(zpath)
    idle = api.idle_rss(idle_fds)
    hwm_ok = reset_hwm(api.pid)
    c = api.conn()
    with Sampler(api.pid) as s, open(zpath, "rb") as body:
        t0 = time.perf_counter()
        c.request("POST", "/fs/upload_zip?dest=/upload", body=body,
                  headers=dict(api.headers, **{"Content-Type": "application/zip",
                                               "Content-Length": str(zip_bytes)}))
        r = c.getresponse()
        answer = r.read()
        elapsed = time.perf_counter() - t0
    c.close()
    hwm = status_kib(api.pid, "VmHWM") if hwm_ok else None
    if r.status != 200:
        raise RuntimeError(f"upload_zip answered {r.status}: {answer[:300]!r}")
    summary = json.loads(answer)
    # Exactly the archive's files landed, byte for byte, and nothing else
    # (no staging directory, no temp file).
    dest = os.path.join(api.root, "upload")
    found, extra, wrong = 0, [], []
    for dirpath, dirs, files in os.walk(dest):
        for d in dirs:
            if not (dirpath == dest and d.startswith("d")):
                extra.append(os.path.join(dirpath, d))
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), dest)
            if rel not in expected:
                extra.append(rel)
                continue
            with open(os.path.join(dirpath, f), "rb") as fh:
                if hashlib.sha256(fh.read()).digest() != expected[rel]:
                    wrong.append(rel)
            found += 1
    if found != UPLOAD_FILES or extra or wrong:
        raise RuntimeError(f"upload_zip: {found} of {UPLOAD_FILES} files found, "
                           f"unexpected {extra[:5]}, differing {wrong[:5]}")
    shutil.rmtree(dest)
    os.unlink(zpath)
    return {"files": UPLOAD_FILES, "zip_bytes": zip_bytes,
            "unpacked_bytes": sum(len(d) for _, d in upload_contents()),
            "seconds": elapsed, "answer": summary, "idle_kib": idle, "peak_kib": s.peak,
            "hwm_kib": hwm, "verified": found}


# --------------------------------------------------------------------------
# The report

def render(res, args):
    ex, dl, up = res["exec"], res["download"], res["upload"]
    small, large = dl[0], dl[-1]

    def ms(s):
        return f"{s['median']:.3f} / {s['p99']:.3f} ms"

    def mark(ok):
        return " " + goal_mark(ok)

    overhead = ex["exec_ka"]["median"] - ex["spawn"]["median"]
    over_sub = ex["exec_ka"]["median"] - ex["subprocess"]["median"]
    n = ex["exec_ka"]["n"]
    rows = [
        (f"`POST /process/exec` `[\"true\"]`, one keep-alive connection: median / p99 (n = {n})",
         "median < 2 ms", ms(ex["exec_ka"]) + mark(ex["exec_ka"]["median"] < 2)),
        ("… a new connection per request: median / p99", "", ms(ex["exec_new"])),
        ("… mean / min / max, keep-alive", "",
         f'{ex["exec_ka"]["mean"]:.3f} / {ex["exec_ka"]["min"]:.3f} / {ex["exec_ka"]["max"]:.3f} ms'),
        ("`true` spawned by the client itself (posix_spawn + waitpid): median / p99", "",
         ms(ex["spawn"])),
        ("… by Python's subprocess.run with stdout/stderr pipes: median / p99", "", ms(ex["subprocess"])),
        ("`GET /healthz`, keep-alive (the HTTP round trip alone): median / p99", "", ms(ex["healthz_ka"])),
        ("API overhead: exec keep-alive − client posix_spawn (medians)", "< 1 ms",
         f"{overhead:.3f} ms" + mark(overhead < 1)),
        ("… exec keep-alive − client subprocess.run with pipes (medians)", "", f"{over_sub:+.3f} ms"),
        ("corral-api CPU per exec (utime+stime over the keep-alive blocks)", "",
         f'{ex["cpu_per_exec_ms"]:.3f} ms'),
    ]
    for d in dl:
        label = f'{d["src_bytes"] // MIB} MiB'
        thr = d["zip_bytes"] / MIB / d["seconds"]
        rows += [
            (f"`GET /fs/download_dir_zip`, {d['files']} random 1 MiB files ({label}): time / throughput",
             "", f'{d["seconds"]:.2f} s / {thr:.1f} MiB/s (zip {d["zip_bytes"] / MIB:.1f} MiB; first byte {d["first_byte_ms"]:.1f} ms)'),
            ("… corral-api RSS idle before → peak (sampled every 50 ms / VmHWM)", "",
             f'{mib(d["idle_kib"])} → {mib(d["peak_kib"])} / ' + (mib(d["hwm_kib"]) if d["hwm_kib"] else "n/a")),
        ]
        delta = max(d["peak_kib"], d["hwm_kib"] or 0) - d["idle_kib"]
        d["delta_kib"] = delta
        rows.append(("… peak − idle (the larger peak)", "< 8 MiB",
                     f"{mib(delta)}" + mark(delta < 8 * 1024)))
    peak = lambda d: max(d["peak_kib"], d["hwm_kib"] or 0)
    grow = peak(large) - peak(small)
    rows.append((f"peak RSS, {large['src_bytes'] // MIB} MiB directory − {small['src_bytes'] // MIB} MiB directory",
                 "< 1 MiB (flat)", f"{grow / 1024:+.2f} MiB" + mark(abs(grow) < 1024)))
    rows.append(("RSS after the downloads, idle", "", mib(large["after_kib"])))
    fps = up["files"] / up["seconds"]
    rows += [
        (f"`POST /fs/upload_zip`, {up['files']:,} files ({up['unpacked_bytes'] / 1024:,.0f} KiB, zip {up['zip_bytes'] / 1024:,.0f} KiB): time / files per second",
         "", f'{up["seconds"]:.2f} s / {fps:,.0f} files/s'),
        ("… all files landed, byte-identical, nothing else left", "all 10,000",
         f'{up["verified"]:,} ✅ (answer: {json.dumps(up["answer"])})'),
        ("… corral-api RSS idle before → peak (sampled / VmHWM)", "",
         f'{mib(up["idle_kib"])} → {mib(up["peak_kib"])} / ' + (mib(up["hwm_kib"]) if up["hwm_kib"] else "n/a")),
    ]
    rows += computer.rows(res["computer"], goal_mark)
    table = md_table(("measure", "goal", "corral-api"), rows)
    return render_section("api", [
        "",
        "corral-api, the HTTP control API: the cost of running a command through it next to",
        "spawning the command directly, a streamed directory zip (memory must not grow with the",
        "directory), a zip of 10,000 files extracted, and the screen (screenshots, clicks, resizes",
        "of a real Xvfb showing Chromium) — in one run against one corral-api.",
        "",
        f"- command: `{args.command}`",
        f"- date: {utc_now()}",
        machine_line(cpu_model(), args.load_at_start),
        f"- corral-api: {args.api_version}",
        f"- client: Python {platform.python_version()} (http.client, zipfile; standard library only)",
        "",
        *table,
        "",
        "How each figure is made (bench/api/measure.py):",
        "",
        f"- **setup**: the release `corral-api --listen 127.0.0.1:FREE_PORT --fs-root RUN_DIR/root --socket RUN_DIR/no-corral.sock` with `CORRAL_API_TOKEN` set to a random token (every request carries `Authorization: Bearer …`; one without it is checked to get 401). Ready when `GET /healthz` answers (polled, 10 s deadline). No corral runs: nothing measured here goes through the control socket. Client and server share the machine's CPUs, on loopback.",
        f"- **exec**: `{{\"argv\":[\"true\"]}}`, answers checked (200, `exit_code` 0). {args.warmup} of each kind to warm up, then blocks of {args.block}, alternating A B C D E / E D C B A so drift falls on all kinds alike, {n} of each: exec on one keep-alive `http.client` connection; exec with a new connection per request (connect + request + answer + close); `GET /healthz` on the keep-alive connection (what the HTTP exchange and this Python client cost alone); `true` spawned by this client with `os.posix_spawn` + `os.waitpid` (fork+exec+wait, no pipes); and with `subprocess.run` capturing stdout/stderr through pipes, which is what the API does for each exec (pipes read to EOF, a process group of its own, a timeout armed). Times are `perf_counter_ns` around each call; p99 is nearest-rank. The overhead row is what the API adds to the cheapest way to run `true` at all; corral-api's CPU is its utime+stime (10 ms ticks) over the keep-alive exec blocks only, divided by their count (the child's own time is not in it).",
        f"- **download**: directories of {small['files']} and {large['files']} files of `os.urandom` (1 MiB each; incompressible, so deflate cannot shrink the work), written just before, so read from the page cache. One `GET /fs/download_dir_zip?path=/DIR`, read in 1 MiB pieces and written to a file; time from the request to the last byte. The zip is then checked: every file present, `testzip()` (all CRCs) clean, sizes summing to the source. RSS: VmRSS of corral-api read after its open-fd count is back to idle and {SETTLE_S:g} s more (idle), then sampled every 50 ms on a thread of the client during the transfer, and VmHWM after it (reset before it by writing 5 to /proc/PID/clear_refs). The goal is that memory does not depend on the directory's size: the zip is made by a blocking thread writing 64 KiB chunks into a 4-chunk channel that the HTTP body drains.",
        f"- **upload**: a zip (`zipfile`, deflate) of {up['files']:,} files of 100–1000 random hex characters in {UPLOAD_DIRS} directories (no directory entries: {up['files']:,} entries, exactly `upload_zip`'s limit), from a fixed seed. One `POST /fs/upload_zip?dest=/upload` with `Content-Type: application/zip`; time from the request to the answer, which comes after the archive was spooled, validated entry by entry, extracted into a staging directory, synced (one `syncfs`, so the time includes flushing to disk, and whatever else was dirty on that filesystem) and renamed into place. Then every file under the destination is compared (SHA-256) with the archive's, and anything else there (a staging directory, a temp file) counts as a failure.",
        *computer.NOTES,
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True, help="the corral-api binary")
    ap.add_argument("--api-version", default="unknown")
    ap.add_argument("--workdir", required=True, help="the run's temp directory")
    ap.add_argument("--pidfile", help="where to list corral-api's pid, for the caller's trap")
    ap.add_argument("--requests", type=int, default=500, help="exec round trips of each kind")
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--small-mib", type=int, default=50)
    ap.add_argument("--large-mib", type=int, default=200)
    ap.add_argument("--out", help="markdown file to write the section into")
    ap.add_argument("--command", default="bench/api/run")
    ap.add_argument("--screenshots", type=int, default=200, help="timed screenshots of each kind")
    ap.add_argument("--clicks", type=int, default=500, help="timed clicks through the API")
    args = ap.parse_args()
    if not (1 <= args.small_mib <= args.large_mib <= 1024):
        ap.error("directory sizes: 1 ≤ small ≤ large ≤ 1024 MiB")
    if not (10 <= args.requests <= 10_000):
        ap.error("--requests: between 10 and 10,000")
    args.api = os.path.abspath(args.api)
    args.workdir = os.path.abspath(args.workdir)
    # A TERM from the wrapper's trap unwinds through the finally block (api.stop()).
    exit_on_term()
    args.load_at_start = load_average()

    screen = computer.Screen(args.workdir, log)
    for p in screen.procs:
        record_pid(args.pidfile, p.pid)
    args.display = screen.display
    try:
        api = Api(args)
    except BaseException:
        screen.stop()
        raise
    try:
        idle_fds = api.open_fds()
        log(f"corral-api pid {api.pid} on 127.0.0.1:{api.port}, idle {status_kib(api.pid, 'VmRSS')} KiB")
        log(f"exec: {args.requests} of each kind")
        res = {"exec": measure_exec(api, args)}
        res["download"] = []
        for mib_ in (args.small_mib, args.large_mib):
            log(f"download_dir_zip of {mib_} MiB")
            res["download"].append(measure_download(api, args, f"dl{mib_}", mib_, idle_fds))
        log(f"upload_zip of {UPLOAD_FILES} files")
        res["upload"] = measure_upload(api, args, idle_fds)
        log(f"screen: {args.screenshots} screenshots, {args.clicks} clicks on {screen.display}")
        res["computer"] = computer.measure(api, screen, args, log)
    finally:
        code = api.stop()
        screen.stop()
    warnings = [l for l in read(api.stderr_path).splitlines() if " WARN " in l or " ERROR " in l]
    if code != 0 or warnings:
        raise RuntimeError(f"corral-api exited {code}; warnings/errors: {warnings[:5]}")
    publish("api", render(res, args), args.out, log)


if __name__ == "__main__":
    main()
