"""Each vendor identity rule against several firmware strings of its family: the recordings' own, and
strings quoted from vendor documentation or other tools that read the same devices (sources below), so a
rule that fits one firmware string is caught when the next firmware writes it differently.

Offline: each case is a recording written on the spot (sysDescr, sysObjectID and the extra OIDs a rule
reads), identified through the bundled profiles by RecordingClient.
"""

from __future__ import annotations

import asyncio

import pytest

from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.snmp.recording import RecordingClient

ZTE = "1.3.6.1.4.1.3902.3.100.20"
# ZTE sysDescr strings: the zxr10_5928 recording, and the comments of Observium's ZTE poller module
# (includes/polling/os/zxr10.inc.php), which quote real devices of each ZXR10 generation.
ZTE_CASES = [
    ("ZXR10 ROS Version V4.08.23 ZXR10_5928 Software, Version ZXR10 5900 V2.8.23.A.19.P02 Copyright (c) "
     "2000-2011 by ZTE Corporation Compiled", "ZXR10 5928", "V2.8.23.A.19.P02"),                 # recording
    ("ZXR10 ROS Version V4.8.11.01 ZXR10 T64G Software, Version ZXR10 G-Series&8900&6900 V2.8.01.C.27.P06 "
     "Copyright (c) 2001-2009 by ZTE Corporation Compiled Sep 11 2009, 17:20:19", "ZXR10 T64G", "V2.8.01.C.27.P06"),
    ("ZXR10 ROS Version V4.08.24R2 ZXR10_5928E-FI Software, Version ZXR10 5900E&5100E V2.8.23.C.16.P11, Product "
     "Version V1.2, Copyright (c) 2010-2015 by ZTE Corporation Compiled Oct  8 2015, 15:35:19",
     "ZXR10 5928E-FI", "V2.8.23.C.16.P11"),
    ("ZTE ZXR10 8905E Software, 8900&8900E Version: V3.01.01.B15, RELEASE SOFTWARE", "ZXR10 8905E", "V3.01.01.B15"),
    ("ZTE 5950-56TM-H Software, 5900 Version: V3.00.11.B18,  RELEASE SOFTWARE", "ZXR10 5950-56TM-H", "V3.00.11.B18"),
    ("ZTE ZXR10 5960 STACK Software, 5900 Version: V3.02.20.B32.P02, RELEASE SOFTWARE", "ZXR10 5960 STACK",
     "V3.02.20.B32.P02"),
    ("ZXR10 5960-52TM-HC, ZTE ZXR10 Software Version: V3.01.01.B12P07", "ZXR10 5960-52TM-HC", "V3.01.01.B12P07"),
    ("ZXR10 M6000-08, ZTE ZXR10 Software Version: M6000v1.00.30(1.0.76)", "ZXR10 M6000-08", "1.00.30"),
    ("ZTE Ethernet Switch ZXR10 2928E, Version: V2.05.10B18", "ZXR10 2928E", "V2.05.10B18"),
    ("ZTE Ethernet Switch ZXR10 2826S/2826S-LE, Version: V1.1.12.S", "ZXR10 2826S", "V1.1.12.S"),
    ("ZXR10 3904 NOS 9.05", "ZXR10 3904", "9.05"),
]


def _identify(tmp_path, sys_object_id: str, sys_descr: str, extra: str = ""):
    rec = tmp_path / "device.snmprec"
    rec.write_text(f"1.3.6.1.2.1.1.1.0|4x|{sys_descr.encode().hex()}\n1.3.6.1.2.1.1.2.0|6|{sys_object_id}\n{extra}")
    return asyncio.run(DevicePoller(RecordingClient(rec), PROFILES).identify())


PROFILES = load_profiles()


@pytest.mark.parametrize(("descr", "model", "version"), ZTE_CASES, ids=[c[1] for c in ZTE_CASES])
def test_zte_zxr10_families(tmp_path, descr, model, version):
    ident = _identify(tmp_path, ZTE, descr)
    assert (ident.model, ident.os_version) == (model, version), ident.matched_by


# Maipu MyPower sysDescr: the first from a Chinese NMS's device table (a Maipu MP3840 router), the second
# as Maipu's CLI prints `show version` on an MP1800 (a canned reply in a network-automation test suite),
# the third as Observium's Maipu module expects it.
MAIPU_CASES = [
    ("MyPower (R) Operating System Software MP3840 version 6.3.6(integrity), compiled on Oct 16 2012, 04:52:26 "
     "Copyright (C) 1999 Maipu Communication Technology Co., Ltd. All Rights Reserved.", "MP3840", "6.3.6"),
    ("MyPower (R) Operating System Software\nMP1800, Version 7.5.3\nCompiled: 2022-06-30", "MP1800", "7.5.3"),
    ("MyPower S3100-28TP", "S3100-28TP", None),
]


