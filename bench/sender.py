"""Scenario 1, one process per measurement: the same chunk rows sent by segsync or the official library.

``python -m bench.sender segsync CHUNKS ENDPOINT RESULT``
``python -m bench.sender official CHUNKS ENDPOINT RESULT --upload-size N --threads N --queue N [--sync-mode]``

Both read the chunk bodies the planner would have queued, one at a time, and decode them with
``segsync.chunks.decode``; decoding is timed apart (``decode_cpu_s``) and left out of the rates, so
both sides are charged only for turning rows into delivered messages. The endpoint runs in another
process (``bench.services``): its CPU is not counted here.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import KEY_COLUMN, TRAITS, WRITE_KEY, memory, write_result

DEADLINE_S = 3_600.0
QUEUE_FULL_WAIT_S = 0.001


def chunks(path: Path, limit: int | None) -> Iterator[Any]:
    """Decoded chunks, read one line at a time (only one chunk's rows in memory, as in a sender)."""
    from segsync.chunks import decode

    rows = 0
    with path.open() as lines:
        for line in lines:
            if limit is not None and rows >= limit:
                return
            chunk = decode(line.rstrip("\n"))
            if limit is not None and rows + len(chunk.rows) > limit:
                chunk.rows[limit - rows :] = []
            rows += len(chunk.rows)
            yield chunk


def run_segsync(path: Path, endpoint: str, limit: int | None) -> dict[str, Any]:
    """segsync's real path: ``Mapper(sync, columns).map(row)`` → ``pack`` → ``SegmentClient.send``.

    The rows carry the key text and messageId the planner wrote, as every chunk does.
    """
    from segsync.config import parse_sync
    from segsync.mapping import Mapped, Mapper
    from segsync.segment import ENVELOPE_BYTES, SegmentClient, pack

    client = SegmentClient(endpoint, WRITE_KEY)
    deadline = time.monotonic() + DEADLINE_S
    sent = rejected = batches = wire_bytes = json_bytes = 0
    decode_cpu = map_cpu = 0.0
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    source = chunks(path, limit)
    while True:
        before = time.process_time()
        chunk = next(source, None)
        decode_cpu += time.process_time() - before
        if chunk is None:
            break
        before = time.process_time()
        # As the sender does per chunk: the sync travels with the chunk and is validated there.
        mapper = Mapper(parse_sync(chunk.sync), chunk.columns)
        messages = []
        for row in chunk.rows:
            result = mapper.map(row)
            if isinstance(result, Mapped):
                messages.append(result.body)
            else:
                rejected += 1
        map_cpu += time.process_time() - before
        for batch in pack(messages):
            result = client.send(batch, deadline)
            sent += len(batch)
            batches += 1
            wire_bytes += result.bytes_sent
            json_bytes += ENVELOPE_BYTES + sum(map(len, batch)) + len(batch) - 1
    cpu = time.process_time() - cpu_started - decode_cpu
    wall = time.perf_counter() - wall_started
    client.close()
    return {
        "library": "segsync",
        "config": "SegmentClient (gzip level 1), batches from pack (<= 475,000 bytes, <= 2,500 messages)",
        "sent": sent,
        "rejected": rejected,
        "batches": batches,
        "cpu_s": round(cpu, 3),
        "map_cpu_s": round(map_cpu, 3),
        "decode_cpu_s": round(decode_cpu, 3),
        "wall_s": round(wall, 3),
        "wire_bytes": wire_bytes,
        "json_bytes": json_bytes,
        **memory(),
    }


def run_official(
    path: Path,
    endpoint: str,
    limit: int | None,
    *,
    upload_size: int,
    threads: int,
    queue: int,
    sync_mode: bool,
) -> dict[str, Any]:
    """The official library fed the same rows: ``identify(user_id, traits)`` per row, then flush + join.

    Its CPU is the whole process's (its consumer threads included) minus the main thread's decoding.
    A full queue makes ``identify`` return False and drop the message, so the producer waits and
    offers it again (charged to the library: that is what a caller has to do).
    """
    from segment.analytics import Client

    from segsync.chunks import VALUES_AT

    logging.getLogger("segment").setLevel(logging.ERROR)  # "queue is full" would be logged per message
    failures: list[int] = []
    client = Client(
        WRITE_KEY,
        host=endpoint,
        gzip=True,
        upload_size=upload_size,
        thread=threads,
        max_queue_size=queue,
        sync_mode=sync_mode,
        on_error=lambda _error, batch: failures.append(len(batch)),
    )
    offered = queue_full_waits = 0
    decode_cpu = 0.0
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    source = chunks(path, limit)
    while True:
        before = time.thread_time()
        chunk = next(source, None)
        decode_cpu += time.thread_time() - before
        if chunk is None:
            break
        # Chunk rows start with the key text and the messageId (segsync.chunks); the library gets the values.
        key = VALUES_AT + chunk.columns.index(KEY_COLUMN)
        positions = [(trait, VALUES_AT + chunk.columns.index(column)) for trait, column in TRAITS.items()]
        for row in chunk.rows:
            traits = {trait: value for trait, position in positions if (value := row[position]) is not None}
            while not client.identify(user_id=row[key], traits=traits)[0]:
                queue_full_waits += 1
                time.sleep(QUEUE_FULL_WAIT_S)
            offered += 1
    if not sync_mode:  # sync_mode posts inside identify(): nothing is queued, there is no consumer
        client.flush()
        client.join()
    cpu = time.process_time() - cpu_started - decode_cpu
    wall = time.perf_counter() - wall_started
    return {
        "library": "segment-analytics-python",
        "config": (
            "sync_mode=True (one request per message)"
            if sync_mode
            else f"upload_size={upload_size} thread={threads} max_queue_size={queue}"
        ),
        "upload_size": upload_size,
        "threads": threads,
        "max_queue_size": queue,
        "sync_mode": sync_mode,
        "sent": offered - sum(failures),
        "failed": sum(failures),
        "queue_full_waits": queue_full_waits,
        "cpu_s": round(cpu, 3),
        "decode_cpu_s": round(decode_cpu, 3),
        "wall_s": round(wall, 3),
        **memory(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("library", choices=("segsync", "official"))
    parser.add_argument("chunks", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("result", type=Path)
    parser.add_argument("--limit", type=int, help="send only the first N rows")
    parser.add_argument("--upload-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--queue", type=int, default=10_000)
    parser.add_argument("--sync-mode", action="store_true")
    args = parser.parse_args()
    if args.library == "segsync":
        result = run_segsync(args.chunks, args.endpoint, args.limit)
    else:
        result = run_official(
            args.chunks,
            args.endpoint,
            args.limit,
            upload_size=args.upload_size,
            threads=args.threads,
            queue=args.queue,
            sync_mode=args.sync_mode,
        )
    write_result(args.result, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
