"""`eduedge diag --html`: a self-contained report that Debian's Chromium renders (headless, in a network
namespace of its own, so it reaches nothing), checked on the screenshot by reading it back with OCR."""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from eduedge.agent.compliance import assess, load_rules
from eduedge.agent.compliance.findings import rank_problems
from eduedge.agent.compliance.html import chart_data, render_html
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.core import i18n
from eduedge.core.samples import Sample

pytestmark = pytest.mark.integration
NOW = datetime(2024, 5, 15, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
DAY = 86400.0
NAME = "诊断测试小学 Diag Test Primary School"
FAILING = ("yinchuan-2018.uplink", "yinchuan-2018.backbone", "yinchuan-2018.device-ratio", "ningxia-2019.egress")


def config() -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": "html-school", "name": NAME, "city": "yinchuan", "type": "primary",
                   "enrolment": {"students": 400, "teachers": 40}},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}}, "devices": [
            {"name": "core", "host": "127.0.0.1", "credentials": "c", "role": "core"},
            {"name": "dist-a", "host": "127.0.0.1", "credentials": "c", "role": "distribution"}]},
        "standards": {"packs": ["yinchuan-2018", "ningxia-2019"]}})


def link(t: float, mbps: float) -> list[Sample]:
    out = []
    for dev, idx, name, nb, nbport in (("core", 1, "Gi0/1", "dist-a", "Gi0/49"), ("dist-a", 49, "Gi0/49", "core",
                                                                                 "Gi0/1")):
        tags = {"if_index": str(idx), "interface": name}
        out += [Sample(t, dev, "if.speed_mbps", mbps, "Mbit/s", tags), Sample(t, dev, "if.oper_status", "up", "state",
                                                                              tags),
                Sample(t, dev, "lldp.neighbor", nb, "info", {"local_port": name, "local_port_num": str(idx),
                                                             "remote_port": nbport})]
    return out


def school_month(store: SampleStore, cfg: AgentConfig) -> None:
    """A month in the store, judged by the daemon as it went: the backbone passes, drops to 100 Mbit/s two
    days ago; a day of WAN traffic and Wi-Fi clients; 300 tablets for 440 people; egress tests at 150 Mbit/s
    (enough for 100, not for 200 or 2.5 Gbit/s)."""
    for day, mbps in ((20, 1000), (2, 100), (0.001, 100)):
        t = NOW - day * DAY
        for dev in ("core", "dist-a"):
            store.add_poll(dev, t, True, [s for s in link(t, mbps) if s.device == dev])
        assess(store, cfg, t + 1)
    samples = []
    for i in range(144):
        t = NOW - DAY + i * 600
        busy = max(0.0, math.sin((i - 48) / 144 * 2 * math.pi))
        tags = {"interface": "eth0", "role": "wan"}
        samples += [Sample(t, "gw", "host.if_in_bps", 20e6 + 150e6 * busy, "bit/s", tags),
                    Sample(t, "gw", "host.if_out_bps", 5e6 + 30e6 * busy, "bit/s", tags)]
        for zone, size in (("A101", 35), ("Library", 60), ("Office-1", 12)):
            samples.append(Sample(t, "ac-1", "wifi.zone_clients", round(size * busy), "", {"zone": zone}))
    samples += [Sample(NOW - i * 3600, "gw", "wan.down_mbps", 150.0, "Mbit/s", {"method": "tcp"}) for i in range(5)]
    samples.append(Sample(NOW - 60, "gw", "inventory.learning_devices", 300, "devices"))
    samples.append(Sample(NOW - 60, "gw", "host.if_speed_mbps", 1000, "Mbit/s", {"interface": "eth0", "role": "wan"}))
    store.add(samples)


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB/RGBA PNG, as Chromium writes them."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, prev, out = zlib.decompress(idat), width * bpp, bytearray(width * bpp), bytearray()
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def screenshot(html: Path, png: Path, profile: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/install-system-deps installs it)")
    # A private network namespace: the browser can reach nothing, whatever it would like to phone.
    unshare = ["unshare", "--net", "--"] if os.geteuid() == 0 else ["unshare", "-rn", "--"]
    r = subprocess.run([*unshare, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--window-size=1200,2600", f"--screenshot={png}",
                        html.as_uri()], capture_output=True, text=True, timeout=120)
    assert png.is_file(), r.stderr[-2000:]


