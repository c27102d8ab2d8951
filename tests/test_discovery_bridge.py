"""The `_bridge` mixin against real switch recordings (eduedge/simulator/realdevices) through snmpsim: every line of
it reads something, MACs come out as MACs, bridge ports name their interfaces, and discovery turns the
tables into sightings.

The Huawei S5720 and the Ruijie S6220 are served whole: their Q-BRIDGE tables hold values (2,295-byte
dot1qVlanCurrentEgressPorts on the S5720) that make a 20-row GETBULK reply too large for gufo-snmp to decode,
so these polls also prove that the client asks again with fewer rows and reads every line. The S5720's three
rows with port -1 stay: discovery must skip them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from eduedge.collectors.discovery.discovery import BRIDGE_PROFILE, Scope, bridge_sightings
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.simulator.snmpsim import SnmpsimServer, start_snmpsim

pytestmark = pytest.mark.integration
RECORDINGS = ["comware", "jetstream_sg2218p", "tplink_sg2008", "vrp_5720", "ruijie"]


@pytest.fixture(scope="module")
def sim(realdevices) -> Iterator[SnmpsimServer]:
    recs = [realdevices / "snmprec" / f"{n}.snmprec" for n in RECORDINGS]
    with start_snmpsim(recs) as server:
        yield server


@pytest.fixture(scope="module")
def polls(sim: SnmpsimServer) -> dict:
    profiles = load_profiles()

    async def go():
        out = {}
        for name in RECORDINGS:
            client = SnmpClient(name, sim.host, sim.port, SnmpAuth(community=name), timeout=3)
            out[name] = await DevicePoller(client, profiles, forced_profile=BRIDGE_PROFILE).poll()
        return out

    return asyncio.run(go())


def test_every_bridge_line_is_proven_by_a_recording_and_uses_canonical_names(polls) -> None:
    profiles = load_profiles()
    mixin = profiles.get(BRIDGE_PROFILE)
    assert all(profiles.canonical.get(m.name) == m.unit for m in mixin.metrics)
    assert all(not p.errors for p in polls.values()), {n: p.errors for n, p in polls.items() if p.errors}
    proven = {key for p in polls.values() for key in p.coverage}
    assert sorted(m.key for m in mixin.metrics if m.key not in proven) == []


def test_mac_addresses_ports_and_vlans_read_as_the_recordings_hold_them(polls) -> None:
    fdb = {(s.device, s.tags["mac"]): s for p in polls.values() for s in p.samples if s.metric == "bridge.fdb_port"}
    # vrp_5720: 1.3.6.1.2.1.17.4.3.1.2.216.203.138.138.168.15 = 52
    assert fdb[("vrp_5720", "d8:cb:8a:8a:a8:0f")].value == 52
    # comware (Q-BRIDGE): VLAN 1, MAC 00:00:5e:00:00:01 on bridge port 51, which is ifIndex 118
    vrrp = fdb[("comware", "00:00:5e:00:00:01")]
    assert (vrrp.value, vrrp.tags["vlan"], vrrp.tags["if_index"]) == (51, "1", "118")
    ports = {(s.device, s.tags["bridge_port"]): s.tags.get("interface")
             for p in polls.values() for s in p.samples if s.metric == "bridge.port_if_index"}
    assert ports[("comware", "1")] == "GigabitEthernet0/0/1" and ports[("jetstream_sg2218p", "49153")] == \
        "gigabitEthernet 1/0/1"
    arp = {(s.device, s.tags["ip"]): s.value for p in polls.values() for s in p.samples if s.metric == "arp.mac"}
    assert arp[("comware", "10.64.100.200")] == "44:39:c4:e9:58:86"
    # Ruijie writes ipNetToPhysicalPhysAddress as text without leading zeros: "58:69:6c:6:82:3c"
    assert all(len(v) == 17 for v in arp.values())
    assert arp[("ruijie", "143.160.1.9")] == "58:69:6c:63:75:7d"


def test_switch_tables_become_sightings_with_the_port_each_mac_sits_behind(polls) -> None:
    import ipaddress

    samples = [s for p in polls.values() for s in p.samples]
    seen = bridge_sightings(samples, Scope((ipaddress.IPv4Network("10.64.100.0/24"),)))
    located = {s.mac: s for s in seen if s.source == "switch-fdb" and s.switch == "comware"}
    assert not [s for s in seen if s.switch == "vrp_5720" and s.mac == "14:a0:f8:cf:af:39"]   # port -1
    assert located["00:00:5e:00:00:01"].interface == ports_name(polls, "comware", "51")
    addressed = {s.ip for s in seen if s.source == "switch-arp"}
    assert "10.64.100.200" in addressed and all(ip.startswith("10.64.100.") for ip in addressed)


def ports_name(polls, device: str, bridge_port: str) -> str:
    return next(s.tags["interface"] for s in polls[device].samples
                if s.metric == "bridge.port_if_index" and s.tags["bridge_port"] == bridge_port)
