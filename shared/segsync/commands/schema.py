"""``segsync schema``: the project file's JSON Schema, generated from the pydantic models that validate it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from segsync.commands import EXIT_OK
from segsync.config import Project

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def register(commands: Any) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the project file's JSON Schema (for editors: # yaml-language-server: $schema=...)",
        description=(
            "Print the JSON Schema of segsync.yml, generated from the models segsync validates it with, so "
            "an editor can check and complete the file. A file it accepts may still fail checks the schema "
            "cannot express (a schedule expression, a mapping target, a dbt model name); segsync validate "
            "runs them all."
        ),
    )
    schema.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE instead of stdout")
    schema.set_defaults(command=run)


def project_schema() -> dict[str, Any]:
    """The project file's JSON Schema (draft 2020-12), titles and descriptions from the models' fields."""
    generated = Project.model_json_schema(mode="validation")
    return {"$schema": DRAFT, **generated, "title": "segsync project file"}


def render() -> str:
    """The schema as the committed file holds it: indented, keys in the models' order, one trailing newline."""
    return orjson.dumps(project_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"


def run(args: argparse.Namespace) -> int:
    text = render()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return EXIT_OK
