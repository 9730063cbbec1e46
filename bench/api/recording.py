#!/usr/bin/env python3
"""Measures what a screen recording costs: CPU at 10 fps, idle screen and a scrolling page.

Run through `bench/api/recording`, which builds the release binaries and cleans up
after this script whatever happens. This file starts corral as PID 1 of a new PID
namespace (unshare) with the product's shape: Xvfb 1280x720, Debian's Chromium, the
release corral-api, and the `recording` program exactly as supervisor.toml has it
(`corral-api record --params FILE`, autostart off, restart never, SIGINT). Then, for
each scene (an idle page; a page that scrolls itself every animation frame):

  baseline  CPU of Xvfb and Chromium (all its processes) over WINDOW seconds, no recording
  recording POST /recording/start {"framerate": 10}, a warm-up, then over WINDOW seconds
            ffmpeg's CPU and Xvfb's, Chromium's again; POST /recording/stop; the mp4 is
            checked with ffprobe (frames decoded against 10 fps x its duration).

The cost of recording is ffmpeg's CPU plus what Xvfb spends more than in the
baseline (x11grab's image copies are X requests), as % of one CPU. CPU is summed
from /proc/PID/task/*/schedstat (nanoseconds). Standard library only.
"""

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib"))
from benchlib import (  # noqa: E402
    UNSHARE_PID1, corral_pid, cpu_counters, cpu_model, descendants, exit_on_term, free_ports,
    load_average, logger, machine_line, md_table, publish, read, record_pid, stop_tree,
    utc_now, version_of, wait_for,
)

log = logger("bench/api/recording")
FPS = 10
WIDTH, HEIGHT = 1280, 720
SETTLE_S = 2.0  # a new page's first paint and layout done before a window opens

IDLE_HTML = """<!doctype html><title>idle</title>
<body style="margin:0;font:24px sans-serif;background:#fff">
<h1 style="margin:40px">An idle page</h1><p style="margin:40px">Nothing moves here.</p>"""

SCROLL_HTML = """<!doctype html><title>scroll</title>
<style>body{margin:0;font:20px sans-serif} .r{height:60px;padding:10px 40px;border-bottom:1px solid #ccc}</style>
<body><div id=c></div><script>
const c = document.getElementById('c');
for (let i = 0; i < 2000; i++) {
  const d = document.createElement('div'); d.className = 'r';
  d.style.background = `hsl(${(i * 37) % 360} 70% 85%)`;
  d.textContent = `Row ${i}: the quick brown fox jumps over the lazy dog ${i * 7919 % 10007}`;
  c.appendChild(d);
}
// Scrolls 4 px every animation frame (about 240 px/s at 60 Hz), wrapping at the end.
function step() {
  if (window.scrollY + innerHeight >= document.body.scrollHeight - 4) window.scrollTo(0, 0);
  else window.scrollBy(0, 4);
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
</script>"""


def toml_str(s):
    return json.dumps(s)


def toml_argv(a):
    return "[" + ", ".join(toml_str(x) for x in a) + "]"


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, out


