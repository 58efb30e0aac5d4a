"""Local commands for people: the functions' logs kept in a file, warnings out of sight, progress on stderr."""

from __future__ import annotations

import io
import logging
import warnings

import orjson

from segsync.console import LOG_FILE, MAX_LOG_BYTES, Progress, function_logs, log_path
from segsync.observability import logger


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_function_logs_go_to_the_log_file_as_json_lines_and_everything_is_put_back(tmp_path, capsys):
    # Given the library logger as Lambda has it (JSON lines on stderr, the level read at import)
    handler, level, roots = logger.registered_handler, logger.log_level, list(logging.root.handlers)
    stream = handler.stream
    path = log_path(tmp_path)

    # When a local command logs as the functions do, and another library warns through logging
    with function_logs(path) as logs:
        logger.info("chunk delivered", extra={"sync": "users", "chunk": 1})
        logging.getLogger("botocore.credentials").warning("found credentials in environment variables")
        logging.getLogger("botocore.credentials").info("not a warning: left out")

    # Then nothing reached the terminal, and the file holds both, one JSON line each, ours at INFO
    assert capsys.readouterr() == ("", "")
    assert logs is not None and logs.written and path == tmp_path / ".segsync" / LOG_FILE
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("INFO", "chunk delivered"),
        ("WARNING", "found credentials in environment variables"),
    ]
    assert (lines[0]["sync"], lines[0]["chunk"]) == ("users", 1)
    # And the logger is as it was: same stream, same level, no handler left on the root logger
    assert (handler.stream, logger.log_level, logging.root.handlers) == (stream, level, roots)


def test_a_command_that_logs_nothing_leaves_no_log_file(tmp_path):
    with function_logs(log_path(tmp_path)) as logs:
        pass
    assert logs is not None and not logs.written
    assert not (tmp_path / ".segsync").exists()


def test_verbose_sends_the_function_logs_to_stderr(tmp_path, capsys):
    with function_logs(log_path(tmp_path), verbose=True) as logs:
        logger.info("run planned", extra={"sync": "users"})
    assert logs is None
    (line,) = capsys.readouterr().err.splitlines()
    assert orjson.loads(line)["message"] == "run planned"
    assert not (tmp_path / ".segsync").exists()


def test_the_level_is_set_when_the_command_starts_not_when_powertools_was_imported(tmp_path, monkeypatch):
    # Given POWERTOOLS_LOG_LEVEL set after the logger was made (as local_stack used to, too late)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")

    # When the command logs at INFO and at WARNING
    with function_logs(log_path(tmp_path)) as logs:
        logger.info("chunk delivered")
        logger.warning("run abandoned")

    # Then the level in the environment now is the one applied
    assert [orjson.loads(line)["message"] for line in logs.path.read_text().splitlines()] == ["run abandoned"]


def test_expected_warnings_are_dropped_and_other_warnings_are_logged_not_printed(tmp_path, capsys):
    # When Powertools finds no metric to flush and another library warns
    with function_logs(log_path(tmp_path)) as logs:
        warnings.warn("No application metrics to publish. The cold-start metric may be published", stacklevel=1)
        warnings.warn("something a person need not see now", UserWarning, stacklevel=1)

    # Then the user sees neither, and the log keeps the one that was not expected
    assert capsys.readouterr() == ("", "")
    messages = [orjson.loads(line)["message"] for line in logs.path.read_text().splitlines()]
    assert len(messages) == 1 and "UserWarning: something a person need not see now" in messages[0]
    # And once the command is done, a warning is Python's business again, not the log's
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.warn("after the command", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["after the command"]
    assert len(logs.path.read_text().splitlines()) == 1


def test_a_log_file_past_its_limit_is_moved_aside_when_a_command_starts(tmp_path):
    path = log_path(tmp_path)
    path.parent.mkdir()
    path.write_text("x" * (MAX_LOG_BYTES + 1))
    with function_logs(path):
        logger.info("run planned")
    assert path.with_name(LOG_FILE + ".1").stat().st_size == MAX_LOG_BYTES + 1
    assert orjson.loads(path.read_text())["message"] == "run planned"


def test_progress_off_a_terminal_is_one_line_per_phase():
    # Given stderr that is a file or a pipe
    out = io.StringIO()
    progress = Progress(out)

    # When a run goes through its phases
    progress.phase("planning users")
    progress.bar("sending", 3, "chunks")
    for _ in range(3):
        progress.advance(1)
    progress.phase("committing what was delivered")
    progress.close()

    # Then each phase is one line, and no bar is drawn
    assert out.getvalue() == "planning users\nsending 3 chunks\ncommitting what was delivered\n"


def test_progress_on_a_terminal_draws_a_bar_in_place():
    out = Terminal()
    progress = Progress(out)
    progress.bar("sending", 4, "chunks")
    progress.advance(1)
    progress.advance(3)
    progress.phase("committing what was delivered")
    drawn = out.getvalue()
    assert drawn.startswith("\rsending [" + "." * 30 + "] 0/4 chunks\rsending [#######")
    assert "\rsending [" + "#" * 30 + "] 4/4 chunks\ncommitting what was delivered\n" in drawn


def test_progress_without_a_stream_says_nothing(capsys):
    progress = Progress()
    progress.phase("planning")
    progress.bar("sending", 2, "chunks")
    progress.advance(2)
    progress.close()
    assert capsys.readouterr() == ("", "")
