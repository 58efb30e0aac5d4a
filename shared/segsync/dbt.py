"""dbt manifests: a model's name → the relation dbt built for it, so a sync can name a model instead of SQL.

Only ``push``, ``validate`` and local runs read a manifest; the syncs table stores the relation, so the
Lambda functions never need the dbt project.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from segsync.errors import ConfigError

SUGGESTIONS = 3


@dataclass(frozen=True)
class DbtNode:
    """One model as the manifest describes it."""

    unique_id: str
    name: str
    package: str
    materialized: str
    relation: str | None
    version: str | None = None
    latest_version: str | None = None

    @classmethod
    def from_manifest(cls, node: dict[str, Any]) -> DbtNode:
        version = node.get("version")
        latest = node.get("latest_version")
        return cls(
            unique_id=node["unique_id"],
            name=node["name"],
            package=node["package_name"],
            materialized=(node.get("config") or {}).get("materialized", ""),
            relation=node.get("relation_name"),
            version=None if version is None else str(version),
            latest_version=None if latest is None else str(latest),
        )

    def matches(self, name: str) -> bool:
        """``name`` is the model's name, or ``package.name``."""
        return name in (self.name, f"{self.package}.{self.name}")


class Manifest:
    """The models of a dbt ``manifest.json``: enabled ones, and those the project disables."""

    def __init__(self, path: Path, models: list[DbtNode], disabled: list[DbtNode]) -> None:
        self.path = path
        self._models = models
        self._disabled = disabled

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest written by ``dbt compile``, ``dbt run`` or ``dbt build``.

        Raises:
            ConfigError: no such file, or not a dbt manifest.
        """
        path = Path(path)
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(
                f"dbt manifest {path}: no such file (dbt compile, run and build write target/manifest.json)"
            ) from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"dbt manifest {path}: cannot read it: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            raise ConfigError(f"dbt manifest {path}: not a dbt manifest (it has no 'nodes')")
        try:
            models = [DbtNode.from_manifest(n) for n in data["nodes"].values() if n.get("resource_type") == "model"]
            disabled = [
                DbtNode.from_manifest(n)
                for versions in (data.get("disabled") or {}).values()
                for n in versions
                if n.get("resource_type") == "model"
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"dbt manifest {path}: a model entry is not as dbt writes it ({exc!r})") from None
        return cls(path, models, disabled)

    def node(self, name: str, sync: str) -> DbtNode:
        """The enabled model called ``name`` (its latest version, if versioned).

        Raises:
            ConfigError: unknown, disabled, or ambiguous (the same name in two packages).
        """
        found = [model for model in self._models if model.matches(name)]
        versioned = [model for model in found if model.version is not None]
        if versioned and len(versioned) == len(found):
            found = [model for model in found if model.version == model.latest_version] or found
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(sorted(model.unique_id for model in found))
            raise ConfigError(f"sync '{sync}': dbt model name '{name}' is ambiguous ({ids}): name it as package.model")
        if any(model.matches(name) for model in self._disabled):
            raise ConfigError(
                f"sync '{sync}': dbt model '{name}' is disabled in the dbt project (enabled: false), so dbt builds "
                "no relation for it: enable it, or name another model"
            )
        close = difflib.get_close_matches(name, sorted({model.name for model in self._models}), n=SUGGESTIONS)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"sync '{sync}': no dbt model '{name}' in {self.path}{hint}")

    def relation(self, name: str, sync: str) -> str:
        """The relation dbt builds for model ``name``, quoted as dbt quotes it (``"db"."schema"."table"``).

        Raises:
            ConfigError: unknown, disabled, ephemeral, or without a relation in this manifest.
        """
        model = self.node(name, sync)
        if model.materialized == "ephemeral":
            raise ConfigError(
                f"sync '{sync}': dbt model '{name}' is ephemeral: dbt inlines it into other models and builds no "
                "relation to read; materialize it as a view or a table"
            )
        if not model.relation:
            raise ConfigError(
                f"sync '{sync}': dbt model '{name}' has no relation in {self.path} yet: run "
                f"`dbt compile --select {model.name}` (or dbt run) to write it, then try again"
            )
        return model.relation


def built_models(run_results: dict[str, Any]) -> set[str]:
    """Names of the models a dbt invocation built successfully, from its ``run_results.json``.

    Tests, seeds and snapshots are left out; so is a model that errored or was skipped.
    """
    names = set()
    for result in run_results.get("results") or []:
        unique_id = str(result.get("unique_id", ""))
        parts = unique_id.split(".")
        if parts[0] == "model" and len(parts) >= 3 and result.get("status") == "success":
            names.add(parts[2])
    return names
