"""What `eduedge run` needs before it starts, checked without starting it: `config check` and `run` both call it.

The configuration model checks shapes and ranges; these are the checks that look at the box itself. Each
problem is one printable line naming the file, line and field:

- every secret (MQTT password, SNMP communities and keys, the pseudonym key) can be read: its file exists
  and is readable and not empty, its environment variable is set;
- the MQTT TLS files exist and load (the CA as a CA bundle, the client certificate with its key);
- `outbox.max_bytes` holds the messages `mqtt.max_message_bytes` allows (agent/outbox.py's minimum);
- `mqtt.keepalive` is at least MIN_KEEPALIVE_S (0 would turn keep-alive off: a dead broker then goes
  unnoticed until the ack timeout);
- the data directory (and the outbox's) can be created and written.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from eduedge.agent.config import AgentConfig
from eduedge.agent.outbox import min_budget
from eduedge.core.i18n import _
from eduedge.core.secrets import Secret, SecretError
from eduedge.core.yamlfile import Loc, YamlFileError, dotted, load_yaml

MIN_KEEPALIVE_S = 5.0


def secrets_of(model: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Secret]]:
    """Every `Secret` in a configuration, with where it sits."""
    if isinstance(model, Secret):
        yield loc, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from secrets_of(getattr(model, name), (*loc, name))
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            yield from secrets_of(item, (*loc, i))
    elif isinstance(model, dict):
        for k, v in model.items():
            yield from secrets_of(v, (*loc, str(k)))


def _writable_dir(d: Path) -> str | None:
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return _("{dir} is not a directory").format(dir=probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        return _("{dir} is not writable").format(dir=probe)
    return None


def problems(cfg: AgentConfig, path: Path) -> list[str]:
    """Why `eduedge run` with the configuration at `path` (already loaded as `cfg`) would fail; empty if it would
    start."""
    try:
        doc = load_yaml(path)
        line_of = doc.line_of
    except YamlFileError:
        def line_of(loc: Loc) -> int | None:
            return None
    out: list[str] = []

    def say(loc: Loc, msg: str) -> None:
        line = line_of(loc)
        out.append(f"{path}:{line}: {dotted(loc)}: {msg}" if line else f"{path}: {dotted(loc)}: {msg}")

    for loc, secret in secrets_of(cfg):
        try:
            secret.read(dotted(loc))
        except SecretError as e:
            say(loc, str(e).split(": ", 1)[-1])
    mq = cfg.mqtt
    if mq is not None:
        if mq.keepalive < MIN_KEEPALIVE_S:
            say(("mqtt", "keepalive"), _("{seconds} s is too short: at least {least} s (0 would turn keep-alive off, "
                                         "and a dead broker would go unnoticed)").format(
                seconds=f"{mq.keepalive:g}", least=f"{MIN_KEEPALIVE_S:g}"))
        tls = mq.tls
        if tls is not None:
            for name in ("ca_file", "cert_file", "key_file"):
                f = getattr(tls, name)
                if f is not None and not os.access(f, os.R_OK):
                    say(("mqtt", "tls", name), _("cannot read {file}: {reason}").format(
                        file=f, reason=_("no such file") if not f.exists() else _("permission denied")))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if tls.ca_file is not None and os.access(tls.ca_file, os.R_OK):
                try:
                    ctx.load_verify_locations(cafile=str(tls.ca_file))
                except (ssl.SSLError, OSError, ValueError) as e:
                    say(("mqtt", "tls", "ca_file"), _("{file} is not a CA certificate file (PEM): {error}").format(
                        file=tls.ca_file, error=e))
            if tls.cert_file is not None and tls.key_file is not None and all(
                    os.access(f, os.R_OK) for f in (tls.cert_file, tls.key_file)):
                try:
                    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
                except (ssl.SSLError, OSError, ValueError) as e:
                    say(("mqtt", "tls", "cert_file"), _("{cert} with {key} does not load as a certificate and its "
                                                        "key: {error}").format(cert=tls.cert_file, key=tls.key_file,
                                                                               error=e))
    limit = min_budget(mq.max_message_bytes if mq is not None else 256 * 1024)
    if cfg.outbox.max_bytes < limit:
        say(("outbox", "max_bytes"), _("{bytes} bytes cannot hold messages of mqtt.max_message_bytes ({message}): at "
                                       "least {least}").format(bytes=cfg.outbox.max_bytes, least=limit,
                                                               message=mq.max_message_bytes if mq else 256 * 1024))
    for loc, d in ((("agent", "data_dir"), cfg.agent.data_dir),
                   (("outbox", "path"), cfg.outbox.path.parent if cfg.outbox.path else None)):
        if d is not None and (why := _writable_dir(Path(d))):
            say(loc, why)
    return out
