"""Small HTTP services on loopback that tests talk to for real: a Slack-compatible webhook, dbt Cloud's API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Route = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]
"""(path with query, headers, body) → (status, body)."""


@dataclass
class Recorded:
    """A request as the service received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Service:
    """A running loopback service: where it listens and what it received."""

    url: str
    received: list[Recorded] = field(default_factory=list)


@contextmanager
def serve(route: Route, delay_s: float = 0.0) -> Iterator[Service]:
    """Serve ``route`` on 127.0.0.1 (a free port) until the block ends; ``delay_s`` before each answer."""
    service = Service(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                service.received.append(Recorded(self.command, self.path, headers, body))
            time.sleep(delay_s)
            status, answer = route(self.path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting, as a timeout should

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def slack_ok(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """Slack's incoming webhooks answer 200 "ok" to a JSON body with text."""
    return (200, b"ok") if "text" in orjson.loads(body) else (400, b"no_text")
