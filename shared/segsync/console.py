"""Local commands for people: progress on stderr, the functions' logs in a file, no stray warnings.

Inside Lambda the functions log JSON lines to stderr, where CloudWatch keeps them (``observability``).
A local command runs the same functions in its own process: there their logs are noise between a
person and the summary, so they go to a log file the summary names (or to stderr with ``--verbose``),
with any warning a library prints for an operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from segsync.observability import logger

LOCAL_FOLDER = ".segsync"
"""A project's local state, next to its project file (like dbt's ``logs/``); ``.gitignore`` it."""
LOG_FILE = "segsync.log"
MAX_LOG_BYTES = 10_000_000
"""Past this, the log file is moved to ``segsync.log.1`` (replacing the older one) when a command starts."""
LEVEL_ENV = "POWERTOOLS_LOG_LEVEL"
EXPECTED_WARNINGS = (
    # Powertools flushes metrics after each invocation and says so when there were none (a run with nothing
    # to send); locally metrics are off, and in Lambda the warning is right where it is.
    r"No application metrics to publish",
)
BAR_WIDTH = 30


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """The ``-v/--verbose`` flag every local command takes."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help=f"print the functions' logs (JSON lines) on stderr instead of {LOCAL_FOLDER}/{LOG_FILE}",
    )


def log_path(project_dir: Path) -> Path:
    """Where a project's local commands keep the functions' logs."""
    return project_dir / LOCAL_FOLDER / LOG_FILE


class LogFile:
    """The log file, opened on its first line: a command that logs nothing leaves no file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    @property
    def written(self) -> bool:
        return self._file is not None

    def write(self, text: str) -> int:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size > MAX_LOG_BYTES:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("a", encoding="utf-8")
        return self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@contextmanager
def function_logs(path: Path, *, verbose: bool = False) -> Iterator[LogFile | None]:
    """Send the library's logs, and other libraries' warnings, to ``path`` (or stderr) while a command runs.

    Yields the log file (None with ``verbose``). The library's logger keeps its JSON lines; its level is
    set here, explicitly (``POWERTOOLS_LOG_LEVEL``, else INFO): Powertools read the environment once, when
    ``segsync.observability`` was imported. Other libraries' records (WARNING and up) and Python warnings go
    to the same place; warnings that are expected locally are dropped. Everything is put back on exit.
    """
    sink: TextIO | LogFile = sys.stderr if verbose else LogFile(path)
    ours = logger.registered_handler
    saved_stream = ours.setStream(sink)
    saved_level = logger.log_level
    logger.setLevel(os.environ.get(LEVEL_ENV) or "INFO")
    others = logging.StreamHandler(sink)
    others.setFormatter(logger.registered_formatter)
    # Our own records reach the root logger too (they propagate): the handler above already wrote them.
    others.addFilter(lambda record: record.name != logger.name and not record.name.startswith(logger.name + "."))
    logging.root.addHandler(others)
    try:
        with warnings.catch_warnings():
            for message in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            logging.captureWarnings(True)
            try:
                yield sink if isinstance(sink, LogFile) else None
            finally:
                logging.captureWarnings(False)
    finally:
        logging.root.removeHandler(others)
        logger.setLevel(saved_level)
        ours.setStream(saved_stream)
        if isinstance(sink, LogFile):
            sink.close()


class Progress:
    """What a local command is doing, on a stream (stderr): a bar on a terminal, one line per phase off it.

    Without a stream it says nothing (the library's callers that print their own output).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # Asked now, not at import: a test may hand over a pseudo-terminal.
        self._terminal = stream is not None and stream.isatty()
        self._bar: tuple[str, int, str] | None = None
        self._done = 0

    def phase(self, text: str) -> None:
        """A step of the command starts: one line."""
        self._end_bar()
        self._write(text + "\n")

    def bar(self, label: str, total: int, unit: str) -> None:
        """Count ``total`` units of work: a bar drawn in place on a terminal, one line off it."""
        self._end_bar()
        if not self._terminal or total == 0:
            self._write(f"{label} {total:,} {unit}\n")
            return
        self._bar, self._done = (label, total, unit), 0
        self._draw()

    def advance(self, count: int) -> None:
        """``count`` more units are done."""
        if self._bar is not None:
            self._done += count
            self._draw()

    def close(self) -> None:
        self._end_bar()

    def _draw(self) -> None:
        label, total, unit = self._bar
        filled = BAR_WIDTH * min(self._done, total) // max(total, 1)
        self._write(f"\r{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._done:,}/{total:,} {unit}")

    def _end_bar(self) -> None:
        if self._bar is not None:
            self._bar = None
            self._write("\n")

    def _write(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()
