"""Scenario 5: what a million rows cost on AWS, unpaced (derived) and at Segment's pace (measured).

Unpaced: arithmetic on the other scenarios' results. Lambda bills duration, not CPU: a CPU-bound
function lasts about its CPU seconds divided by its vCPU share (1 vCPU at 1,769 MB, proportionally
less below). Network waits (Segment's answer, DynamoDB round trips) are not modelled.

Paced: the paced pipeline scenario's own bill. Every sender and planner invocation's wall time,
rounded up to the millisecond as Lambda bills it, its SQS requests (the event source's receive and
delete per invocation, its idle long polls while the run lasts) and the DynamoDB units of its calls,
counted from item sizes (``bench.capacity``), scaled from the scenario's rows to a million.
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
ESM_POLLERS = 5
"""Long polls Lambda's SQS event source keeps open on a quiet queue (five batches at a time; with
MaximumConcurrency set it does not scale down to two)."""
LONG_POLL_S = 20
"""How long each of those polls waits for a message: an empty one is still a billed request."""
PER_MILLION = 1_000_000


def vcpu_share(memory_mb: int) -> float:
    """Lambda's CPU grows with memory: one full vCPU at 1,769 MB."""
    return min(1.0, memory_mb / FULL_VCPU_MB)


def gb_seconds(duration_s: float, memory_mb: int) -> float:
    return duration_s * memory_mb / 1024


def dynamodb_units(capacity: dict[str, Any]) -> tuple[float, float]:
    """(write units, read units) of the counted calls (``bench.capacity`` snapshots, summed)."""
    return float(sum(capacity.get("write_units", {}).values())), float(sum(capacity.get("read_units", {}).values()))


def dollars(parts: dict[str, float]) -> dict[str, float]:
    """Each part in dollars, rounded, and their total."""
    return {**{k: round(v, 6) for k, v in parts.items()}, "total": round(sum(parts.values()), 6)}


def bill(
    *, planner_gb_s: float, sender_gb_s: float, requests: float, sqs: dict[str, float], writes: float, reads: float
) -> dict[str, float]:
    """A million rows' usage, in dollars per AWS part, and their total (the paced and unpaced costs alike)."""
    return dollars(
        {
            "lambda_planner": planner_gb_s * PRICES["lambda_arm64_usd_per_gb_s"],
            "lambda_sender": sender_gb_s * PRICES["lambda_arm64_usd_per_gb_s"],
            "lambda_requests": requests / 1e6 * PRICES["lambda_usd_per_million_requests"],
            "sqs": sum(sqs.values()) / 1e6 * PRICES["sqs_standard_usd_per_million_requests"],
            "dynamodb": writes / 1e6 * PRICES["dynamodb_usd_per_million_wru"]
            + reads / 1e6 * PRICES["dynamodb_usd_per_million_rru"],
        }
    )


def estimate(
    *,
    rows: int,
    planner_cpu_s: float,
    planner_rows: int,
    sender_cpu_us_per_msg: float,
    chunks: int,
    capacity: dict[str, Any],
    sqs_billed: dict[str, int],
    planner_invocations: int,
) -> dict[str, Any]:
    """Dollars per million rows for one unpaced run of ``rows`` rows, its duration derived from CPU seconds.

    ``capacity`` and ``sqs_billed`` are the counts of a local run of ``rows`` rows; the local driver's own
    polling (GetQueueAttributes, empty receives, one DeleteMessage per message) is replaced by what
    Lambda's SQS event source does with a full queue: one ReceiveMessage and one DeleteMessageBatch per
    batch of up to 5 chunks.
    """
    scale = PER_MILLION / rows
    planner_s = planner_cpu_s * PER_MILLION / planner_rows / vcpu_share(PLANNER_MEMORY_MB)
    sender_s = sender_cpu_us_per_msg * PER_MILLION / 1e6 / vcpu_share(SENDER_MEMORY_MB)
    planner_gb_s = gb_seconds(planner_s, PLANNER_MEMORY_MB)
    sender_gb_s = gb_seconds(sender_s, SENDER_MEMORY_MB)

    chunks_per_million = chunks * scale
    sender_invocations = math.ceil(chunks_per_million / SENDER_BATCH_SIZE)
    lambda_requests = planner_invocations + sender_invocations
    sqs = {
        "SendMessageBatch": sqs_billed.get("sqs.SendMessageBatch", 0) * scale,
        "ReceiveMessage": sender_invocations,
        "DeleteMessageBatch": sender_invocations,
    }
    writes, reads = (units * scale for units in dynamodb_units(capacity))
    unpaced = bill(
        planner_gb_s=planner_gb_s,
        sender_gb_s=sender_gb_s,
        requests=lambda_requests,
        sqs=sqs,
        writes=writes,
        reads=reads,
    )
    return {
        "usd_per_million_rows": unpaced["total"],
        "breakdown_usd": unpaced,
        "lambda": {
            "planner_memory_mb": PLANNER_MEMORY_MB,
            "sender_memory_mb": SENDER_MEMORY_MB,
            "planner_duration_s": round(planner_s, 2),
            "sender_duration_s": round(sender_s, 2),
            "planner_gb_s": round(planner_gb_s, 2),
            "sender_gb_s": round(sender_gb_s, 2),
            "requests": lambda_requests,
        },
        "sqs_requests_per_million_rows": {k: round(v) for k, v in {**sqs, "total": sum(sqs.values())}.items()},
        "dynamodb_per_million_rows": {"write_units": round(writes), "read_units": round(reads)},
        "chunks_per_million_rows": round(chunks_per_million),
        "prices": PRICES,
        "notes": PRICE_NOTES,
        "assumptions": (
            "unpaced: planner duration = its measured CPU seconds at 1,000,000 rows (1 vCPU at 1,769 MB); "
            "sender duration = measured CPU per message (chunk decode + map + pack + gzip + POST) / 0.58 vCPU "
            "at 1,024 MB; not included: boto3 and Powertools CPU per chunk, network waits (Segment, SQS, "
            "DynamoDB), cold starts. Paced: measured, see paced.method"
        ),
    }


