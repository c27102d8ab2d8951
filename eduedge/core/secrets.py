"""Secrets (SNMP communities and keys, MQTT passwords) come from a file or an environment variable,
are read when used, and are never logged: an error names the secret and where it was looked for."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import model_validator

from eduedge.core.i18n import _
from eduedge.core.model import Strict


class Secret(Strict):
    """Where a secret comes from: a file (first line, stripped) or an environment variable."""

    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Secret:
        if (self.file is None) == (self.env is None):
            raise ValueError(_("give exactly one of `file` or `env`"))
        return self

    def read(self, what: str) -> str:
        """The secret's value; `what` names it in the error (never the value)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                # "what: " stays as it is: preflight takes what follows as the problem of the field
                raise SecretError(f"{what}: " + _("environment variable {env} is not set").format(env=self.env))
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as e:
            reason = getattr(e, "strerror", None) or _("file is empty")
            raise SecretError(f"{what}: " + _("cannot read secret file {file}: {reason}").format(
                file=self.file, reason=reason)) from None


class SecretError(Exception):
    pass