def cdp(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise OSError(f"{method} {path}: {r.status} {body[:200]!r}")
    try:
        return json.loads(body)
    except ValueError:  # /json/activate and /json/close answer plain text
        return body.decode(errors="replace")


def comm(pid):
    try:
        return read(f"/proc/{pid}/comm").strip()
    except OSError:
        return ""


def pids_named(root, name):
    return [p for p in descendants(root) if comm(p) == name]


def cpu_ns(pids):
    total = 0
    for p in pids:
        try:
            total += cpu_counters(p)[1]
        except OSError:
            pass
    return total


def window(groups, seconds):
    """CPU of each group of pids over `seconds`: {name: % of one CPU}."""
    before = {k: cpu_ns(v) for k, v in groups.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measuring window itself
    dt = time.monotonic() - t0
    return {k: 100.0 * (cpu_ns(v) - before[k]) / (dt * 1e9) for k, v in groups.items()}


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=width,height,nb_read_frames:format=duration", "-of", "json", path],
        capture_output=True, text=True, check=True)
    v = json.loads(out.stdout)
    s = v["streams"][0]
    return s["width"], s["height"], float(v["format"]["duration"]), int(s["nb_read_frames"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corral", required=True)
    ap.add_argument("--api", required=True)
    ap.add_argument("--api-version", default="")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--out")
    ap.add_argument("--command", default="bench/api/recording")
    ap.add_argument("--window", type=float, default=20.0, help="seconds per CPU window (default 20)")
    ap.add_argument("--display", type=int, required=True)
    args = ap.parse_args()
    exit_on_term()
    load_at_start = load_average()
    work = args.workdir
    for name, html in (("idle.html", IDLE_HTML), ("scroll.html", SCROLL_HTML)):
        with open(os.path.join(work, name), "w") as f:
            f.write(html)
    os.makedirs(os.path.join(work, "data"))
    api_port, cdp_port = free_ports(2)
    token = secrets.token_hex(16)
    params = os.path.join(work, "recording.json")
    disp = f":{args.display}"
    chromium = ["chromium", "--no-sandbox", "--no-first-run", "--disable-gpu", "--disable-dev-shm-usage",
                "--password-store=basic", "--disable-background-networking", "--disable-component-update",
                "--window-position=0,0", f"--window-size={WIDTH},{HEIGHT}",
                f"--remote-debugging-port={cdp_port}", f"--user-data-dir={work}/profile",
                f"file://{work}/idle.html"]
    config = f"""[supervisor]
control_socket = {toml_str(work + "/control.sock")}
stop_timeout = "10s"

[programs.xvfb]
command = {toml_argv(["Xvfb", disp, "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp"])}
ready = {{ x11 = {toml_str(disp)}, timeout = "20s" }}

[programs.chromium]
command = {toml_argv(chromium)}
env = {{ DISPLAY = {toml_str(disp)} }}
binds_to = ["xvfb"]
ready = {{ tcp = "127.0.0.1:{cdp_port}", timeout = "60s" }}

[programs.api]
command = {toml_argv([args.api, "--listen", f"127.0.0.1:{api_port}", "--fs-root", work + "/data",
                      "--socket", work + "/control.sock", "--display", disp,
                      "--recording-params", params, "--recording-min-free-mib", "64"])}
env = {{ CORRAL_API_TOKEN = {toml_str(token)} }}
ready = {{ http = "http://127.0.0.1:{api_port}/healthz" }}

[programs.recording]
command = {toml_argv([args.api, "record", "--params", params])}
depends_on = ["xvfb"]
autostart = false
restart = "never"
stop_signal = "INT"
stop_timeout = "10s"
"""
    cfg = os.path.join(work, "supervisor.toml")
    with open(cfg, "w") as f:
        f.write(config)
    out_path = os.path.join(work, "corral.out")
    out = open(out_path, "w")
    proc = subprocess.Popen(UNSHARE_PID1 + [args.corral, "-c", cfg], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    record_pid(args.pidfile, proc.pid)
    pid1 = lambda: corral_pid(proc, out_path)  # noqa: E731
    api = Api(api_port, token)
    rows, checks = [], []
    try:
        wait_for("corral-api", lambda: api.call("GET", "/healthz")[0] == 200, 60, alive=proc)
        version = wait_for("Chromium's DevTools", lambda: cdp(cdp_port, "GET", "/json/version"), 90, alive=proc)
        xvfb = pids_named(proc.pid, "Xvfb")
        assert len(xvfb) == 1, xvfb
        results = {}
        for scene in ("idle", "scroll"):
            tab = cdp(cdp_port, "PUT", f"/json/new?file://{work}/{scene}.html")
            cdp(cdp_port, "GET", f"/json/activate/{tab['id']}")
            for t in cdp(cdp_port, "GET", "/json/list"):
                if t["type"] == "page" and t["id"] != tab["id"]:
                    cdp(cdp_port, "GET", f"/json/close/{t['id']}")
            time.sleep(SETTLE_S)
            browser = [p for p in descendants(proc.pid) if comm(p).startswith("chrom")]
            base = window({"xvfb": xvfb, "chromium": browser}, args.window)
            log(f"{scene} baseline: {base}")
            st, body = api.call("POST", "/recording/start", {"framerate": FPS, "max_duration_s": 600})
            if st != 200:
                raise RuntimeError(f"start: {st} {body!r}")
            rid = json.loads(body)["id"]
            ffmpeg = wait_for("ffmpeg", lambda: pids_named(proc.pid, "ffmpeg"), 10)
            time.sleep(SETTLE_S)  # x264's lookahead and the first fragments out of the way
            rec = window({"ffmpeg": ffmpeg, "xvfb": xvfb, "chromium": browser}, args.window)
            log(f"{scene} recording: {rec}")
            st, body = api.call("POST", "/recording/stop", {"id": rid})
            if st != 200:
                raise RuntimeError(f"stop: {st} {body!r}")
            entry = json.loads(body)
            w, h, dur, frames = probe(os.path.join(work, "data", "recordings", f"{rid}.mp4"))
            results[scene] = (base, rec, entry, (w, h, dur, frames))
            api.call("POST", "/recording/delete", {"id": rid})
        for scene, label in (("idle", "idle page (nothing moves)"),
                             ("scroll", "page scrolling 4 px per animation frame")):
            base, rec, entry, (w, h, dur, frames) = results[scene]
            extra_x = rec["xvfb"] - base["xvfb"]
            total = rec["ffmpeg"] + max(extra_x, 0.0)
            rows.append([f"recording at {FPS} fps, {label}: ffmpeg + Xvfb's extra = cost, % of one CPU",
                         f"{rec['ffmpeg']:.1f} + {extra_x:.1f} = **{total:.1f} %**"])
            rows.append([f"… Xvfb without → with recording; Chromium without → with",
                         f"{base['xvfb']:.1f} → {rec['xvfb']:.1f} %; {base['chromium']:.1f} → {rec['chromium']:.1f} %"])
            rows.append([f"… the file: {w}x{h}, frames decoded / duration (ffprobe), size",
                         f"{frames} / {dur:.2f} s ({frames / dur:.1f} fps), {entry['size_bytes'] / 1024:.0f} KiB "
                         f"({entry['size_bytes'] / 1024 / dur * 60 / 1024:.1f} MiB per minute)"])
            checks.append((w, h) == (WIDTH, HEIGHT) and frames >= 0.9 * FPS * dur)
        browser_version = version.get("Browser", "?")
    finally:
        stop_tree(proc, pid1, "corral", log)
        out.close()
    lines = [
        "",
        "What recording the screen costs (`/recording/*`: Debian's ffmpeg, x11grab → libx264",
        "ultrafast/zerolatency, fragmented mp4, as corral's program `recording`), at 10 fps, on a",
        "1280x720 Xvfb showing a real Chromium.",
        "",
        f"- command: `{args.command}`",
        f"- date: {utc_now()}",
        machine_line(cpu_model(), load_at_start),
        f"- corral-api: {args.api_version}; {version_of(['ffmpeg', '-version']).split(' Copyright')[0]}; "
        f"Chromium {browser_version}; "
        f"{version_of(['dpkg-query', '-W', '-f=Xvfb (xvfb ${Version})', 'xvfb'])}",
        f"- windows: {args.window:g} s each; all files checked: {'yes ✅' if all(checks) else 'NO ❌'}",
        "",
        *md_table(["measure", "figure"], rows),
        "",
        "How (bench/api/recording.py): corral as PID 1 (unshare) with Xvfb, Chromium, the release",
        "corral-api and the `recording` program as in supervisor.toml. Each scene is a page opened",
        "with DevTools' `/json/new` (other tabs closed), 2 s to settle, then a window without",
        "recording (Xvfb's and Chromium's CPU), `POST /recording/start {\"framerate\":10}`, 2 s of",
        "warm-up, a window while recording (ffmpeg, Xvfb, Chromium), `POST /recording/stop`, and",
        "ffprobe on the file. CPU is the sum over each process's threads of",
        "/proc/PID/task/TID/schedstat (ns) across the window, as % of one CPU. The cost is",
        "ffmpeg's CPU plus Xvfb's increase (x11grab reads each frame from the X server through",
        "MIT-SHM); Chromium's figures show it is not slowed or sped up by the recording.",
    ]
    section_name = "api-recording"
    start = f"<!-- bench:{section_name}:start (generated by bench/api/recording; edits here are overwritten) -->"
    section = "\n".join([start, "## api: recording", *lines, f"<!-- bench:{section_name}:end -->"])
    publish(section_name, section, args.out, log)
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
