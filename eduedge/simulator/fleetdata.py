"""What each school of the simulated fleet is like and reports beyond its live metrics: its profile, 30 days of
history, and the findings its agent's own compliance code judges from that history.

A profile draws, per school and reproducibly from the seed: its district, the broadband it bought and what
the line really carries (some are shaped below what they bought, some degraded in the evenings), the
gateway's WAN port (some are Fast Ethernet, so no test can show 100 Mbit/s), per Wi-Fi zone how good the
signal is (some zones are poor: thick walls, too few APs), and its fate in the run (`healthy`, `flaps`:
its link drops now and then, `cut`: it goes offline after its first report, `lossy`: some messages never
arrive, `declares`: its outbox drops messages and says so in a `gap` message).

History, one sample an hour in school hours (capacity tests three times a day), is what the agent's
sample store would hold: `wan.down_mbps` (method tcp), the gateway's WAN interface
(`host.if_in_bps`/`host.if_out_bps`, `role: wan`) and link speed, and per zone `wifi.zone_*`.
Findings come from the agent's own `assess` (agent/compliance) over that history, at three points in
time, so a school's page has history and the city's findings are exactly what real agents would send.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from eduedge.agent.compliance import RuleSet, assess, load_packs
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.core.samples import Sample

ZONE = ZoneInfo("Asia/Shanghai")
DISTRICTS = ["兴庆区", "金凤区", "西夏区", "永宁县", "贺兰县", "灵武市"]
NAMES = {"primary": "小学", "secondary": "中学", "nine-year": "九年制学校", "kindergarten": "幼儿园",
         "teaching-point": "教学点", "secondary-vocational": "职业中学", "vocational-college": "职业技术学院"}
ORDINALS = "一二三四五六七八九十"
FATES = ["healthy"] * 80 + ["flaps"] * 5 + ["cut"] * 6 + ["lossy"] * 5 + ["declares"] * 4
PACKS = ["hebei-2019", "yinchuan-2018"]


@dataclass
class Profile:
    district: str
    name: str
    bought_mbps: float
    carries_mbps: float                 # what capacity tests see by day
    evening_factor: float               # of that, in the evening peak (contention)
    wan_port_mbps: float
    zone_good: dict[str, float] = field(default_factory=dict)   # zone -> share of client-minutes with a good signal
    fate: str = "healthy"
    outage_days: list[int] = field(default_factory=list)         # days ago the school was unreachable all day


def chinese_number(n: int) -> str:
    """1..99 in Chinese numerals.

    >>> chinese_number(3), chinese_number(10), chinese_number(21)
    ('三', '十', '二十一')
    """
    if n <= 10:
        return ORDINALS[n - 1]
    tens, ones = divmod(n, 10)
    return (ORDINALS[tens - 1] if tens > 1 else "") + "十" + (ORDINALS[ones - 1] if ones else "")


def profile(i: int, kind: str, zones: list[str], seed: int, bought: float) -> Profile:
    rng = random.Random(seed * 7919 + i)
    district = DISTRICTS[rng.randrange(len(DISTRICTS))]
    name = f"{district}第{chinese_number(i % 99 + 1)}{NAMES.get(kind, '学校')}"
    shaped = rng.random() < 0.25                 # a line shaped below what the school bought
    carries = bought * (rng.uniform(0.35, 0.7) if shaped else rng.uniform(0.93, 1.0))
    port = 100.0 if rng.random() < 0.12 else 1000.0
    good = {z: (rng.uniform(0.55, 0.85) if rng.random() < 0.1 else rng.uniform(0.93, 0.99)) for z in zones}
    outages = sorted(rng.sample(range(1, 29), rng.randint(1, 3))) if rng.random() < 0.3 else []
    evening = rng.uniform(0.5, 0.8) if rng.random() < 0.3 else rng.uniform(0.95, 1.0)
    return Profile(district, name, bought, carries, evening, port, good,
                   FATES[rng.randrange(len(FATES))], outages)


def in_school_hours(t: float) -> bool:
    local = dt.datetime.fromtimestamp(t, ZONE)
    return local.weekday() < 5 and 8 <= local.hour < 17


def history(p: Profile, zone_types: dict[str, str], now: float, days: int, seed: int) -> list[Sample]:
    """Hourly samples over the last `days` days (none on the school's outage days)."""
    rng = random.Random(seed)
    out: list[Sample] = []
    start = (now // 3600) * 3600 - days * 86400
    t = start
    while t < now:
        local = dt.datetime.fromtimestamp(t, ZONE)
        ago = int((now - t) // 86400)
        if ago in p.outage_days:
            t += 3600
            continue
        peak = 19 <= local.hour < 23
        line = min(p.carries_mbps, p.wan_port_mbps * 0.94)
        if local.hour in (9, 13, 20):                      # capacity tests
            out.append(Sample(t + 120, "gateway", "wan.down_mbps",
                              round(line * (p.evening_factor if peak else 1.0) * rng.uniform(0.9, 1.0), 1), "Mbit/s",
                              {"method": "tcp"}))
        load = {True: 0.55, False: 0.08}[in_school_hours(t)] * rng.uniform(0.6, 1.2)
        wan = {"interface": "eth0", "role": "wan"}
        out += [Sample(t + 60, "gateway", "host.if_in_bps", round(line * 1e6 * load, 0), "bit/s", wan),
                Sample(t + 60, "gateway", "host.if_out_bps", round(line * 1e6 * load * 0.2, 0), "bit/s", wan)]
        if in_school_hours(t):
            for z, ztype in zone_types.items():
                tags = {"zone": z, "zone_type": ztype}
                minutes = rng.uniform(400, 1200)
                share = min(1.0, p.zone_good[z] * rng.uniform(0.97, 1.03))
                out += [Sample(t + 300, "gateway", "wifi.zone_aps_up", 2, "count", tags),
                        Sample(t + 300, "gateway", "wifi.zone_client_minutes", round(minutes, 1), "min", tags),
                        Sample(t + 300, "gateway", "wifi.zone_good_client_minutes", round(minutes * share, 1), "min",
                               tags)]
        t += 3600
    port = {"interface": "eth0", "role": "wan"}
    out.append(Sample(now - 60, "gateway", "host.if_speed_mbps", p.wan_port_mbps, "Mbit/s", port))
    return out


def agent_config(school: Any, zones: dict[str, str]) -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": school.id, "name": school.name, "city": school.city, "type": school.type,
                   "district": school.district},
        "standards": {"packs": PACKS},
        "wifi": {"zones": {z: {"type": t} for z, t in zones.items()}}})


@cache
def _rules(packs: tuple[str, ...], dirs: tuple[Path, ...], overrides: tuple[tuple[str, float], ...]) -> RuleSet:
    # Parsing the packs' YAML was most of preparing a school (three judgements each): a city of 200 schools
    # parsed them 600 times. Every school of a fleet names the same packs.
    return load_packs(packs, dirs, dict(overrides))


def findings(cfg: AgentConfig, samples: list[Sample], now: float, points: tuple[float, ...] = (14, 7, 0)
             ) -> list[dict[str, Any]]:
    """What the school's agent judges from its history, at `points` days ago (oldest first)."""
    s = cfg.standards
    rules = _rules(tuple(s.packs), tuple(s.pack_dirs), tuple(sorted(s.overrides.items())))
    store = SampleStore(":memory:", retention=40 * 86400)
    try:
        store.add(samples)
        out: list[dict[str, Any]] = []
        for ago in points:
            out += [f.to_dict() for f in assess(store, cfg, now - ago * 86400, rules).findings]
        return out
    finally:
        store.close()
