"""BigQuery for the tests: bqemulator on a free loopback port, and Google's sign-in played on loopback.

The adapter signs in as a service account for real: google-auth signs a JWT with the key's private key
and exchanges it at the key's ``token_uri`` for an access token. Here that URI is a loopback endpoint
that checks the JWT's signature against the key's public half and answers as Google's token endpoint
does (an access token, or ``invalid_grant``); bqemulator then serves BigQuery's REST API (it ignores
the token).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-bq" / "bin" / "python"
LAUNCHER = ROOT / "tests" / "emulators" / "bigquery.py"
PROJECT = "segsync-test"
START_TIMEOUT_S = 60
SERVICE_ACCOUNT = f"segsync@{PROJECT}.iam.gserviceaccount.com"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience google-auth signs its grants for, whatever the key's token_uri (Google checks it)."""


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(log: Path) -> Emulator:
    """bqemulator in its own virtualenv (``make test`` creates it), answering on loopback."""
    if not PYTHON.exists():
        raise RuntimeError(f"the BigQuery tests need bqemulator in {PYTHON.parent.parent}: `make test` creates it")
    rest, grpc = _free_port(), _free_port()
    process = subprocess.Popen(
        [str(PYTHON), str(LAUNCHER), "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
         "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--project", PROJECT, "--log-level", "warning"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{rest}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bqemulator exited: {log.read_text()[-2000:]}")
        try:
            requests.get(f"{url}/bigquery/v2/projects/{PROJECT}/datasets", timeout=1)
            return Emulator(url, process, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"bqemulator did not answer within {START_TIMEOUT_S} s")


def stop(emulator: Emulator) -> None:
    emulator.process.terminate()
    try:
        emulator.process.wait(10)
    except subprocess.TimeoutExpired:
        emulator.process.kill()


class TokenEndpoint:
    """Google's OAuth token endpoint for one service account key: a JWT grant signed by it gets a token."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.grants: list[dict[str, Any]] = []
        handler = type("Handler", (_TokenHandler,), {"endpoint": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/token"
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()

    def service_account(self, key: rsa.RSAPrivateKey | None = None) -> str:
        """A service account's JSON key, as the console downloads it, its token_uri this endpoint."""
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return json.dumps({"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
                           "private_key": pem.decode(), "client_email": SERVICE_ACCOUNT, "client_id": "1",
                           "token_uri": self.url})  # fmt: skip

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answer(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        try:
            claims = jwt.decode(form["assertion"][0], self.key.public_key(), algorithms=["RS256"],
                                audience=GOOGLE_TOKEN_AUDIENCE)  # fmt: skip
        except (KeyError, jwt.InvalidTokenError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        self.grants.append(claims)
        return 200, {"access_token": "emulator-token", "expires_in": 3600, "token_type": "Bearer"}


class _TokenHandler(BaseHTTPRequestHandler):
    endpoint: TokenEndpoint

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        status, answer = self.endpoint.answer(form)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the grants from ``TokenEndpoint.grants``."""
