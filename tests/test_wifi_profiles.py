"""The engine keys wireless tables needed (string indexes, negative arcs, joins by value, personal tags,
codes that stand for numbers, offsets, constant tags), and the H3C and Ruijie controller profiles against
the recordings written from their MIBs (eduedge/collectors/wifi/testdata).
No network: recordings are read in process."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import pytest

import eduedge.collectors.wifi.collector
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller
from eduedge.collectors.snmp.profiles import BUNDLED_DIR, ProfileSet, load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.core.pseudonym import Pseudonymizer

DATA = Path(eduedge.collectors.wifi.__file__).parent / "testdata"
KEY = b"test-school-key-0123456789abcdef"
CLIENT_MAC = "02:1a:11:00:00:01"


def bundle(tmp_path: Path, profile: str) -> ProfileSet:
    root = tmp_path / "profiles"
    shutil.copytree(BUNDLED_DIR / "base", root / "base")
    shutil.copy(BUNDLED_DIR / "canonical-metrics.yaml", root)
    (root / "acme").mkdir()
    (root / "acme" / "acme-ac.yaml").write_text(textwrap.dedent(profile))
    return load_profiles(bundled_dir=root)


def poll(ps: ProfileSet, rec: Path, pseudonymizer: Pseudonymizer | None = None) -> DevicePoll:
    return asyncio.run(DevicePoller(RecordingClient(rec), ps, pseudonymizer=pseudonymizer).poll())


def values(p: DevicePoll, metric: str) -> list[tuple[object, dict[str, str]]]:
    return [(s.value, dict(s.tags)) for s in p.samples if s.metric == metric]


# A made-up controller: an AP table indexed by a length-prefixed AP name, radios by name . radio, a station
# table indexed by MAC whose AP is a string value, an SSID table by length-prefixed SSID, and coded values.
ACME = "1.3.6.1.4.1.77"
AP1 = "3.97.112.49"                     # "ap1", length-prefixed
RECORDING = f"""\
1.3.6.1.2.1.1.1.0|4|ACME AC-1
1.3.6.1.2.1.1.2.0|6|{ACME}.1
{ACME}.2.1.2.{AP1}|4|Room A101
{ACME}.2.1.3.{AP1}|4|10.0.0.7
{ACME}.2.2.1.{AP1}.1|2|4
{ACME}.2.2.2.{AP1}.1|2|165
{ACME}.2.2.3.{AP1}.1|4|ng
{ACME}.2.2.4.{AP1}.1|2|9
{ACME}.3.1.2.2.26.17.0.0.1|4|ap1
{ACME}.3.1.3.2.26.17.0.0.1|2|-58
{ACME}.3.1.4.2.26.17.0.0.1|64|10.0.0.7
{ACME}.4.1.2.6.83.99.104.111.111.108|2|12
"""
PROFILE = f"""
    extends: [_system]
    device_class: wlc
    match: {{sysobjectid: ['{ACME}.**']}}
    metrics:
      - name: wifi.radio_width_mhz
        unit: MHz
        column: {ACME}.2.2.1
        mapping: {{1: 20, 4: 80}}
        tags: &radio
          - {{tag: ap, index: 1, format: text}}
          - {{tag: radio, index: -1}}
          - {{tag: place, column: {ACME}.2.1.2, index_transform: [1, -2]}}
      - name: wifi.radio_noise_dbm
        unit: dBm
        column: {ACME}.2.2.2
        offset: -256
        tags: *radio
      - name: wifi.radio_band
        kind: state
        unit: state
        column: {ACME}.2.2.3
        mapping: {{ng: '2.4', na: '5'}}
        tags: *radio
      - name: wifi.radio_clients
        unit: count
        column: {ACME}.2.2.4
        tags: *radio
      - name: wifi.client_rssi_dbm
        unit: dBm
        column: {ACME}.3.1.3
        tags:
          - {{tag: client, index: [1, 6], format: mac, personal: true}}
          - {{tag: place, column: {ACME}.2.1.2, via: {ACME}.3.1.2, via_format: text, static: false}}
          - {{tag: ap_by_address, column: {ACME}.2.1.2, via: {ACME}.3.1.4, match: {ACME}.2.1.3, static: false}}
      - name: wifi.ssid_clients
        unit: count
        column: {ACME}.4.1.2
        tags:
          - {{tag: ssid, index: 1, format: text}}
          - {{tag: band, value: '2.4'}}
