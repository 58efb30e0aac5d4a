"""The ``segsync`` command: one parser, one module per subcommand (``segsync.commands``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from segsync.commands import EXIT_USAGE, aws, dlq, history, local, preview, print_json, schema, serve, validate
from segsync.errors import SegsyncError

COMMANDS = (validate, local, preview, history, aws, serve, dlq, schema)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the docs' tests parse every command the docs show with it."""
    parser = argparse.ArgumentParser(prog="segsync", description="Warehouse-to-Segment syncs.")
    subparsers = parser.add_subparsers(required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user mistakes print one clear line on stderr and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.command(args)
    except SegsyncError as exc:
        if getattr(args, "json", False):
            print_json({"ok": False, "error": str(exc)})
        print(f"segsync: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
