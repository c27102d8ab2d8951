"""SNMP traps and informs: varbinds -> events, and only from the devices the configuration lists."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from pyasn1.type import univ
from pysnmp.proto import rfc1902

from eduedge.collectors.snmp.client import SnmpAuth
from eduedge.collectors.snmp.config import SnmpConfig
from eduedge.collectors.snmp.traps import (
    SNMP_TRAP_OID,
    SYS_UPTIME,
    TrapCatalogueError,
    TrapReceiver,
    load_catalogue,
    plain,
    receiver_from_config,
    to_event,
)

CAT = load_catalogue()
LINK_DOWN, LINK_UP, COLD_START = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"


def trap(oid: str, *varbinds: tuple[str, object]) -> list[tuple[str, object]]:
    return [(SYS_UPTIME, 12345), (SNMP_TRAP_OID, oid), *varbinds]


# -- varbinds -> event ---------------------------------------------------------------------------------

def test_link_down_names_the_interface_by_ifname_before_ifdescr_and_maps_statuses():
    e = to_event("sw-acc-a1", "10.20.1.11", trap(LINK_DOWN, ("1.3.6.1.2.1.2.2.1.1.7", 7),
                                                 ("1.3.6.1.2.1.2.2.1.7.7", 1), ("1.3.6.1.2.1.2.2.1.8.7", 2),
                                                 ("1.3.6.1.2.1.2.2.1.2.7", b"GigabitEthernet0/0/7"),
                                                 ("1.3.6.1.2.1.31.1.1.1.1.7", b"GE0/0/7")), CAT, 100.0)
    assert e is not None
    assert (e.time, e.device, e.kind, e.severity) == (100.0, "sw-acc-a1", "link.down", "warning")
    assert e.message == "sw-acc-a1: link down on GE0/0/7"
    assert e.details["if_index"] == "7"
    assert (e.details["admin_status"], e.details["oper_status"]) == ("up", "down")
    assert e.details["uptime_s"] == 123.45
    assert e.details["source"] == "10.20.1.11"
    # ifDescr was not used for a field, so it is kept by OID for whoever reads the event
    assert e.details["varbinds"] == {"1.3.6.1.2.1.2.2.1.2.7": "GigabitEthernet0/0/7"}


def test_link_up_with_only_an_ifindex_says_so():
    e = to_event("sw-1", "10.0.0.1", trap(LINK_UP, ("1.3.6.1.2.1.2.2.1.1.3", 3)), CAT, 1.0)
    assert e is not None and (e.kind, e.severity, e.message) == ("link.up", "info", "sw-1: link up on ifIndex 3")


def test_a_link_trap_without_varbinds_still_becomes_an_event():
    e = to_event("sw-1", "10.0.0.1", trap(LINK_DOWN), CAT, 1.0)
    assert e is not None and e.message == "sw-1: link down on an interface"


@pytest.mark.parametrize(("oid", "kind", "severity"), [
    (COLD_START, "device.cold_start", "warning"),
    ("1.3.6.1.6.3.1.1.5.2", "device.warm_start", "info"),
    ("1.3.6.1.6.3.1.1.5.5", "snmp.auth_failure", "warning"),
])
def test_generic_traps(oid, kind, severity):
    e = to_event("sw-1", "10.0.0.1", trap(oid), CAT, 1.0)
    assert e is not None and (e.kind, e.severity) == (kind, severity)
    assert "sw-1" in e.message


@pytest.mark.parametrize(("oid", "varbinds", "message"), [
    ("1.3.6.1.4.1.14179.2.6.3.8",                                  # Cisco AireOS bsnAPDisassociated
     [("1.3.6.1.4.1.14179.2.6.2.20.0", b"\x00\x1e\x13\xaa\x0b\x01"), ("1.3.6.1.4.1.14179.2.2.1.1.3.0", b"AP-A101")],
     "wlc-1: AP AP-A101 disassociated from the controller"),
    ("1.3.6.1.4.1.14823.2.3.1.11.1.2.1041",                        # Aruba wlsxNAccessPointIsDown
     [("1.3.6.1.4.1.14823.2.3.1.11.1.1.1.0", b"\x00\x1e\x13\xaa\x0b\x01")],
     "wlc-1: AP 00:1e:13:aa:0b:01 is down"),
    ("1.3.6.1.4.1.25053.2.11.1.24",                                # Ruckus SmartZone lost heartbeat
     [("1.3.6.1.4.1.25053.2.11.2.23.0", b"00:1e:13:aa:0b:01"), ("1.3.6.1.4.1.25053.2.11.2.25.0", b"Lab-2F")],
     "wlc-1: AP Lab-2F stopped sending heartbeats to SmartZone"),
    ("1.3.6.1.4.1.25053.2.2.1.5",                                  # Ruckus ZoneDirector AP lost
     [("1.3.6.1.4.1.25053.2.2.2.18.0", b"00:1e:13:aa:0b:01")],
     "wlc-1: AP 00:1e:13:aa:0b:01 was lost by the ZoneDirector"),
    ("1.3.6.1.4.1.2011.6.139.13.1.1.1",                            # Huawei hwApFaultTrap: varbinds unverified
     [("1.3.6.1.4.1.2011.6.139.13.3.3.1.4.0", b"AP-3F-01")],
     "wlc-1: an AP went offline (AP changes to fault)"),
])
def test_ap_offline_from_each_vendor(oid, varbinds, message):
    e = to_event("wlc-1", "10.20.0.5", trap(oid, *varbinds), CAT, 1.0)
    assert e is not None
    assert (e.kind, e.severity, e.message) == ("ap.offline", "error", message)


def test_huawei_ap_offline_keeps_its_varbinds_by_oid():
    e = to_event("ac-1", "10.20.0.5", trap("1.3.6.1.4.1.2011.6.139.13.1.1.1",
                                           ("1.3.6.1.4.1.2011.6.139.13.1.2.5.0", b"AP-3F-01")), CAT, 1.0)
    assert e is not None and e.details["varbinds"] == {"1.3.6.1.4.1.2011.6.139.13.1.2.5.0": "AP-3F-01"}


def test_a_v1_enterprise_trap_is_found_under_its_smiv2_oid():
    # RFC 3584 turns enterprise E, specific S into E.0.S; the MIB defines E.S
    e = to_event("wlc-1", "10.20.0.5", trap("1.3.6.1.4.1.14179.2.6.3.0.8"), CAT, 1.0, version="1")
    assert e is not None and e.details["trap"] == "bsnAPDisassociated" and e.details["snmp_version"] == "1"


def test_unknown_notifications_and_missing_trap_oid_give_no_event():
    assert to_event("sw-1", "10.0.0.1", trap("1.3.6.1.4.1.9.9.41.2.0.1"), CAT, 1.0) is None
    assert to_event("sw-1", "10.0.0.1", [(SYS_UPTIME, 1)], CAT, 1.0) is None


def test_pysnmp_values_become_plain_python():
    assert plain(rfc1902.Counter64(2**40)) == 2**40
    assert plain(rfc1902.TimeTicks(100)) == 100
    assert plain(rfc1902.IpAddress("10.1.2.3")) == "10.1.2.3"
    assert plain(rfc1902.OctetString(b"\x00\x01")) == b"\x00\x01"
    assert plain(univ.ObjectIdentifier("1.3.6.1.6.3.1.1.5.3")) == LINK_DOWN
    assert plain(univ.Null("")) is None


def test_a_broken_catalogue_names_its_file_and_line(tmp_path: Path):
    bad = tmp_path / "traps.yaml"
    bad.write_text("traps:\n  - name: x\n    mib: X\n    oid: 1.3.6.1.6.3.1.1.5.3\n    kind: link.down\n"
                   "    severity: loud\n    message: m\n    verified: here\n")
    with pytest.raises(TrapCatalogueError) as err:
        load_catalogue(bad)
    assert any(str(bad) in p and ":6:" in p and "severity" in p for p in err.value.problems), err.value.problems


def test_a_subject_must_use_declared_fields(tmp_path: Path):
    bad = tmp_path / "traps.yaml"
    bad.write_text("traps:\n  - {name: x, mib: X, oid: 1.3.6.1.4.1.1.1, kind: ap.offline, severity: error,\n"
                   "     message: m, verified: v, subject: ['{ap_name}']}\n")
    with pytest.raises(TrapCatalogueError, match="ap_name"):
        load_catalogue(bad)


# -- who is heard ------------------------------------------------------------------------------------

def test_unknown_sources_are_counted_and_dropped_before_decoding():
    r = TrapReceiver({"10.20.1.11": "sw-acc-a1"}, lambda e: pytest.fail(f"event {e}"), catalogue=CAT)
    assert r._admit("10.9.9.9", b"anything") is False
    assert r._admit("::ffff:10.9.9.9", b"anything") is False
    assert r._admit("::ffff:10.20.1.11", b"\x30\x00") is True     # IPv4-mapped form of a listed device
    assert r.stats.dropped_unknown_source == 2
    assert r.stats.unknown_sources == {"10.9.9.9": 2}
    assert r.stats.received == 1


def test_receiver_from_config_takes_listed_devices_and_their_credentials(monkeypatch):
    monkeypatch.setenv("T_COMMUNITY", "campus-ro")
    monkeypatch.setenv("T_TRAP", "trap-only")
    doc = {
        "credentials": {
            "v2": {"version": "2c", "community": {"env": "T_COMMUNITY"}},
            "v3": {"version": 3, "user": "edge", "auth_proto": "SHA", "auth_key": {"env": "T_COMMUNITY"},
                   "priv_proto": "AES", "priv_key": {"env": "T_COMMUNITY"}},
            "unused": {"version": "2c", "community": {"env": "T_UNSET"}}},
        "devices": [{"name": "sw-1", "host": "10.20.1.11", "credentials": "v2"},
                    {"name": "ac-1", "host": "10.20.0.5:1161", "credentials": "v3"}],
        "traps": {"enabled": True, "listen": "127.0.0.1:10162"}}
    r = receiver_from_config(SnmpConfig.model_validate(doc), print, CAT)
    assert r.devices == {"10.20.1.11": "sw-1", "10.20.0.5": "ac-1"}
    assert r.communities == ["campus-ro"]
    assert [u.user for u in r.users] == ["edge"]
    assert r.listen == ("127.0.0.1", 10162)
    doc["traps"]["community"] = {"env": "T_TRAP"}
    assert receiver_from_config(SnmpConfig.model_validate(doc), print, CAT).communities == ["trap-only"]


def test_trap_users_must_be_v3_credentials():
    with pytest.raises(ValueError, match=r"traps\.users"):
        SnmpConfig.model_validate({"credentials": {"v2": {"version": "2c", "community": {"env": "X"}}},
                                   "traps": {"users": ["v2"]}})


# -- integration: net-snmp's snmptrap / snmpinform against the receiver on a loopback port ----------------

V3 = SnmpAuth(version="3", user="trapuser", auth_proto="SHA", auth_key="authpass123", priv_proto="AES",
              priv_key="privpass123")
V3_ARGS = ["-v3", "-u", "trapuser", "-l", "authPriv", "-a", "SHA", "-A", "authpass123", "-x", "AES",
           "-X", "privpass123"]


async def send(tool: str, args: list[str], address: tuple[str, int], oid: str, *varbinds: str,
               tmp: Path) -> int:
    """Run net-snmp's snmptrap/snmpinform; return its exit status (an inform waits for our answer)."""
    target = f"{address[0]}:{address[1]}"
    extra = ["-t", "2", "-r", "1"] if tool == "snmpinform" else []
    # v1 takes ENTERPRISE AGENT GENERIC SPECIFIC UPTIME in `varbinds`; v2c/v3 take UPTIME and the OID
    head = [target] if args[:1] == ["-v1"] else [*extra, target, "", oid]
    cmd = [tool, *args, *head, *varbinds]
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp / "netsnmp"))
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert not err.strip() or proc.returncode == 0, err.decode()
    return proc.returncode or 0


