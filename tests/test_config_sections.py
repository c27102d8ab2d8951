"""AgentConfig is composed of the sections the collectors own: each validates alone, as its collector reads
it, and what crosses sections is checked where they meet."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eduedge.agent.config import AgentConfig
from eduedge.collectors.broadband.config import BroadbandConfig
from eduedge.collectors.discovery.config import DiscoveryConfig
from eduedge.collectors.host import HostConfig
from eduedge.collectors.reachability_config import ReachabilityConfig
from eduedge.collectors.service_probes_config import LiveClassConfig
from eduedge.collectors.snmp.config import SnmpConfig
from eduedge.collectors.wifi.config import WifiConfig

SCHOOL = {"id": "s1", "name": "S", "city": "c1", "type": "primary"}
OWNED = {"snmp": SnmpConfig, "host": HostConfig, "discovery": DiscoveryConfig, "reachability": ReachabilityConfig,
         "broadband": BroadbandConfig, "wifi": WifiConfig, "live_class": LiveClassConfig}


def test_each_collector_section_is_the_collector_s_own_model() -> None:
    cfg = AgentConfig.model_validate({"school": SCHOOL})
    for section, model in OWNED.items():
        assert type(getattr(cfg, section)) is model, section


def test_a_section_validates_alone_with_the_same_errors_it_gives_inside_the_file() -> None:
    bad = {"enabled": True}
    with pytest.raises(ValidationError, match="discovery needs `subnets`"):
        DiscoveryConfig.model_validate(bad)
    with pytest.raises(ValidationError, match=r"discovery\n.*discovery needs `subnets`"):
        AgentConfig.model_validate({"school": SCHOOL, "discovery": bad})
    with pytest.raises(ValidationError, match="`start` must be before `end`"):
        BroadbandConfig.model_validate({"windows": [{"name": "w", "start": "10:00", "end": "09:00"}]})
    assert BroadbandConfig.model_validate({"windows": [{"name": "w", "start": "22:00", "end": "24:00"}]})


def test_what_crosses_sections_is_checked_where_they_are_composed() -> None:
    wifi = {"aps": [{"ap": "ap-*", "zone": "teaching", "controller": "ac-9"}]}
    assert WifiConfig.model_validate(wifi).aps[0].controller == "ac-9"      # alone, it cannot know the devices
    with pytest.raises(ValidationError, match=r"wifi.aps\[0\].controller: 'ac-9' is not a device under snmp.devices"):
        AgentConfig.model_validate({"school": SCHOOL, "wifi": wifi})
    with pytest.raises(ValidationError, match=r"discovery.snmp_credentials\[0\]: 'v3' is not defined"):
        AgentConfig.model_validate({"school": SCHOOL, "discovery": {"snmp_credentials": ["v3"]}})
