"""The technician's view of a poll: interfaces, LLDP and CDP neighbours and sensors, out of flat samples.

`eduedge poll` prints this; tests read it. Interfaces are keyed by ifIndex (the `if_index` tag every
IF-MIB metric carries); everything that is neither an interface nor a neighbour is a sensor.
"""

from __future__ import annotations

from typing import Any

from eduedge.collectors.snmp.poller import DevicePoll

_IF_FIELDS = {
    "if.oper_status": "oper_status", "if.admin_status": "admin_status", "if.speed_mbps": "speed_mbps",
    "if.duplex": "duplex", "if.in_bps": "in_bps", "if.out_bps": "out_bps",
    "if.in_errors_pps": "in_errors_pps", "if.out_errors_pps": "out_errors_pps",
    "if.in_discards_pps": "in_discards_pps", "if.out_discards_pps": "out_discards_pps",
}


# the neighbour tables (LLDP-MIB, vendor LLDP tables, CISCO-CDP-MIB) -> the protocol shown
NEIGHBOR_METRICS = {"lldp.neighbor": "lldp", "cdp.neighbor": "cdp"}


def _index_key(index: str) -> tuple[int, ...]:
    try:
        return tuple(int(a) for a in index.split("."))
    except ValueError:
        return (1 << 62,)


def summarise(poll: DevicePoll) -> dict[str, Any]:
    """A JSON-ready summary: identity, `interfaces` (list), `neighbors` (LLDP and CDP, each with its
    `protocol`; `lldp_neighbors` the LLDP ones), `sensors`, `errors`."""
    interfaces: dict[str, dict[str, Any]] = {}
    neighbors: list[dict[str, Any]] = []
    sensors: list[dict[str, Any]] = []
    for s in poll.samples:
        if s.metric in _IF_FIELDS and "if_index" in s.tags:
            idx = s.tags["if_index"]
            row = interfaces.get(idx)
            if row is None:
                row = interfaces[idx] = {"index": int(idx) if idx.isdigit() else idx,
                                         "name": s.tags.get("interface", f"ifIndex {idx}"),
                                         "alias": s.tags.get("alias", ""), "type": s.tags.get("if_type", "")}
            value = s.value
            if isinstance(value, float):
                value = round(value, 3)
            row[_IF_FIELDS[s.metric]] = value
        elif s.metric in NEIGHBOR_METRICS:
            neighbors.append({"protocol": NEIGHBOR_METRICS[s.metric],
                              "local_port": s.tags.get("local_port", s.tags.get("local_port_num", "")),
                              "remote_name": s.value, "remote_port": s.tags.get("remote_port", ""),
                              "remote_port_descr": s.tags.get("remote_port_descr", ""),
                              "remote_chassis": s.tags.get("remote_chassis", ""),
                              "remote_platform": s.tags.get("remote_platform", "")})
        elif not s.metric.startswith("if."):
            sensors.append({"metric": s.metric, "value": s.value, "unit": s.unit, "tags": dict(s.tags)})
    ident = poll.identity.to_dict() if poll.identity else None
    return {
        "device": poll.device,
        "address": poll.address,
        "profile": ident["profile"] if ident else None,
        "identity": ident,
        "interfaces": [interfaces[k] for k in sorted(interfaces, key=_index_key)],
        "neighbors": neighbors,
        "lldp_neighbors": [n for n in neighbors if n["protocol"] == "lldp"],
        "sensors": sensors,
        "errors": poll.errors,
        "complete": poll.complete,
        "duration_s": round(poll.duration_s, 3),
        "requests": poll.requests,
        "values": poll.values,
    }