async def settle(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)


needs_netsnmp = pytest.mark.skipif(not shutil.which("snmptrap"), reason="net-snmp tools not installed")


@pytest.mark.integration
@needs_netsnmp
def test_v2c_and_v1_traps_and_a_v2c_inform_from_a_listed_device_become_events(tmp_path):
    async def run():
        events = []
        async with TrapReceiver({"127.0.0.1": "sw-acc-a1"}, events.append, ("127.0.0.1", 0),
                                ["trapcomm"], catalogue=CAT) as r:
            await send("snmptrap", ["-v2c", "-c", "trapcomm"], r.address, LINK_DOWN,
                       "1.3.6.1.2.1.2.2.1.1.7", "i", "7", "1.3.6.1.2.1.31.1.1.1.1.7", "s", "Gi0/7", tmp=tmp_path)
            await settle(lambda: len(events) == 1)
            assert await send("snmpinform", ["-v2c", "-c", "trapcomm"], r.address, COLD_START, tmp=tmp_path) == 0
            await send("snmptrap", ["-v1", "-c", "trapcomm"], r.address, "",
                       "1.3.6.1.4.1.14179.2.6.3", "127.0.0.1", "6", "8", "",
                       "1.3.6.1.4.1.14179.2.2.1.1.3.0", "s", "AP-A101", tmp=tmp_path)
            await settle(lambda: len(events) == 3)
            assert r.stats.events == 3
        assert [(e.device, e.kind, e.details["snmp_version"]) for e in events] == [
            ("sw-acc-a1", "link.down", "2c"), ("sw-acc-a1", "device.cold_start", "2c"),
            ("sw-acc-a1", "ap.offline", "1")]
        assert events[0].message == "sw-acc-a1: link down on Gi0/7"
        assert events[2].message == "sw-acc-a1: AP AP-A101 disassociated from the controller"
    asyncio.run(run())


