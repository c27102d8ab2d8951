"""Serve the city console (uvicorn, the real app) and look at it with Debian's headless Chromium, both inside a
network namespace of their own (unshare), so the browser reaches nothing but the app.

Each view is one Chromium run of `/login?token=...&next=PATH`: the login's redirect sets the session cookie
and lands on the page, as a kiosk would. `--dump-dom` runs give the DOM after the page's script ran; the
script (static/app.js) writes the document's scrollWidth and clientWidth on <html>, so a horizontal
overflow shows in the DOM.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=5000", "--accept-lang=zh-CN,zh"]   # a bureau's browser


def look(cfg_path: Path, token: str, out: Path, shots: list[tuple[str, str, int, int]],
         doms: list[tuple[str, str, int]], scale: float = 1.0) -> dict[str, str]:
    """Screenshots (name, path, width, height) as out/NAME.png, and DOMs (name, path, width); returns the DOMs.
    `scale` < 1 draws the same layout into a smaller picture (--force-device-scale-factor)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/install-system-deps installs it)")
    out.mkdir(parents=True, exist_ok=True)
    # A view wanted both as a screenshot and as a DOM (same name, path and width) is one Chromium run with
    # both flags: Chromium starts and loads the page once instead of twice, and the DOM is the one
    # the screenshot shows (the window's height changes no width: scrollbars are hidden).
    shot_views = {name: (path, width) for name, path, width, _ in shots}
    both = sorted(name for name, path, width in doms if shot_views.get(name) == (path, width))
    script = f"""
import socket, subprocess, threading, time
from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.web import CityWeb, serve
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
up = threading.Event()
threading.Thread(target=serve, args=(CityWeb(load_cloud_config({str(cfg_path)!r})), "127.0.0.1", 8080,
                                     lambda port: up.set()), daemon=True).start()
assert up.wait(60), "the app did not listen"
def run(name, extra, path, width, height):
    url = "http://127.0.0.1:8080/login?token={quote(token)}&next=" + path
    r = subprocess.run([{chromium!r}, *{FLAGS!r}, "--force-device-scale-factor={scale}",
                        f"--window-size={{width}},{{height}}",
                        f"--user-data-dir={out}/profile-{{name}}", *extra, url], capture_output=True, text=True,
                       timeout=180)
    return r.stdout
both = {both!r}
for name, path, width, height in {shots!r}:
    dom = run(name, [f"--screenshot={out}/{{name}}.png", *(["--dump-dom"] if name in both else [])], path, width,
              height)
    if name in both:
        open(f"{out}/{{name}}.html", "w").write(dom)
for name, path, width in {doms!r}:
    if name not in both:
        open(f"{out}/{{name}}.html", "w").write(run(name, ["--dump-dom"], path, width, 1200))
"""
    unshare = ["unshare", "--net", "--"] if os.geteuid() == 0 else ["unshare", "-rn", "--"]
    r = subprocess.run([*unshare, sys.executable, "-c", script], capture_output=True, text=True, timeout=1500,
                       cwd=Path(__file__).resolve().parents[1])
    for name, *_ in shots:
        assert (out / f"{name}.png").is_file(), r.stderr[-3000:]
    return {name: (out / f"{name}.html").read_text() for name, *_ in doms}


def widths(dom: str) -> tuple[int, int]:
    """(scrollWidth, clientWidth) the page's script wrote on <html>."""
    m = re.search(r'data-scroll-width="(\d+)"[^>]*data-client-width="(\d+)"', dom)
    assert m, "the page's script did not run (no data-scroll-width on <html>)"
    return int(m.group(1)), int(m.group(2))


def ocr(png: Path, lang: str = "chi_sim") -> str:
    """The text tesseract reads on a screenshot, with the spaces it puts between CJK characters removed.
    One OpenMP thread: the same text, and ~5 s a page instead of ~17 s when its threads spin against the
    rest of a busy 2-core box; two reads side by side (tests/test_cloud_screens.py) use both cores."""
    r = subprocess.run(["tesseract", str(png), "-", "-l", lang, "--psm", "3"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    assert r.returncode == 0, r.stderr
    return re.sub(r"\s+", "", r.stdout)
