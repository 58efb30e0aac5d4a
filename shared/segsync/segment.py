"""Segment HTTP client: batching, gzip, retries and time budgets; the only code that talks to Segment."""

from __future__ import annotations

import base64
import gzip
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import requests

from segsync.errors import DeliveryError, SegsyncError

MAX_MESSAGE_BYTES = 32_768
MAX_BATCH_BYTES = 475_000
MAX_BATCH_MESSAGES = 2_500

BATCH_PATH = "/v1/batch"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 300.0
DEFAULT_MAX_RETRIES = 10
DETAIL_CHARS = 200

RETRYABLE_4XX = frozenset({408, 410, 429, 460})
NOT_RETRYABLE_5XX = frozenset({501, 505})
# Only these say "something in this batch is wrong" (bisect it); 401/403/404 mean a wrong write key or
# URL, which no split of the batch can fix: the chunk fails whole and the queue keeps it.
CONTENT_REJECTED = frozenset({400, 413, 422})
# A wrong or rotated write key: worth one more try with the key read again, never more.
AUTH_FAILED = frozenset({401, 403})
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

_BODY_HEAD = b'{"batch":['
_BODY_SENT_AT = b'],"sentAt":"'
_BODY_TAIL = b'"}'
_SENT_AT_CHARS = len("2026-11-29T01:02:03.456+00:00")
# Everything in a request body except the messages and the commas between them.
ENVELOPE_BYTES = len(_BODY_HEAD) + len(_BODY_SENT_AT) + _SENT_AT_CHARS + len(_BODY_TAIL)


def pack(messages: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Group serialized messages into batches whose real request body fits Segment's limits.

    Streams: one batch is held at a time. The body is counted byte for byte as ``send`` builds it
    (envelope, commas and ``sentAt``), so a full batch is never rejected for size.

    Raises:
        ValueError: a message is over MAX_MESSAGE_BYTES; callers validate first, so this is a bug.
            Batches before it have already been yielded.
    """
    batch: list[bytes] = []
    size = ENVELOPE_BYTES
    for message in messages:
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message of {len(message)} bytes is over Segment's {MAX_MESSAGE_BYTES}-byte limit")
        comma = 1 if batch else 0
        if batch and (size + comma + len(message) > MAX_BATCH_BYTES or len(batch) >= MAX_BATCH_MESSAGES):
            yield batch
            batch, size, comma = [], ENVELOPE_BYTES, 0
        batch.append(message)
        size += comma + len(message)
    if batch:
        yield batch


def batch_body(messages: Sequence[bytes], sent_at: str) -> bytes:
    """The uncompressed ``/v1/batch`` body, assembled from pre-serialized messages without re-encoding."""
    return b"".join((_BODY_HEAD, b",".join(messages), _BODY_SENT_AT, sent_at.encode(), _BODY_TAIL))


def utc_now_iso() -> str:
    """Now as Segment's ``sentAt``: UTC, milliseconds, ``+00:00`` (a fixed width ``pack`` relies on)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@cache
def user_agent() -> str:
    """``segsync/<version>``; a Lambda layer may ship the code without package metadata."""
    try:
        return f"segsync/{version('segsync')}"
    except PackageNotFoundError:
        return "segsync/unknown"


class BatchRejected(SegsyncError):
    """Segment refused a batch with a 4xx that retrying cannot fix; bisect to find the bad message.

    Attributes:
        status: the HTTP status.
        detail: the start of Segment's response text, never the request body.
    """

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"Segment rejected the batch with HTTP {status}: {detail}")


@dataclass
class SendResult:
    """How a delivered batch went, for metrics and logs.

    Attributes:
        attempts: requests made, the successful one included.
        retries: attempts minus one.
        bytes_sent: gzip-compressed size of the body that succeeded.
        status: the 2xx status Segment answered.
        waited_s: total time slept between attempts.
    """

    attempts: int
    retries: int
    bytes_sent: int
    status: int
    waited_s: float


def is_retryable(status: int) -> bool:
    """The official library's rule: a later attempt may succeed for these statuses."""
    return status in RETRYABLE_4XX or (500 <= status < 600 and status not in NOT_RETRYABLE_5XX)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, capped; None when absent or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