def measured_paced(
    *,
    rows: int,
    events_per_second: int,
    run_seconds: float,
    sender: dict[str, Any],
    planner: list[dict[str, Any]],
    capacity: dict[str, Any],
    sqs_billed: dict[str, int],
) -> dict[str, Any]:
    """Dollars per million rows at ``events_per_second``, from what a paced run of ``rows`` rows was billed.

    ``sender`` and ``planner`` are the run's handler phases (``billed_s``: each invocation's wall time
    rounded up to the millisecond; ``slept_s``: the sender's time asleep); ``capacity`` and
    ``sqs_billed`` count the handlers' own calls. The event source's SQS requests are one receive and
    one delete per sender invocation, plus ESM_POLLERS empty long polls every LONG_POLL_S while the run
    lasts. Everything scales linearly from ``rows`` to a million.
    """
    scale = PER_MILLION / rows
    sender_s = sender["billed_s"] * scale
    planner_s = sum(phase["billed_s"] for phase in planner) * scale
    sender_gb_s = gb_seconds(sender_s, SENDER_MEMORY_MB)
    planner_gb_s = gb_seconds(planner_s, PLANNER_MEMORY_MB)
    invocations = sender["invocations"] * scale
    requests = invocations + sum(phase["invocations"] for phase in planner) * scale
    sqs = {
        "SendMessageBatch": sqs_billed.get("sqs.SendMessageBatch", 0) * scale,
        "ReceiveMessage": invocations + ESM_POLLERS * run_seconds * scale / LONG_POLL_S,
        "DeleteMessageBatch": invocations,
    }
    writes, reads = (units * scale for units in dynamodb_units(capacity))
    paced = bill(
        planner_gb_s=planner_gb_s, sender_gb_s=sender_gb_s, requests=requests, sqs=sqs, writes=writes, reads=reads
    )
    billed = sender["billed_s"]
    return {
        "usd_per_million_rows": paced["total"],
        "breakdown_usd": paced,
        "rows": rows,
        "events_per_second": events_per_second,
        "run_seconds": round(run_seconds, 1),
        "sender_busy_share": round((sender["wall_s"] - sender["slept_s"]) / billed, 4) if billed else None,
        "lambda": {
            "sender_invocations_per_million_rows": round(invocations),
            "sender_billed_s_per_million_rows": round(sender_s, 2),
            "sender_slept_s_per_million_rows": round(sender["slept_s"] * scale, 2),
            "planner_billed_s_per_million_rows": round(planner_s, 2),
            "sender_gb_s": round(sender_gb_s, 2),
            "planner_gb_s": round(planner_gb_s, 2),
            "requests": round(requests),
        },
        "sqs_requests_per_million_rows": {k: round(v) for k, v in {**sqs, "total": sum(sqs.values())}.items()},
        "dynamodb_per_million_rows": {"write_units": round(writes), "read_units": round(reads)},
        "method": (
            f"{rows:,} rows through the local pipeline at {events_per_second:,} events/s, the planner ticking "
            "as the stack's schedule does; Lambda duration = each invocation's wall time on this machine, "
            "rounded up to the millisecond (a 1,024 MB sender has 0.58 vCPU: its CPU-bound part would last "
            "longer there, its waits on moto's DynamoDB and SQS less); busy share = (wall time - time asleep "
            "in the limiter or backoff) / billed time; scaled linearly to 1,000,000 rows"
        ),
    }
