"""The README's five-minute tour runs as written, and prints what the README shows.

Every command of the tour runs as written in a sandbox (``tests/tour.py``: a copy of the checkout with this
virtualenv), at this test's size: the demo's warehouse is built beforehand with 300 users and 2,000 events
(the demo's own rows, fewer of them), so the tour takes seconds; ``make tour`` ran it at the demo's size to
write the outputs the README shows. So each output is compared with the README's with what depends on the
size or the clock masked (numbers, run ids, times, built or reused, column widths), and the tour's claims
that hold at any size are checked as they are: the preview finds one changed user, the next run sends it.
"""

from __future__ import annotations

import re

from segsync.local.demo import build_warehouse

from ..tour import free_port, run_tour, sandbox, tour_commands

RUN_ID = re.compile(r"\b\d{8}T\d{6,9}Z-[0-9a-f]+\b")
CLOCK = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b")
BUILT = re.compile(r"\((built now|reused)\)")
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")


def masked(lines: list[str]) -> list[str]:
    """Output as far as it does not depend on the demo's size or the clock."""
    text = NUMBER.sub("#", BUILT.sub("(…)", CLOCK.sub("<time>", RUN_ID.sub("<run>", "\n".join(lines)))))
    return [" ".join(line.split()) for line in text.splitlines()]


def test_the_readme_tour_runs_as_written_and_prints_what_it_shows(tmp_path):
    # Given a sandbox with the demo's warehouse at this test's size, and the tour as the README writes it
    directory = sandbox(tmp_path)
    build_warehouse(directory / "demo" / "warehouse.duckdb", users=300, events=2_000)
    commands = tour_commands()
    assert [c.text.split()[:2] for c in commands if c.text.startswith("make")] == [["make", "run"]] * 2

    # When each command runs in order (make run ticking the planner faster than the demo's 2 s)
    outputs = run_tour(directory, free_port(), more_args="--tick-seconds 0.3")

    # Then each prints what the README shows under it
    for command, output in zip(commands, outputs, strict=True):
        assert masked(output) == masked(command.output), f"{command.block.where}: `{command.text}` printed\n" + (
            "\n".join(output)
        )
    # And the tour's claims hold: the preview finds the one changed user, and the next run sends only that one
    preview = next(o for c, o in zip(commands, outputs, strict=True) if " preview " in c.text)
    assert re.search(r"^changed +1 ", "\n".join(preview), re.M)
    assert '"plan": "pro"' in "\n".join(preview)
    second_run = [o for c, o in zip(commands, outputs, strict=True) if c.text == "make run"][-1]
    # (rows read, new, changed, removed, sent)
    assert re.search(r"^demo-users +committed +300 +0 +1 +0 +1 ", "\n".join(second_run), re.M)
    assert "received: 1" in second_run
