"""Scenario 5: what a million rows cost on AWS, from the measured CPU seconds and counted requests.

Pure arithmetic on the other scenarios' results. Lambda bills duration, not CPU: a CPU-bound function
lasts about its CPU seconds divided by its vCPU share (1 vCPU at 1,769 MB, proportionally less below).
Network waits (Segment's answer, DynamoDB round trips) are not modelled; pacing is, separately.
"""

from __future__ import annotations

import math
from typing import Any

# us-east-1 list prices, checked 2026 against AWS's pricing pages and third-party summaries of them.
PRICES = {
    "lambda_arm64_usd_per_gb_s": 0.0000133334,
    "lambda_usd_per_million_requests": 0.20,
    "sqs_standard_usd_per_million_requests": 0.40,  # every 64 KB of a request's payload is one request
    # DynamoDB on-demand since the November 2024 cut (was $1.25 / $0.25 per million before).
    "dynamodb_usd_per_million_wru": 0.625,
    "dynamodb_usd_per_million_rru": 0.125,
}
PRICE_NOTES = (
    "us-east-1 list prices: Lambda arm64 $0.0000133334 per GB-s and $0.20 per 1M requests; SQS standard "
    "$0.40 per 1M requests (each 64 KB of payload is one request); DynamoDB on-demand $0.625 per 1M write "
    "units and $0.125 per 1M read units (the prices since November 2024; $1.25 / $0.25 before). "
    "Free tiers ignored."
)
PLANNER_MEMORY_MB = 1769  # template.yaml PlannerFunction MemorySize
SENDER_MEMORY_MB = 1024  # template.yaml SenderFunction MemorySize
FULL_VCPU_MB = 1769
SENDER_BATCH_SIZE = 5  # template.yaml: the SQS event source's BatchSize
SEGMENT_EVENTS_PER_SECOND = 1_000
PER_MILLION = 1_000_000


def vcpu_share(memory_mb: int) -> float:
    """Lambda's CPU grows with memory: one full vCPU at 1,769 MB."""
    return min(1.0, memory_mb / FULL_VCPU_MB)


def gb_seconds(duration_s: float, memory_mb: int) -> float:
    return duration_s * memory_mb / 1024


def dynamodb_units(calls: dict[str, int], items: dict[str, int]) -> tuple[float, float]:
    """(write units, read units) for the counted calls; every bookkeeping item is under 1 KB.

    Transactional writes cost two units per item; a strongly consistent read one, an eventually
    consistent read (GetItem without ConsistentRead, a small Query page) half of one. A conditional
    write whose condition fails still consumes its unit.
    """
    writes = (
        calls.get("dynamodb.PutItem", 0)
        + calls.get("dynamodb.UpdateItem", 0)
        + calls.get("dynamodb.DeleteItem", 0)
        + items.get("dynamodb.BatchWriteItem", 0)
        + 2 * items.get("dynamodb.TransactWriteItems", 0)
    )
    consistent = items.get("dynamodb.GetItem.consistent", 0)
    eventual = calls.get("dynamodb.GetItem", 0) - consistent
    reads = consistent + 0.5 * eventual + 0.5 * calls.get("dynamodb.Query", 0)
    return float(writes), reads


