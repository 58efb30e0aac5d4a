"""The bench's verdicts (target, measured, pass/fail) and the plain-text table ``make bench`` prints."""

from __future__ import annotations

from typing import Any


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's bar, each with what was measured here and whether it was met."""
    sender, official = results["sender"], results["official"]
    planner, incremental = results["planner"], results["incremental"]
    cost, e2e = results["cost"], results["end_to_end"]
    paced = cost["paced"]
    writes = max(cost["dynamodb_per_million_rows"]["write_units"], paced["dynamodb_per_million_rows"]["write_units"])
    checks = [
        (
            "sender msgs per CPU-second",
            ">= 60,000",
            sender["msgs_per_cpu_s"],
            f"{sender['msgs_per_cpu_s']:,.0f}",
            sender["msgs_per_cpu_s"] >= 60_000,
        ),
        (
            "sender vs official library (msgs per CPU-s)",
            ">= 8x",
            sender["ratio_vs_official"],
            f"{sender['ratio_vs_official']:.2f}x ({official['msgs_per_cpu_s']:,.0f}/s official; median of "
            f"{'/'.join(f'{r:.1f}' for r in sender['ratios_by_round'])})",
            sender["ratio_vs_official"] >= 8,
        ),
        (
            "every message delivered (sender scenario)",
            "all rows",
            sender["run"]["endpoint_received"],
            f"{sender['run']['endpoint_received']:,} of {sender['rows']:,}",
            sender["run"]["complete"],
        ),
        (
            f"planner peak RSS, {planner['sizes']['large']:,} vs {planner['sizes']['small']:,} rows",
            "<= 1.3x",
            planner["rss_ratio_1m_vs_100k"],
            f"{planner['rss_ratio_1m_vs_100k']:.2f}x "
            f"({planner['large']['peak_rss_mb']:,.0f} / {planner['small']['peak_rss_mb']:,.0f} MB)",
            planner["rss_ratio_1m_vs_100k"] <= 1.3,
        ),
        (
            f"diff of {results['diff']['rows']:,} rows vs 0.1's, both numbered for waves (key texts, unambiguous hash)",
            "<= 1.1x",
            results["diff"]["time_ratio_vs_0_1"],
            f"{results['diff']['time_ratio_vs_0_1']:.2f}x "
            f"({results['diff']['current_s']:.2f} / {results['diff']['legacy_s']:.2f} s; "
            f"{results['diff'].get('time_ratio_vs_0_1_unnumbered', 0):.2f}x vs 0.1 as it was, unnumbered)",
            results["diff"]["time_ratio_vs_0_1"] <= 1.1,
        ),
        (
            "incremental run: messages sent = rows changed",
            "equal",
            incremental["sent"],
            f"{incremental['sent']:,} sent, {incremental['changed']:,} changed",
            incremental["sent"] == incremental["changed"],
        ),
        (
            "incremental run time vs full run",
            "<= 10%",
            incremental["time_ratio"],
            f"{100 * incremental['time_ratio']:.1f}%" if incremental["time_ratio"] is not None else "n/a",
            incremental["time_ratio"] is not None and incremental["time_ratio"] <= 0.10,
        ),
        (
            f"cost per million rows at {paced['events_per_second']:,} events/s (measured)",
            "<= $0.006",
            cost["usd_per_million_rows_paced_1000_eps"],
            f"${cost['usd_per_million_rows_paced_1000_eps']:.4f} ({paced['rows']:,} rows paced)",
            cost["paced_measured"] and cost["usd_per_million_rows_paced_1000_eps"] <= 0.006,
        ),
        (
            "senders busy when paced (work / billed time)",
            ">= 90%",
            sender["busy_share_paced"],
            f"{100 * sender['busy_share_paced']:.1f}%",
            sender["busy_share_paced"] >= 0.9,
        ),
        (
            "DynamoDB write units per million rows",
            "<= 2,500",
            writes,
            f"{cost['dynamodb_per_million_rows']['write_units']:,} unpaced, "
            f"{paced['dynamodb_per_million_rows']['write_units']:,} paced",
            writes <= 2_500,
        ),
        (
            f"local run of {e2e['rows']:,} rows, peak RSS",
            "<= 600 MB",
            e2e["peak_rss_mb"],
            f"{e2e['peak_rss_mb']:,.0f} MB",
            e2e["peak_rss_mb"] <= 600,
        ),
    ]
    return [
        {"name": name, "target": target, "value": value, "measured": shown, "pass": bool(ok)}
        for name, target, value, shown, ok in checks
    ]


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]], left: int = 1) -> list[str]:
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render(results: dict[str, Any]) -> str:
    meta, sender, official = results["meta"], results["sender"], results["official"]
    planner, incremental, e2e, cost = (
        results["planner"],
        results["incremental"],
        results["end_to_end"],
        results["cost"],
    )
    machine = meta["machine"]
    out = [
        f"segsync bench — {meta['date']} — {machine['nproc']} cores, {machine['cpu_model']}, "
        f"Python {machine['python']}{' (QUICK: small sizes)' if meta['quick'] else ''}; load average "
        f"{meta['load_average_1m']['start']:.1f} → {meta['load_average_1m']['end']:.1f}",
        "",
        "Targets",
    ]
    out += _table(
        ("check", "target", "measured", "result"),
        [(t["name"], t["target"], t["measured"], "PASS" if t["pass"] else "FAIL") for t in results["targets"]],
        left=2,
    )

    out += ["", f"1. Sender path, {sender['rows']:,} rows (map → pack → gzip → POST, loopback endpoint)"]
    rows = []
    for run in [sender["run"], *official["configs"], official["run"]]:
        best = " (best)" if run is official["run"] else " (winner)" if run.get("winner") else ""
        rows.append(
            (
                run["library"].replace("segment-analytics-python", "official"),
                run["config"] + best,
                f"{run['rows']:,}",
                f"{run['msgs_per_cpu_s']:,.0f}",
                f"{run['msgs_per_wall_s']:,.0f}",
                f"{run['peak_rss_mb']:,.0f}",
                "yes" if run["complete"] else f"NO ({run['endpoint_received']:,})",
            )
        )
    out += _table(("library", "configuration", "rows", "msgs/CPU-s", "msgs/wall-s", "peak MB", "delivered"), rows, 2)
    out += [
        f"segsync per message: {sender['us_per_msg']:.1f} µs CPU (map {sender['map_us_per_msg']:.1f}, "
        f"pack+gzip+POST {sender['pack_gzip_post_us_per_msg']:.1f}; chunk decode {sender['decode_us_per_msg']:.1f} "
        f"not included), {sender['json_bytes_per_msg']:.0f} B JSON → {sender['wire_bytes_per_msg']:.0f} B on the "
        f"wire (gzip body); endpoint {sender['endpoint_cpu_us_per_msg']:.1f} µs/msg in its own process",
    ]

    small, large = planner["small"], planner["large"]
    out += ["", "2. Planner (handler → DuckDB model + diff → chunks → SQS on moto in another process)"]
    out += _table(
        (
            "model rows",
            "rows/s",
            "rows/CPU-s",
            "CPU s",
            "wall s",
            "warehouse s",
            "SQS s",
            "chunks",
            "baseline MB",
            "peak MB",
        ),
        [
            (
                f"{r['rows_read']:,}",
                f"{r['rows_per_s']:,.0f}",
                f"{r['rows_per_cpu_s']:,.0f}",
                f"{r['cpu_s']:.2f}",
                f"{r['wall_s']:.2f}",
                f"{r['timers'].get('warehouse', {}).get('seconds', 0):.2f}",
                f"{sum(v for k, v in r['aws'].get('seconds', {}).items() if k.startswith('sqs.')):.2f}",
                f"{r['chunks']:,}",
                f"{r['baseline_rss_mb']:,.0f}",
                f"{r['peak_rss_mb']:,.0f}",
            )
            for r in (small, large)
        ],
    )
    first = planner["first_wave"]
    out += [
        f"peak RSS ratio {planner['rss_ratio_1m_vs_100k']:.2f}x; growth above the post-import baseline "
        f"{planner['rss_growth_ratio_1m_vs_100k']:.2f}x; SQS s = SendMessageBatch round trips to moto",
        f"at {first['events_per_second']:,} events/s the first invocation diffs and queues one wave: "
        f"{first['wall_s']:.1f} s ({planner['first_wave_vs_whole_plan']:.0%} of queueing the whole run in one), "
        f"{first['queued_rows']:,} rows queued ({first['queued_messages']:,} chunks) against {large['queued_rows']:,}; "
        "each later tick queues the next wave as the last drains",
    ]
    if "warehouses" in results:
        by = results["warehouses"]
        out += ["", f"2b. Planner per warehouse: the same {by['users']:,}-row model and sync, a first run"]
        out += _table(
            ("warehouse", "rows/s", "wall s", "planner CPU s"),
            [
                (name, f"{by[name]['rows_per_s']:,}", f"{by[name]['wall_s']:.2f}", f"{by[name]['planner_cpu_s']:.2f}")
                for name in ("duckdb", "postgres")
            ],
            2,
        )
        out += ["(Redshift, BigQuery, Databricks: only emulators run here, whose speed says nothing of the services)"]

    out += ["", f"3. Incremental: {incremental['changed']:,} of {incremental['rows_read']:,} users changed"]
    out += _table(
        ("run", "sent", "run s (summary)", "planner s", "local wall s"),
        [
            (
                "full",
                f"{e2e['sent']:,}",
                f"{incremental['full_run_s']:.2f}",
                f"{incremental['full_planner_s']:.2f}",
                f"{incremental['full_wall_s']:.2f}",
            ),
            (
                "incremental",
                f"{incremental['sent']:,}",
                f"{incremental['incremental_run_s']:.2f}",
                f"{incremental['incremental_planner_s']:.2f}",
                f"{incremental['incremental_wall_s']:.2f}",
            ),
        ],
    )

    out += [
        "",
        f"4. End to end (local pipeline, {e2e['rows']:,} rows at {e2e['events_per_second']:,} events/s, "
        f"{e2e['plan_ahead_s']} s planned ahead): {e2e['rows_per_s']:,.0f} rows/s, {e2e['seconds']:.1f} s, "
        f"peak RSS {e2e['peak_rss_mb']:,.0f} MB (most queued at once: {e2e['peak_queued_rows']:,} rows), "
        f"endpoint CPU {e2e['endpoint_cpu_s']:.1f} s",
    ]
    total = e2e["seconds"] or 1
    out += _table(
        ("where the time went", "seconds", "share"),
        [(k, f"{v:.2f}", f"{100 * v / total:.0f}%") for k, v in e2e["breakdown_s"].items()],
    )

    paced = cost["paced"]
    out += ["", "5. Cost per million rows (us-east-1 list prices)"]
    out += _table(
        ("", "unpaced (derived from CPU s)", f"paced at {paced['events_per_second']:,} events/s (measured)"),
        _cost_rows(cost),
    )
    out += [
        f"   paced: {paced['rows']:,} rows in {paced['run_seconds']:.0f} s; senders busy "
        f"{100 * paced['sender_busy_share']:.1f}% of their billed time "
        f"({paced['lambda']['sender_slept_s_per_million_rows']:.1f} s asleep per million rows)",
        "   prices: " + "; ".join(f"{k} {v:g}" for k, v in cost["prices"].items()),
        "",
        f"total bench time {meta['duration_s']:.0f} s",
    ]
    return "\n".join(out)


