"""A real PostgreSQL server for the tests: Debian's binaries, a temporary cluster, a free loopback port.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` system user and
its commands run through ``runuser``. The cluster's defaults are chosen to trip session-dependent
SQL: its time zone is Los Angeles and its DateStyle day-first, so a key text that follows either fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password"
USER = "segsync"
PASSWORD = "segsync-password"
START_TIMEOUT_S = 60
INSTALL_HINT = (
    "the Postgres tests need PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb): "
    "`make test` installs them (apt-get install postgresql); or install them yourself"
)


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: where it listens and an admin's connection string."""

    host: str
    port: int
    directory: Path

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={ADMIN} password={ADMIN_PASSWORD} dbname={database}"

    def create_database(self, name: str) -> None:
        """A database owned by the admin, where ``segsync`` may create schemas (as an owner would grant)."""
        with psycopg.connect(self.admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
            admin.execute(f'GRANT CREATE, CONNECT ON DATABASE "{name}" TO {USER}')
        with psycopg.connect(self.admin_dsn(name), autocommit=True) as admin:
            admin.execute(f"GRANT ALL ON SCHEMA public TO {USER}")


def binaries() -> Path:
    """The newest installed server's bin directory; the test fails, saying how to install one, without it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_owner(command: list[str]) -> list[str]:
    """Run as the cluster's owner: ``postgres`` when we are root (initdb refuses root), else ourselves."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start() -> PostgresServer:
    """initdb a cluster in a temporary directory and start it on a free loopback port (``stop`` ends it)."""
    bin_dir = binaries()
    directory = Path(tempfile.mkdtemp(prefix="segsync-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, pwfile = directory / "data", directory / "pwfile"
    pwfile.write_text(ADMIN_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    _run(
        _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", ADMIN, f"--pwfile={pwfile}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"])
    )  # fmt: skip
    port = _free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(directory),
        # A throwaway cluster: durability buys nothing and costs the suite time.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "TimeZone": "America/Los_Angeles",
        "DateStyle": "SQL, DMY",
        "extra_float_digits": "0",
    }
    options = " ".join(f"-c {name}='{value}'" for name, value in settings.items())
    _run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-o", options,
                    "-w", "-t", str(START_TIMEOUT_S), "start"]))  # fmt: skip
    server = PostgresServer("127.0.0.1", port, directory)
    with psycopg.connect(server.admin_dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    return server


def stop(server: PostgresServer) -> None:
    bin_dir = binaries()
    subprocess.run(
        _as_owner([str(bin_dir / "pg_ctl"), "-D", str(server.directory / "data"), "-m", "immediate", "stop"]),
        capture_output=True,
        timeout=START_TIMEOUT_S,
    )
    shutil.rmtree(server.directory, ignore_errors=True)


def _run(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed: {completed.stderr.strip()[-2000:]}")
