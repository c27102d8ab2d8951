"""Wi-Fi coverage and wireless access, zone by zone: what the Yinchuan rules (`wifi-coverage`, `wifi-access`)
judge, from what the APs and controllers report (collectors/wifi/collector.py).

Two halves:

1. `ZoneTracker.samples(snapshot)`, after every round of Wi-Fi polls: per zone, the `wifi.zone_*` samples
   of that interval (tags zone, zone_type; device `gateway`), which the sample store keeps as history:

   | metric | what |
   |--------|------|
   | wifi.zone_aps, wifi.zone_aps_up | APs placed in the zone, and of them up now |
   | wifi.zone_clients | clients associated now |
   | wifi.zone_client_minutes | client-minutes with a known signal (RSSI and/or SNR) since the device's last poll |
   | wifi.zone_good_client_minutes | of those, at or above the zone type's RSSI and SNR (standards.wifi_signal) |
   | wifi.zone_counted_client_minutes | client-minutes known only from counts (no per-client signal reported) |
   | wifi.zone_radio_minutes | radio-minutes of radios up |
   | wifi.zone_busy_radio_minutes | of those, over the zone type's capacity (wifi.capacity) |
   | wifi.zone_noisy_radio_minutes | of those, with a noise floor above RSSI minus SNR of the zone type |
   | wifi.zone_phy_median_mbps | median PHY rate the APs send to clients at |
   | wifi.zone_radio_phy_mbps | median PHY rate of the radios (where clients' rates are not reported) |

   A client or radio counts for the time since its device was last polled, at most `wifi.max_poll_gap`
   (a poll that failed for an hour does not make an hour of good signal).

2. `judge_coverage` and `judge_access`, called by the compliance evaluator (agent/compliance/kinds.py) with
   the zone samples of the rule's window (school hours). A zone is:
   - unknown when no AP state was seen, or its client-minutes are fewer than the rule's minimum;
   - failed when no AP was up for the rule's share of the time (presence), when fewer than `zone_share` %
     of its client-minutes had the signal, when its radios were over capacity for more than the rest
     (100 - zone_share %) of their radio-minutes, or - judged on radio evidence alone - too noisy for as
     long (measured client SNRs outrank the noise floor);
   - covered otherwise. Per-client signal decides where the vendor reports it; where it does not, the
     radio-level evidence (noise, utilisation, clients per radio) does, and the zone's row says which.
   Access bandwidth is decided by a wireless probe's throughput where one exists, else by the clients' PHY
   rates, else by the radios' PHY rates (both against `phy_factor` x the threshold), and says which.

>>> signal_for(AgentConfig.model_validate({"school": {"id": "s1", "name": "S", "city": "yc", "type": "primary"}}),
...            "dormitory").rssi_dbm
-72.0
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eduedge.agent.compliance.findings import Problem, Status, share_status
from eduedge.agent.config import AgentConfig, WifiSignal
from eduedge.collectors.snmp.poller import DevicePoll
from eduedge.collectors.wifi.collector import WifiSnapshot, median, snapshot, wireless_devices
from eduedge.collectors.wifi.config import WifiCapacity
from eduedge.core.i18n import N_, _, listing
from eduedge.core.samples import Sample

SUMMARY_DEVICE = "gateway"
FALLBACK_SIGNAL = "public"


def signal_for(cfg: AgentConfig, zone_type: str | None) -> WifiSignal:
    """The signal a client-minute needs in a zone of this type: standards.wifi_signal, public's for the
    types it does not name (dormitory, outdoor), -72 dBm / 20 dB when it names neither."""
    sig = cfg.standards.wifi_signal
    return sig.get(zone_type or "", sig.get(FALLBACK_SIGNAL, WifiSignal(rssi_dbm=-72, snr_db=20)))


def capacity_for(cfg: AgentConfig, zone_type: str | None) -> WifiCapacity:
    cap = cfg.wifi.capacity
    return cap.get(zone_type or "other", cap.get("other", WifiCapacity(utilization_percent=70, clients_per_radio=50)))


def good_signal(rssi: float | None, snr: float | None, need: WifiSignal) -> bool | None:
    """Whether a client's signal is usable: both known parts at or above what the zone needs; None when
    neither is known."""
    if rssi is None and snr is None:
        return None
    return (rssi is None or rssi >= need.rssi_dbm) and (snr is None or snr >= need.snr_db)


@dataclass
class _Zone:
    type: str | None
    aps: int = 0
    aps_up: int = 0
    clients: int = 0
    client_minutes: float = 0.0
    good: float = 0.0
    counted: float = 0.0
    radio_minutes: float = 0.0
    busy: float = 0.0
    noisy: float = 0.0
    client_phy: list[float] = field(default_factory=list)
    radio_phy: list[float] = field(default_factory=list)


class ZoneTracker:
    """Turns each Wi-Fi snapshot into the zone samples of its interval; remembers when each device was polled."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self._last: dict[str, float] = {}

    def _minutes(self, device: str, now: float) -> float:
        dev = next((d for d in self.cfg.snmp.devices if d.name == device), None)
        interval = (dev.interval if dev and dev.interval else None) or self.cfg.snmp.defaults.interval
        last = self._last.get(device)
        seconds = interval if last is None else now - last
        return max(0.0, min(seconds, self.cfg.wifi.max_poll_gap)) / 60.0

    def samples(self, snap: WifiSnapshot) -> list[Sample]:
        now = snap.time
        minutes = {d: self._minutes(d, now) for d, i in snap.devices.items() if i.get("answered")}
        zones: dict[str, _Zone] = {}
        by_ap: dict[tuple[str, str], list] = defaultdict(list)
        for c in snap.clients:
            by_ap[(c.device, c.ap)].append(c)
        for ap in snap.aps:
            if ap.zone is None:
                continue
            z = zones.setdefault(ap.zone, _Zone(ap.zone_type))
            z.aps += 1
            z.aps_up += ap.up
            dt = minutes.get(ap.device, 0.0)
            if not ap.up:
                continue
            need, cap = signal_for(self.cfg, ap.zone_type), capacity_for(self.cfg, ap.zone_type)
            rows = by_ap.get((ap.device, ap.name), [])
            for c in rows:
                z.clients += 1
                ok = good_signal(c.rssi_dbm, c.snr_db, need)
                if ok is None:
                    z.counted += dt
                else:
                    z.client_minutes += dt
                    z.good += dt if ok else 0.0
                if c.phy_mbps is not None:
                    z.client_phy.append(c.phy_mbps)
            if not rows:
                n = sum(r.clients or 0 for r in ap.radios.values() if r.up)
                if not n and ap.clients:
                    n = ap.clients
                z.clients += n
                z.counted += n * dt
            for r in ap.radios.values():
                if not r.up:
                    continue
                z.radio_minutes += dt
                if ((r.utilization_percent is not None and r.utilization_percent >= cap.utilization_percent)
                        or (r.clients is not None and r.clients > cap.clients_per_radio)):
                    z.busy += dt
                if r.noise_dbm is not None and r.noise_dbm > need.rssi_dbm - need.snr_db:
                    z.noisy += dt
                if r.phy_mbps is not None:
                    z.radio_phy.append(r.phy_mbps)
        self._last.update({d: now for d in minutes})
        out: list[Sample] = []
        for name, z in sorted(zones.items()):
            tags = {"zone": name, "zone_type": z.type or "unknown"}

            def add(metric: str, value: float, unit: str, tags: dict[str, str] = tags) -> None:
                out.append(Sample(now, SUMMARY_DEVICE, metric, round(value, 4), unit, tags))

            add("wifi.zone_aps", z.aps, "count")
            add("wifi.zone_aps_up", z.aps_up, "count")
            add("wifi.zone_clients", z.clients, "count")
            add("wifi.zone_client_minutes", z.client_minutes, "min")
            add("wifi.zone_good_client_minutes", z.good, "min")
            add("wifi.zone_counted_client_minutes", z.counted, "min")
            add("wifi.zone_radio_minutes", z.radio_minutes, "min")
            add("wifi.zone_busy_radio_minutes", z.busy, "min")
            add("wifi.zone_noisy_radio_minutes", z.noisy, "min")
            if z.client_phy:
                add("wifi.zone_phy_median_mbps", median(z.client_phy) or 0.0, "Mbit/s")
            if z.radio_phy:
                add("wifi.zone_radio_phy_mbps", median(z.radio_phy) or 0.0, "Mbit/s")
        return out