def _cost_rows(cost: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The unpaced and paced bills side by side: dollars by part, then the units behind them."""
    paced = cost["paced"]
    unpaced_usd, paced_usd = cost["breakdown_usd"], cost["breakdown_usd_paced_1000_eps"]
    rows = [(f"USD {part}", f"{unpaced_usd[part]:.5f}", f"{paced_usd[part]:.5f}") for part in unpaced_usd]
    lam, lam_paced = cost["lambda"], paced["lambda"]
    sqs, sqs_paced = cost["sqs_requests_per_million_rows"], paced["sqs_requests_per_million_rows"]
    ddb, ddb_paced = cost["dynamodb_per_million_rows"], paced["dynamodb_per_million_rows"]
    rows += [
        (
            "sender GB-s (1,024 MB)",
            f"{lam['sender_gb_s']:.1f}",
            f"{lam_paced['sender_gb_s']:.1f} ({lam_paced['sender_invocations_per_million_rows']:,} invocations)",
        ),
        ("planner GB-s (1,769 MB)", f"{lam['planner_gb_s']:.1f}", f"{lam_paced['planner_gb_s']:.1f}"),
        ("Lambda invocations", f"{lam['requests']:,}", f"{lam_paced['requests']:,}"),
        ("SQS requests", f"{sqs['total']:,}", f"{sqs_paced['total']:,}"),
        ("DynamoDB write units", f"{ddb['write_units']:,}", f"{ddb_paced['write_units']:,}"),
        ("DynamoDB read units", f"{ddb['read_units']:,}", f"{ddb_paced['read_units']:,}"),
    ]
    return rows
