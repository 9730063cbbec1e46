"""bench/api's screen part (imported by measure.py): /computer/* and /display
against a real Xvfb showing a real Chromium page, beside what people use today.

  Screen    Xvfb (-displayfd picks a free display; 1920x1080 framebuffer, set to
            1280x720 with RandR before anything draws) and Chromium showing a
            generated page of text, headings, coloured boxes and a gradient, so the
            PNG encoder has real content. Both are stopped (TERM, then KILL) at the end.
  screenshot  GET /computer/screenshot of the whole 1280x720 screen, and at
            scale=0.5, on one keep-alive connection; beside it one frame grabbed by
            `ffmpeg -f x11grab ... -frames:v 1 -c:v png` (a process per screenshot,
            what CLI-based servers spawn).
  click     POST /computer/click_mouse {x, y} on a keep-alive connection (answered
            once the X server has processed the events); beside it
            `xdotool mousemove X Y click 1` spawned per click (what kernel-images'
            servers and scripts run).
  display   PATCH /display 1024x576 and back to 1280x720 (RandR on the running Xvfb).
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import free_ports, summary, wait_for

WIDTH, HEIGHT = 1280, 720
MAX_W, MAX_H = 1920, 1080
# A spot of the page with nothing clickable (a paragraph's margin).
CLICK_AT = (1200, 650)


def page_html():
    words = ("corral drives a real headed Chromium by pixels and by the DevTools protocol "
             "screenshots mouse keyboard display recording profile cookies tabs").split()
    paras = []
    for i in range(40):
        text = " ".join(words[(i * 7 + j) % len(words)] for j in range(60))
        paras.append(f'<h2 style="color:hsl({i * 37 % 360},70%,35%)">Section {i}</h2><p>{text}</p>')
    boxes = "".join(
        f'<div style="display:inline-block;width:90px;height:60px;margin:4px;'
        f'background:hsl({i * 23 % 360},80%,60%)"></div>' for i in range(24))
    return ("<!doctype html><html><head><title>bench</title><style>"
            "body{font:15px sans-serif;margin:20px;background:linear-gradient(#fff,#e8eef8)}"
            "</style></head><body><h1>corral benchmark page</h1>" + boxes
            + "".join(paras) + "</body></html>")


class Screen:
    """Xvfb + Chromium for the run."""

    def __init__(self, workdir, log):
        self.log = log
        self.procs = []
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{MAX_W}x{MAX_H}x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.procs.append(self.xvfb)
        os.close(w)
        # Xvfb writes the display number once it accepts clients.
        with os.fdopen(r) as f:
            num = f.readline().strip()
        if not num.isdigit():
            raise RuntimeError("Xvfb did not report a display")
        self.display = f":{num}"
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="chromium-")
        page = os.path.join(self.dir, "page.html")
        with open(page, "w") as f:
            f.write(page_html())
        (self.cdp,) = free_ports(1)
        chromium = shutil.which("chromium") or "chromium"
        self.chromium = subprocess.Popen(
            [chromium, "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--password-store=basic", "--force-device-scale-factor=1",
             "--window-position=0,0", f"--window-size={WIDTH},{HEIGHT}",
             f"--remote-debugging-port={self.cdp}", f"--user-data-dir={self.dir}/profile",
             f"file://{page}"],
            env=dict(os.environ, DISPLAY=self.display), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(self.chromium)

    def page_loaded(self):
        c = http.client.HTTPConnection("127.0.0.1", self.cdp, timeout=2)
        try:
            c.request("GET", "/json/list")
            targets = json.loads(c.getresponse().read())
        finally:
            c.close()
        return any(t.get("title") == "bench" for t in targets)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM) if p is self.chromium else p.terminate()
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def measure(api, screen, args, log):
    """The figures: {name: summary-in-ms, ...} plus sizes."""
    ka = [api.conn()]

    def call(method, path, body=None):
        h = dict(api.headers)
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        try:
            ka[0].request(method, path, body=body, headers=h)
            r = ka[0].getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closes a keep-alive connection left idle (while the
            # CLI tools were being timed): a new one, outside the timed ones.
            ka[0].close()
            ka[0] = api.conn()
            ka[0].request(method, path, body=body, headers=h)
            r = ka[0].getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path} answered {r.status}: {data[:300]!r}")
        return data

    # The screen at 1280x720 (RandR), the page loaded and painted.
    call("PATCH", "/display", {"width": WIDTH, "height": HEIGHT})
    wait_for("the benchmark page", screen.page_loaded, 90, alive=screen.chromium, gap_s=0.05)
    wait_for("the page painted", lambda: len(call("GET", "/computer/screenshot")) > 50_000, 30,
             gap_s=0.05)
    res = {}
    shot = call("GET", "/computer/screenshot")
    if shot[:8] != b"\x89PNG\r\n\x1a\n" or int.from_bytes(shot[16:20], "big") != WIDTH:
        raise RuntimeError("the screenshot is not a 1280-wide PNG")
    res["png_bytes"] = len(shot)
    res["png_half_bytes"] = len(call("GET", "/computer/screenshot?scale=0.5"))
    n = args.screenshots
    for _ in range(10):
        call("GET", "/computer/screenshot")
    res["shot"] = summary(timed(lambda: call("GET", "/computer/screenshot"), n))
    res["shot_half"] = summary(timed(lambda: call("GET", "/computer/screenshot?scale=0.5"), n))

    ffmpeg = ["ffmpeg", "-loglevel", "error", "-f", "x11grab", "-video_size", f"{WIDTH}x{HEIGHT}",
              "-i", f"{screen.display}+0,0", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "-"]

    def ffmpeg_shot():
        out = subprocess.run(ffmpeg, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        if out.stdout[:8] != b"\x89PNG\r\n\x1a\n":
            raise RuntimeError(f"ffmpeg gave no PNG: {out.stderr[:300]!r}")
        res["ffmpeg_bytes"] = len(out.stdout)
    res["shot_ffmpeg"] = summary(timed(ffmpeg_shot, max(10, n // 10)))

    x, y = CLICK_AT
    click = {"x": x, "y": y}
    for _ in range(20):
        call("POST", "/computer/click_mouse", click)
    res["click"] = summary(timed(lambda: call("POST", "/computer/click_mouse", click), args.clicks))
    res["cursor"] = summary(timed(lambda: call("GET", "/computer/cursor"), args.clicks))
    xdo = ["xdotool", "mousemove", str(x), str(y), "click", "1"]
    env = dict(os.environ, DISPLAY=screen.display)
    res["click_xdotool"] = summary(timed(
        lambda: subprocess.run(xdo, env=env, check=True, stdout=subprocess.DEVNULL),
        max(20, args.clicks // 5)))

    call("GET", "/display")  # a fresh keep-alive connection if the idle one was closed
    sizes = [{"width": 1024, "height": 576}, {"width": WIDTH, "height": HEIGHT}] * 10
    res["resize"] = summary(timed(lambda: call("PATCH", "/display", sizes.pop()), len(sizes)))
    ka[0].close()
    return res


def rows(res, goal_mark):
    def ms(s):
        return f"{s['median']:.2f} / {s['p99']:.2f} ms"
    return [
        (f"`GET /computer/screenshot`, 1280x720 PNG of a Chromium page ({res['png_bytes'] / 1024:.0f} KiB): median / p99",
         "p50 < 30 ms", ms(res["shot"]) + " " + goal_mark(res["shot"]["median"] < 30)),
        (f"… `?scale=0.5` (640x360, {res['png_half_bytes'] / 1024:.0f} KiB): median / p99", "", ms(res["shot_half"])),
        (f"… beside it: `ffmpeg -f x11grab -frames:v 1 -c:v png` per screenshot ({res['ffmpeg_bytes'] / 1024:.0f} KiB): median / p99",
         "", ms(res["shot_ffmpeg"])),
        ("`POST /computer/click_mouse {x, y}` round trip (X has processed it): median / p99",
         "p50 < 5 ms", ms(res["click"]) + " " + goal_mark(res["click"]["median"] < 5)),
        ("… beside it: `xdotool mousemove X Y click 1` per click: median / p99", "", ms(res["click_xdotool"])),
        ("`GET /computer/cursor`: median / p99", "", ms(res["cursor"])),
        ("`PATCH /display` 1024x576 ↔ 1280x720 (RandR, no restart; Chromium refitted): median / p99",
         "", ms(res["resize"])),
    ]


NOTES = [
    "- **screen**: Xvfb started with a 1920x1080x24 framebuffer (`-displayfd` picks a free display) and set to 1280x720 by `PATCH /display` (RandR), as the image does; Chromium (`--no-sandbox --force-device-scale-factor=1`, a fresh profile) shows a generated page of 40 headings and paragraphs, 24 coloured boxes and a gradient background; measuring starts once its title is there and a screenshot is over 50 KB (painted). corral-api runs with `--display` on it.",
    "- **screenshot**: on one keep-alive connection, 10 to warm up, then the timed ones; each is GetImage of the root window over the one kept X connection, BGRX to RGB, an optional box-filter downscale, PNG (png crate, `Compression::Fast`, Sub filter: adaptive filtering made files ~11% smaller for 40 ms more), answered whole. The ffmpeg row spawns `ffmpeg -f x11grab -video_size 1280x720 -i :N+0,0 -frames:v 1 -c:v png -f image2pipe -` per screenshot (a CLI capture spawned per call; its zlib PNG is smaller, at ~200 ms), timed to its exit.",
    "- **click**: `POST /computer/click_mouse {\"x\":1200,\"y\":650}` (a blank spot of the page) on a keep-alive connection: XTEST motion, press, release, then one X round trip, so the answer means the X server has processed and queued the events to Chromium (the page's handler runs after that; docs/agents.md). The xdotool row spawns `xdotool mousemove 1200 650 click 1` per click, timed to its exit.",
    "- **display**: `PATCH /display`, alternating 1024x576 and 1280x720: RandR on the running Xvfb, Chromium's window configured to the new size (this run has no `--display-state`, so nothing is written) — no restart of anything.",
]
