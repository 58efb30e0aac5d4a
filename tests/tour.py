"""The README's five-minute tour, command by command, on a copy of the demo.

``tests/e2e/test_tour.py`` runs it on every ``make test``; ``make tour`` (``python -m tests.tour``) runs it
as a reader would and writes each command's output into the README under the command, so the outputs the
tour shows come from a real run, never from typing.

Each command runs as written, by bash, in a sandbox: a temporary copy of the checkout's code (``shared/``,
``functions/``), Makefile and demo project, whose ``.venv`` is this virtualenv. ``make run`` there is the
Makefile's own target, and segsync's checkout (where the demo lives) is the sandbox, so the demo's
warehouse, state, logs and captured messages never touch the real ``demo/``. The capture endpoint gets a
free port through make's ``ARGS``, as a reader would move it, and that is taken back out of make's echo
of the command; the sandbox's path reads ``/…``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.markdown import PROMPT, README, ROOT, TOUR, Block, Command, blocks, commands

TIMEOUT_S = 300
SANDBOX_SHOWN_AS = "/…"
COPIED = ("shared", "functions", "make", "Makefile", "demo/segsync.yml")


class TourError(AssertionError):
    """A tour command failed: the README tells readers to run something that does not work."""


def tour_commands(readme: Path = README) -> list[Command]:
    """The commands of the README's tour, in order, each with the output the README shows under it."""
    return [command for block in blocks(readme) if block.tag == TOUR for command in commands(block)]


def sandbox(directory: Path) -> Path:
    """A copy of what the tour needs in ``directory``, with this virtualenv as its ``.venv``."""
    for name in COPIED:
        source, target = ROOT / name, directory / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    pyproject = directory / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", pyproject)
    os.utime(pyproject, (0, 0))  # older than any virtualenv: make run never reinstalls the one it borrows
    (directory / ".venv").symlink_to(Path(sys.prefix))
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command: Command, directory: Path, port: int, more_args: str = "") -> list[str]:
    """Run one tour command in the sandbox ``directory``; its stdout as the README shows it.

    ``more_args``: for ``make run`` too (the tests tick the planner faster), taken out of its echo as the port.
    """
    args = f"--capture-port {port} {more_args}".strip()
    # A make of our own (make tour) must not pass its flags down: this make is the reader's, at top level.
    env = {name: value for name, value in os.environ.items() if name not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    env |= {"PYTHONPATH": str(directory / "shared"), "ARGS": args}
    done = subprocess.run(
        ["bash", "-c", command.text],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise TourError(f"{command.block.where}: `{command.text}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    shown = done.stdout.replace(str(directory.resolve()), SANDBOX_SHOWN_AS).replace(str(directory), SANDBOX_SHOWN_AS)
    return [line.replace(f" {args}", "").rstrip() for line in shown.splitlines()]


def run_tour(directory: Path, port: int, more_args: str = "", readme: Path = README) -> list[list[str]]:
    """Every tour command's output, run in order in the sandbox ``directory``."""
    return [run(command, directory, port, more_args) for command in tour_commands(readme)]


def with_outputs(readme: Path, outputs: list[list[str]]) -> str:
    """The README's text with the output under each tour command replaced by ``outputs``, in order."""
    lines = readme.read_text().splitlines()
    pending = iter(outputs)
    rewritten = [(block, _rewrite(block, pending)) for block in blocks(readme) if block.tag == TOUR]
    if next(pending, None) is not None:
        raise ValueError("more outputs than tour commands")
    for block, new in reversed(rewritten):  # from the end, so earlier blocks keep their line numbers
        lines[block.line : block.line + len(block.lines)] = new
    return "\n".join(lines) + "\n"


def _rewrite(block: Block, outputs: Iterator[list[str]]) -> list[str]:
    """A console block's lines, the output under each command replaced by the next of ``outputs``."""
    new: list[str] = []
    continued = False
    for line in block.lines:
        if line.startswith(PROMPT) or continued:
            new.append(line)
            continued = line.endswith("\\")
            if not continued:
                new += next(outputs)
    return new


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="segsync-tour-") as work:
        outputs = run_tour(sandbox(Path(work)), free_port())
    README.write_text(with_outputs(README, outputs))
    print(f"{README.relative_to(ROOT)}: the outputs of {len(outputs)} tour commands, from this run")


if __name__ == "__main__":
    main()
