"""A poller for a configured device: the one place where the `snmp` section becomes an `SnmpClient` and a
`DevicePoller`, so that the daemon, discovery's switch tables, `eduedge diag` and `eduedge wifi` poll a
device alike (its own timeout, retries, deadline, repetitions and rate limit over `snmp.defaults`).

>>> snmp = SnmpConfig.model_validate({"credentials": {"lab": {"community": {"env": "LAB_COMMUNITY"}}},
...     "defaults": {"rate_limit_rps": 20}, "devices": [{"name": "sw-1", "host": "198.18.0.2", "credentials": "lab",
...     "timeout": "5s", "max_repetitions": 40}]})
>>> p = poller_for(snmp.devices[0], snmp, ProfileSet({}, [], {}), auth=SnmpAuth(community="lab"))
>>> c = p.client
>>> (p.device, c.host, c.port, c.timeout, c.max_repetitions, c.rate_limit_rps, p.deadline)
('sw-1', '198.18.0.2', 161, 5.0, 40, 20.0, 20.0)
"""

from __future__ import annotations

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.config import SnmpConfig, SnmpDevice
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import ProfileSet
from eduedge.core.netaddr import split_host_port
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.core.rates import RateTracker


def poller_for(device: SnmpDevice, snmp: SnmpConfig, profiles: ProfileSet, *, rates: RateTracker | None = None,
               pseudonymizer: Pseudonymizer | None = None, profile: str | None = None,
               static_refresh: float | None = None, auth: SnmpAuth | None = None) -> DevicePoller:
    """The poller of `device` (one of `snmp.devices`), its settings over `snmp.defaults`.

    `profile` forces a profile other than the device's own (discovery reads the `_bridge` tables);
    `static_refresh` overrides how often identity and static tables are re-read; without a `pseudonymizer`
    the profile lines with personal tags (Wi-Fi clients) are not read at all. `auth` saves reading the
    credentials' secrets again when the caller already has them; otherwise they are read here and a secret
    that cannot be read raises `SecretError`, an address that is none `ValueError`."""
    dflt = snmp.defaults
    host, port = split_host_port(device.host)
    if auth is None:
        auth = SnmpAuth.from_config(snmp.credentials[device.credentials], device.credentials)
    client = SnmpClient(device.name, host, port, auth,
                        timeout=device.timeout or dflt.timeout,
                        retries=device.retries if device.retries is not None else dflt.retries,
                        max_repetitions=device.max_repetitions or dflt.max_repetitions,
                        rate_limit_rps=device.rate_limit_rps or dflt.rate_limit_rps,
                        oids_per_request=dflt.oids_per_request)
    return DevicePoller(client, profiles, rates, forced_profile=profile or device.profile,
                        deadline=device.deadline or dflt.deadline,
                        static_refresh=dflt.static_refresh if static_refresh is None else static_refresh,
                        pseudonymizer=pseudonymizer)
