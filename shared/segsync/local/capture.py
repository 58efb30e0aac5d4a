"""A Segment-compatible capture endpoint on loopback: local mode and tests send here instead of Segment."""

from __future__ import annotations

import base64
import binascii
import random
import socket
import struct
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from segsync.errors import ConfigError

MAX_REQUEST_BYTES = 512_000
MAX_BATCH_MESSAGES = 2_500
SINGLE_TYPES = frozenset({"identify", "track", "group", "page", "screen", "alias"})
FAULT_WORDS = frozenset({"ok", "reset", "reset_after", "slow"})
RETRY_AFTER_STATUSES = frozenset({429, 503})
POLL_INTERVAL_S = 0.02


def _parse_sequence(value: str) -> list[int | str]:
    return [int(a) if a.isdigit() else a.lower() for a in (v.strip() for v in value.split(",")) if a]


_PLAN_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "seq": ("sequence", _parse_sequence),
    "rate": ("error_rate", float),
    "status": ("error_status", int),
    "seed": ("seed", int),
    "retry_after": ("retry_after", float),
    "slow": ("slow_seconds", float),
}


@dataclass
class FaultPlan:
    """Failures to inject, so senders can rehearse what Segment does on a bad day.

    Attributes:
        sequence: one action per request, in order: an int is a status answered without recording
            the request, ``"reset"`` drops the connection without a response, ``"reset_after"``
            records the batch then drops the connection (the acknowledgement is lost: a retry is a
            duplicate on the wire), ``"slow"`` sleeps ``slow_seconds`` then records and answers (to
            nobody, if the client gave up), ``"ok"`` answers normally. Then ``error_rate`` rules.
        error_rate: the chance that a request past the sequence gets ``error_status``.
        error_status: the status for ``error_rate`` and ``fail_if`` failures.
        seed: seeds the ``error_rate`` draws, so a failing run can be replayed exactly.
        retry_after: seconds sent as ``Retry-After`` on injected 429 and 503 answers.
        slow_seconds: how long a ``"slow"`` request sleeps; longer than the client's read timeout.
        reject_if: a predicate on one message; a request holding a match is answered 400, as
            Segment does for a batch with one bad message in it.
        fail_if: a predicate on one message; a request holding a match is answered ``error_status``
            (an outage that hits one chunk only, e.g. until its receives run out). Set it to None
            to end the outage.
    """

    sequence: list[int | str] = field(default_factory=list)
    error_rate: float = 0.0
    error_status: int = 500
    seed: int | None = None
    retry_after: float | None = None
    slow_seconds: float = 30.0
    reject_if: Callable[[dict[str, Any]], bool] | None = None
    fail_if: Callable[[dict[str, Any]], bool] | None = None

    def __post_init__(self) -> None:
        for action in self.sequence:
            if not (isinstance(action, int) and 100 <= action <= 599) and action not in FAULT_WORDS:
                raise ValueError(f"fault {action!r}: give an HTTP status or one of {sorted(FAULT_WORDS)}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error rate {self.error_rate} is not between 0 and 1")
        if not 100 <= self.error_status <= 599:
            raise ValueError(f"error status {self.error_status} is not an HTTP status")
        self._rng = random.Random(self.seed)
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Read a plan from a compact string a CLI flag can carry.

        Example: ``"seq=429,429,ok,reset;rate=0.2;status=503;retry_after=1;seed=7;slow=5"``.
        """
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or key not in _PLAN_KEYS:
                raise ValueError(f"fault plan part {part!r}: expected key=value with a key in {sorted(_PLAN_KEYS)}")
            name, convert = _PLAN_KEYS[key]
            try:
                fields[name] = convert(value)
            except ValueError as exc:
                raise ValueError(f"fault plan part {part!r}: {exc}") from exc
        return cls(**fields)

    def next_action(self) -> int | str:
        """The fault for the next request; thread-safe, as the server answers requests in parallel."""
        with self._lock:
            if self._next < len(self.sequence):
                self._next += 1
                return self.sequence[self._next - 1]
            if self.error_rate and self._rng.random() < self.error_rate:
                return self.error_status
            return "ok"


class _Rejected(Exception):
    """A request the endpoint answers with an error status instead of recording it."""

    def __init__(self, status: int, message: str, *, injected: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.injected = injected


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    capture: CaptureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and left is expected here (that is what "slow" rehearses);
        # anything else is a bug in the endpoint and must stay loud.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Segment does, so connection reuse is exercised
    timeout = 10  # close idle keep-alive connections so stop() leaves nothing behind for long
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and the local demo print their own summaries."""

    def do_POST(self) -> None:
        capture = self.server.capture
        capture.count_request()
        try:
            self._post(capture)
        finally:
            capture.request_done()

    def _post(self, capture: CaptureServer) -> None:
        path = self.path.split("?", 1)[0]
        kind = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or (kind != "batch" and kind not in SINGLE_TYPES):
            self._drain()
            self._answer(404, {"success": False, "message": "not found"})
            return
        raw = self._drain()
        action = capture.faults.next_action() if capture.faults else "ok"
        if action != "ok":
            capture.count_fault(str(action))
        if action == "reset":
            self._reset()
            return
        if isinstance(action, int):
            self._answer(action, {"success": False, "message": "injected fault"}, fault=True)
            return
        if action == "slow" and capture.stopping.wait(capture.faults.slow_seconds):
            self._reset()  # stop() came first: the answer would reach nobody
            return
        try:
            self._check_auth()
            body = self._decode(raw)
            messages, dropped = capture.accept(kind, body)
        except _Rejected as exc:
            self._answer(exc.status, {"success": False, "message": exc.message}, fault=exc.injected)
            return
        capture.record(messages, dropped)
        if action == "reset_after":
            self._reset()  # accepted and recorded, but the client never hears so
            return
        self._answer(200, {"success": True})

    def _drain(self) -> bytes | None:
        """Read the body so the connection stays usable; None when no Content-Length says how much."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            return None
        return self.rfile.read(int(length))

    def _check_auth(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        try:
            user = base64.b64decode(token, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if scheme.lower() != "basic" or not user:
            raise _Rejected(401, "missing or invalid write key (HTTP Basic, key as user name)")

    def _decode(self, raw: bytes | None) -> Any:
        if raw is None:
            raise _Rejected(411, "Content-Length required")
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            # Bounded inflate: a small gzip bomb must not exhaust memory before the size check.
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                raw = inflater.decompress(raw, MAX_REQUEST_BYTES + 1)
            except zlib.error as exc:
                raise _Rejected(400, "invalid gzip body") from exc
            if not inflater.eof and len(raw) <= MAX_REQUEST_BYTES:
                raise _Rejected(400, "truncated gzip body")
        if len(raw) > MAX_REQUEST_BYTES:
            raise _Rejected(400, f"request body over {MAX_REQUEST_BYTES} bytes")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Rejected(400, "invalid JSON") from exc

    def _answer(self, status: int, payload: dict[str, Any], *, fault: bool = False) -> None:
        capture = self.server.capture
        body = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if fault and status in RETRY_AFTER_STATUSES and capture.faults.retry_after is not None:
            self.send_header("Retry-After", f"{capture.faults.retry_after:g}")
        # Counted before the answer leaves: a client that reads the counters next must see this one.
        capture.count_status(status)
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP reset: the client sees a network error, not an answer.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class CaptureServer:
    """Answers like Segment's Tracking API and appends each accepted message to an NDJSON file.

    Mimics the documented behaviour senders must survive: 401 without a write key, 400 for invalid
    JSON or a body over 500 KB, and a 200 that silently drops a batch of more than 2,500 messages.
    The write key is checked for presence only and never recorded.

    Attributes:
        requests: requests received, faults included.
        messages: messages recorded (a message received twice counts twice).
        message_ids: how often each ``messageId`` was recorded; Segment keeps the first, drops the rest.
        dropped: messages answered 200 but not recorded, as Segment drops them.
        statuses: how often each HTTP status was answered (a reset answers none).
        faults_injected: how often each fault of the plan was injected (a status, ``reset``, ``slow``,
            ``reject_if``, ...).
    """

    def __init__(
        self, out_path: Path, *, host: str = "127.0.0.1", port: int = 0, faults: FaultPlan | None = None
    ) -> None:
        self.out_path = Path(out_path)
        self.host = host
        self.port = port
        self.faults = faults
        self.requests = 0
        self.messages = 0
        self.dropped = 0
        self.statuses: Counter[int] = Counter()
        self.message_ids: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API base to give a client, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the capture server is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> CaptureServer:
        """Bind and serve from a daemon thread; the output file is created (or appended to)."""
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.out_path.touch()
        self.stopping.clear()
        try:
            self._server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            raise ConfigError(f"capture endpoint cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self._server.capture = self
        # A short poll interval makes stop() quick: shutdown() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name="capture", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; "slow" requests in flight are cut short."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def distinct(self) -> int:
        """Distinct ``messageId``s recorded: what Segment keeps after deduplication."""
        with self._lock:
            return len(self.message_ids)

    @property
    def duplicates(self) -> int:
        """Messages recorded again under a ``messageId`` already seen: duplicates on the wire."""
        with self._lock:
            return sum(self.message_ids.values()) - len(self.message_ids)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered (a ``"slow"`` one records late); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1
            self._in_flight += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults_injected[kind] += 1

    def request_done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def count_status(self, status: int) -> None:
        with self._lock:
            self.statuses[status] += 1

    def accept(self, kind: str, body: Any) -> tuple[list[dict[str, Any]], int]:
        """Validate a decoded body; returns the messages to record and how many Segment would drop."""
        if not isinstance(body, dict):
            raise _Rejected(400, "the body must be a JSON object")
        if kind == "batch":
            batch = body.get("batch")
            if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
                raise _Rejected(400, "'batch' must be a list of objects")
            if len(batch) > MAX_BATCH_MESSAGES:
                return [], len(batch)
            messages = [{"sentAt": body["sentAt"], **m} if "sentAt" in body else m for m in batch]
        else:
            messages = [{"type": kind, **body}]
        if self.faults and self.faults.reject_if and any(map(self.faults.reject_if, messages)):
            self.count_fault("reject_if")
            raise _Rejected(400, "a message in the batch was rejected")
        fail_if = self.faults.fail_if if self.faults else None
        if fail_if is not None and any(map(fail_if, messages)):
            self.count_fault("fail_if")
            raise _Rejected(self.faults.error_status, "injected fault", injected=True)
        return messages, 0

    def record(self, messages: list[dict[str, Any]], dropped: int) -> None:
        """Append messages as NDJSON with Segment's ``receivedAt``; one writer at a time."""
        received_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = b"".join(orjson.dumps({**m, "receivedAt": received_at}) + b"\n" for m in messages)
        with self._lock:
            with self.out_path.open("ab") as out:
                out.write(lines)
            self.messages += len(messages)
            self.message_ids.update(str(m.get("messageId")) for m in messages)
            self.dropped += dropped


def read_captured(out_path: Path) -> list[dict[str, Any]]:
    """The messages a CaptureServer recorded, oldest first."""
    with Path(out_path).open("rb") as captured:
        return [orjson.loads(line) for line in captured if line.strip()]
