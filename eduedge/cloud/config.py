"""The city cloud's configuration: one YAML file (eduedge/config/cloud-example.yaml), validated with file and line.

Sections: `mqtt` (the broker and the shared-subscription group the receivers join), `storage` (SQLite
file or PostgreSQL), `ingest` (size cap, batching, de-duplication window, reorder timeout), `retention`
(raw metrics and their downsampled rollups; findings, events and gaps are kept), `city` (the thresholds
only the cloud can judge: offline schools, broadband access), `standards` (the rule packs, as the schools
name them), `schools` (an optional roster: schools the city expects, so that a school that never reported
still counts), `serve` (the web page).

>>> cfg = CloudConfig.model_validate({"mqtt": {"broker": "127.0.0.1:1883"}, "storage": {"path": "city.db"}})
>>> cfg.storage.engine, cfg.mqtt.group, cfg.retention.raw
('sqlite', 'eduedge-cloud', 1209600.0)
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from eduedge.agent.config import (
    ByteSize,
    Duration,
    MqttTls,
    SchoolType,
    Secret,
    Strict,
    pack_problems,
    split_host_port,
)
from eduedge.core.yamlfile import YamlFileError, load_model


class CloudConfigError(YamlFileError):
    """A cloud configuration that cannot be used; `problems` are `FILE:LINE: field: message` lines."""


class CloudMqtt(Strict):
    broker: str
    # Receivers that share a group split the schools' messages between them (MQTT 5 shared subscription
    # `$share/<group>/edu/v1/#`); an empty group subscribes plainly (every receiver gets everything).
    group: str = Field("eduedge-cloud", pattern=r"^[A-Za-z0-9_.-]*$")
    client_id: str | None = None        # default: eduedge-cloud-<host>; must be stable for the session to persist
    keepalive: Duration = 30.0
    # How long the broker keeps queueing for a stopped receiver: a restart within it loses nothing.
    session_expiry: Duration = 3600.0
    receive_maximum: int = Field(2000, ge=10, le=65535)   # unacknowledged messages the broker may send at once
    tls: MqttTls | None = None
    username: str | None = None
    password: Secret | None = None

    @model_validator(mode="after")
    def _check(self) -> CloudMqtt:
        split_host_port(self.broker, 1883)
        if self.password is not None and self.username is None:
            raise ValueError("`password` needs `username`")
        return self

    def default_client_id(self) -> str:
        return self.client_id or f"eduedge-cloud-{socket.gethostname().split('.')[0]}"


class Storage(Strict):
    engine: Literal["sqlite", "postgresql"] = "sqlite"
    path: Path | None = None            # sqlite: the database file
    dsn: str | None = None              # postgresql: a libpq connection string without the password
    password: Secret | None = None      # postgresql: the password, from a file or the environment
    # sqlite: `full` fsyncs every commit, so a batch the receiver acknowledged to the broker survives power
    # loss; `normal` survives a crash of the receiver only (the broker will not send those messages again).
    synchronous: Literal["full", "normal"] = "full"

    @model_validator(mode="after")
    def _engine(self) -> Storage:
        if self.engine == "sqlite" and self.path is None:
            raise ValueError("sqlite storage needs `path`")
        if self.engine == "postgresql" and not self.dsn:
            raise ValueError("postgresql storage needs `dsn` (e.g. 'host=db.city port=5432 dbname=eduedge user=cloud')")
        if self.engine == "sqlite" and (self.dsn or self.password):
            raise ValueError("`dsn` and `password` are for engine postgresql")
        return self


class Ingest(Strict):
    max_message_bytes: ByteSize = Field(2 * 2**20, ge=4096)   # on the wire and after gunzip; bigger is refused
    batch_messages: int = Field(500, ge=1, le=100_000)       # messages per transaction at most
    batch_seconds: Duration = Field(0.05, gt=0, le=10)       # longest wait to fill a batch
    # Message ids are kept this long for de-duplication (an agent's outbox keeps messages about as long);
    # past it, (school, agent, seq) against the stream's high-water mark and holes still catches a repeat.
    dedup_window: Duration = Field(30 * 86400.0, ge=60)
    # A hole in a school's seq is "open" (late data may still fill it) for this long, then "missing".
    reorder_timeout: Duration = 600.0
    sweep_every: Duration = Field(2.0, gt=0)                 # how often holes, late data and last-seen are updated
    keep_rejects: int = Field(10_000, ge=0)                  # invalid messages kept aside (newest), with the reason
    reject_bytes: ByteSize = Field(64 * 1024, ge=0)          # of each invalid payload, kept for a look
    rebirth_unknown: bool = True                             # ask a school for its birth when data comes without one


class Retention(Strict):
    raw: Duration = Field(14 * 86400.0, gt=0)                # raw samples, then downsampled into rollups
    rollup: Duration = Field(300.0, ge=1)                    # rollup bucket (min/max/sum/count; states counted)
    rollups: Duration = 0.0                                  # how long rollups are kept; 0 keeps them
    every: Duration = Field(3600.0, gt=0)                    # how often the receiver applies retention

    @model_validator(mode="after")
    def _order(self) -> Retention:
        if self.rollups and self.rollups < self.raw:
            raise ValueError("`rollups` (how long downsampled data is kept) must be 0 or at least `raw`")
        return self


class CityRules(Strict):
    # The one definition of online (views.state): a school is online when its agent's session is up and it was
    # heard from within this; every page, the API and `cloud judge` use it.
    offline_after: Duration = Field(3600.0, gt=0)
    # A school has broadband access when its agent reached the city cloud within this window.
    access_window: Duration = Field(7 * 86400.0, gt=0)
    timezone: str = "Asia/Shanghai"                          # the pages' times (IANA name); agents use CST too
    language: Literal["zh", "en"] = "zh"                     # the pages' default (?lang= and Accept-Language win)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from None
        return name


class CloudStandards(Strict):
    packs: list[str] = Field(default_factory=list)
    pack_dirs: list[Path] = Field(default_factory=list)
    overrides: dict[str, float] = Field(default_factory=dict)


class RosterSchool(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    city: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str | None = None
    type: SchoolType | None = None
    district: str | None = None


class WebUser(Strict):
    """One account of the page and API: a name (in the audit log), a role, and its token (never in the file)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Literal["viewer", "operator"]        # an operator may also send commands to schools
    token: Secret


