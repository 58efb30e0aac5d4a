"""The functions as Lambda runs them: the runtime's Python, the layers as `sam build` makes them, nothing else.

The dependency layer is what `sam build` does for ``layers/deps`` (``pip install -r requirements.txt``
into ``python/``), built once per lock and Python and cached under ``.aws-sam/runtime-test``; the
library layer is ``shared/`` copied under ``python/`` without egg-info or bytecode. ``invoke`` runs a
handler in a fresh interpreter started with ``-I -S``: no user or dev site-packages, only the
function's folder and the two layers on ``sys.path`` (the order Lambda gives ``/var/task`` and
``/opt/python``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "layers" / "deps" / "requirements.txt"
CACHE = ROOT / ".aws-sam" / "runtime-test"
HARNESS = Path(__file__).with_name("lambda_invoke.py")
RUNTIME = "3.12"
INSTALL_TIMEOUT_S = 600
# The lock is the whole tree: no resolving, every hash checked, wheels only (as sam build fetches for arm64).
PIP_OPTIONS = ("--disable-pip-version-check", "--no-deps", "--require-hashes", "--only-binary=:all:", "-r", str(LOCK))
INVOKE_TIMEOUT_S = 180


def runtime_python() -> str:
    """The Lambda runtime's Python (3.12): on PATH, or pyenv's, as `make build` finds it."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.path.expanduser("~/.pyenv")
    # A pyenv shim is on PATH even when the version it needs is not selected: try each until one runs.
    candidates = [
        shutil.which(f"python{RUNTIME}"),
        *reversed(sorted(glob.glob(f"{root}/versions/{RUNTIME}.*/bin/python{RUNTIME}"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-I", "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == f"({RUNTIME.replace('.', ', ')})":
            return candidate
    pytest.fail(
        f"the functions' runtime is Python {RUNTIME}, and no working python{RUNTIME} is on PATH or in pyenv "
        f"({root}/versions): install it (e.g. `pyenv install {RUNTIME}`) to run the runtime tests"
    )


def dependency_layer(python: str) -> Path:
    """``python/`` of the dependency layer built from the lock (hashes checked), cached by lock and Python."""
    version = subprocess.run(
        [python, "-I", "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    )
    key = hashlib.sha256(LOCK.read_bytes() + version.stdout.encode()).hexdigest()[:16]
    built = CACHE / f"deps-{key}"
    if not (built / "python").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE))
        completed = subprocess.run(
            [python, "-I", "-m", "pip", "install", "--quiet", *PIP_OPTIONS, "--target", str(partial / "python")],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if completed.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.fail(f"installing the layer's lock failed:\n{completed.stderr[-4000:]}")
        try:
            partial.rename(built)
        except OSError:  # another session built it meanwhile
            shutil.rmtree(partial, ignore_errors=True)
        for stale in CACHE.glob("deps-*"):  # layers of earlier locks: ~100 MB each
            if stale.name != built.name:
                shutil.rmtree(stale, ignore_errors=True)
    return built / "python"


def library_layer(dest: Path) -> Path:
    """``python/`` of the library layer: ``shared/`` as the pip builder copies it."""
    target = dest / "python"
    shutil.copytree(ROOT / "shared", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


@dataclass(frozen=True)
class Runtime:
    """A Python 3.12 and the two layers: enough to run either function as Lambda would."""

    python: str
    layers: tuple[Path, ...]

    def invoke(
        self,
        function: str,
        event: dict[str, Any],
        env: dict[str, str],
        *,
        absent: tuple[str, ...] = (),
        snowflake: dict[str, Any] | None = None,
        timeout_s: int = 120,
    ) -> Invocation:
        """Run ``functions/<function>/app.py``'s handler once on ``event`` with exactly ``env`` as environment.

        ``absent``: modules that must not be importable there (checked before the handler is imported).
        ``snowflake``: fakesnow's test options for the real connector (the sync's ``host`` names the server).
        """
        with tempfile.TemporaryDirectory(prefix="invoke-") as scratch:
            request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
            request.write_text(
                json.dumps(
                    {
                        "path": [str(ROOT / "functions" / function), *map(str, self.layers)],
                        "function": function,
                        "event": event,
                        "timeout_s": timeout_s,
                        "absent": list(absent),
                        "snowflake": snowflake,
                    }
                )
            )
            completed = subprocess.run(
                [self.python, "-I", "-S", "-B", str(HARNESS), str(request), str(result)],
                env=env,
                capture_output=True,
                text=True,
                timeout=INVOKE_TIMEOUT_S,
            )
            outcome = json.loads(result.read_text()) if result.exists() else {}
        return Invocation(completed.returncode, completed.stdout, completed.stderr, outcome)


@dataclass(frozen=True)
class Invocation:
    """What one invocation returned and printed (stdout: EMF metrics; stderr: the logs)."""

    returncode: int
    stdout: str
    stderr: str
    outcome: dict[str, Any]

    @property
    def response(self) -> Any:
        assert self.returncode == 0 and "response" in self.outcome, (
            f"the handler failed (exit {self.returncode}): {self.outcome.get('error')}\n{self.stderr[-6000:]}"
        )
        return self.outcome["response"]

    def metrics(self) -> dict[str, float]:
        """The EMF metrics printed on stdout, summed by name."""
        totals: dict[str, float] = {}
        for line in self.stdout.splitlines():
            if not line.startswith("{"):
                continue
            blob = json.loads(line)
            for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in directive["Metrics"]:
                    values = blob[metric["Name"]]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(_as_list(values))
        return totals


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
