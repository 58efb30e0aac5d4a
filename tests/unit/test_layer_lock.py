"""The Lambda layer's lock: the same top-level pins as pyproject, the whole tree pinned and hashed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS_IN = ROOT / "layers" / "deps" / "requirements.in"
LOCK = ROOT / "layers" / "deps" / "requirements.txt"
LOCAL_ONLY = re.compile(r"(duckdb|pyarrow|moto|fakesnow|pytest|hypothesis|uv)$")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(\[[^\]]*\])?==(?P<version>\S+)$")


def _pins(lines: list[str]) -> dict[str, str]:
    """``name`` (normalised, extras dropped) → version, from ``name[extra]==version`` lines."""
    pins = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        pins[re.sub(r"[-_.]+", "-", match["name"]).lower()] = match["version"]
    return pins


def _requirements_in() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS_IN.read_text().splitlines())
    return [line for line in lines if line]


def _lock() -> dict[str, list[str]]:
    """Each locked requirement (``name==version``) with its hashes."""
    entries: dict[str, list[str]] = {}
    current = None
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#")[0].strip().removesuffix("\\").strip()
        if not line:
            continue
        if line.startswith("--hash="):
            assert current is not None, f"a hash before any requirement: {raw!r}"
            entries[current].append(line.removeprefix("--hash="))
        else:
            current = line
            entries[current] = []
    return entries


def test_the_layer_pins_are_the_projects_runtime_pins():
    # Given pyproject's runtime dependencies and the layer's top-level requirements
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    # When / Then they are the same pins, extras included
    assert sorted(_requirements_in()) == sorted(project)


def test_the_lock_pins_every_top_level_requirement_at_its_version():
    # Given the top-level pins and the lock
    top = _pins(_requirements_in())
    locked = _pins(list(_lock()))

    # When / Then each top-level package is locked at the version pinned, the tracer's X-Ray SDK too
    assert {name: locked.get(name) for name in top} == top
    assert "aws-xray-sdk" in locked


def test_every_locked_package_is_pinned_and_hashed_and_none_is_local_only():
    # Given the lock
    entries = _lock()

    # When we look for entries without a sha256 hash, and for local-mode or test tools
    unhashed = [
        entry for entry, hashes in entries.items() if not hashes or not all(h.startswith("sha256:") for h in hashes)
    ]
    local_only = [name for name in _pins(list(entries)) if LOCAL_ONLY.match(name)]

    # Then every package carries hashes (pip checks them all, or none), and nothing local rides along
    assert len(entries) > len(_requirements_in())
    assert unhashed == []
    assert local_only == []
