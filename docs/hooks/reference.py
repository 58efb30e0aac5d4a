"""mkdocs hook: the project file reference, generated at build time from ``schema/segsync.schema.json``.

The schema is what the pydantic models that validate project files generate (``make schema`` writes it, and a
test keeps the committed copy equal to the models), so this page lists every field they accept, with its type,
default and description, and nobody copies it by hand: it exists only in the built site, never in git.
Imports nothing but the standard library at module level, so the tests can render it without mkdocs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA = "schema/segsync.schema.json"
PAGE = "reference.md"
INTRO = """\
# Project file reference

Every field of a project file (`segsync.yml`), generated from the models segsync validates it with
(through [`{schema}`](project-file.md#editors), which editors read too). A field that is not listed here
is refused, with the sync and field named. The schema says what a field looks like; `segsync validate`
also checks what a schema cannot say: schedule expressions, mapping targets, references between
connections and syncs, dbt model names. [The project file](project-file.md) shows a whole file, and
[Mapping](mapping.md) what each kind of source does.
"""


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site (mkdocs calls this before building the navigation)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render(_schema(config))))
    return files


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """``mkdocs serve`` rebuilds when ``make schema`` rewrites the schema."""
    server.watch(str(_schema_path(config)))
    return server


def _schema_path(config: Any) -> Path:
    return Path(config.config_file_path).parent / SCHEMA


def _schema(config: Any) -> dict[str, Any]:
    return json.loads(_schema_path(config).read_text())


def render(schema: dict[str, Any]) -> str:
    """The reference page: the file's top-level fields, then each definition under the field it first appears in."""
    definitions = schema["$defs"]
    lines = [INTRO.format(schema=SCHEMA), "## The file", "", _describe(schema), "", *_table(schema)]
    placed: set[str] = set()
    for field, node in schema["properties"].items():
        names = [name for name in _reached(node, definitions) if name not in placed]
        if not names:
            continue
        placed.update(names)
        lines += ["", f"## `{field}`", ""]
        for name in names:
            lines += _definition(name, definitions[name])
    missing = sorted(set(definitions) - placed)
    if missing:
        raise ValueError(f"{SCHEMA}: definitions no field reaches: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def _reached(node: Any, definitions: dict[str, Any]) -> list[str]:
    """The definitions ``node`` refers to, directly or through others, in reading order (breadth first)."""
    order: list[str] = []
    queue = _refs(node)
    while queue:
        name = queue.pop(0)
        if name not in order:
            order.append(name)
            queue += _refs(definitions[name])
    return order


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else []
        for key, value in node.items():
            if key != "discriminator":
                found += _refs(value)
        return found
    if isinstance(node, list):
        return [name for item in node for name in _refs(item)]
    return []


def _definition(name: str, node: dict[str, Any]) -> list[str]:
    tag = next(
        (f"`{field}: {value['const']}`. " for field, value in node.get("properties", {}).items() if "const" in value),
        "",
    )
    return [f"### {name}", "", tag + _describe(node), "", *_table(node), ""]


def _describe(node: dict[str, Any]) -> str:
    """A model's docstring as Markdown (reStructuredText's ``code`` becomes `code`)."""
    return re.sub(r"``([^`]+)``", r"`\1`", node.get("description", "")).strip()


def _table(node: dict[str, Any]) -> list[str]:
    required = set(node.get("required", ()))
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for field, spec in node.get("properties", {}).items():
        if field in required:
            default = "required"
        elif "default" in spec:
            default = "none" if spec["default"] is None else f"`{_json(spec['default'])}`"
        else:
            default = "empty"
        cells = [f"`{field}`", _type(spec), default, spec.get("description", "")]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _type(spec: dict[str, Any]) -> str:
    """A field's type in words: links to definitions, enums and constraints spelled out, null left to the default."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in spec:
        return f"`{_json(spec['const'])}`"
    if "enum" in spec:
        return "one of " + ", ".join(f"`{_json(v)}`" for v in spec["enum"])
    alternatives = spec.get("oneOf") or spec.get("anyOf")
    if alternatives:
        return " or ".join(_type(a) for a in alternatives if a.get("type") != "null")
    kind = spec.get("type")
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return "map of name → " + _type(spec["additionalProperties"])
    if kind == "array":
        least = f" (at least {spec['minItems']})" if spec.get("minItems") else ""
        return f"list of {_type(spec['items'])}{least}"
    words = {"string": "text", "integer": "integer", "number": "number", "boolean": "true or false"}
    if kind is None:
        return "any JSON value"
    return words[kind] + _constraints(spec)


def _constraints(spec: dict[str, Any]) -> str:
    said = []
    if spec.get("minLength") == 1:
        said.append("not empty")
    if "pattern" in spec:
        said.append(f"matching `{spec['pattern']}`")
    for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤")):
        if key in spec:
            said.append(f"{sign} {_json(spec[key])}")
    return f" ({', '.join(said)})" if said else ""


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _cell(text: str) -> str:
    """A table cell: line breaks folded, pipes escaped outside code (Python-Markdown keeps code spans whole)."""
    parts = " ".join(text.split()).split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))