class WifiRounds:
    """Gathers the daemon's polls of the controllers and APs (each its own job) into rounds: a round closes
    when every wireless device has reported since the last one, or when the oldest report waits longer than
    the poll interval (a device that does not answer does not hold up the others); a closed round is a
    snapshot, and its zone samples are returned. Safe to call from several threads."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.devices = {d.name: d for d in wireless_devices(cfg.snmp.devices)}
        self.tracker = ZoneTracker(cfg)
        self.last: WifiSnapshot | None = None    # the latest closed round (its clients feed the 1:1 count)
        self._pending: dict[str, DevicePoll] = {}
        self._lock = threading.Lock()

    def add(self, poll: DevicePoll) -> list[Sample]:
        if poll.device not in self.devices:
            return []
        with self._lock:
            out: list[Sample] = []
            if poll.device in self._pending:      # it reports again before the others: they are late
                out = self._close()
            self._pending[poll.device] = poll
            oldest = min(p.time for p in self._pending.values())
            wait = max((d.interval or self.cfg.snmp.defaults.interval) for d in self.devices.values())
            if set(self._pending) == set(self.devices) or poll.time - oldest >= wait:
                out += self._close()
            return out

    def _close(self) -> list[Sample]:
        polls, self._pending = list(self._pending.values()), {}
        self.last = snapshot(polls, self.cfg.wifi, self.cfg.snmp.devices, now=max(p.time for p in polls))
        return self.tracker.samples(self.last)


# -- judging ---------------------------------------------------------------------------------------------

SampleSource = Callable[[str], list[Sample]]     # metric -> its samples in the rule's window (and hours)


@dataclass
class Judgement:
    """A Wi-Fi rule's verdict; the evaluator wraps it into a Finding with the rule's provenance."""

    status: Status
    value: float | None
    why: str
    evidence: dict[str, Any]
    missing: list[str]
    problems: list[Problem]


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return str(round(v)) if abs(v - round(v)) < 1e-9 else (f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}")


@dataclass
class _Window:
    type: str | None = None
    ap_samples: int = 0
    ap_up: int = 0
    client_minutes: float = 0.0
    good: float = 0.0
    counted: float = 0.0
    radio_minutes: float = 0.0
    busy: float = 0.0
    noisy: float = 0.0


# The zone types of the configuration (WifiZone.type) as the reader says them; translated where shown.
_ZONE_TYPES = {"teaching": N_("teaching"), "office": N_("office"), "public": N_("public"),
               "dormitory": N_("dormitory"), "outdoor": N_("outdoor"), "other": N_("other")}


def zone_type_word(ztype: str) -> str:
    return _(_ZONE_TYPES[ztype]) if ztype in _ZONE_TYPES else ztype


_SUMS = {"wifi.zone_client_minutes": "client_minutes", "wifi.zone_good_client_minutes": "good",
         "wifi.zone_counted_client_minutes": "counted", "wifi.zone_radio_minutes": "radio_minutes",
         "wifi.zone_busy_radio_minutes": "busy", "wifi.zone_noisy_radio_minutes": "noisy"}


def configured_zones(cfg: AgentConfig) -> dict[str, str | None]:
    """{zone: type} the configuration places APs in: wifi.zones, and standalone APs given only a type."""
    out: dict[str, str | None] = {n: z.type for n, z in cfg.wifi.zones.items()}
    for d in cfg.snmp.devices:
        if d.role == "ap" and d.zone and d.zone not in out:
            out[d.room or d.name] = d.zone
    return out


def judge_coverage(rule: Any, rule_id: str, samples: SampleSource, cfg: AgentConfig, hours_text: str) -> Judgement:
    """The `wifi-coverage` verdict over the rule's required zone types (`zone_types`; `all` for every zone)."""
    wanted = None if "all" in rule.zone_types else set(rule.zone_types)
    per: dict[str, _Window] = defaultdict(_Window)
    for zone, ztype in configured_zones(cfg).items():
        per[zone].type = ztype
    for metric, attr in _SUMS.items():
        for s in samples(metric):
            z = per[s.tags.get("zone", s.device)]
            z.type = z.type or _known(s.tags.get("zone_type"))
            setattr(z, attr, getattr(z, attr) + (float(s.value) if isinstance(s.value, int | float) else 0.0))
    for s in samples("wifi.zone_aps_up"):
        z = per[s.tags.get("zone", s.device)]
        z.type = z.type or _known(s.tags.get("zone_type"))
        z.ap_samples += 1
        z.ap_up += 1 if isinstance(s.value, int | float) and s.value >= 1 else 0
    zones = {k: v for k, v in per.items() if wanted is None or v.type in wanted}
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    missing: list[str] = []
    for zone, z in sorted(zones.items()):
        row = _zone_verdict(rule, cfg, zone, z, hours_text)
        rows.append(row)
        where = _("{zone}: {reason}").format(zone=row["label"], reason=row["reason"])
        if row["status"] == "unknown":
            missing.append(where)
        if row["status"] != "pass":
            problems.append(Problem(rule_id, row["status"], where, row["hint"], "room", row["shortfall"]))
        for k in ("label", "hint", "shortfall"):
            row.pop(k)
    signal = {k: v.model_dump() for k, v in cfg.standards.wifi_signal.items()}
    evidence = {"zones": rows, "zone_types": rule.zone_types, "signal": signal, "zone_share_percent": rule.zone_share,
                "presence_percent": rule.presence, "min_client_minutes": rule.min_client_minutes,
                "capacity": {k: v.model_dump() for k, v in cfg.wifi.capacity.items()}}
    types = _("every zone") if wanted is None else _("{types} zones").format(
        types=listing(zone_type_word(t) for t in sorted(wanted)))
    if not rows:
        what = _("no Wi-Fi zones of the required types ({types}) in the configuration or the data").format(types=types)
        return Judgement("unknown", None, what, evidence, [what],
                         [Problem(rule_id, "unknown", what, _("declare the zones under wifi.zones and place the APs "
                                  "in them (wifi.aps, or zone and room in snmp.devices)"), "school", 1.0)])
    statuses = [r["status"] for r in rows]
    status, covered = share_status(statuses, rule.threshold)
    why = _("{covered} of {n} {types} covered; {failed} not, {unknown} unknown").format(
        covered=statuses.count("pass"), n=len(rows), types=types, failed=statuses.count("fail"),
        unknown=statuses.count("unknown"))
    return Judgement(status, round(covered, 2), why, evidence, missing, problems)


