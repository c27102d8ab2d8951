"""systemd's service notification (sd_notify) for `Type=notify`: ready, reloading, stopping, and the watchdog.

The watchdog is fed from the daemon's main loop, every half of `WatchdogSec` (systemd passes it as
`WATCHDOG_USEC`), and only while the loop runs and the MQTT link's thread is alive: a hung main loop or a dead
link thread stops the pings, and systemd restarts the agent. Outside systemd (no `NOTIFY_SOCKET`) every call
does nothing.
"""

from __future__ import annotations

import os
import time

from sdnotify import SystemdNotifier


class Notifier:
    def __init__(self) -> None:
        self._n = SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._next = 0.0

    def _send(self, state: str) -> None:
        if self._n is not None:
            self._n.notify(state)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def feed(self, healthy: bool) -> None:
        """Called every round of the main loop: a ping when one is due and the agent is healthy."""
        if self.every is None or not healthy:
            return
        now = time.monotonic()
        if now >= self._next:
            self._send("WATCHDOG=1")
            self._next = now + self.every
