"""The oracle (tests/librenms_oracle.py) against its baseline: every value that agreed with LibreNMS when
the baseline was written must still agree. A change that makes more agree updates the baseline
(`.venv/bin/python -m tests.librenms_oracle --write-baseline`); one that makes fewer fails here."""

from __future__ import annotations

import json

import pytest

from tests import librenms_oracle as oracle


@pytest.mark.integration
def test_nothing_that_agreed_with_librenms_stops_agreeing(realdevices, recording_polls):
    rep = oracle.compare(realdevices, recording_polls)
    baseline = set(json.loads(oracle.BASELINE.read_text()))
    assert len(baseline) > 1000            # the baseline was found and is not empty
    assert any(k.startswith(oracle.GENERIC) for k in baseline)   # and holds the generic path's agreements
    lost = sorted(baseline - rep.agreed())
    assert lost == [], "agreed with LibreNMS before, and no longer:\n" + "\n".join(lost)


def test_the_comparison_pairs_sensors_one_to_one_and_skips_librenms_conventions():
    from eduedge.collectors.snmp.poller import DevicePoll, Identity
    from eduedge.core.samples import Sample

    poll = DevicePoll("ups", "127.0.0.1:161", 0.0, Identity(model="X1", device_class="ups"), samples=[
        Sample(0.0, "ups", "ups.input_voltage_v", 230, "V", {"phase": "1"}),
        Sample(0.0, "ups", "ups.output_voltage_v", 230, "V", {"phase": "1"}),
        Sample(0.0, "ups", "ups.runtime_s", 600, "s", {}),
        Sample(0.0, "ups", "printer.supply_level_percent", 40.0, "percent", {"supply": "Black Toner"}),
    ])
    sensors = [{"sensor_class": c, "sensor_descr": d, "sensor_current": v, "sensor_oid": f".1.3.6.1.2.1.33.9.{i}"}
               for i, (c, d, v) in enumerate([("voltage", "Input Phase 1", 230), ("voltage", "Output Phase 1", 230),
                                              ("voltage", "Bypass Phase 1", 230), ("runtime", "Remaining", 10)])]
    doc = {"os": {"discovery": {"devices": [{"hardware": "x1", "version": "", "serial": None, "type": "power"}]}},
           "sensors": {"discovery": {"sensors": sensors}},
           "printer-supplies": {"discovery": {"printer_supplies": [
               {"supply_descr": "Black Toner", "supply_current": 40, "supply_oid": ".1.3.1"},
               {"supply_descr": "Waste", "supply_current": 50, "supply_oid": ".1.3.2"}]}}}
    rep = oracle.Report()
    oracle.compare_identity("ups", doc, poll, rep)
    oracle.compare_sensors("ups", doc, poll, rep)
    oracle.compare_supplies("ups", doc, poll, {"1.3.1": "40", "1.3.2": "-3"}, rep)
    got = {(i.field, i.what.split(" (")[0]): i.agrees for i in rep.items}
    assert got == {("model", "model"): True, ("class", "class"): True, ("sensors", "voltage Input Phase 1"): True,
                   ("sensors", "voltage Output Phase 1"): True, ("sensors", "voltage Bypass Phase 1"): False,
                   ("battery", "runtime Remaining"): True, ("supplies", "Black Toner"): True}
    # LibreNMS's '' version and its 50 % for "some remaining" are not readings to agree with
    assert {i.what for i in rep.not_comparable} == {"os_version", "serial", "Waste"}
