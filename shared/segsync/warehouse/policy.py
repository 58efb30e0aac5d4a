"""Where the planner may send warehouse credentials and which it may read: its deployment decides, never a sync item.

A warehouse connection item names both where its credential is read from and where it is sent (an
account, a host, an API endpoint), and anyone who may edit the syncs table can write one. Without this
check such an item could make the planner send its own AWS secret key, or any warehouse password it can
read, to a host of their choice. So credentials come only from ``SEGSYNC_WAREHOUSE_*`` variables or
secrets under the planner's prefix, and go only to the vendors' own hosts or hosts the deployment lists.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from segsync.config import (
    SNOWFLAKE_ACCOUNT,
    WAREHOUSE_ENV_PREFIX,
    AnyWarehouseConnection,
    BigQueryConnection,
    DatabricksConnection,
    PostgresConnection,
    Project,
    RedshiftConnection,
    SecretRef,
    SnowflakeConnection,
)
from segsync.endpoints import DEFAULT_PORTS, ApiBase, netloc
from segsync.errors import PolicyError

DEFAULT_SECRETS_PREFIX = "segsync/warehouse/"
"""The template's default WarehouseSecretsPrefix."""
POSTGRES = "postgresql"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\\/@?#,]")
VENDOR_HOSTS = {
    "snowflake": ("Snowflake's", re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.snowflakecomputing\.(com|cn)$")),
    "databricks": (
        "Databricks'",
        re.compile(
            r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.(cloud\.databricks\.com|gcp\.databricks\.com|azuredatabricks\.net"
            r"|cloud\.databricks\.us|databricks\.azure\.us|databricks\.azure\.cn)$"
        ),
    ),
    "bigquery": ("Google's", re.compile(r"^bigquery\.googleapis\.com$")),
    "redshift": ("AWS's", re.compile(r"^redshift-data(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")),
}
"""Each vendor's own API hosts (HTTPS on 443 only): its workspaces and accounts live under domains it controls."""
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>.+)$")


@dataclass(frozen=True)
class Address:
    """Where an adapter sends a connection's credentials: scheme (http, https, postgresql), host and port."""

    scheme: str
    host: str
    port: int

    @property
    def base(self) -> str:
        """The address as a URL base an HTTP client is given (the default port left out)."""
        port = None if DEFAULT_PORTS.get(self.scheme) == self.port else self.port
        return f"{self.scheme}://{netloc(self.host, port)}"

    def __str__(self) -> str:
        return netloc(self.host, self.port) if self.scheme == POSTGRES else self.base


def address(connection: AnyWarehouseConnection) -> Address | None:
    """Where ``connection``'s adapter connects, as the adapter will use it; None: no host it names.

    None is a DuckDB file (no credentials), or Redshift's and BigQuery's SDK default endpoint (AWS's own,
    Google's own). The adapters take the address from here, so the one checked is the one connected to.

    Raises:
        ValueError: the connection names its host in a form that could be read two ways (the reason).
    """
    if isinstance(connection, SnowflakeConnection):
        if connection.host is not None:
            return _http_host(connection.host, "host")
        if not re.fullmatch(SNOWFLAKE_ACCOUNT, connection.account):
            raise ValueError(f"account '{connection.account}' is not a Snowflake account identifier")
        # As the connector names the host from the account: a region starting cn- is in Snowflake's China domain.
        labels = connection.account.lower().split(".")
        domain = "cn" if len(labels) > 1 and labels[1].startswith("cn-") else "com"
        return Address("https", f"{'.'.join(labels)}.snowflakecomputing.{domain}", 443)
    if isinstance(connection, PostgresConnection):
        return Address(POSTGRES, _host(connection.host, "host"), connection.port)
    if isinstance(connection, RedshiftConnection):
        return _http_host(connection.endpoint_url, "endpoint_url") if connection.endpoint_url else None
    if isinstance(connection, BigQueryConnection):
        return _http_host(connection.api_endpoint, "api_endpoint") if connection.api_endpoint else None
    if isinstance(connection, DatabricksConnection):
        hostname = connection.server_hostname
        url = hostname if hostname.startswith(("http://", "https://")) else f"https://{hostname}"
        return _http_host(url, "server_hostname")
    return None


def _http_host(url: str, field: str) -> Address:
    try:
        base = ApiBase.parse(url)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    if base.path:
        raise ValueError(f"{field}: '{url}' has a path; give the host (and port) only")
    return Address(base.scheme, _host(base.host, field), base.port)


def _host(text: str, field: str) -> str:
    """A single host name or IP address, lower-cased: never a list, a socket path or anything with a user."""
    host = text.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _UNSAFE.search(text) or not _HOSTNAME.match(host):
        raise ValueError(f"{field}: '{text}' is not a single host name or IP address")
    return host


@dataclass(frozen=True)
class AllowedHost:
    """One ``WAREHOUSE_ALLOWED_HOSTS`` entry: a host, on any port, or ``host:port``."""

    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> AllowedHost:
        """``db.internal``, ``db.internal:5432``, ``10.0.0.7``, ``[fd00::7]:5432``.

        Raises:
            ValueError: with the reason, for people.
        """
        if _UNSAFE.search(text):
            raise ValueError(f"'{text}' is not host or host:port (no scheme, path, user or spaces)")
        parts = urlsplit(f"//{text}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"'{text}' has an invalid port") from None
        if not parts.hostname:
            raise ValueError(f"'{text}' names no host")
        return cls(_host(parts.hostname, "host"), port)

    def covers(self, where: Address) -> bool:
        return where.host == self.host and self.port in (None, where.port)

    def __str__(self) -> str:
        return netloc(self.host, self.port)


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """``WAREHOUSE_ALLOWED_HOSTS``: comma-separated ``host`` or ``host:port`` entries, each checked.

    Raises:
        ValueError: an entry is not a host or host:port.
    """
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    for entry in entries:
        AllowedHost.parse(entry)
    return entries


def project_hosts(project: Project) -> list[str]:
    """The hosts a project file's warehouse connections name: a local command may connect there.

    A project file given to a local command is the user's own, on their own machine, as are the
    credentials it names; the rules on where credentials come from still hold.
    """
    hosts = set()
    for connection in project.connections.values():
        try:
            where = address(connection)
        except ValueError:
            continue  # refused with its reason when a command connects
        if where is not None:
            hosts.add(str(AllowedHost(where.host, where.port)))
    return sorted(hosts)


@dataclass(frozen=True)
class WarehousePolicy:
    """The hosts the planner may send warehouse credentials to, and the secret prefix they must live under.

    Each vendor's own hosts (HTTPS) are always allowed; ``extra`` adds the deployment's own (a
    PostgreSQL server, a private endpoint, a local emulator).
    """

    allowed: tuple[AllowedHost, ...]
    secrets_prefix: str

    @classmethod
    def of(cls, extra: Iterable[str] = (), secrets_prefix: str = DEFAULT_SECRETS_PREFIX) -> WarehousePolicy:
        return cls(tuple(dict.fromkeys(AllowedHost.parse(entry) for entry in extra)), secrets_prefix)

    @classmethod
    def for_project(cls, project: Project) -> WarehousePolicy:
        """A local command's policy: the hosts its project file names (see ``project_hosts``), the default prefix."""
        return cls.of(project_hosts(project))

    def check(self, sync: str, name: str, connection: AnyWarehouseConnection) -> None:
        """Refuse a sync's source connection before any secret is read or any connection made.

        Raises:
            PolicyError: one line naming the sync, the connection and why: the host is neither the
                vendor's nor listed, or the credential would come from somewhere a warehouse credential
                may not (an environment variable not starting with SEGSYNC_WAREHOUSE_, a secret outside
                the planner's prefix). Names where, never a value.
        """
        try:
            self._check_destination(connection)
            self._check_credentials(connection)
        except (PolicyError, ValueError) as exc:
            raise PolicyError(f"sync '{sync}': connection '{name}' refused: {exc}") from None

    def _check_destination(self, connection: AnyWarehouseConnection) -> None:
        where = address(connection)
        if where is None:
            return
        vendor = VENDOR_HOSTS.get(connection.type)
        if vendor and (where.scheme, where.port) == ("https", 443) and vendor[1].match(where.host):
            return
        if any(allowed.covers(where) for allowed in self.allowed):
            return
        own = f"{vendor[0]} own hosts over HTTPS and " if vendor else ""
        listed = ", ".join(map(str, self.allowed)) or "none listed"
        raise PolicyError(
            f"the planner may not send {connection.type} credentials to {where} (it connects to {own}the "
            f"hosts in WAREHOUSE_ALLOWED_HOSTS: {listed})"
        )

    def _check_credentials(self, connection: AnyWarehouseConnection) -> None:
        ref: Any = getattr(connection, "credentials", None)
        if isinstance(ref, SecretRef):
            if ref.env is not None and not ref.env.startswith(WAREHOUSE_ENV_PREFIX):
                raise PolicyError(
                    f"warehouse credentials may come from an environment variable starting with "
                    f"{WAREHOUSE_ENV_PREFIX}, not from {ref.env}"
                )
            if ref.secret is not None:
                self._check_secret(ref.secret, "the credentials' secret")
        if isinstance(connection, RedshiftConnection) and connection.secret_arn is not None:
            match = SECRET_ARN.match(connection.secret_arn)
            if match is None:
                raise PolicyError(f"secret_arn '{connection.secret_arn}' is not a Secrets Manager secret's ARN")
            self._check_secret(match["name"], "secret_arn's secret")

    def _check_secret(self, secret: str, what: str) -> None:
        if not secret.startswith(self.secrets_prefix):
            raise PolicyError(f"{what} '{secret}' is not under the planner's prefix '{self.secrets_prefix}'")