"""


@pytest.fixture()
def acme(tmp_path: Path) -> tuple[ProfileSet, Path]:
    ps = bundle(tmp_path, PROFILE)
    assert ps.errors == []
    rec = tmp_path / "acme.snmprec"
    rec.write_text(RECORDING)
    return ps, rec


def test_string_indexes_negative_arcs_and_joins_name_the_rows(acme):
    p = poll(*acme, Pseudonymizer(KEY))
    tags = {"ap": "ap1", "radio": "1", "place": "Room A101"}
    assert values(p, "wifi.radio_clients") == [(9, tags)]
    assert values(p, "wifi.ssid_clients") == [(12, {"ssid": "School", "band": "2.4"})]
    (rssi, ctags), = values(p, "wifi.client_rssi_dbm")
    assert rssi == -58
    # the AP name a client row holds, as a length-prefixed index; and the AP found by the address it holds
    assert ctags["place"] == "Room A101" and ctags["ap_by_address"] == "Room A101"


def test_codes_that_stand_for_numbers_offsets_and_text_states(acme):
    p = poll(*acme, Pseudonymizer(KEY))
    assert [v for v, _ in values(p, "wifi.radio_width_mhz")] == [80]
    assert [v for v, _ in values(p, "wifi.radio_noise_dbm")] == [-91]          # "actual value plus 256"
    assert [v for v, _ in values(p, "wifi.radio_band")] == ["2.4"]             # the device's "ng"


def test_personal_tags_leave_the_poll_only_as_the_schools_pseudonym(acme):
    p = poll(*acme, Pseudonymizer(KEY))
    (_, tags), = values(p, "wifi.client_rssi_dbm")
    assert tags["client"] == Pseudonymizer(KEY).mac(CLIENT_MAC)
    assert tags["client"] != Pseudonymizer(b"another-school-key-0123456789ab").mac(CLIENT_MAC)
    assert CLIENT_MAC not in repr([s.to_dict() for s in p.samples])
    again = asyncio.run(DevicePoller(RecordingClient(acme[1]), acme[0], pseudonymizer=Pseudonymizer(KEY)).poll())
    assert values(again, "wifi.client_rssi_dbm") == values(p, "wifi.client_rssi_dbm")     # stable within a school


def test_without_a_pseudonymizer_personal_lines_are_not_read_at_all(acme):
    p = poll(*acme)
    assert values(p, "wifi.client_rssi_dbm") == []
    assert "wifi.radio_clients" in " ".join(p.coverage)         # the rest of the profile is read as usual


@pytest.mark.parametrize(("tag", "complaint"), [
    ("{tag: x, column: 1.3.6.1.4.1.77.9, via_format: mac}", "give `via`"),
    ("{tag: x, column: 1.3.6.1.4.1.77.9, via: 1.3.6.1.4.1.77.8, via_format: mac, match: 1.3.6.1.4.1.77.7}",
     "at most one of `via_format`"),
    ("{tag: x, column: 1.3.6.1.4.1.77.9, format: text}", "`format: text` reads index arcs"),
    ("{tag: x, index: 1, value: a}", "exactly one of `index`, `column` or `value`"),
    ("{tag: x, index: 1, personal: true, mapping: {1: a}}", "a `personal` tag is an identifier"),
])
def test_malformed_wireless_tag_keys_are_refused_naming_the_file(tmp_path, tag, complaint):
    ps = bundle(tmp_path, f"""
        match: {{sysobjectid: ['{ACME}.**']}}
        metrics:
          - {{name: wifi.radio_clients, unit: count, column: {ACME}.2.2.4, tags: [{tag}]}}
    """)
    assert any("acme-ac.yaml:" in e and complaint in e for e in ps.errors), ps.errors


@pytest.mark.parametrize(("line", "complaint"), [
    ("{name: wifi.radio_width_mhz, unit: MHz, column: 1.3.6.1.4.1.77.1, mapping: {1: twenty}}", "gives numbers"),
    ("{name: wifi.radio_status, kind: state, unit: state, column: 1.3.6.1.4.1.77.1, mapping: {1: 1}}", "gives words"),
])
def test_mappings_must_fit_their_kind(tmp_path, line, complaint):
    ps = bundle(tmp_path, f"""
        match: {{sysobjectid: ['{ACME}.**']}}
        metrics: [{line}]
    """)
    assert any(complaint in e for e in ps.errors), ps.errors


def test_constant_tags_tell_two_lines_of_one_metric_apart(tmp_path):
    ps = bundle(tmp_path, f"""
        match: {{sysobjectid: ['{ACME}.**']}}
        metrics:
          - {{name: wifi.ssid_clients, unit: count, column: {ACME}.4.1.2, tags: [{{tag: band, value: '2.4'}}]}}
          - {{name: wifi.ssid_clients, unit: count, column: {ACME}.4.1.3, tags: [{{tag: band, value: '5'}}]}}
    """)
    assert ps.errors == [] and len(ps.get("acme-ac").metrics) == 2


# -- the controllers no public recording shows, against the recordings written from their MIBs -------------

@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    ps = load_profiles()
    assert ps.errors == []
    return ps


@pytest.mark.parametrize(("recording", "profile", "model"), [
    ("h3c-wx3510h", "h3c-wx", "WX3510H"), ("ruijie-ws5708", "ruijie-ac", "WS5708")])
def test_every_wireless_line_of_the_mib_written_profiles_reads_its_recording(profiles, recording, profile, model):
    p = poll(profiles, DATA / f"{recording}.snmprec", Pseudonymizer(KEY))
    assert p.errors == [] and p.identity is not None
    assert (p.identity.profile, p.identity.model, p.identity.device_class) == (profile, model, "wlc")
    own = {m.key for m in profiles.get(profile).metrics if profiles.get(profile).origin[m.key] == profile}
    assert own and own <= set(p.coverage), sorted(own - set(p.coverage))


def test_h3c_controller_aps_radios_and_clients(profiles):
    p = poll(profiles, DATA / "h3c-wx3510h.snmprec", Pseudonymizer(KEY))
    status = {t["ap"]: v for v, t in values(p, "wifi.ap_status")}
    assert status == {"ap-101": "up", "ap-102": "up", "ap-lib": "down"}       # download(3) serves no client
    radios = {(t["ap"], t["radio"]): v for v, t in values(p, "wifi.radio_channel")}
    assert radios[("ap-101", "2")] == 36 and radios[("ap-lib", "1")] == 11
    clients = values(p, "wifi.client_rssi_dbm")
    assert len(clients) == 5 and all(v < 0 for v, _ in clients)
    # the client's AP comes from a string value (hh3cDot11CurrAPID) turned into the AP table's index
    assert sorted({(t["ap"], t["band"]) for _, t in clients}) == [("ap-101", "2.4"), ("ap-101", "5"),
                                                                 ("ap-102", "2.4"), ("ap-102", "5")]
    assert {v for v, _ in values(p, "wifi.ap_count")} == {2}


def test_a_stations_samples_share_one_pseudonymised_tag_dict_and_only_current_clients_are_remembered(profiles):
    # a controller of 7,000 stations: a dict per sample was three per station, and the clear->pseudonym cache
    # kept every client of the day
    poller = DevicePoller(RecordingClient(DATA / "h3c-wx3510h.snmprec"), profiles, pseudonymizer=Pseudonymizer(KEY))
    first = asyncio.run(poller.poll())
    per_client = [s for s in first.samples if s.metric.startswith("wifi.client_")]
    by_client: dict[str, set[int]] = {}
    for s in per_client:
        by_client.setdefault(s.tags["client"], set()).add(id(s.tags))
    assert len(by_client) == 5 and {len(ids) for ids in by_client.values()} == {1}
    assert len({s.metric for s in per_client}) > 1
    assert set(poller._pseudonyms.values()) == set(by_client)
    poller._pseudonyms["00:00:5e:00:53:ff"] = "p-gone"      # a client of an earlier poll, not seen since
    again = asyncio.run(poller.poll())
    assert "00:00:5e:00:53:ff" not in poller._pseudonyms
    assert values(again, "wifi.client_rssi_dbm") == values(first, "wifi.client_rssi_dbm")


def test_ruijie_controller_joins_clients_to_aps_by_mac(profiles):
    p = poll(profiles, DATA / "ruijie-ws5708.snmprec", Pseudonymizer(KEY))
    by_ap = sorted(t["ap"] for _, t in values(p, "wifi.client_rssi_dbm"))
    assert by_ap == ["AP-A201", "AP-A201", "AP-A202"]
    assert {t["ap"]: v for v, t in values(p, "wifi.ap_group")} == {"AP-A201": "teaching-a", "AP-A202": "teaching-a",
                                                                  "AP-O1": "office"}
    assert sorted(v for v, _ in values(p, "wifi.ssid_clients")) == [1, 2]