class Serve(Strict):
    listen: str = "127.0.0.1:8080"
    # Who may read the page and the API (a token each, sent as `Authorization: Bearer`, or exchanged for a
    # session cookie at /login). Without users every request is refused: the city's data is not public.
    users: list[WebUser] = Field(default_factory=list)
    # Signs the session cookies; give every `cloud serve` behind one proxy the same key. Default: random per
    # process (a restart logs everyone out).
    session_key: Secret | None = None
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # Behind the bureau's reverse proxy: the path prefix it serves us under (e.g. /eduedge), and the proxy
    # addresses whose X-Forwarded-For/-Proto are believed.
    root_path: str = Field("", pattern=r"^(/[A-Za-z0-9_.~-]+)*$")
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1"])

    @field_validator("users")
    @classmethod
    def _names(cls, users: list[WebUser]) -> list[WebUser]:
        names = [u.name for u in users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"user listed twice: {', '.join(twice)}")
        return users

    @model_validator(mode="after")
    def _listen(self) -> Serve:
        split_host_port(self.listen, 8080)
        return self


class CloudConfig(Strict):
    mqtt: CloudMqtt
    storage: Storage
    ingest: Ingest = Ingest()
    retention: Retention = Retention()
    city: CityRules = CityRules()
    standards: CloudStandards = CloudStandards()
    schools: list[RosterSchool] = Field(default_factory=list)
    serve: Serve = Serve()

    @field_validator("schools")
    @classmethod
    def _roster(cls, schools: list[RosterSchool]) -> list[RosterSchool]:
        ids = [s.id for s in schools]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"listed twice: {', '.join(twice)}")
        return schools


def load_cloud_config(path: Path | str) -> CloudConfig:
    """Read and validate the cloud's configuration; raise `CloudConfigError` listing every problem.

    Relative paths (the SQLite file, secret files, pack directories) are taken from the file's directory.
    """
    doc, cfg = load_model(path, CloudConfig, CloudConfigError)
    base = Path(path).resolve().parent
    s = cfg.storage
    if s.path is not None:
        s.path = base / s.path
    for secret in (s.password, cfg.mqtt.password, cfg.serve.session_key, *(u.token for u in cfg.serve.users)):
        if secret is not None and secret.file is not None:
            secret.file = base / secret.file
    cfg.standards.pack_dirs = [base / d for d in cfg.standards.pack_dirs]
    problems = pack_problems(path, doc, cfg.standards.packs, cfg.standards.pack_dirs)
    if problems:
        raise CloudConfigError(path, problems)
    return cfg