@pytest.mark.integration
@needs_netsnmp
def test_v3_authpriv_trap_and_inform(tmp_path):
    async def run():
        events = []
        async with TrapReceiver({"127.0.0.1": "ac-1"}, events.append, ("127.0.0.1", 0), users=[V3],
                                catalogue=CAT) as r:
            # a trap is signed with the sender's engine ID, which the receiver has to learn
            await send("snmptrap", [*V3_ARGS, "-e", "0x80001f8880c0ffee0001"], r.address, LINK_UP,
                       "1.3.6.1.2.1.2.2.1.1.3", "i", "3", tmp=tmp_path)
            await settle(lambda: len(events) == 1)
            # an inform discovers the receiver's engine ID first, and is acknowledged
            assert await send("snmpinform", V3_ARGS, r.address, "1.3.6.1.4.1.25053.2.11.1.23",
                              "1.3.6.1.4.1.25053.2.11.2.25.0", "s", "Lab-2F", tmp=tmp_path) == 0
            await settle(lambda: len(events) == 2)
            # wrong privacy key: refused by pysnmp, never an event
            bad = [a if a != "privpass123" else "wrongpass999" for a in V3_ARGS]
            await send("snmptrap", [*bad, "-e", "0x80001f8880c0ffee0001"], r.address, LINK_DOWN, tmp=tmp_path)
            await settle(lambda: sum(r.refused().values()) > 0)
            assert sum(r.refused().values()) > 0
        assert [(e.kind, e.message, e.details["snmp_version"]) for e in events] == [
            ("link.up", "ac-1: link up on ifIndex 3", "3"),
            ("ap.offline", "ac-1: AP Lab-2F disconnected from SmartZone", "3")]
    asyncio.run(run())


