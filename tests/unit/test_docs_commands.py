"""Every command the README and the docs show works as shown: checked with the real parsers, not a list kept here.

``tests/markdown.py`` says which lines are commands (shell blocks, ``$`` lines). Each simple command in them is:

- ``segsync ...`` (or ``.venv/bin/segsync``): parsed by segsync's own argparse parser (``cli.build_parser``);
- ``make TARGET ... [VAR=value]``: targets the Makefile defines, variables it reads;
- ``aws SERVICE OPERATION --parameter ...``: an operation and parameters botocore's service model has
  (``tests/aws_cli.py``);
- anything else only in a block a test runs (``RUN_BY``): the README's tour, the secret recipes.

Inline code that reads as a segsync or make command is checked too; a synopsis (``[--json]``, ``A | B``,
``...``) by its subcommand and flags.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from segsync.cli import build_parser

from ..aws_cli import parse as parse_aws
from ..markdown import ROOT, RUN_BY, blocks, commands, pages, simple_commands

SEGSYNC = {"segsync", ".venv/bin/segsync"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")
SYNOPSIS = re.compile(r"[\[\]|()]|\.\.\.")
INLINE = re.compile(r"`((?:segsync|make) [^`]+)`")

SHOWN = [
    (block, command, words)
    for page in pages()
    for block in blocks(page)
    for command in commands(block)
    for words in simple_commands(command.text)
]
INLINE_SHOWN = [
    (f"{page.relative_to(ROOT)}:{number}", match.replace("\\|", "|"))
    for page in pages()
    for number, line in enumerate(page.read_text().splitlines(), start=1)
    for match in INLINE.findall(line)
]


def _makefile() -> tuple[set[str], set[str]]:
    """The Makefile's targets and the variables it reads or lets the caller set."""
    text = "\n".join(p.read_text() for p in [ROOT / "Makefile", *sorted((ROOT / "make").glob("*.mk"))])
    targets = {
        name
        for line in re.findall(r"^([A-Za-z0-9_.-][^:=$\n]*):(?!=)", text, re.M)
        for name in line.split()
        if not name.startswith(".")
    }
    variables = set(re.findall(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]", text))
    variables |= set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\?=", text, re.M))
    return targets, variables


TARGETS, VARIABLES = _makefile()


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)parser that ``words`` reach, through subcommands, and the words left for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and words and words[0] in action.choices:
            return _subparser(action.choices[words[0]], words[1:])
    return parser, words


def _segsync_problem(words: list[str], mention: bool = False) -> str | None:
    """Why segsync's parser refuses ``words`` (after the program), or None.

    ``mention``: the words name a command in the text (`segsync runs`, a synopsis): its subcommand and flags
    must exist; a command shown to be run must parse whole.
    """
    parser = build_parser()
    command, rest = _subparser(parser, words)
    if mention or SYNOPSIS.search(" ".join(words)):
        flags = {w.strip("[]()|.") for w in rest if w.lstrip("[(").startswith("-")} - {""}
        unknown = sorted(flags - set(command._option_string_actions))
        if command is parser:
            return f"no subcommand in {words}"
        return f"{command.prog}: no option {', '.join(unknown)}" if unknown else None
    # Placeholders stand for values: a typed option's gets a value of its type.
    filled = list(words)
    for i, word in enumerate(words[:-1]):
        action = command._option_string_actions.get(word)
        if action is not None and action.type in (int, float) and PLACEHOLDER.match(words[i + 1]):
            filled[i + 1] = "1"
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(filled)
    except SystemExit as exc:
        return said.getvalue().strip().splitlines()[-1] if exc.code else None
    return None


def _make_problem(words: list[str]) -> str | None:
    unknown_targets = [w for w in words if "=" not in w and not w.startswith("-") and w not in TARGETS]
    unknown_variables = [w.split("=")[0] for w in words if "=" in w and w.split("=")[0] not in VARIABLES]
    if unknown_targets or unknown_variables:
        return f"no target {unknown_targets} / no variable the Makefile reads {unknown_variables}"
    return None if words else "make with no target"


def _problem(program: str, words: list[str], mention: bool = False) -> str | None:
    if program in SEGSYNC:
        return _segsync_problem(words, mention)
    if program == "make":
        return _make_problem(words)
    if program == "aws":
        try:
            parse_aws(words)
        except ValueError as exc:
            return str(exc)
        return None
    return f"{program} is not segsync, make or aws, and no test runs this block"


@pytest.mark.parametrize(
    ("block", "command", "words"),
    SHOWN,
    ids=[f"{b.where} {' '.join(w)[:60]}" for b, _, w in SHOWN],
)
def test_each_command_the_docs_show_is_one_the_real_parsers_accept(block, command, words):
    # Given a command a page shows, in a block no test runs as a whole
    program, *rest = words

    # When it is read as its program would read it (or the block is one a test runs)
    problem = None if block.tag in RUN_BY else _problem(program, rest)

    # Then nothing is wrong with it
    assert problem is None, f"{block.where}: `{command.text}`: {problem}"


@pytest.mark.parametrize(("where", "text"), INLINE_SHOWN, ids=[f"{w} {t[:60]}" for w, t in INLINE_SHOWN])
def test_each_command_named_in_the_text_is_one_the_real_parsers_accept(where, text):
    # Given a command the text names in passing (`segsync preview FILE --sync NAME`, a synopsis)
    program, *rest = text.split()

    # When it is read as a mention: its subcommand and flags
    problem = _problem(program, rest, mention=True)

    # Then they exist
    assert problem is None, f"{where}: `{text}`: {problem}"


def test_the_checks_see_every_kind_of_command_and_know_who_runs_the_rest():
    # Given every command the pages show
    programs = {words[0] for _, _, words in SHOWN}
    tags = {block.tag for page in pages() for block in blocks(page) if block.tag}

    # Then each kind is there to check (a collector that finds nothing would pass everything)
    assert {"make", "aws", ".venv/bin/segsync", "segsync", ".venv/bin/python", "openssl", "jq"} <= programs
    assert len(INLINE_SHOWN) > 30
    # And every block named as run by a test is one a test runs
    assert tags == set(RUN_BY)
    for test in set(RUN_BY.values()):
        assert (ROOT / test).is_file()


@pytest.mark.parametrize(
    ("program", "words", "refused"),
    [
        ("segsync", ["preview", "demo/segsync.yml", "--sync", "x", "--capture", "--al"], "--al"),
        ("segsync", ["run", "FILE", "--local", "--capture-port", "many"], "invalid int value"),
        ("segsync", ["dlq", "show", "(--stack", "NAME", "|", "--endpoint", "URL)", "[--jsn]"], "--jsn"),
        ("segsync", ["frobnicate"], "invalid choice"),
        ("make", ["rn"], "rn"),
        ("make", ["run", "ARG=-v"], "ARG"),
        ("aws", ["secretsmanager", "create-secrets", "--name", "x"], "create-secrets"),
        ("aws", ["secretsmanager", "create-secret", "--name", "x", "--secret", "y"], "--secret"),
        ("aws", ["secretsmanager", "put-secret-value", "--secret-string", "y"], "SecretId"),
        ("openssl", ["genrsa"], "no test runs"),
    ],
)
def test_a_command_that_would_not_work_is_refused_with_the_reason(program, words, refused):
    assert refused in (_problem(program, words) or "")


def test_pages_are_found_where_the_site_and_the_readme_are():
    assert Path(ROOT / "README.md") in pages() and len(pages()) > 15