def ocr(png: Path) -> str:
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is not installed (scripts/install-system-deps installs it)")
    # The pack titles are Chinese: with a CJK font installed, English-only OCR misreads the lines they share.
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30).stdout.split()
    lang = "eng+chi_sim" if "chi_sim" in langs else "eng"
    # One OpenMP thread: the same text, ~5 s instead of ~22 s when tesseract's threads spin on a busy 2-core box.
    return subprocess.run(["tesseract", str(png), "-", "-l", lang, "--psm", "3"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout


def test_the_html_report_renders_in_chromium_with_the_school_and_every_failing_rule(tmp_path):
    cfg = config()
    store = SampleStore(":memory:")
    school_month(store, cfg)
    findings = assess(store, cfg, NOW, source="diag").findings
    statuses = {f.rule: f.status for f in findings}
    assert sorted(r for r, s in statuses.items() if s == "fail") == sorted(FAILING)
    charts = chart_data(store, NOW, findings)
    assert len(charts.wan_in) == 144 and sorted(charts.wifi_clients) == ["A101", "Library", "Office-1"]
    assert [s for _, s in charts.history["yinchuan-2018.backbone"]] == ["pass", "fail", "fail"]
    html = render_html(cfg, load_rules(cfg), findings, rank_problems(findings), NOW, "live",
                       [{"device": "core", "ok": True}, {"device": "dist-a", "ok": True}], charts)
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r"<(script|link|img|iframe)\b|url\(|@import|https?://", html, re.I)
    assert html.count("<svg") == 3 and "<polyline" in html

    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    width, height, bpp, pixels = decode_png(png.read_bytes())
    assert (width, height) == (1200, 2600)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), bpp * 7)}
    assert len(colours) > 50                                          # text, badges and charts, not a blank page
    red = sum(1 for i in range(0, len(pixels), bpp)
              if abs(pixels[i] - 0xCF) < 12 and abs(pixels[i + 1] - 0x22) < 12 and abs(pixels[i + 2] - 0x2E) < 12)
    assert red > 500                                                  # the FAIL badges are painted
    text = ocr(png)
    flat = re.sub(r"\s+", "", text)
    # the heading wraps at its CJK part's width; read it as one line of text
    assert "诊断测试小学" in flat or "DiagTestPrimarySchool" in flat, text
    for rule in FAILING:
        assert rule in flat, f"{rule} not found in the screenshot's text:\n{text}"


def test_the_report_in_chinese_renders_its_chinese_in_chromium(tmp_path):
    """`ui.lang: zh` (or LANG=zh_CN): headings, findings and hints are Chinese, drawn with a CJK font, and
    tesseract's chi_sim reads them back off the screenshot."""
    with i18n.using("zh"):
        cfg = config()
        store = SampleStore(":memory:")
        school_month(store, cfg)
        findings = assess(store, cfg, NOW, source="diag").findings
        html = render_html(cfg, load_rules(cfg), findings, rank_problems(findings), NOW, "live",
                           [{"device": "core", "ok": True}, {"device": "dist-a", "ok": True}],
                           chart_data(store, NOW, findings))
    assert '<html lang="zh-CN">' in html and "Problems, most important first" not in html
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    text = ocr(png)
    flat = re.sub(r"\s+", "", text)
    # headings, a finding's why, a problem's hint: each as the catalogue has it (OCR reads CJK with spaces
    # between the characters, and brackets as either width; compare without them)
    for words in ("按重要程度排序", "达标历史", "骨干链路", "学习终端", "向运营商询问线路的限速"):
        assert words in flat, f"{words} not found in the screenshot's text:\n{text}"
