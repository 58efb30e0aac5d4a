"""``segsync validate FILE``: check a project file without touching any system."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segsync.commands import EXIT_OK, dbt_lines, dbt_models, print_json
from segsync.config import load_project


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check a project file")
    validate.add_argument("file", type=Path)
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    project = load_project(args.file)
    models = dbt_models(project)
    if args.json:
        print_json(
            {
                "ok": True,
                "syncs": [s.name for s in project.syncs],
                "connections": list(project.connections),
                "dbt_models": models,
                "notifications": len(project.notifications),
            }
        )
    else:
        print(f"{args.file}: OK ({len(project.syncs)} syncs, {len(project.connections)} connections)")
        for line in dbt_lines(models):
            print(line)
    return EXIT_OK
