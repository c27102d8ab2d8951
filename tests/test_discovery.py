"""Discovery without the network: the out-of-subnet guard, identification and its evidence, switch tables
to ports and rooms, inventory changes, what the cloud may see of a person's device, and the 1:1 input."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent import contract
from eduedge.agent.compliance import evaluate
from eduedge.agent.compliance.device_inventory import DeviceInventory, WifiClient, probe_scope
from eduedge.agent.config import AgentConfig
from eduedge.agent.envelope import Envelope
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.discovery.discovery import (
    Observed,
    OutOfScope,
    Scope,
    arp_sweep,
    bridge_sightings,
    merge,
    sweep_targets,
)
from eduedge.collectors.discovery.identify import classify
from eduedge.collectors.pjlink import Lamp, PjlinkStatus
from eduedge.collectors.reachability import Target, check_targets
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.core.samples import Sample

KEY = Pseudonymizer(b"test-school-secret-0123456789")
NOW = 1_715_738_400.0
TABLET, TABLET_NAME = "3c:5a:b4:00:10:12", "stu-tab-042"
PROJECTOR = "00:26:ab:00:10:11"


def cfg(**discovery: Any) -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": "test-school", "name": "T", "city": "yinchuan", "type": "primary",
                   "enrolment": {"students": 3, "teachers": 1}},
        "standards": {"packs": ["yinchuan-2018"]},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}},
                 "devices": [{"name": "acc-1", "host": "198.18.10.2", "credentials": "c", "role": "access",
                              "room": "A1"},
                             {"name": "ups-1", "host": "198.18.10.30", "credentials": "c", "role": "ups"}]},
        "topology": {"classroom_drops": [{"device": "acc-1", "port": "Gi0/5", "room": "A105"}]},
        "discovery": {"enabled": True, "subnets": ["198.18.10.0/24"],
                      "learning": {"oui": ["3c:5a:b4"], "hostnames": ["^stu-"], "ssids": ["^EDU-Student$"]},
                      **discovery},
    })


# -- the guard ---------------------------------------------------------------------------------------

def test_a_sweep_outside_the_configured_subnets_is_refused_before_scapy_is_even_loaded() -> None:
    scope = probe_scope(cfg())
    for net in ("198.18.11.0/24", "198.18.0.0/16", "10.0.0.0/8"):
        with pytest.raises(OutOfScope, match="not inside the configured subnets"):
            arp_sweep([ipaddress.IPv4Network(net)], scope)
    targets = sweep_targets([ipaddress.IPv4Network("198.18.10.0/25")], scope)
    assert len(targets) == 126 and all(scope.in_subnets(t) for t in targets)


def test_no_configured_subnet_means_nothing_may_be_swept() -> None:
    with pytest.raises(OutOfScope, match=r"\(none\)"):
        sweep_targets([ipaddress.IPv4Network("198.18.10.0/30")], Scope(()))


def test_reachability_probes_listed_devices_anywhere_but_discovered_ones_only_inside() -> None:
    scope = probe_scope(cfg())
    check_targets([Target("ups-1", "198.18.10.30"), Target("far", "203.0.113.9", listed=True)], scope)
    assert scope.allows("198.18.10.30")
    with pytest.raises(OutOfScope):
        check_targets([Target("mac-x", "198.18.12.7")], scope)


# -- identification ------------------------------------------------------------------------------------

def test_each_class_comes_with_the_evidence_that_decided_it() -> None:
    rules = cfg().discovery.learning
    listed = classify("00:c0:b7:00:00:01", "198.18.10.30", rules=rules, configured=("ups-1", "ups"))
    assert (listed.device_class, listed.personal) == ("ups", False)
    assert listed.evidence[0] == "listed in snmp.devices as ups-1 (role ups)"
    printer = classify("00:17:c8:00:00:02", "198.18.10.40", rules=rules,
                       snmp={"device_class": "printer", "profile": "hp-jetdirect", "matched_by": "sysObjectID …",
                             "model": "HP Color LaserJet M252dw"})
    assert printer.device_class == "printer" and "model HP Color LaserJet M252dw" in printer.evidence[0]
    panel = classify("00:26:ab:00:00:03", "198.18.10.41", rules=rules,
                     pjlink=PjlinkStatus("198.18.10.41", 4352, model="Interactive Flat Panel 86",
                                         refused={"LAMP": "ERR1: not supported by this device"}))
    assert panel.device_class == "panel" and "without a lamp" in panel.evidence[0]
    projector = classify(PROJECTOR, "198.18.10.11", rules=rules,
                         pjlink=PjlinkStatus("198.18.10.11", 4352, lamps=[Lamp(1, 10, True)]))
    assert projector.device_class == "projector" and projector.evidence[1].startswith("OUI 00:26:ab")
    by_name = classify("00:16:3e:00:00:05", "198.18.10.50", rules=rules, hostname=TABLET_NAME)
    assert by_name.device_class == "learning" and "hostnames /^stu-/" in by_name.evidence[0]
    by_ssid = classify("00:16:3e:00:00:06", None, rules=rules, ssid="EDU-Student")
    assert by_ssid.device_class == "learning" and "SSID 'EDU-Student'" in by_ssid.evidence[0]
    private = classify("da:a1:19:00:00:07", "198.18.10.51", rules=rules)
    assert (private.device_class, private.personal) == ("other", True) and "randomised" in private.evidence[0]
    unknown = classify("00:16:3e:00:00:08", "198.18.10.52", rules=rules)
    assert unknown.personal and unknown.evidence[-1].startswith("not identified as school equipment")


# -- switch tables -------------------------------------------------------------------------------------

def _fdb(switch: str, port: int, mac: str, status: str = "learned") -> Sample:
    return Sample(NOW, switch, "bridge.fdb_port", port, "index", {"vlan": "10", "mac": mac, "status": status})


def test_the_edge_port_is_the_one_with_fewest_macs_and_names_the_classroom() -> None:
    c = cfg()
    uplink = [_fdb("acc-1", 1, f"00:16:3e:00:01:{i:02x}") for i in range(40)]
    samples = [Sample(NOW, "acc-1", "bridge.port_if_index", 5, "index", {"bridge_port": "5", "interface": "Gi0/5"}),
               Sample(NOW, "acc-1", "bridge.port_if_index", 1, "index", {"bridge_port": "1", "interface": "Gi0/1"}),
               *uplink, _fdb("acc-1", 1, PROJECTOR), _fdb("acc-1", 5, PROJECTOR),
               _fdb("acc-1", 1, "00:16:3e:aa:aa:aa", "self"),
               Sample(NOW, "core", "arp.mac", PROJECTOR, "info", {"ip": "198.18.10.11", "if_index": "3"}),
               Sample(NOW, "core", "arp.mac", "00:16:3e:00:09:09", "info", {"ip": "203.0.113.5", "if_index": "3"})]
    seen = bridge_sightings(samples, probe_scope(c), NOW)
    assert not any(s.mac == "00:16:3e:aa:aa:aa" or s.ip == "203.0.113.5" for s in seen)
    observed = merge(seen)
    assert list(observed) == [PROJECTOR]          # the uplink's MACs have no address in the subnets
    o = observed[PROJECTOR]
    assert (o.switch, o.interface, o.ip) == ("acc-1", "Gi0/5", "198.18.10.11")
    inv = DeviceInventory(c, KEY)
    inv.update(observed, {PROJECTOR: classify(PROJECTOR, o.ip)}, NOW)
    assert inv.devices[PROJECTOR].room == "A105"


# -- the inventory and what leaves the box -----------------------------------------------------------------

def _observe(*rows: tuple[str, str, str | None, str | None], t: float = NOW) -> dict[str, Observed]:
    return {mac: Observed(mac, ip, hostname, None, {"arp-sweep"}, t, "acc-1" if port else None, port)
            for mac, ip, hostname, port in rows}


def _ids(c: AgentConfig, observed: dict[str, Observed]) -> dict:
    """As DiscoveryJob.identify would: the projector answers PJLink, the others are judged by the rules."""
    pj = PjlinkStatus("198.18.10.11", 4352, lamps=[Lamp(1, 10, True)])
    return {m: classify(m, o.ip, rules=c.discovery.learning, hostname=o.hostname,
                        pjlink=pj if m == PROJECTOR else None) for m, o in observed.items()}


def _payloads(inv: DeviceInventory, changes) -> list[str]:
    env = Envelope("test-school", "yinchuan", "gw", "0.1.0", "ab" * 16)
    return [env.encode("inventory", i + 1, body).decode() for i, body in enumerate(inv.messages(changes, 4096))]


def test_appeared_moved_and_disappeared_each_become_valid_inventory_messages(tmp_path: Path) -> None:
    c = cfg(absent_after="1h", personal_absent_after="1d")
    inv = DeviceInventory(c, KEY, tmp_path / "discovery.json")
    first = _observe((PROJECTOR, "198.18.10.11", None, "Gi0/5"), (TABLET, "198.18.10.12", TABLET_NAME, "Gi0/7"))
    changes = inv.update(first, _ids(c, first), NOW)
    assert sorted(ch.change for ch in changes) == ["appeared", "appeared"]
    for text in _payloads(inv, changes):
        assert contract.problems(json.loads(text)) == []
    inv.save()
    again = DeviceInventory(c, KEY, tmp_path / "discovery.json")      # a restart: nothing appears twice
    moved = _observe((PROJECTOR, "198.18.10.11", None, "Gi0/6"), (TABLET, "198.18.10.12", TABLET_NAME, "Gi0/7"),
                     t=NOW + 60)
    changes = again.update(moved, _ids(c, moved), NOW + 60)
    assert [(ch.change, ch.previous) for ch in changes] == [("moved", {"switch": "acc-1", "port": "Gi0/5",
                                                                        "room": "A105"})]
    msg = json.loads(_payloads(again, changes)[0])
    assert contract.problems(msg) == [] and msg["devices"][0]["port"] == "Gi0/6"
    # the projector is gone for over an hour; the tablet went home but is only gone after a day
    later = _observe((TABLET, "198.18.10.12", TABLET_NAME, "Gi0/7"), t=NOW + 600)
    again.update(later, _ids(c, later), NOW + 600)
    changes = again.update({}, {}, NOW + 600 + 3700)
    assert [(ch.change, ch.device.mac) for ch in changes] == [("disappeared", PROJECTOR)]
    assert [ch.change for ch in again.update({}, {}, NOW + 600 + 86400)] == ["disappeared"]


def test_no_clear_mac_or_host_name_of_a_learning_device_in_any_inventory_payload() -> None:
    c = cfg()
    inv = DeviceInventory(c, KEY)
    obs = _observe((TABLET, "198.18.10.12", TABLET_NAME, "Gi0/7"), (PROJECTOR, "198.18.10.11", None, "Gi0/5"),
                   ("da:a1:19:00:00:07", "198.18.10.51", "Xiaoming-iPad", None))
    changes = inv.update(obs, _ids(c, obs), NOW)
    changes += inv.update({}, {}, NOW + 2 * 86400)      # the disappearances carry the same devices again
    texts = _payloads(inv, changes)
    blob = "\n".join(texts).lower()
    for secret in (TABLET, TABLET.replace(":", ""), TABLET.replace(":", "-"), TABLET_NAME, "198.18.10.12",
                   "da:a1:19:00:00:07", "daa119000007", "xiaoming"):
        assert secret not in blob, secret
    assert PROJECTOR in blob                                   # school equipment keeps its MAC
    entries = [e for t in texts for e in json.loads(t)["devices"]]
    tablet = next(e for e in entries if e["class"] == "learning")
    assert tablet["device"] == KEY.mac(TABLET) and tablet["evidence"][0].startswith("MAC prefix 3c:5a:b4")
    assert all(contract.problems(json.loads(t)) == [] for t in texts)


def test_the_contract_refuses_a_personal_entry_that_carries_a_mac() -> None:
    env = Envelope("test-school", "yinchuan", "gw", "0.1.0", "ab" * 16)
    entry = {"device": KEY.mac(TABLET), "collector": "discovery", "change": "appeared", "class": "learning",
             "personal": True, "last_seen": NOW}
    ok = env.message("inventory", 1, {"scope": "discovered", "devices": [entry]})
    assert contract.problems(ok) == []
    for leak in ({"mac": TABLET}, {"hostname": TABLET_NAME}, {"address": "198.18.10.12"}, {"device": "tab-042"}):
        bad = env.message("inventory", 2, {"scope": "discovered", "devices": [{**entry, **leak}]})
        assert contract.problems(bad), leak


def test_many_changes_are_split_into_messages_under_the_cap() -> None:
    c = cfg()
    inv = DeviceInventory(c, KEY)
    obs = {f"3c:5a:b4:00:{i // 256:02x}:{i % 256:02x}": Observed(f"3c:5a:b4:00:{i // 256:02x}:{i % 256:02x}",
                                                                 f"198.18.10.{i % 250 + 1}", None, None, {"dhcp"}, NOW)
           for i in range(600)}
    changes = inv.update(obs, _ids(c, obs), NOW)
    texts = _payloads(inv, changes)
    assert len(texts) > 1 and all(len(t.encode()) <= 4096 for t in texts)
    assert sum(len(json.loads(t)["devices"]) for t in texts) == 600


# -- the 1:1 ratio's input ----------------------------------------------------------------------------------

def test_learning_devices_seen_by_discovery_and_wifi_count_once_and_feed_the_ratio_rule() -> None:
    c = cfg()
    inv = DeviceInventory(c, KEY)
    obs = _observe((TABLET, "198.18.10.12", None, None), ("3c:5a:b4:00:10:13", "198.18.10.13", None, None),
                   (PROJECTOR, "198.18.10.11", None, None))
    inv.update(obs, _ids(c, obs), NOW - 3 * 86400)
    # the Wi-Fi poller pseudonymises clients with the same school key as discovery
    inv.see_wifi([WifiClient(KEY.mac(TABLET), "EDU-Student", NOW),                       # the same tablet
                  WifiClient(KEY.mac("00:16:3e:77:00:01"), "EDU-Student", NOW),          # a teacher's, only on Wi-Fi
                  WifiClient(KEY.mac("00:16:3e:77:00:02"), "Guest", NOW),                # not a learning SSID
                  WifiClient(KEY.mac("00:16:3e:77:00:03"), "EDU-Student", NOW - 8 * 86400)],  # outside 7 days
                 NOW)
    seen = inv.learning_devices(NOW)
    assert (len(seen["discovered"]), len(seen["wifi"]), len(seen["discovered"] | seen["wifi"])) == (2, 2, 3)
    samples = inv.samples(NOW)
    count = next(s for s in samples if s.metric == "inventory.learning_devices")
    assert count.value == 3 and count.unit == "devices"
    assert {s.tags["class"]: s.value for s in samples if s.metric == "inventory.devices"} == {"learning": 2,
                                                                                               "projector": 1}
    store = SampleStore(":memory:")
    store.add(samples)
    finding = next(f for f in evaluate(store, c, NOW) if f.rule == "yinchuan-2018.device-ratio")
    assert finding.status == "fail" and finding.value == 0.75          # 3 devices for 3 students + 1 teacher
    store.add([Sample(NOW + 1, count.device, count.metric, 4, "devices")])
    assert next(f for f in evaluate(store, c, NOW + 2) if f.rule == "yinchuan-2018.device-ratio").status == "pass"
    # a cycle that saw no learning device at all gives no count: that is nothing seen, not zero devices
    assert [s for s in DeviceInventory(c, KEY).samples(NOW) if s.metric == "inventory.learning_devices"] == []


def test_wifi_learning_clients_survive_a_restart_and_leave_after_the_window(tmp_path: Path) -> None:
    """An evening restart must not drop the day's tablets from the 1:1 count; only pseudonyms are kept."""
    c = cfg()
    path = tmp_path / "discovery.json"
    inv = DeviceInventory(c, KEY, path)
    inv.see_wifi([WifiClient(KEY.mac(TABLET), "EDU-Student", NOW), WifiClient(KEY.mac(PROJECTOR), "Guest", NOW)], NOW)
    inv.save()
    assert TABLET not in path.read_text() and KEY.mac(PROJECTOR) not in path.read_text()
    again = DeviceInventory(c, KEY, path)
    assert again.learning_devices(NOW + 3600)["wifi"] == {KEY.mac(TABLET)}
    again.see_wifi([], NOW + 8 * 86400)
    assert again.learning_devices(NOW + 8 * 86400)["wifi"] == set()