@pytest.mark.integration
@needs_netsnmp
def test_traps_from_an_unlisted_address_or_with_a_wrong_community_are_dropped(tmp_path):
    async def run():
        events = []
        async with TrapReceiver({"127.0.0.1": "sw-1"}, events.append, ("127.0.0.1", 0), ["trapcomm"],
                                catalogue=CAT) as r:
            # the same community, but sent from 127.0.0.2: not a configured device
            await send("snmptrap", ["-v2c", "-c", "trapcomm", "--clientaddr=127.0.0.2"], r.address, LINK_DOWN,
                       tmp=tmp_path)
            await settle(lambda: r.stats.dropped_unknown_source == 1)
            await send("snmptrap", ["-v2c", "-c", "guessed"], r.address, LINK_DOWN, tmp=tmp_path)
            await settle(lambda: r.refused().get("snmpInBadCommunityNames") == 1)
            # a known device, a notification the catalogue does not have: counted by OID
            await send("snmptrap", ["-v2c", "-c", "trapcomm"], r.address, "1.3.6.1.4.1.9.9.41.2.0.1", tmp=tmp_path)
            await settle(lambda: r.stats.unmapped)
            assert r.stats.dropped_unknown_source == 1 and r.stats.unknown_sources == {"127.0.0.2": 1}
            assert r.refused()["snmpInBadCommunityNames"] == 1
            assert r.stats.unmapped == {"1.3.6.1.4.1.9.9.41.2.0.1": 1}
            assert r.stats.events == 0
        assert events == []
    asyncio.run(run())


def test_listening_on_a_taken_port_says_which_setting_to_change():
    async def run():
        async with TrapReceiver({}, print, ("127.0.0.1", 0), catalogue=CAT) as first:
            with pytest.raises(OSError, match=r"snmp.traps.listen 127.0.0.1:\d+: cannot listen there"):
                await TrapReceiver({}, print, first.address, catalogue=CAT).start()
    asyncio.run(run())
