"""The firmware profiles against recorded real devices: every recording in eduedge/simulator/realdevices is served
by one snmpsim and polled through the profile it matches, and what comes out is checked three ways.

1. Identity: profile, vendor, model, OS version and serial, per recording (`EXPECTED`).
2. LibreNMS's own results from the same recordings (`expected/<name>.json`): interfaces (names, speeds
   in Mbit/s, oper status) and identity (os, hardware, version, serial) must agree, and where they do not,
   `PORT_DIFFS` and `IDENTITY_DIFFS` say why. A difference nobody explained fails, and so does an
   explanation for a difference that is gone.
3. Coverage, as in Datadog's profile tests: every metric line a vendor profile declares (beyond the base
   mixins) must yield readings from at least one recording that matches it, unless the line or its profile
   says `unverified` and why. A profile line no recording proves is a failing test.

`GENERALISATION` then checks, without a network, that devices of the same families that are not among
the recordings are matched and identified just as well.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller
from eduedge.collectors.snmp.profiles import BUNDLED_DIR, ProfileSet, load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.collectors.snmp.report import summarise
from tests import librenms_oracle
from tests.conftest import REALDEVICES

# recording -> (profile, vendor, model, os_version, serial); None: the device does not say
EXPECTED: dict[str, tuple[str, str | None, str | None, str | None, str | None]] = {
    # switches and routers
    "vrp": ("huawei-ar", "Huawei", "AR1220", "5.120 (V200R003C01SPC900)", None),
    "vrp_5720": ("huawei-switch", "Huawei", "S5720-56C-PWR-EI-AC", "5.170 (V200R010C00SPC600)", "12345678"),
    "vrp_s5328c-ei": ("huawei-switch", "Huawei", "S5328C-EI", "5.110 (V200R001C00SPC300)", "21023516106TD5001077"),
    "vrp_ce12804-withvrf": ("huawei-cloudengine", "Huawei", "CE12804", "8.150 (V200R002C50SPC800)", None),
    "vrp_ar169fgwl": ("huawei-ar", "Huawei", "AR169FGW-L", "5.170 (V200R009C00SPC500)", "21500102003GJA000278"),
    "comware": ("h3c-comware", "HP", "FF 5700-40XG-2QSFP", "7.1.045 Release 2416", "DM20F3400Z"),
    "comware_hpe5900": ("h3c-comware", "HPE", "5900AF-48G-4XG-2QSFP+", "7.1.045 Release 2422P01", None),
    "comware_h3c": ("h3c-comware", "HP", "V1910-48G", "5.20 Release 1111P01", None),
    "ruijie": ("ruijie-rgos", "Ruijie", "RG-S6220-48XS4QXS", "173619", None),
    "zxr10_5928": ("zte-zxr10-ros4", "ZTE", "ZXR10 5928", "V2.8.23.A.19.P02", None),
    "tplink": ("tplink-smart", "TP-Link", None, None, None),
    "tplink_sg2008": ("tplink-smart", "TP-Link", "TL-SG2008 1.0", "1.0.5 Build 20160401 Rel.43046", None),
    "jetstream": ("tplink-jetstream", "TP-Link", None, None, None),
    "jetstream_sg2218p": ("tplink-jetstream", "TP-Link", "SG2218P 1.20", "1.20.4 Build 20241205 Rel.64944",
                          "222C014000151"),
    "ios": ("cisco-ios", "Cisco", "C2950", "12.1(22)EA14", None),
    "ios_c3560": ("cisco-ios", "Cisco", "WS-C3560-48TS-S", "12.2(55)SE12", "CAT0912N0CU"),
    "iosxe_c9300": ("cisco-iosxe", "Cisco", "C9300-48P", "16.6.7", "FCW2204L050"),
    "iosxe_c3850": ("cisco-iosxe", "Cisco", "WS-C3850-48T-S", "16.9.6", "FCW2022C1ZM"),
    "dcn-software_dcrs-5960": ("dcn", "DCN", "DCRS-5960-28T-DC-E", "6.2.150.119", "A000000000"),
    "dcn-software_cs6200": ("dcn", "DCN", "CS6200-28X-EI", "7.5.3.0(R0012.0031)", "SW050610H622000140"),
    # wireless
    "vrp_ac6605-26": ("huawei-ac", "Huawei", "AC6605-26-PWR", "5.170 (V200R010C00SPC500)", "21023579169WJ6000038"),
    "ciscowlc": ("cisco-wlc", "Cisco", None, None, None),
    "ciscowlc_cbw240ac": ("cisco-business-wireless", "Cisco", "CBW240AC-B", "10.7.1.0", "PSZ00000000"),
    "arubaos_vmc": ("aruba-arubaos", "Aruba", "ArubaMC-VA", "8.10.0.12-FIPS", "MC4204394"),
    "aruba-instant": ("aruba-instant", "Aruba", "225", "8.4.0.0-8.4.0.0", "CNBJHMV0WN"),
    "ruckuswireless-sz": ("ruckus-smartzone", "Ruckus", "SZ104", "3.6.2.0.78", "211838000212"),
    "ruckuswireless_zd1200": ("ruckus-zonedirector", "Ruckus", "ZD1200", "9.13.3.0 build 145", "051608001610"),
    "unifi_nanohd": ("ubiquiti-unifi-ap", "Ubiquiti", "UAP-nanoHD", "5.43.36.12724", None),
    "unifi_ukultra": ("ubiquiti-unifi-ap", "Ubiquiti", "UK-Ultra", "6.6.77.15402", None),
    "hiveos-wireless_650ax": ("aerohive-hiveos", "Aerohive", "AP650X", "10.0r7a build-232353", "16501810030163"),
    # classroom devices and hosts
    "epson-projector_eb-4770w": ("epson-projector", "Epson", None, None, None),
    "jetdirect_m252dw": ("hp-jetdirect", "HP", "Color LaserJet Pro M252dw", None, "VNB3J99999"),
    "ricoh_mpc3002": ("ricoh-printer", "Ricoh", "Aficio MP C3002", "2.20", "W492KB03439"),
    "canonprinter_lbp": ("canon-printer", "Canon", "LBP6670", "R7.21", "MKRA012345"),
    "epson": ("epson-printer", "Epson", "WF-C5790BA", None, "X3B8022793"),
    "apc_smart1500": ("apc-ups", "APC", "AP9631", "AOS v7.1.2 / App v7.1.2", "5A1274T28648"),
    "hikvision-nvr": ("hikvision-nvr", "Hikvision", None, None, "0820160719AARR624053979WCVU"),
    "linux": ("linux", None, None, "4.9.0", None),
    # the second batch (realdevices/README.md): first read through the generic path (vendor from the IANA
    # registry, standard tables by capability; the oracle still does, forced), now through the family
    # profiles written for their identity; those still on `generic` have none
    "ciscosb_sg350x-24p": ("cisco", "Cisco", "SG350X-24P-K9", "2.5.9.13", "DNI232304PG"),
    "nxos_n3k-3064pq": ("cisco", "Cisco", "N3K-C3064PQ-10GX", "7.0(3)I7(8)", "<private>"),
    "cumulus_cumulus": ("cumulus-linux", "Cumulus Networks", "Cumulus Networks  VX Chassis",
                        "Cumulus-Linux 4.4.2 (Linux Kernel 4.19.206-1+cl4.4.2u1)", "0c:04:1f:86:00:00"),
    "voss_xa1440": ("extreme-voss", "Extreme Networks", "XA1440", "8.2.0.0_B020", "1931C-W0153"),
    "edgecos_ecs2100-10t": ("edgecore-switch", "Edgecore", "ECS2100-10T", "1.2.2.24", "EC1813001458"),
    "linksys-ss_lgs318p": ("generic", "Linksys", "Linksys LGS318P", "1.1.1.9", "14A10C95808734"),
    "routeros_crs317": ("mikrotik-routeros", "MikroTik", "CRS317-1G-16S+", "6.44.2", "8ED5087EB201"),
    "zynos_mgs3712": ("zyxel-zynos", "ZyXEL", "MGS-3712", None, None),
    "dell-laser_s5830dn": ("dell-printer", "Dell", "Dell S5830dn", "NH62.YS.N636", "7XQ1R92-132-13"),
    "fujifilmprinter_c7580": ("fujifilm-printer", "FUJIFILM", "Apeos C7580", None, "TC101642170085"),
    "okilan_9450g": ("oki-printer", "OKI", "MC873", "07.87", None),
    "samsungprinter_m4080fx": ("generic", "Samsung Electronics", "Samsung M408x Series", None, None),
    "utax": ("kyocera-printer", "KYOCERA", "P-4532DN", None, "R9L0309954"),
    "xerox": ("xerox-printer", "Xerox", "AltaLink C8045", None, None),
    "deltaups": ("delta-ups", "Minuteman", "E1500RTXL2U", "03", None),
    "generex-ups_cs141": ("generic", "Multimatic", "Upscale", "CS141-SNMP V1.80.17 190618", None),
    "liebert_apm": ("generic", "Vertiv", None, None, None),
    "netmanplus_204": ("riello-netman", "Riello", "Netman 204", None, None),
    "poweralert_ups": ("generic", "Tripp Lite", "SU3000LCD2UHV", "20.1.0.87", None),
    "fortiap_fap831f": ("fortinet-fortiap", "Fortinet", "FortiAP 831F", "FP831F-v7.0-build0127", "FP831FTF00000000"),
    "zyxelwlc_nxc2500": ("zyxel-nxc", "ZyXEL", "NXC2500", "V5.40(AAIG.0)", "S162L27100106"),
    "grandstream-ap_gwn7660": ("grandstream-ap", "Grandstream", "GWN7660", "1.0.25.41", None),
    "pmp_450": ("cambium-pmp", "Cambium Networks", "PMP 450", "15.0.0.1", None),
    "windows_svr_2019_1809": ("generic", "Microsoft", None, None, None),
    "dsm_ds214se-dsm7": ("synology-dsm", "Synology", "DS214se", "7.1-42962", "<private>"),
}

# The second batch (realdevices/README.md): read first through the generic path (the oracle still polls
# each through `generic` forced); their class, from their profile or from what they answer
# (capabilities.yaml), is compared below with LibreNMS's device type.
SECOND_BATCH: dict[str, str] = {
    "ciscosb_sg350x-24p": "switch", "nxos_n3k-3064pq": "switch", "cumulus_cumulus": "switch",
    "voss_xa1440": "switch", "edgecos_ecs2100-10t": "switch", "linksys-ss_lgs318p": "switch",
    "routeros_crs317": "switch", "zynos_mgs3712": "switch", "dell-laser_s5830dn": "printer",
    "fujifilmprinter_c7580": "printer", "okilan_9450g": "printer", "samsungprinter_m4080fx": "printer",
    "utax": "printer", "xerox": "printer", "deltaups": "ups", "generex-ups_cs141": "ups", "liebert_apm": "ups",
    "netmanplus_204": "ups", "poweralert_ups": "ups", "fortiap_fap831f": "wifi_ap", "zyxelwlc_nxc2500": "wlc",
    "grandstream-ap_gwn7660": "wifi_ap", "pmp_450": "other", "windows_svr_2019_1809": "server",
    "dsm_ds214se-dsm7": "server",
}
# LibreNMS's device type -> the classes that agree with it
LIBRENMS_TYPE = {"printer": {"printer"}, "power": {"ups"}, "network": {"switch", "router"},
                 "wireless": {"wifi_ap", "wlc"}, "server": {"server"}, "storage": {"server"}}
CLASS_DIFFS = {
    "pmp_450": "a fixed-wireless (point-to-multipoint) access point: its subscribers are not Wi-Fi clients, and a "
               "wifi_ap would be counted in the Wi-Fi coverage rules",
}

# Our profile -> the LibreNMS OS that claims the same device: the "os/vendor" of the comparison.
LIBRENMS_OS = {
    "huawei-switch": "vrp", "huawei-ar": "vrp", "huawei-ac": "vrp", "huawei-cloudengine": "vrp",
    "h3c-comware": "comware", "ruijie-rgos": "ruijie", "zte-zxr10-ros4": "zxr10", "tplink-smart": "tplink",
    "tplink-jetstream": "jetstream", "cisco-ios": "ios", "cisco-iosxe": "iosxe", "cisco-wlc": "ciscowlc",
    "cisco-business-wireless": "ciscowlc", "aruba-arubaos": "arubaos", "aruba-instant": "aruba-instant",
    "ruckus-smartzone": "ruckuswireless-sz", "ruckus-zonedirector": "ruckuswireless",
    "ubiquiti-unifi-ap": "unifi", "aerohive-hiveos": "hiveos-wireless", "epson-projector": "epson-projector",
    "hp-jetdirect": "jetdirect", "ricoh-printer": "ricoh", "canon-printer": "canonprinter",
    "epson-printer": "epson", "apc-ups": "apc", "hikvision-nvr": "hikvision-nvr", "linux": "linux",
}

# Where our identity differs from LibreNMS's on the same recording, and why. Our values are pinned by
# EXPECTED; this table only says which fields differ, so an unexplained or vanished difference fails.
_HUAWEI_PATCH = ("LibreNMS appends the patch level it finds by GETNEXT from hwPatchVersion; we report the "
                 "VRP release and product version from sysDescr, not the patch")
IDENTITY_DIFFS: dict[str, dict[str, str]] = {
    "vrp_5720": {"os_version": _HUAWEI_PATCH + " (its ' [unlocked]' is not in this recording at all)"},
    "vrp_ac6605-26": {"os_version": _HUAWEI_PATCH + " (its ' [unlocked]' is not in this recording at all)"},
    "vrp_ce12804-withvrf": {
        "model": "LibreNMS takes the family from sysDescr's '(CE12800 V200R…)'; sysDescr's last line "
                 "names the model, HUAWEICE12804",
        "os_version": _HUAWEI_PATCH + " ('[patch]')"},
    "vrp_s5328c-ei": {
        "model": "LibreNMS takes the family (S5300) from '(S5300 V200R…)'; sysDescr's first line is the "
                 "model, S5328C-EI",
        "os_version": _HUAWEI_PATCH + " ('[V200R001SPH005]')",
        "serial": "the chassis row has no serial and LibreNMS reads only entPhysicalSerialNum.9; we take "
                  "the main board's (MPU Board 0), which on box switches is the device's (the S5720 "
                  "recording has both, equal)"},
    "comware_hpe5900": {
        "model": "LibreNMS keeps the word 'Switch' of sysDescr's product line",
        "os_version": "LibreNMS reports the Comware release (2422P01) as 'features'; the release is part "
                      "of the version, so we keep it there"},
    "ruijie": {
        "model": "LibreNMS reads RUIJIE-ENTITY-MIB only, absent from this recording; the ENTITY-MIB "
                 "chassis row names the model",
        "os_version": "same: the ENTITY-MIB chassis row's entPhysicalSoftwareRev is the RGOS build number"},
    "zxr10_5928": {"model": "LibreNMS keeps only the number after ZXR10_; '5928' alone names no product"},
    "ios": {"model": "LibreNMS translates the sysObjectID with CISCO-PRODUCTS-MIB (catalyst2950t24); there "
                     "is no ENTITY-MIB in this recording, so we read the platform from sysDescr (C2950)"},
    "iosxe_c9300": {"os_version": "LibreNMS prefixes the image name (CAT9K_IOSXE); we report the release"},
    "ciscowlc": {"model": "LibreNMS translates the sysObjectID with CISCO-PRODUCTS-MIB (cisco5500Wlc); the "
                          "recording has nothing else that names a model, and we do not carry that MIB"},
    "aruba-instant": {"serial": "LibreNMS takes the first row of the AP table, another AP of the cluster "
                                "(a model 635); we take the AP whose address is aiMasterIPAddress, the "
                                "one that answers (model 225, as its sysDescr says)"},
    "ruckuswireless-sz": {"os_version": "LibreNMS appends the country code '(US)'; it is not a version"},
    "ruckuswireless_zd1200": {"os_version": "LibreNMS appends the country code '(US)'; it is not a version"},
    "unifi_ukultra": {"model": "LibreNMS finds none; sysDescr is '<model> <firmware>'",
                      "os_version": "LibreNMS finds none; sysDescr is '<model> <firmware>'"},
    "epson": {"model": "LibreNMS finds none; HOST-RESOURCES hrDeviceDescr of the printer names it"},
    "jetdirect_m252dw": {"serial": "LibreNMS does not parse the SN: field of the JetDirect sysDescr"},
    "apc_smart1500": {
        "model": "LibreNMS reports the whole sysDescr parenthesis as hardware; we take the card's model "
                 "(MN:) until the UPS itself is asked (upsBasicIdentModel, absent here)",
        "serial": "LibreNMS does not parse the SN: field of the card's sysDescr"},
    "hikvision-nvr": {"model": "LibreNMS turns HIKVISION-MIB type codes into 'NVR'; a device class, not a model",
                      "os_version": "LibreNMS reports a HIKVISION-MIB code (200) as version; we do not guess "
                                    "what it means"},
    "linux": {"model": "LibreNMS names the architecture ('Generic x86 64-bit'); a Linux host has no model"},
    # the second batch: what LibreNMS's per-OS modules find that no standard table or profile of ours carries
    "ciscosb_sg350x-24p": {
        "model": "the ENTITY-MIB chassis row's entPhysicalModelName (SG350X-24P-K9); LibreNMS joins the "
                 "product name and hardware revision (SG350X-24P V04)",
        "os_version": "entPhysicalSoftwareRev (2.5.9.13); LibreNMS lists software, boot loader and firmware"},
    "edgecos_ecs2100-10t": {"os_version": "LibreNMS prefixes the unit's hardware revision (R01) to the firmware"},
    "linksys-ss_lgs318p": {
        "model": "entPhysicalModelName (Linksys LGS318P); LibreNMS joins entPhysicalName and hardware "
                 "revision (LGS318P V02)",
        "os_version": "entPhysicalSoftwareRev (1.1.1.9); LibreNMS lists software and firmware revisions"},
    "zynos_mgs3712": {"serial": "in the model's own ZyNOS subtree (890.1.5.8.47.1.10), one per model: not read"},
    "samsungprinter_m4080fx": {"model": "LibreNMS finds none; hrDeviceDescr of the printer names the series"},
    "deltaups": {"model": "LibreNMS prefixes the maker (dupsIdentManufacturer, Minuteman), which is our vendor"},
    "generex-ups_cs141": {"model": "upsIdentModel alone (Upscale); LibreNMS prefixes upsIdentManufacturer"},
    "grandstream-ap_gwn7660": {"os_version": "the firmware string ends in a NUL octet, which LibreNMS shows as a dot "
                                                 "(1.0.25.41.); we drop it"},
    "pmp_450": {"model": "LibreNMS appends the unit's role (AP) to boxDeviceType"},
    "windows_svr_2019_1809": {"model": "LibreNMS names the processor architecture from sysDescr",
                              "os_version": "LibreNMS maps the Windows build in sysDescr to a release name"},
}

# Where our interfaces differ from LibreNMS's ports, and why: ifIndexes only we list, or names that differ.
_IGNORED = "LibreNMS's interface ignore settings (bad_if / bad_iftype) hide "
PORT_DIFFS: dict[str, dict] = {
    "iosxe_c9300": {"only_ours": {3, 4, 5, 6, 7},
                    "why": _IGNORED + "the 'unrouted VLAN n' internal interfaces (ifType propVirtual)"},
    "vrp_ce12804-withvrf": {"only_ours": {203, 204, 205, 206}, "why": _IGNORED + "ifType mpls (166)"},
    "ciscowlc_cbw240ac": {"only_ours": {2}, "why": _IGNORED + "the controller's 'Virtual Interface'"},
    # LibreNMS's default bad_ifoperstatus hides ports whose ifOperStatus is notPresent (a stack's absent
    # members, unconfigured port-channels); we list them as not_present
    "ciscosb_sg350x-24p": {"only_ours_status": "not_present", "why": "notPresent ports of absent stack units"},
    "linksys-ss_lgs318p": {"only_ours_status": "not_present", "why": "unconfigured port-channels and tunnel"},
    "windows_svr_2019_1809": {"only_ours_status": "not_present", "why": "Windows's notPresent pseudo-interfaces"},
    "deltaups": {"names": {1: "lo", 2: "eth0", 3: "tunl0", 4: "gre0", 5: "sit0"},
                 "why": "ifDescr is padded with NUL octets, which LibreNMS shows as dots ('lo..............'); "
                        "we drop them"},
    "zynos_mgs3712": {"names": {i: f"swp{i - 1:02d}" for i in range(1, 13)},
                      "why": "no ifName in this recording: we show ifDescr (swp00); LibreNMS's zynos module names "
                             "the ports from the vendor MIB (1/01)"},
    "zxr10_5928": {
        "names": {3: "xgei_5/1", 4: "xgei_4/1", 6: "xgei_2/1", 8: "gei_1/2", 16: "gei_1/10", 33: "vlan100"},
        "why": "ZXR10 ROS V4 appends the configured description to ifDescr and has no ifName; LibreNMS "
               "keeps 'xgei_5/1 some description' as the name, we split name and alias"},
}

# Vendor readings, checked against the recording and, where it has them, LibreNMS's sensors.
READINGS = [
    ("vrp_5720", "device.cpu_percent", {"entity": "MPU Board 0"}, 44),          # LibreNMS processor 44
    ("vrp_5720", "device.memory_percent", {"entity": "MPU Board 0"}, 9),        # LibreNMS mempool 9
    ("vrp_5720", "device.temperature_c", {"entity": "MPU Board 0"}, 42),
    ("vrp_5720", "poe.port_power_w", {"interface": "GigabitEthernet0/0/1"}, 0.0),
    ("vrp_s5328c-ei", "device.fan_status", {"slot": "0", "fan": "3"}, "normal"),
    ("vrp_ac6605-26", "device.power_w", {}, 43.291),                            # LibreNMS 43.291 W
    ("vrp_ac6605-26", "device.temperature_c", {"entity": "SRU Board 0"}, 40),   # LibreNMS 40
    ("comware_hpe5900", "device.cpu_percent", {"entity": "Board"}, 5),          # LibreNMS processor 5
    ("comware_hpe5900", "device.memory_percent", {"entity": "Board"}, 32),      # LibreNMS mempool 32
    ("comware_hpe5900", "device.temperature_c", {"entity": "SENSOR 2"}, 36),    # LibreNMS 36
    ("comware_hpe5900", "device.power_w", {"entity": "5900AF"}, 101.0),        # LibreNMS 101 W
    ("comware_hpe5900", "device.psu_status", {"psu": "2"}, "not_present"),      # LibreNMS state 3, not-install
    ("comware", "device.cpu_percent", {"entity": "Master Board 4"}, 21),
    ("ios_c3560", "device.cpu_percent", {"cpu": "1"}, 7),                       # LibreNMS processor 7
    ("ios_c3560", "device.memory_percent", {"pool": "Processor"}, pytest.approx(26.68, abs=0.01)),  # LibreNMS 27
    ("ios_c3560", "device.psu_status", {"psu_index": "1003"}, "normal"),
    ("iosxe_c3850", "device.cpu_percent", {"entity": "Switch 2"}, 4),
    ("iosxe_c3850", "device.memory_percent", {"entity": "Switch 1"}, pytest.approx(55.0, abs=0.01)),
    ("iosxe_c3850", "device.temperature_c", {"sensor": "Switch 1 - HotSpot Temp Sensor"}, 43),
    ("iosxe_c3850", "device.psu_status", {"psu": "Switch 1 - Power Supply B"}, "not_present"),
    ("iosxe_c3850", "poe.powered_devices", {}, 0),
    ("jetstream", "device.cpu_percent", {"cpu": "1"}, 90),                      # LibreNMS processor 90
    ("jetstream_sg2218p", "device.memory_percent", {"unit": "1"}, 41),          # LibreNMS mempool 41
    ("jetstream_sg2218p", "poe.port_power_w", {"interface": "gigabitEthernet 1/0/1"}, 2.0),  # LibreNMS 2
    ("jetstream_sg2218p", "poe.port_status", {"poe_port": "1"}, "delivering"),
    ("jetstream_sg2218p", "poe.consumed_w", {}, 40.4),
    ("jetstream_sg2218p", "poe.budget_w", {}, 150.0),
    ("ciscowlc", "device.cpu_percent", {}, 42),                                 # LibreNMS processor 42
    ("ruckuswireless-sz", "device.cpu_percent", {"cpu": "196611"}, 100),       # LibreNMS hr processor 100
    ("linux", "device.cpu_percent", {"cpu": "196608"}, 3),                      # LibreNMS hr processor 3
    ("zxr10_5928", "if.speed_mbps", {"interface": "xgei_5/1", "saturated": "true"}, 4294.967295),
    ("zxr10_5928", "if.speed_mbps", {"interface": "gei_1/1"}, 1000.0),
]

# Devices of the recorded families that are not among the recordings. The H3C and Maipu sysDescr strings
# are as such devices print them (H3C's from an LLDP capture of an S9850 and from Observium's comments;
# Maipu's from Observium's Maipu module); the others follow the published or recorded format of the same
# family with another model and product OID, which is what the family patterns are for.
GENERALISATION = [
    # (sysObjectID, sysDescr, profile, model, os_version)
    ("1.3.6.1.4.1.2011.2.23.612", "S5735-L24P4X-A1\r\nHuawei Versatile Routing Platform Software\r\n VRP (R) "
     "software,Version 5.170 (S5735 V200R019C00SPC500)\r\n Copyright (C) 2000-2020 HUAWEI TECH Co., Ltd.",
     "huawei-switch", "S5735-L24P4X-A1", "5.170 (V200R019C00SPC500)"),
    ("1.3.6.1.4.1.2011.2.62.2.3", "Huawei Versatile Routing Platform Software\r\nVRP (R) software, Version "
     "8.180 (NE40E V800R011C10SPC100)\r\nCopyright (C) 2012-2018 Huawei Technologies Co., Ltd.\r\nHUAWEI NE40E-X8A",
     "huawei-vrp", "NE40E-X8A", "8.180 (V800R011C10SPC100)"),
    ("1.3.6.1.4.1.25506.1.1588", "H3C Comware Platform Software, Software Version 7.1.070, Release 6715\r\n"
     "H3C S9850-32H\r\nCopyright (c) 2004-2024 New H3C Technologies Co., Ltd. All rights reserved.",
     "h3c-comware", "S9850-32H", "7.1.070 Release 6715"),
    ("1.3.6.1.4.1.25506.1.515", "H3C Comware Platform Software, Software Version 5.20 Release 2202P06 "
     "H3C S5120-28C-EI Copyright (c) 2004-2010 Hangzhou H3C Tech. Co., Ltd. All rights reserved.",
     "h3c-comware", "S5120-28C-EI", "5.20 Release 2202P06"),
    ("1.3.6.1.4.1.2011.10.1.88", "Hangzhou H3C Comware Platform Software, Software Version 3.10, Release "
     "2211P06\r\nH3C S3100-8TP-EI\r\nCopyright(c) 2004-2010 Hangzhou H3C Tech. Co.,Ltd. All rights reserved.",
     "h3c-comware-legacy", "S3100-8TP-EI", "3.10 Release 2211P06"),
    ("1.3.6.1.4.1.4881.1.1.10.1.246", "Ruijie Gigabit Security & Intelligence Access Switch(S2910-24GT4XS-E) "
     "By Ruijie Networks", "ruijie-rgos", "S2910-24GT4XS-E", None),
    ("1.3.6.1.4.1.3902.3.100.22", "ZXR10 ROS Version V4.08.23 ZXR10_5952 Software, Version ZXR10 5900 "
     "V2.8.23.A.19.P02 Copyright (c) 2000-2011 by ZTE Corporation", "zte-zxr10-ros4", "ZXR10 5952",
     "V2.8.23.A.19.P02"),
    ("1.3.6.1.4.1.3902.3.6000.8", "ZXR10 5960-52TM-HC, ZTE ZXR10 Software Version: V3.01.01.B12P07",
     "zte-zxr10", "ZXR10 5960-52TM-HC", "V3.01.01.B12P07"),
    ("1.3.6.1.4.1.11863.5.116", "JetStream 24-Port Gigabit L2+ Managed Switch with 4 SFP Slots",
     "tplink-jetstream", None, None),
    ("1.3.6.1.4.1.11863.1.1.32", "24-Port Gigabit Smart PoE+ Switch with 4 SFP Slots", "tplink-smart", None, None),
    ("1.3.6.1.4.1.9.1.716", "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 12.2(55)SE5, "
     "RELEASE SOFTWARE (fc1)", "cisco-ios", "C2960", "12.2(55)SE5"),
    ("1.3.6.1.4.1.9.1.2591", "Cisco IOS Software [Amsterdam], Catalyst L3 Switch Software (CAT9K_LITE_IOSXE), "
     "Version 17.3.4, RELEASE SOFTWARE (fc3)", "cisco-iosxe", None, "17.3.4"),
    ("1.3.6.1.4.1.9.1.2170", "Cisco Controller", "cisco-wlc", None, None),
    ("1.3.6.1.4.1.9.12.3.1.3.1812", "Cisco NX-OS(tm) n9000, Software (n9000-dk9), Version 9.3(8), RELEASE "
     "SOFTWARE Copyright (c) 2002-2021 by Cisco Systems, Inc.", "cisco", None, "9.3(8)"),
    ("1.3.6.1.4.1.5651.1.102.25", "MyPower S3100-28TP", "maipu", "S3100-28TP", None),
    ("1.3.6.1.4.1.6339.1.1.2.100", "DCRS-5650-28(R4) Device, Compiled Mar 12 10:11:12 2012\xda SoftWare "
     "Version 6.2.150.49\xda BootRom Version 6.0.1\xda HardWare Version 2.0.1\xda Device serial number "
     "SW023410J908000089\xda Copyright (C) 2001-2012 by Digital China Networks Limited.",
     "dcn", "DCRS-5650-28(R4)", "6.2.150.49"),
    ("1.3.6.1.4.1.8072.3.2.10", "Linux gw 5.15.0-91-generic #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023 x86_64",
     "linux", None, "5.15.0-91-generic"),
    ("1.3.6.1.4.1.8072.3.2.8", "FreeBSD fw 13.2-RELEASE FreeBSD 13.2-RELEASE amd64", "net-snmp", None, None),
    ("1.3.6.1.4.1.41112", "U6-Lite 6.5.28.14491", "ubiquiti-unifi-ap", "U6-Lite", "6.5.28.14491"),
    ("1.3.6.1.4.1.99999.1.2", "Unknown Brand Switch", "generic", None, None),
]


def _recordings(root: Path) -> list[Path]:
    return sorted((root / "snmprec").glob("*.snmprec"))


def _librenms(realdevices: Path, name: str) -> dict | None:
    path = realdevices / "expected" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    ps = load_profiles()
    assert ps.errors == []
    return ps


@pytest.fixture(scope="module")
def polls(recording_polls: dict[str, DevicePoll]) -> dict[str, DevicePoll]:
    """One snmpsim for every recording, each polled once through the profile it matches (conftest.py)."""
    return {name: p for name, p in recording_polls.items() if not name.startswith(librenms_oracle.GENERIC)}


def test_the_tables_name_every_recording_and_nothing_else(realdevices):
    names = {p.stem for p in _recordings(realdevices)}
    assert set(EXPECTED) == names
    assert set(IDENTITY_DIFFS) <= set(WITH_OS) and set(PORT_DIFFS) <= set(WITH_PORTS)
    assert set(SECOND_BATCH) <= names and set(CLASS_DIFFS) <= set(SECOND_BATCH)
    assert set(SECOND_BATCH) == set(librenms_oracle.SECOND_BATCH)     # the oracle also polls these via generic
    assert len(WITH_RESULTS) >= 30 and len(WITH_PORTS) >= 20      # the LibreNMS results were found


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_recording_is_identified_by_its_family_profile(polls, name):
    poll = polls[name]
    assert poll.errors == [] and poll.complete, poll.errors
    ident = poll.identity
    assert ident is not None
    found = (ident.profile, ident.vendor, ident.model, ident.os_version, ident.serial)
    assert found == EXPECTED[name], ident.matched_by


def _librenms_ports(doc: dict) -> dict[int, dict]:
    poller = doc["ports"]["poller"]     # "matches discovery" when polling added nothing
    ports = poller["ports"] if isinstance(poller, dict) else doc["ports"]["discovery"]["ports"]
    return {p["ifIndex"]: p for p in ports}


def _snake(status: str | None) -> str | None:
    """LibreNMS's 'lowerLayerDown' is our 'lower_layer_down'."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", status).lower() if status else None


