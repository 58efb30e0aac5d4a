"""Where the sender may post and which write keys it may read: its deployment decides, never a chunk.

A chunk carries its destination (API base and where the write key lives), and anyone who may edit a
sync item or send to the queue can write one. Without this check such a chunk could make the sender
post its own AWS secret key, or any write key it can read, as Basic auth to a host of their choice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from segsync.config import SEGMENT_HOSTS, WRITE_KEY_ENV_PREFIX, SecretRef, SegmentConnection, parse_connection
from segsync.errors import PolicyError

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_SECRETS_PREFIX = "segsync/segment/"
"""The template's default SegmentSecretsPrefix."""
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class ApiBase:
    """An API base reduced to what decides where a request goes: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> ApiBase:
        """Normalise ``url``; refuse anything but a plain http(s) base (no credentials, query or fragment).

        Raises:
            ValueError: with the reason, for people.
        """
        if _UNSAFE.search(url):
            raise ValueError(f"'{url}' holds whitespace, a control character or a backslash")
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"'{url}' is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"'{url}' carries credentials")
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            raise ValueError(f"'{url}' has a query or fragment; an API base has neither")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"'{url}' has an invalid port") from None
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise ValueError(f"'{url}' names no host")
        return cls(parts.scheme, host, port, parts.path.rstrip("/"))

    def covers(self, other: ApiBase) -> bool:
        """Whether requests under ``other`` go where this base allows: same origin, path at or below its path."""
        same_origin = (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)
        return same_origin and (other.path == self.path or other.path.startswith(self.path + "/"))

    def __str__(self) -> str:
        port = None if DEFAULT_PORTS[self.scheme] == self.port else self.port
        return f"{self.scheme}://{netloc(self.host, port)}{self.path}"


def netloc(host: str, port: int | None = None) -> str:
    """``host`` and ``port`` as a URL or a ``host:port`` entry writes them: an IPv6 address in brackets."""
    name = f"[{host}]" if ":" in host else host
    return name if port is None else f"{name}:{port}"


def parse_allowed(text: str) -> tuple[str, ...]:
    """``SEGMENT_ALLOWED_ENDPOINTS``: comma-separated API bases, each checked; empty entries ignored.

    Raises:
        ValueError: an entry is not a plain http(s) API base.
    """
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    for entry in entries:
        ApiBase.parse(entry)
    return entries


@dataclass(frozen=True)
class SenderPolicy:
    """The API bases the sender may post to and the secret prefix its write keys must live under.

    Segment's own API hosts (HTTPS) are always allowed; ``extra`` adds the deployment's own (a proxy,
    or a local capture endpoint).
    """

    allowed: tuple[ApiBase, ...]
    secrets_prefix: str

    @classmethod
    def of(cls, extra: Iterable[str] = (), secrets_prefix: str = DEFAULT_SECRETS_PREFIX) -> SenderPolicy:
        bases = [*SEGMENT_HOSTS.values(), *extra]
        return cls(tuple(dict.fromkeys(ApiBase.parse(base) for base in bases)), secrets_prefix)

    def destination(self, data: dict[str, Any]) -> SegmentConnection:
        """A chunk's destination, validated and checked (see ``check``).

        Raises:
            ConfigError: it is not a valid Segment connection.
            PolicyError: see ``check``.
        """
        destination = parse_connection("destination", data)
        if not isinstance(destination, SegmentConnection):
            raise PolicyError(
                f"destination refused: a chunk's destination must be a segment connection, not {destination.type}"
            )
        self.check(destination)
        return destination

    def check(self, destination: SegmentConnection) -> None:
        """Refuse a destination before any secret is read or any request made.

        Raises:
            PolicyError: the API base is not allowed, or the write key would come from somewhere a
                write key may not (an environment variable not starting with SEGMENT_, or a secret
                outside the sender's prefix). Names where, never a value.
        """
        try:
            base = ApiBase.parse(destination.api_base)
        except ValueError as exc:
            raise PolicyError(f"destination refused: {exc}") from None
        if not any(allowed.covers(base) for allowed in self.allowed):
            raise PolicyError(
                f"destination refused: the sender may not post to {base} (it posts to Segment's API hosts "
                f"and to SEGMENT_ALLOWED_ENDPOINTS: {', '.join(map(str, self.allowed))})"
            )
        self._check_write_key(destination.write_key)

    def _check_write_key(self, ref: SecretRef) -> None:
        if ref.env is not None and not ref.env.startswith(WRITE_KEY_ENV_PREFIX):
            raise PolicyError(
                f"destination refused: a write key may come from an environment variable starting with "
                f"{WRITE_KEY_ENV_PREFIX}, not from {ref.env}"
            )
        if ref.secret is not None and not ref.secret.startswith(self.secrets_prefix):
            raise PolicyError(
                f"destination refused: the write key's secret '{ref.secret}' is not under the sender's "
                f"prefix '{self.secrets_prefix}'"
            )
