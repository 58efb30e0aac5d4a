"""What the pages show besides commands: values in the form the code renders them, links that lead somewhere.

The site's own links and anchors are checked by ``make docs`` (mkdocs, strict); the Markdown that is not in
the site (the README, the test tiers' and the benchmark's READMEs) is read on GitHub, so its links are
checked here.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from segsync.planner import new_run_id

from ..markdown import ROOT, pages

RUN_ID = re.compile(r"\b\d{8}T\d{6,}Z-[0-9a-f]+\b")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
OUTSIDE_THE_SITE = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "tests").glob("*/README.md"))]


def _shape(text: str) -> str:
    """``text`` with every digit and hex letter as ``x``: two run ids of one format have one shape."""
    return re.sub(r"[0-9a-f]", "x", text)


RUN_IDS_SHOWN = [
    (f"{page.relative_to(ROOT)}:{number}", run_id)
    for page in pages()
    for number, line in enumerate(page.read_text().splitlines(), start=1)
    for run_id in RUN_ID.findall(line)
]


@pytest.mark.parametrize(("where", "run_id"), RUN_IDS_SHOWN, ids=[f"{w} {r}" for w, r in RUN_IDS_SHOWN])
def test_each_run_id_the_docs_show_has_the_form_the_planner_gives_run_ids(where, run_id):
    # Given a run id a page shows, and one the planner makes
    made = new_run_id(datetime(2026, 12, 1, 10, 15, 0, 412_000, tzinfo=UTC))

    # Then the page's reads like the planner's
    assert _shape(run_id) == _shape(made), f"{where}: {run_id} is not in the form of {made}"


def test_the_run_id_check_sees_the_run_ids_and_refuses_an_old_form():
    assert len(RUN_IDS_SHOWN) >= 5
    assert _shape("20261201T101500Z-3f9a1c") != _shape(new_run_id())


def _slug(heading: str) -> str:
    """A heading's anchor as the site's table of contents (Python-Markdown) and GitHub make it, for plain text."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} +(.+?) *$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {_slug(heading.replace("`", "")) for heading in headings}


LINKS = [
    (page, target)
    for page in OUTSIDE_THE_SITE
    for target in LINK.findall(page.read_text())
    if not re.match(r"^[a-z]+:", target)
]


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.relative_to(ROOT)} {t}" for p, t in LINKS])
def test_each_link_outside_the_site_leads_to_a_file_and_heading_that_exist(page, target):
    # Given a relative link in a page read on GitHub
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page

    # Then the file is in the checkout, and the heading it names is in the file
    assert linked.is_file(), f"{page.relative_to(ROOT)}: {target}: no such file"
    if anchor:
        assert anchor in _anchors(linked), f"{page.relative_to(ROOT)}: {target}: no such heading"


def test_the_link_check_sees_the_readme_links_into_the_docs():
    assert sum(target.startswith("docs/") for page, target in LINKS if page.name == "README.md") >= 15
    assert _slug("1. Put the secrets in `Secrets Manager`") == "1-put-the-secrets-in-secrets-manager"
    assert "1-put-the-secrets-in-secrets-manager" in _anchors(ROOT / "docs" / "deploy.md")