# The recordings LibreNMS has results for (read at collection time, from where conftest finds them)
WITH_RESULTS = sorted(n for n in EXPECTED if (REALDEVICES / "expected" / f"{n}.json").exists())
WITH_PORTS = [n for n in WITH_RESULTS if "ports" in (_librenms(REALDEVICES, n) or {})]
WITH_OS = [n for n in WITH_RESULTS if "os" in (_librenms(REALDEVICES, n) or {})]


@pytest.mark.integration
@pytest.mark.parametrize("name", WITH_PORTS)
def test_interfaces_agree_with_librenms(polls, realdevices, name):
    theirs = _librenms_ports(_librenms(realdevices, name))
    ours = {i["index"]: i for i in summarise(polls[name])["interfaces"]}
    declared = PORT_DIFFS.get(name, {})
    assert set(theirs) - set(ours) == set(), "interfaces LibreNMS found and we did not"
    if "only_ours_status" in declared:
        assert {ours[i].get("oper_status") for i in set(ours) - set(theirs)} == {declared["only_ours_status"]}
    else:
        assert set(ours) - set(theirs) == declared.get("only_ours", set())
    names = {i: ours[i]["name"] for i in theirs if (theirs[i]["ifName"] or "") != ours[i]["name"]}
    assert names == declared.get("names", {})
    for i, port in theirs.items():
        # LibreNMS's poller ifSpeed is bit/s (ifHighSpeed merged in); None where the device says 0
        speed = port["ifSpeed"] / 1e6 if port["ifSpeed"] else None
        assert (ours[i].get("speed_mbps") or None) == (pytest.approx(speed, abs=0.001) if speed else None), \
            f"ifIndex {i} ({ours[i]['name']}) speed"
        assert ours[i].get("oper_status") == _snake(port["ifOperStatus"]), f"ifIndex {i} oper status"


