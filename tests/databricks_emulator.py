"""Starts the Databricks emulator (tests/emulators/databricks.py: the SQL Statement Execution API on a local
Spark) in its own virtualenv, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-spark" / "bin" / "python"
SERVER = ROOT / "tests" / "emulators" / "databricks.py"
TOKEN = "dapi-emulator-token"
WAREHOUSE_ID = "abc123def456"
HTTP_PATH = f"/sql/1.0/warehouses/{WAREHOUSE_ID}"
START_TIMEOUT_S = 120


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[str]


def start(directory: Path) -> Emulator:
    if not PYTHON.exists():
        raise RuntimeError(f"the Databricks tests need pyspark in {PYTHON.parent.parent}: `make test` creates it")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (directory / "log").open("w")
    process = subprocess.Popen(
        [str(PYTHON), str(SERVER), str(port), TOKEN, WAREHOUSE_ID, str(directory / "warehouse")],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=directory,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready" or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"the Databricks emulator did not start: {(directory / 'log').read_text()[-2000:]}")
    return Emulator(f"http://127.0.0.1:{port}", process)


def stop(emulator: Emulator) -> None:
    emulator.process.terminate()
    try:
        emulator.process.wait(20)
    except subprocess.TimeoutExpired:
        emulator.process.kill()