@pytest.mark.parametrize(("descr", "model", "version"), MAIPU_CASES, ids=[c[1] for c in MAIPU_CASES])
def test_maipu_never_reports_a_trademark_sign_as_the_model(tmp_path, descr, model, version):
    ident = _identify(tmp_path, "1.3.6.1.4.1.5651.1.102.25", descr)
    assert (ident.profile, ident.model, ident.os_version) == ("maipu", model, version)


# net-snmp's sysDescr is `uname -snrvm`: the linux, grandstream-ap_gwn7660 and dsm_ds214se-dsm7
# recordings; an agent whose node name is empty; one whose sysDescr was set by hand with a pipe where the
# node name goes (the pipe must not be the version).
LINUX_CASES = [
    ("Linux some.host.name 4.9.0 #1 SMP Mon Dec 12 14:44:53 CST 2016 x86_64", "4.9.0"),
    ("Linux Grandstream 4.4.60 #1 SMP PREEMPT Tue Jul 15 19:39:17 CST 2025 aarch64", "4.4.60"),
    ("Linux nas0 3.2.101 #42962 Mon May 29 14:34:16 CST 2023 armv7l", "3.2.101"),
    ("Linux gw 5.15.0-91-generic #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023 x86_64", "5.15.0-91-generic"),
    ("Linux 4.14.76 #1 SMP PREEMPT Fri Jan 3 10:00:00 UTC 2020 armv7l", "4.14.76"),
    ("Linux | 5.4.0 #1 SMP", "5.4.0"),
    ("Linux 10.0.0.1 4.19.0 #1 SMP x86_64", "4.19.0"),
]


@pytest.mark.parametrize(("descr", "version"), LINUX_CASES, ids=[c[1] for c in LINUX_CASES])
def test_linux_version_is_the_kernel_release(tmp_path, descr, version):
    ident = _identify(tmp_path, "1.3.6.1.4.1.8072.3.2.10", descr)
    assert (ident.profile, ident.os_version) == ("linux", version)


TPLINK_SERIAL = "1.3.6.1.4.1.11863.6.1.1.8.0"


@pytest.mark.parametrize(("line", "serial"), [
    (f"{TPLINK_SERIAL}|4|222C014000151", "222C014000151"),          # the jetstream_sg2218p recording
    (f"{TPLINK_SERIAL}|4|2198123002345", "2198123002345"),          # an all-digit serial is still a serial
    (f"{TPLINK_SERIAL}|67|12345600", None),                          # older MIB: tpSysInfoUpTime ticks there
])
def test_tplink_serial_may_be_all_digits_but_never_uptime_ticks(tmp_path, line, serial):
    ident = _identify(tmp_path, "1.3.6.1.4.1.11863.5.190", "Omada 18-Port Gigabit Smart Switch", line + "\n")
    assert (ident.profile, ident.serial) == ("tplink-jetstream", serial)


def test_an_identity_value_that_is_only_punctuation_falls_through_to_the_next_source(tmp_path):
    # a chassis row whose model name is "-" (seen on white-box agents) does not hide sysDescr's rule
    ent = "1.3.6.1.2.1.47.1.1.1.1"
    extra = f"{ent}.5.1|2|3\n{ent}.13.1|4|-\n{ent}.11.1|4|(R)\n"
    ident = _identify(tmp_path, "1.3.6.1.4.1.99999.7", "Acme switch", extra)
    assert (ident.profile, ident.model, ident.serial, ident.capabilities) == ("generic", None, None, ["entity"])


ZD = "1.3.6.1.4.1.25053.3.1.5.15"
UNLEASHED_INFO = "1.3.6.1.4.1.25053.1.15.1.1.1.1"


def test_ruckus_unleashed_is_told_from_zonedirector_by_the_table_it_answers(tmp_path):
    # an Unleashed master sends ZoneDirector's sysObjectID and a ZD-like sysDescr (LibreNMS's
    # ruckuswireless-unleashed detection, which the recording fell foul of); its identity is in
    # RUCKUS-UNLEASHED-SYSTEM-MIB, which a ZoneDirector does not answer
    unleashed = (f"{UNLEASHED_INFO}.9.0|4|R650\n{UNLEASHED_INFO}.15.0|4|492105000123\n"
                 f"{UNLEASHED_INFO}.18.0|4|200.13.6.1.319\n")
    ident = _identify(tmp_path, ZD, "Ruckus Wireless Unleashed", unleashed)
    assert (ident.profile, ident.model, ident.os_version, ident.serial) == (
        "ruckus-unleashed", "R650", "200.13.6.1.319", "492105000123")
    zd = "1.3.6.1.4.1.25053.1.2.1.1.1.1.9.0|4|ZD1200\n"
    ident = _identify(tmp_path, ZD, "Ruckus Wireless ZD1200", zd)
    assert (ident.profile, ident.model) == ("ruckus-zonedirector", "ZD1200")


