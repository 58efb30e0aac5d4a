"""The ``segsync`` subcommands, one module each; every module has ``register(subparsers)``."""

from __future__ import annotations

import sys
from typing import Any

import orjson

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (logs go to stderr, so stdout stays parseable)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]], left: int = 2) -> list[str]:
    """Plain aligned columns: the first ``left`` columns left-aligned, numbers right-aligned."""
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]


def dbt_models(project: Any) -> dict[str, dict[str, str]]:
    """Each sync that names a dbt model, with the relation it resolved to (``validate`` and ``push`` show them)."""
    return {
        sync.name: {"model": sync.dbt_model, "relation": sync.model.relation}
        for sync in project.syncs
        if sync.dbt_model is not None
    }


def dbt_lines(models: dict[str, dict[str, str]]) -> list[str]:
    return [f"  sync '{name}': dbt model {m['model']} → {m['relation']}" for name, m in models.items()]