def _known(ztype: str | None) -> str | None:
    return None if ztype in (None, "unknown") else ztype


def _zone_verdict(rule: Any, cfg: AgentConfig, zone: str, z: _Window, hours_text: str) -> dict[str, Any]:
    label = (_("{type} zone {zone}").format(type=zone_type_word(z.type), zone=zone) if z.type
             else _("zone {zone}").format(zone=zone))
    presence = 100.0 * z.ap_up / z.ap_samples if z.ap_samples else None
    share = 100.0 * z.good / z.client_minutes if z.client_minutes else None
    busy = 100.0 * z.busy / z.radio_minutes if z.radio_minutes else None
    noisy = 100.0 * z.noisy / z.radio_minutes if z.radio_minutes else None
    allowance = 100.0 - rule.zone_share        # share of radio-minutes that may be over capacity or noisy
    need, cap = signal_for(cfg, z.type), capacity_for(cfg, z.type)
    minutes = z.client_minutes + z.counted
    decided_by = "per-client signal" if z.client_minutes >= rule.min_client_minutes else "radio-level evidence"
    status: Status
    hint = ""
    shortfall = 1.0
    if presence is None:
        status, reason = "unknown", _("no AP state in {hours}").format(hours=hours_text)
        hint = _("check that the Wi-Fi controller or APs are polled and that the zone's APs are placed (wifi.aps)")
        decided_by = "nothing"
    elif presence < rule.presence:
        status = "fail"
        reason = _("no AP up for {down} % of {hours} (an AP must be up {presence} %)").format(
            down=_num(100 - presence), hours=hours_text, presence=_num(rule.presence))
        hint, shortfall = _("check the AP's power (PoE) and its switch port"), 1 - presence / 100
        decided_by = "AP presence"
    elif minutes < rule.min_client_minutes:
        status = "unknown"
        reason = (_("only {minutes} client-minutes in {hours} (needs {need})") if minutes
                  else _("no clients in {hours}")).format(minutes=_num(minutes), hours=hours_text,
                                                          need=rule.min_client_minutes)
        hint = _("too little use to judge yet: the zone is judged once its clients have used it for longer")
    elif z.client_minutes >= rule.min_client_minutes and share is not None and share < rule.zone_share:
        status = "fail"
        reason = _("{share} % of {minutes} client-minutes had a usable signal ({rssi} dBm, SNR {snr} dB; needs "
                   "{need} %)").format(share=_num(share), minutes=_num(z.client_minutes), rssi=_num(need.rssi_dbm),
                                       snr=_num(need.snr_db), need=_num(rule.zone_share))
        hint = _("a coverage hole: check the AP's power and channel, or add an AP")
        shortfall = 1 - share / rule.zone_share
    elif z.client_minutes < rule.min_client_minutes and not z.radio_minutes:
        status = "unknown"
        reason = _("no per-client signal and no radio data in {hours}").format(hours=hours_text)
        hint = _("the vendor reports neither; place a wireless probe in the zone")
    elif z.client_minutes < rule.min_client_minutes and noisy is not None and noisy > allowance:
        # measured client SNRs outrank the noise floor; without them, the noise floor says what SNR is possible
        status = "fail"
        reason = _("noise floor above {floor} dBm for {noisy} % of radio-minutes: a client at {rssi} dBm cannot "
                   "reach SNR {snr} dB").format(floor=_num(need.rssi_dbm - need.snr_db), noisy=_num(noisy),
                                               rssi=_num(need.rssi_dbm), snr=_num(need.snr_db))
        hint = _("find the interference (other networks, microwave ovens, Bluetooth) or change channel")
        shortfall = min(1.0, noisy / 100)
    elif busy is not None and busy > allowance:
        status = "fail"
        reason = _("radios over capacity ({utilisation} % utilisation or {clients} clients) for {busy} % of "
                   "radio-minutes").format(utilisation=_num(cap.utilization_percent), clients=cap.clients_per_radio,
                                           busy=_num(busy))
        hint = _("overloaded: add an AP or a 5 GHz radio, or move clients off 2.4 GHz")
        shortfall = min(1.0, busy / 100)
    elif z.client_minutes < rule.min_client_minutes:
        status = "pass"
        reason = _("no per-client signal reported; radios up and within capacity and noise for {share} % of "
                   "{radio} radio-minutes, {minutes} client-minutes served").format(
            share=_num(100 - max(busy or 0, noisy or 0)), radio=_num(z.radio_minutes), minutes=_num(minutes))
    else:
        status = "pass"
        reason = _("{share} % of {minutes} client-minutes with a usable signal").format(
            share=_num(share), minutes=_num(z.client_minutes))
    return {"zone": zone, "type": z.type, "status": status, "reason": reason, "decided_by": decided_by,
            "presence_percent": None if presence is None else round(presence, 2),
            "good_share_percent": None if share is None else round(share, 2),
            "client_minutes": round(z.client_minutes, 2), "counted_client_minutes": round(z.counted, 2),
            "radio_minutes": round(z.radio_minutes, 2),
            "busy_radio_percent": None if busy is None else round(busy, 2),
            "noisy_radio_percent": None if noisy is None else round(noisy, 2),
            "label": label, "hint": hint, "shortfall": shortfall}


