"""What a person sees running ``segsync demo`` in a real process: progress and the summary, no log line, no warning.

The functions' JSON logs go to the project's ``.segsync/segsync.log``; on a terminal (a pseudo-terminal
here) a bar shows the rows going out, off it each phase is one line on stderr.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from segsync.console import log_path

TIMEOUT_S = 120
PHASES = [
    "starting a local stack (moto on loopback)",
    "planning demo-users, demo-events",
    "sending 0 rows",
]


def _segsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "segsync.cli", *args]


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal, as in a person's shell; what the terminal showed."""
    main, child = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=child, stderr=child)
    os.close(child)
    shown = bytearray()
    try:
        while True:
            ready, _, _ = select.select([main], [], [], TIMEOUT_S)
            assert ready, f"no output for {TIMEOUT_S} s"
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            shown += data
        return process.wait(timeout=TIMEOUT_S), shown.decode().replace("\r\n", "\n")
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()


def test_the_demo_shows_progress_and_its_summary_and_keeps_logs_and_warnings_out_of_sight(small_warehouse):
    # Given the demo's warehouse (at this test's size) in a directory of its own
    demo_dir = small_warehouse.parent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = ["demo", "--dir", str(demo_dir), "--capture-port", str(port)]

    # When the demo runs on a terminal
    code, shown = _on_a_terminal(_segsync(*demo))

    # Then the terminal shows the phases, a bar filling up to every chunk, and the summary
    assert code == 0, shown
    assert "\rsending [" + "." * 30 + "] 0/2,300 rows" in shown
    assert "\rsending [" + "#" * 30 + "] 2,300/2,300 rows\n" in shown
    assert "demo-users   committed        300    300" in shown
    assert f"logs: {log_path(demo_dir)}" in shown
    # And no function log line and no Python warning
    assert not any(line.lstrip("\r").startswith("{") for line in shown.splitlines())
    assert "Warning" not in shown

    # When it runs again off a terminal (nothing left to send: Powertools would warn of empty metrics), as JSON
    again = subprocess.run(_segsync(*demo, "--json"), capture_output=True, text=True, timeout=TIMEOUT_S, check=False)

    # Then stdout is the JSON summary, and stderr one line per phase, nothing else
    assert again.returncode == 0, again.stderr
    summary = orjson.loads(again.stdout)
    assert summary["ok"] is True and summary["received"] == 0
    assert again.stderr.splitlines() == PHASES

    # And the functions' logs of both runs are in the log file the summary names, as JSON lines
    assert summary["logs"] == str(log_path(demo_dir))
    logged = [orjson.loads(line) for line in Path(summary["logs"]).read_text().splitlines()]
    messages = [line["message"] for line in logged]
    assert messages.count("run planned") == 4 and messages.count("chunk delivered") == 3