# Families no public recording covers: their profiles name maker and class from the IANA enterprise
# (and, for AirOS, the sysDescr LibreNMS's airos detection expects); the Aruba CX string is the one Aruba
# CX 6300 switches send (quoted in several NMS test suites).
UNRECORDED = [
    ("1.3.6.1.4.1.37496.2.1", "IPC-HFW2431S", "dahua", "Dahua", "camera", None, None),
    ("1.3.6.1.4.1.39747.1", "IPC322LR3", "uniview", "Uniview", "camera", None, None),
    ("1.3.6.1.4.1.534.1", "Eaton 9PX", "eaton-ups", "Eaton", "ups", None, None),
    ("1.3.6.1.4.1.3941.1", "Santak C3K", "eaton-ups", "Eaton", "ups", None, None),
    ("1.3.6.1.4.1.3808.1.1.1", "CyberPower RMCARD205", "cyberpower-ups", "CyberPower", "ups", None, None),
    ("1.3.6.1.4.1.3797.2", "BenQ projector", "benq-projector", "BenQ", "display", None, None),
    ("1.3.6.1.4.1.2435.2.3.9.1", "Brother NC-8300w", "brother-printer", "Brother", "printer", None, None),
    ("1.3.6.1.4.1.641.2.1.2.1", "Lexmark MS610de", "lexmark-printer", "Lexmark", "printer", None, None),
    ("1.3.6.1.4.1.18334.1.2.1.2.1.148.3.1", "KONICA MINOLTA bizhub C300i", "konica-printer", "Konica Minolta",
     "printer", None, None),
    ("1.3.6.1.4.1.2385.3.1.57", "SHARP MX-3070N", "sharp-printer", "Sharp", "printer", None, None),
    ("1.3.6.1.4.1.10002.1", "Linux 2.6.32.68 #1 Mon Jun 1 2020 mips", "ubiquiti-airos", "Ubiquiti", "other", None,
     None),
    ("1.3.6.1.4.1.47196.4.1.1.1.210", "Aruba JL658A 6300M 24SFP+ 4SFP56 Swch FL.10.08.1010", "aruba-cx", "Aruba",
     "switch", "6300M 24SFP+ 4SFP56 Swch", "FL.10.08.1010"),
]


@pytest.mark.parametrize(("oid", "descr", "profile", "vendor", "cls", "model", "version"), UNRECORDED,
                         ids=[u[2] + ":" + u[0] for u in UNRECORDED])
def test_unrecorded_families_give_maker_and_class(tmp_path, oid, descr, profile, vendor, cls, model, version):
    ident = _identify(tmp_path, oid, descr)
    assert (ident.profile, ident.vendor, ident.device_class, ident.model, ident.os_version) == (
        profile, vendor, cls, model, version)
    assert PROFILES.get(profile).unverified


def test_a_maker_no_profile_names_still_gets_vendor_and_class_from_what_it_answers(tmp_path):
    # a printer under an enterprise no profile names (40093, Zhuhai Seine Technology): the registry names the
    # maker, Printer-MIB classes it and gives its supplies
    extra = ("1.3.6.1.2.1.43.11.1.1.6.1.1|4|Black Toner\n1.3.6.1.2.1.43.11.1.1.8.1.1|2|1500\n"
             "1.3.6.1.2.1.43.11.1.1.9.1.1|2|750\n")
    rec = tmp_path / "device.snmprec"
    rec.write_text(f"1.3.6.1.2.1.1.1.0|4|Pantum P3300DW\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.40093.1.1\n{extra}")
    poll = asyncio.run(DevicePoller(RecordingClient(rec), PROFILES).poll())
    assert (poll.identity.profile, poll.identity.device_class, poll.identity.capabilities) == (
        "generic", "printer", ["printer"])
    assert poll.identity.vendor == "Zhuhai Seine Technology"
    assert [(s.tags["supply"], s.value) for s in poll.samples if s.metric == "printer.supply_level_percent"] == [
        ("Black Toner", 50.0)]