class SegmentClient:
    """Posts batches to ``/v1/batch`` synchronously, so a failure reaches the caller to be reported.

    One ``requests.Session`` is reused for connection keep-alive; like it, a client is not meant to
    be shared between threads. Time is injected (``sleep``, ``clock``, ``rng``) so tests run instantly.
    """

    def __init__(
        self,
        api_base: str,
        write_key: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        gzip_level: int = 1,
        max_retries: int = DEFAULT_MAX_RETRIES,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_throttle: Callable[[float], None] | None = None,
        refresh_key: Callable[[], str] | None = None,
    ) -> None:
        if not write_key:
            raise ValueError("a Segment write key is required")
        self.api_base = api_base.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.gzip_level = gzip_level
        self.max_retries = max_retries
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._on_throttle = on_throttle
        self._refresh_key = refresh_key
        self._headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": user_agent()}
        self._use_key(write_key)

    def _use_key(self, write_key: str) -> None:
        self._write_key = write_key
        self._token = base64.b64encode(f"{write_key}:".encode()).decode()
        self._headers["Authorization"] = f"Basic {self._token}"

    def _rotated(self) -> bool:
        """Read the write key again; whether it changed (then the next attempt uses it)."""
        if self._refresh_key is None:
            return False
        key = self._refresh_key()
        if not key or key == self._write_key:
            return False
        self._use_key(key)
        return True

    def __repr__(self) -> str:
        return f"SegmentClient(api_base={self.api_base!r})"

    def __enter__(self) -> SegmentClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool, unless the session was lent by the caller."""
        if self._owns_session:
            self._session.close()

    def backoff(self, retry: int) -> float:
        """Full-jitter exponential backoff: spreads retries of many senders over the whole window."""
        return self._rng() * min(BACKOFF_BASE_S * 2**retry, BACKOFF_CAP_S)

    def send(self, messages: Sequence[bytes], deadline: float) -> SendResult:
        """Deliver one batch (from ``pack``), retrying what the official library retries.

        Args:
            messages: serialized messages that fit one batch.
            deadline: a ``clock()`` value. No wait is started that would reach it, and request timeouts
                are cut to the time left, so a Lambda can hand unsent work back to SQS in time.

        Raises:
            BatchRejected: a 4xx other than 408/410/429/460; something in the batch is wrong.
            DeliveryError: retries or the time budget ran out, or Segment answered 501/505/3xx.
        """
        url = self.api_base + BATCH_PATH
        attempts = 0
        waited = 0.0
        refreshed = False
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DeliveryError(f"Segment batch not delivered: time budget spent after {attempts} attempt(s)")
            # sentAt must be the real send time of this attempt: Segment corrects clock skew with it.
            body = gzip.compress(batch_body(messages, utc_now_iso()), compresslevel=self.gzip_level)
            attempts += 1
            status = None
            retry_after = None
            try:
                response = self._session.post(
                    url,
                    data=body,
                    headers=self._headers,
                    timeout=(min(self.connect_timeout, remaining), min(self.read_timeout, remaining)),
                    allow_redirects=False,
                )
            except NETWORK_ERRORS as exc:
                failure = type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return SendResult(attempts, attempts - 1, len(body), status, waited)
                if status in AUTH_FAILED and not refreshed:
                    refreshed = True
                    if self._rotated():
                        continue
                if not is_retryable(status):
                    if status in CONTENT_REJECTED:
                        raise BatchRejected(status, self._detail(response))
                    raise DeliveryError(f"Segment answered HTTP {status} after {attempts} attempt(s)")
                failure = f"HTTP {status}"
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempts > self.max_retries:
                raise DeliveryError(f"Segment batch not delivered after {attempts} attempt(s): last failure {failure}")
            wait = retry_after if retry_after is not None else self.backoff(attempts - 1)
            if status == 429 and self._on_throttle is not None:
                self._on_throttle(wait)
            # A wait ending at the deadline would leave no time for the request it waits for.
            if self._clock() + wait >= deadline:
                raise DeliveryError(
                    f"Segment batch not delivered after {attempts} attempt(s): last failure {failure}; "
                    f"the next wait of {wait:.1f}s would pass the time budget"
                )
            self._sleep(wait)
            waited += wait

    def _detail(self, response: requests.Response) -> str:
        """The start of the response text, with the key (plain or encoded) masked should it be echoed."""
        text = response.text.replace(self._write_key, "***").replace(self._token, "***")
        return text[:DETAIL_CHARS]