@pytest.mark.integration
@pytest.mark.parametrize("name", WITH_OS)
def test_identity_agrees_with_librenms(polls, realdevices, name):
    theirs = _librenms(realdevices, name)["os"]["discovery"]["devices"][0]
    ident = polls[name].identity
    if name in SECOND_BATCH:    # no profile of ours is that OS: the class is what must agree
        assert ident.device_class == SECOND_BATCH[name]
        agrees = ident.device_class in LIBRENMS_TYPE.get(theirs["type"], set())
        assert agrees == (name not in CLASS_DIFFS), (ident.device_class, theirs["type"])
    else:
        assert LIBRENMS_OS[ident.profile] == theirs["os"]
    pairs = {"model": (ident.model, theirs["hardware"]), "os_version": (ident.os_version, theirs["version"]),
             "serial": (ident.serial, theirs["serial"])}
    differ = {field for field, (ours, lib) in pairs.items() if (ours or None) != (lib or None)}
    assert differ == set(IDENTITY_DIFFS.get(name, {})), {f: pairs[f] for f in differ}


@pytest.mark.integration
@pytest.mark.parametrize(("name", "metric", "tags", "value"), READINGS,
                         ids=[f"{r[0]}-{r[1]}-{'-'.join(r[2].values())}" for r in READINGS])