def judge_access(rule: Any, rule_id: str, samples: SampleSource, percentile20: Callable[[Sequence[float]], float],
                 window_text: str) -> Judgement:
    """The `wifi-access` verdict: a probe's throughput, else clients' PHY rates, else radios' PHY rates."""
    threshold = rule.threshold
    problems: list[Problem] = []
    probes = [s for s in samples(rule.measures) if isinstance(s.value, int | float)]
    if probes:
        rows = {z: percentile20(v) for z, v in sorted(_by_zone(probes).items())}
        for z, v in rows.items():
            if v < threshold:
                problems.append(Problem(rule_id, "fail", _("zone {zone}: the Wi-Fi probe measured {value} Mbit/s")
                                        .format(zone=z, value=_num(v)),
                                        _("check the AP's channel width, band and load"), "room", 1 - v / threshold))
        value = min(rows.values())
        why = _("a Wi-Fi probe measured {value} Mbit/s at the slowest of {n} zone(s) (p20)").format(
            value=_num(value), n=len(rows))
        return Judgement("fail" if problems else "pass", value, why, {"decided_by": "active probe", "zones": rows},
                         [], problems)
    need = rule.phy_factor * threshold
    for metric, what in (("wifi.zone_phy_median_mbps", "clients"), ("wifi.zone_radio_phy_mbps", "radios")):
        phy = [s for s in samples(metric) if isinstance(s.value, int | float)]
        if not phy:
            continue
        rows = {z: median(v) or 0.0 for z, v in sorted(_by_zone(phy).items())}
        for z, v in rows.items():
            if v < need:
                problems.append(Problem(rule_id, "fail", (
                    _("zone {zone}: clients negotiate a median {value} Mbit/s PHY rate (stands for {stands} Mbit/s)")
                    if what == "clients" else
                    _("zone {zone}: radios negotiate a median {value} Mbit/s PHY rate (stands for {stands} Mbit/s)"))
                    .format(zone=z, value=_num(v), stands=_num(v / rule.phy_factor)),
                    _("check the AP's band, channel width and signal; old clients slow a radio"), "room", 1 - v / need))
        value = min(rows.values())
        decided = ("negotiated PHY rate (proxy)" if what == "clients"
                   else "radios' PHY rate (proxy; the vendor reports no client rates)")
        why = (_("no Wi-Fi probe; the clients' median PHY rate is {value} Mbit/s at the slowest zone, against "
                 "{need} ({factor} x {threshold})") if what == "clients" else
               _("no Wi-Fi probe; the radios' median PHY rate is {value} Mbit/s at the slowest zone, against "
                 "{need} ({factor} x {threshold})")).format(value=_num(value), need=_num(need),
                                                           factor=_num(rule.phy_factor), threshold=_num(threshold))
        return Judgement("fail" if problems else "pass", value, why,
                         {"decided_by": decided, "phy_needed_mbps": need, "zones": rows}, [], problems)
    what_missing = [_("{metric} (a Wi-Fi probe's throughput)").format(metric=rule.measures),
                    _("wifi.zone_phy_median_mbps or wifi.zone_radio_phy_mbps (clients' or radios' PHY rates)")]
    return Judgement("unknown", None, _("no Wi-Fi throughput or PHY rates in {window}").format(window=window_text), {},
                     what_missing, [Problem(rule_id, "unknown", _("no Wi-Fi throughput or PHY-rate data"),
                                            _("check that the Wi-Fi controller or APs are polled"), "room", 1.0)])


def _by_zone(samples: Sequence[Sample]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        out[s.tags.get("zone", s.device)].append(float(s.value))
    return out
