"""The `wifi` section: the school's Wi-Fi zones, where each AP is, and when a radio counts as busy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import Duration, Strict

ZoneType = Literal["teaching", "office", "public", "dormitory", "outdoor", "other"]

ZONE_TYPES: tuple[str, ...] = ZoneType.__args__  # type: ignore[attr-defined]

class WifiZone(Strict):
    type: ZoneType
    rooms: list[str] = []                  # where it is, for people reading findings

class WifiAp(Strict):
    """Where a controller's AP is: `ap` is its name as the controller reports it, or a glob (`ap-a*`)."""

    ap: str = Field(min_length=1)
    zone: str
    room: str | None = None
    controller: str | None = None          # only this controller's APs (a name under snmp.devices)

class WifiCapacity(Strict):
    utilization_percent: float = Field(gt=0, le=100)
    clients_per_radio: int = Field(ge=1)

class WifiConfig(Strict):
    """The school's Wi-Fi zones and where each AP is (agent/compliance/wifi_coverage.py judges zone by zone).

    An AP polled on its own (snmp.devices, role ap) takes that device's `zone` and `room`; an AP a controller
    manages is placed by the first `aps` entry that matches its name, else by its AP group or location on
    the controller when that names a zone here (`zone_from_ap_group`). A `zone` that is a zone type word
    (teaching, office …) and not a declared zone makes the AP's room (else the AP) a zone of that type.
    """

    zones: dict[str, WifiZone] = {}
    aps: list[WifiAp] = []
    zone_from_ap_group: bool = True
    # A radio over either limit is busy (STANDARDS-RESEARCH B.2.1: < 50 % utilisation and <= 30 active clients
    # per radio for classrooms; < 70 % and 50 in public areas); the project's proposal, like the signal levels.
    capacity: dict[str, WifiCapacity] = {
        "teaching": WifiCapacity(utilization_percent=50, clients_per_radio=30),
        "office": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "public": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "dormitory": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "outdoor": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "other": WifiCapacity(utilization_percent=70, clients_per_radio=50)}
    max_poll_gap: Duration = 300.0         # a client seen twice further apart than this counts only this long

    @model_validator(mode="after")
    def _zones(self) -> WifiConfig:
        for i, a in enumerate(self.aps):
            if a.zone not in self.zones and a.zone not in ZONE_TYPES:
                raise ValueError(f"aps[{i}] ({a.ap}): zone {a.zone!r} is neither under wifi.zones "
                                 f"({', '.join(sorted(self.zones)) or 'none declared'}) nor a zone type")
        return self