def estimate(
    *,
    rows: int,
    planner_cpu_s: float,
    planner_rows: int,
    sender_cpu_us_per_msg: float,
    chunks: int,
    aws_calls: dict[str, int],
    aws_items: dict[str, int],
    sqs_billed: dict[str, int],
    planner_invocations: int,
) -> dict[str, Any]:
    """Dollars per million rows for one full run of ``rows`` rows (counts are scaled to a million).

    ``aws_*`` and ``sqs_billed`` are the counts of a local run of ``rows`` rows; the local driver's own
    polling (GetQueueAttributes, one DeleteMessage per message) is replaced by what Lambda's SQS
    event source does: one ReceiveMessage and one DeleteMessageBatch per batch of up to 5 chunks.
    """
    scale = PER_MILLION / rows
    planner_s = planner_cpu_s * PER_MILLION / planner_rows / vcpu_share(PLANNER_MEMORY_MB)
    sender_s = sender_cpu_us_per_msg * PER_MILLION / 1e6 / vcpu_share(SENDER_MEMORY_MB)
    paced_sender_s = max(sender_s, PER_MILLION / SEGMENT_EVENTS_PER_SECOND)
    planner_gb_s = gb_seconds(planner_s, PLANNER_MEMORY_MB)
    sender_gb_s = gb_seconds(sender_s, SENDER_MEMORY_MB)
    paced_sender_gb_s = gb_seconds(paced_sender_s, SENDER_MEMORY_MB)

    chunks_per_million = chunks * scale
    sender_invocations = math.ceil(chunks_per_million / SENDER_BATCH_SIZE)
    lambda_requests = planner_invocations + sender_invocations
    sqs = {
        "SendMessageBatch": sqs_billed.get("sqs.SendMessageBatch", 0) * scale,
        "ReceiveMessage": sqs_billed.get("sqs.ReceiveMessage", 0) * scale,
        "DeleteMessageBatch": sender_invocations,
    }
    sqs_requests = sum(sqs.values())
    writes, reads = dynamodb_units(aws_calls, aws_items)
    writes, reads = writes * scale, reads * scale

    def dollars(sender_gb: float) -> dict[str, float]:
        parts = {
            "lambda_planner": planner_gb_s * PRICES["lambda_arm64_usd_per_gb_s"],
            "lambda_sender": sender_gb * PRICES["lambda_arm64_usd_per_gb_s"],
            "lambda_requests": lambda_requests / 1e6 * PRICES["lambda_usd_per_million_requests"],
            "sqs": sqs_requests / 1e6 * PRICES["sqs_standard_usd_per_million_requests"],
            "dynamodb": writes / 1e6 * PRICES["dynamodb_usd_per_million_wru"]
            + reads / 1e6 * PRICES["dynamodb_usd_per_million_rru"],
        }
        return {**{k: round(v, 6) for k, v in parts.items()}, "total": round(sum(parts.values()), 6)}

    unpaced = dollars(sender_gb_s)
    paced = dollars(paced_sender_gb_s)
    return {
        "usd_per_million_rows": unpaced["total"],
        "usd_per_million_rows_paced_1000_eps": paced["total"],
        "breakdown_usd": unpaced,
        "breakdown_usd_paced_1000_eps": paced,
        "lambda": {
            "planner_memory_mb": PLANNER_MEMORY_MB,
            "sender_memory_mb": SENDER_MEMORY_MB,
            "planner_duration_s": round(planner_s, 2),
            "sender_duration_s": round(sender_s, 2),
            "sender_duration_s_paced_1000_eps": round(paced_sender_s, 2),
            "planner_gb_s": round(planner_gb_s, 2),
            "sender_gb_s": round(sender_gb_s, 2),
            "sender_gb_s_paced_1000_eps": round(paced_sender_gb_s, 2),
            "requests": lambda_requests,
        },
        "sqs_requests_per_million_rows": {k: round(v) for k, v in {**sqs, "total": sqs_requests}.items()},
        "dynamodb_per_million_rows": {"write_units": round(writes), "read_units": round(reads)},
        "chunks_per_million_rows": round(chunks_per_million),
        "prices": PRICES,
        "notes": PRICE_NOTES,
        "assumptions": (
            "planner duration = its measured CPU seconds at 1,000,000 rows (1 vCPU at 1,769 MB); sender "
            "duration = measured CPU per message (chunk decode + map + pack + gzip + POST) / 0.58 vCPU at "
            "1,024 MB; not included: boto3 and Powertools CPU per chunk, network waits (Segment, SQS, "
            "DynamoDB), cold starts; paced: 1,000,000 events at 1,000/s keep senders alive 1,000 s in total"
        ),
    }
