"""SQS adapter: sends chunk bodies with SendMessageBatch (≤ 10 entries, ≤ 1 MiB a call)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from segsync.errors import DeliveryError

MAX_ENTRIES = 10
MAX_CALL_BYTES = 1_048_576
SEND_ATTEMPTS = 3


class ChunkQueue:
    """Buffers chunk bodies into SendMessageBatch calls and retries entries SQS did not take."""

    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

    def send_all(self, bodies: Iterable[tuple[int, str, int]]) -> int:
        """Send ``(chunk number, body, delay seconds)``; return how many were sent."""
        sent = 0
        entries: list[dict[str, Any]] = []
        size = 0
        for number, body, delay in bodies:
            body_size = len(body.encode())
            if entries and (len(entries) == MAX_ENTRIES or size + body_size > MAX_CALL_BYTES):
                sent += self._send(entries)
                entries, size = [], 0
            entries.append({"Id": str(number), "MessageBody": body, "DelaySeconds": delay})
            size += body_size
        if entries:
            sent += self._send(entries)
        return sent

    def _send(self, entries: list[dict[str, Any]]) -> int:
        pending = entries
        for _ in range(SEND_ATTEMPTS):
            response = self._client.send_message_batch(QueueUrl=self._url, Entries=pending)
            failed = {f["Id"] for f in response.get("Failed", [])}
            if not failed:
                return len(entries)
            pending = [e for e in pending if e["Id"] in failed]
        reasons = "; ".join(f"chunk {f['Id']}: {f.get('Code')}" for f in response["Failed"])
        raise DeliveryError(f"SQS did not accept {len(pending)} chunk(s) after {SEND_ATTEMPTS} attempts: {reasons}")
