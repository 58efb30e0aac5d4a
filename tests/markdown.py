"""Markdown as the docs' tests read it: fenced blocks, the shell commands they show, generated sections.

A block shows commands when its language is a shell (``sh``: every line is a command) or, in any other
block, on lines starting with ``$ `` (a console session: the lines after one are its output). A block
that a test runs is named by the HTML comment on the line before it (``<!-- test: NAME -->``); the
README's tour (between its ``[start:tour]`` and ``[end:tour]`` markers) is named ``tour``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SHELLS = {"sh", "bash", "shell"}
TOUR = "tour"
RUN_BY = {
    TOUR: "tests/e2e/test_tour.py",
    "snowflake-key-pair": "tests/integration/test_docs_recipes.py",
    "dbt-cloud-secret": "tests/integration/test_docs_recipes.py",
}
"""The blocks tests run, by name, and the test that runs each: their commands may use any program."""
TOUR_START = "<!-- --8<-- [start:tour] -->"
TOUR_END = "<!-- --8<-- [end:tour] -->"
PROMPT = "$ "
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<lang>[\w+-]*)")
_TAG = re.compile(r"^\s*<!-- test: (?P<name>[\w-]+) -->\s*$")
_OPERATORS = {"|", "||", "&&", ";", "&"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    lang: str
    lines: list[str]
    tag: str | None
    """The test that runs this block, if one does."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One command as the docs show it (continuation lines joined), with the output shown under it."""

    block: Block
    text: str
    output: list[str]


def pages() -> list[Path]:
    """Every page a reader sees: the README and the docs site's Markdown."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    in_tour = False
    number = 0
    while number < len(lines):
        line = lines[number]
        in_tour = (in_tour or line.strip() == TOUR_START) and line.strip() != TOUR_END
        opening = _FENCE.match(line)
        if not opening:
            number += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = next(
            (n for n in range(number + 1, len(lines)) if lines[n].strip() == fence),
            None,
        )
        if end is None:
            raise ValueError(f"{path}:{number + 1}: a fenced block that never closes")
        tag = _TAG.match(lines[number - 1]) if number else None
        found.append(
            Block(
                path=path,
                line=number + 1,
                lang=opening["lang"],
                lines=[text[indent:] for text in lines[number + 1 : end]],
                tag=TOUR if in_tour else (tag["name"] if tag else None),
            )
        )
        number = end + 1
    return found


def commands(block: Block) -> list[Command]:
    """The commands ``block`` shows: every line of a shell block, the ``$`` lines of any other."""
    shown: list[Command] = []
    lines = iter(block.lines)
    for line in lines:
        if block.lang in SHELLS:
            text = line
        elif line.startswith(PROMPT):
            text = line[len(PROMPT) :]
        else:
            if shown:
                shown[-1].output.append(line)
            continue
        while text.endswith("\\"):
            text = text[:-1] + " " + next(lines).strip()
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        shown.append(Command(block, text, []))
    return shown


def simple_commands(text: str) -> list[list[str]]:
    """A command line's simple commands (split at pipes, ``&&``, ``;``), each as its words, comments dropped.

    Leading ``NAME=value`` environment assignments are dropped too: they are not the program.
    """
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    current: list[str] = []
    result = [current]
    for word in lexer:
        if word in _OPERATORS:
            current = []
            result.append(current)
        elif current or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
            current.append(word)
    return [words for words in result if words]


def replace_between(text: str, name: str, content: str) -> str:
    """``text`` with what lies between its ``<!-- NAME:start ... -->`` and ``<!-- NAME:end -->`` lines replaced."""
    pattern = re.compile(
        rf"(^<!-- {re.escape(name)}:start[^\n]*-->\n).*?(^<!-- {re.escape(name)}:end -->$)", re.M | re.S
    )
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> section")
    return pattern.sub(lambda m: f"{m[1]}\n{content.strip()}\n\n{m[2]}", text, count=1)
