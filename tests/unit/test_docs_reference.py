"""The docs' project file reference: generated from the JSON Schema, every field with its type, default and text.

``docs/hooks/reference.py`` is the mkdocs hook that writes the page at build time; the schema it reads is the
committed one, which ``test_schema.py`` keeps equal to what the pydantic models generate.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import orjson
import pytest

from segsync.commands.schema import project_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = orjson.loads((ROOT / "schema" / "segsync.schema.json").read_bytes())


def _hook():
    spec = importlib.util.spec_from_file_location("reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _hook()


def _rows(page: str, heading: str) -> dict[str, list[str]]:
    """The table under ``heading``, as field → its cells."""
    section = page.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([^`]+)`", row)[1]: row for row in rows}


def test_the_reference_has_every_field_of_every_model_with_its_type_default_and_description():
    # Given the schema the models generate (as committed)
    assert project_schema() == SCHEMA

    # When the page is rendered
    page = reference.render(SCHEMA)

    # Then each definition has a section, and each of its fields a row saying all the schema says of it
    for heading, node in [("## The file", SCHEMA), *((f"### {name}", d) for name, d in SCHEMA["$defs"].items())]:
        rows = _rows(page, heading)
        assert list(rows) == list(node["properties"]), heading
        for field, spec in node["properties"].items():
            row = rows[field]
            assert spec.get("description", "") in row.replace("\\|", "|"), (heading, field)
            if field in node.get("required", ()):
                assert "| required |" in row
            elif spec.get("default") is not None:
                assert f"`{reference._json(spec['default'])}`" in row, (heading, field)
            for value in spec.get("enum", ()):
                assert f"`{value}`" in row, (heading, field)


def test_types_read_as_words_with_links_to_the_definitions_they_name():
    page = reference.render(SCHEMA)
    assert "| `key_field` | one of `userId`, `anonymousId` | `userId` |" in page
    assert "| `port` | integer (> 0, < 65536) | `5432` |" in page
    assert "map of name → text (not empty) or [Value](#value) or [Column](#column)" in page
    assert "| `credentials` | [SecretRef](#secretref) | required |" in page
    assert "`type: duckdb`. The embedded default warehouse: a DuckDB file." in page
    # Every link points at a section the page has
    anchors = {heading.lower() for heading in re.findall(r"^### (\w+)$", page, re.M)}
    assert set(re.findall(r"\]\(#(\w+)\)", page)) <= anchors


def test_a_field_added_to_a_model_appears_without_anyone_writing_it_down():
    # Given the schema with one more field on a sync
    schema = copy.deepcopy(SCHEMA)
    schema["$defs"]["UserSync"]["properties"]["batch_hint"] = {"type": "integer", "default": 7, "description": "new"}

    # When / Then the page has it
    assert "| `batch_hint` | integer | `7` | new |" in reference.render(schema)


def test_a_definition_no_field_reaches_fails_the_build_instead_of_vanishing():
    schema = copy.deepcopy(SCHEMA)
    schema["$defs"]["Orphan"] = {"properties": {}, "type": "object"}
    with pytest.raises(ValueError, match="Orphan"):
        reference.render(schema)


def test_the_page_is_in_the_site_navigation_and_never_in_git():
    assert "reference.md" in (ROOT / "mkdocs.yml").read_text()
    assert not (ROOT / "docs" / "reference.md").exists()