def test_vendor_readings(polls, name, metric, tags, value):
    found = [s.value for s in polls[name].samples
             if s.metric == metric and all(s.tags.get(k) == v for k, v in tags.items())]
    want = pytest.approx(value) if type(value) in (int, float) else value    # scaled readings are floats
    assert found == [want], [s for s in polls[name].samples if s.metric == metric]


def _vendor_lines(ps: ProfileSet) -> dict[tuple[str, str], str | None]:
    """(defining profile, metric key) -> why it is unverified (None: a recording must prove it), for every
    metric line outside the base mixins."""
    base = BUNDLED_DIR / "base"
    lines: dict[tuple[str, str], str | None] = {}
    for p in ps.concrete():
        for m in p.metrics:
            origin = ps.profiles[p.origin[m.key]]
            if Path(origin.path).parent == base:
                continue
            lines[(origin.name, m.key)] = m.unverified or origin.unverified
    return lines


@pytest.mark.integration
def test_every_vendor_metric_line_is_proven_by_a_recording(polls, profiles):
    proven: set[tuple[str, str]] = set()
    for poll in polls.values():
        matched = profiles.get(poll.identity.profile)
        for key, n in poll.coverage.items():
            if n:
                proven.update((origin, key) for origin in (matched.name, *matched.lineage))
    lines = _vendor_lines(profiles)
    assert len(lines) > 30          # the vendor files were found
    unproven = sorted(line for line, why in lines.items() if why is None and line not in proven)
    stale = sorted(line for line, why in lines.items() if why is not None and line in proven)
    assert unproven == [], "metric lines no recording answers: prove them or mark them unverified"
    assert stale == [], "lines marked unverified that a recording proves: remove the marker"


@pytest.mark.integration
def test_every_vendor_profile_is_matched_by_a_recording_or_a_known_device(polls, profiles):
    matched = {p.identity.profile for p in polls.values()} | {g[2] for g in GENERALISATION}
    vendor = [p for p in profiles.concrete() if Path(p.path).parent != BUNDLED_DIR / "base"]
    assert sorted(p.name for p in vendor if p.name not in matched and not p.unverified) == []


@pytest.mark.parametrize(("sysobjectid", "sysdescr", "profile", "model", "os_version"), GENERALISATION,
                         ids=[g[2] + ":" + g[0] for g in GENERALISATION])
def test_profiles_generalise_to_devices_not_recorded(tmp_path, profiles, sysobjectid, sysdescr, profile, model,
                                                     os_version):
    rec = tmp_path / "device.snmprec"
    rec.write_text(f"1.3.6.1.2.1.1.1.0|4x|{sysdescr.encode('latin-1').hex()}\n"
                   f"1.3.6.1.2.1.1.2.0|6|{sysobjectid}\n")
    ident = asyncio.run(DevicePoller(RecordingClient(rec), profiles).identify())
    assert (ident.profile, ident.model, ident.os_version) == (profile, model, os_version), ident.matched_by
