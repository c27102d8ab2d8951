"""A throw-away PostgreSQL of its own, for the tests and bench/cloud_ingest.py (and to try the cloud on it).

`start_postgres()` runs Debian's `initdb` into a private directory and `pg_ctl start` on a free loopback
port (never the machine's own service on 5432), trust authentication on 127.0.0.1 only, and returns a
`PgServer` whose `dsn` the cloud's `storage.dsn` takes. As root, PostgreSQL refuses to run, so the
directory is given to the `postgres` user and the binaries run as that user. `close()` stops it
(`pg_ctl stop -m immediate`) and removes the directory.

By hand, the same thing:

    mkdir /tmp/pg && chown postgres /tmp/pg
    runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /tmp/pg/data -U postgres --auth=trust
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pg/data -l /tmp/pg/log -w start \\
        -o "-c listen_addresses=127.0.0.1 -c port=55432 -c unix_socket_directories=/tmp/pg"
    # storage: {engine: postgresql, dsn: "host=127.0.0.1 port=55432 dbname=postgres user=postgres"}
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eduedge.core.netaddr import free_tcp_port


def pg_bin() -> Path:
    """The directory of Debian's PostgreSQL server binaries (the newest installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are not installed (scripts/install-system-deps "
                           "installs Debian's `postgresql`)")
    return Path(found[-1]).parent


@dataclass
class PgServer:
    workdir: Path
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres connect_timeout=10"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def close(self) -> None:
        self._run(str(pg_bin() / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_postgres(fsync: bool = True) -> PgServer:
    """initdb + pg_ctl start on a free loopback port; `fsync=False` only for throw-away benchmarks of CPU cost."""
    bin_dir = pg_bin()
    workdir = Path(tempfile.mkdtemp(prefix="eduedge-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        pw = pwd.getpwnam(user)
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
    server = PgServer(workdir, free_tcp_port(), user)
    init = server._run(str(bin_dir / "initdb"), "-D", str(workdir / "data"), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--no-locale")
    if init.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    opts = (f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={workdir} "
            f"-c fsync={'on' if fsync else 'off'} -c max_connections=50 -c shared_buffers=128MB")
    start = server._run(str(bin_dir / "pg_ctl"), "-D", str(workdir / "data"), "-l", str(workdir / "log"), "-w",
                        "-t", "60", "-o", opts, "start", timeout=90)
    if start.returncode != 0:
        log = (workdir / "log").read_text(errors="replace")[-2000:] if (workdir / "log").exists() else ""
        server.close()
        raise RuntimeError(f"PostgreSQL did not start: {start.stderr[-1000:]}\n{log}")
    return server
