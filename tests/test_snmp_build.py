"""poller_for: the one way a configured device becomes a poller (daemon, discovery, diag, wifi)."""

from __future__ import annotations

import pytest

from eduedge.collectors.snmp.build import poller_for
from eduedge.collectors.snmp.config import SnmpConfig
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.core.rates import RateTracker
from eduedge.core.secrets import SecretError


def snmp(**device: object) -> SnmpConfig:
    return SnmpConfig.model_validate({
        "defaults": {"timeout": "3s", "retries": 2, "max_repetitions": 15, "oids_per_request": 12,
                     "rate_limit_rps": 40, "deadline": "25s", "static_refresh": "30m"},
        "credentials": {"lab": {"version": "2c", "community": {"env": "EDUEDGE_TEST_COMMUNITY"}}},
        "devices": [{"name": "ac-1", "host": "198.18.0.9:1161", "credentials": "lab", "role": "wlc", **device}]})


def test_the_device_takes_the_defaults_where_it_sets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUEDGE_TEST_COMMUNITY", "s3cret")
    cfg = snmp()
    p = poller_for(cfg.devices[0], cfg, load_profiles())
    c = p.client
    assert (c.device, c.host, c.port, c.auth.community) == ("ac-1", "198.18.0.9", 1161, "s3cret")
    assert (c.timeout, c.retries, c.max_repetitions, c.oids_per_request, c.rate_limit_rps) == (3.0, 2, 15, 12, 40)
    assert c._policer is not None                      # the rate limit is applied, not only remembered
    assert (p.deadline, p.static_refresh, p.forced_profile, p.pseudonymizer) == (25.0, 1800.0, None, None)


def test_the_device_s_own_settings_win_and_the_pseudonymiser_and_rates_are_passed_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUEDGE_TEST_COMMUNITY", "s3cret")
    cfg = snmp(timeout="1s", retries=0, rate_limit_rps=5, deadline="8s", profile="huawei-ac", max_repetitions=50)
    pseudo, rates = Pseudonymizer(b"school-key-0123456789abcdef"), RateTracker()
    p = poller_for(cfg.devices[0], cfg, load_profiles(), rates=rates, pseudonymizer=pseudo)
    assert (p.client.timeout, p.client.retries, p.client.rate_limit_rps, p.client.max_repetitions) == (1.0, 0, 5, 50)
    assert (p.deadline, p.forced_profile) == (8.0, "huawei-ac")
    assert p.pseudonymizer is pseudo and p.rates is rates
    bridge = poller_for(cfg.devices[0], cfg, load_profiles(), profile="_bridge", static_refresh=0)
    assert (bridge.forced_profile, bridge.static_refresh, bridge.client.rate_limit_rps) == ("_bridge", 0, 5)


def test_a_secret_that_cannot_be_read_names_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDUEDGE_TEST_COMMUNITY", raising=False)
    cfg = snmp()
    with pytest.raises(SecretError, match="credentials lab: community"):
        poller_for(cfg.devices[0], cfg, load_profiles())
