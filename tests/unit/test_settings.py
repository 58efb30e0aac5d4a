"""Function settings: read from the environment when asked, required values named when missing."""

import pytest

from segsync.errors import ConfigError
from segsync.settings import PlannerSettings, SenderSettings

PLANNER_ENV = {"SYNCS_TABLE": "segsync-syncs", "RUNS_TABLE": "segsync-runs", "QUEUE_URL": "https://sqs/q"}
SENDER_ENV = {"RUNS_TABLE": "segsync-runs"}


def test_planner_settings_take_required_values_and_default_the_limits():
    # Given only the required variables, When read
    settings = PlannerSettings.from_env(PLANNER_ENV)

    # Then they are taken as given, and chunk limits have their defaults
    assert (settings.syncs_table, settings.runs_table, settings.queue_url) == (
        "segsync-syncs",
        "segsync-runs",
        "https://sqs/q",
    )
    assert (settings.chunk_rows, settings.chunk_bytes) == (1_000, 1_000_000)


def test_planner_limits_are_read_from_text_as_numbers():
    # Given limits set in the environment (always text), When read, Then they are integers
    settings = PlannerSettings.from_env({**PLANNER_ENV, "CHUNK_ROWS": "2500", "CHUNK_BYTES": "64000"})
    assert (settings.chunk_rows, settings.chunk_bytes) == (2_500, 64_000)


@pytest.mark.parametrize("missing", ["SYNCS_TABLE", "RUNS_TABLE", "QUEUE_URL"])
def test_missing_required_planner_variable_is_named(missing):
    # Given the planner environment without one required variable
    environ = {k: v for k, v in PLANNER_ENV.items() if k != missing}

    # When read, Then the error names the variable as it is spelled in the environment
    with pytest.raises(ConfigError, match=rf"PlannerSettings: {missing}: Field required"):
        PlannerSettings.from_env(environ)


def test_every_missing_variable_is_named_at_once():
    # Given an empty environment, When read
    with pytest.raises(ConfigError) as caught:
        PlannerSettings.from_env({})

    # Then all three are listed, so a deploy is fixed in one go
    for name in ("SYNCS_TABLE", "RUNS_TABLE", "QUEUE_URL"):
        assert name in str(caught.value)


def test_empty_required_variable_counts_as_missing():
    # Given QUEUE_URL set but empty (a template parameter left blank, say)
    with pytest.raises(ConfigError, match="QUEUE_URL"):
        PlannerSettings.from_env({**PLANNER_ENV, "QUEUE_URL": ""})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHUNK_ROWS", "2501"),  # over what a sender's Segment batch can carry in one chunk
        ("CHUNK_ROWS", "0"),
        ("CHUNK_ROWS", "many"),
        ("CHUNK_BYTES", "63999"),
        ("CHUNK_BYTES", "1048577"),  # over SQS's 1 MiB message limit
    ],
)
def test_chunk_limits_out_of_bounds_are_refused_naming_the_variable(variable, value):
    # Given a limit outside its bounds, When read, Then the variable is named
    with pytest.raises(ConfigError, match=variable):
        PlannerSettings.from_env({**PLANNER_ENV, variable: value})


@pytest.mark.parametrize(("rows", "size"), [("1", "64000"), ("2500", "1048576")])
def test_chunk_limits_at_their_bounds_are_accepted(rows, size):
    # Given limits exactly at their bounds, When read, Then they are accepted
    settings = PlannerSettings.from_env({**PLANNER_ENV, "CHUNK_ROWS": rows, "CHUNK_BYTES": size})
    assert (settings.chunk_rows, settings.chunk_bytes) == (int(rows), int(size))


def test_lower_case_variables_are_not_read():
    # Given the right names in the wrong case, When read, Then they do not count
    with pytest.raises(ConfigError, match="QUEUE_URL"):
        PlannerSettings.from_env({k.lower(): v for k, v in PLANNER_ENV.items()})


def test_sender_settings_need_only_the_runs_table_and_cap_no_pace_unless_told():
    # Given the sender's required variable, When read
    settings = SenderSettings.from_env(SENDER_ENV)

    # Then each destination keeps its own pace: the stack caps none
    assert settings.runs_table == "segsync-runs"
    assert settings.segment_events_per_second is None


def test_the_stack_pace_cap_is_read_and_must_be_positive():
    # Given a cap from the template, When read, Then it is used; zero is refused by name
    assert SenderSettings.from_env({**SENDER_ENV, "SEGMENT_EVENTS_PER_SECOND": "400"}).segment_events_per_second == 400
    with pytest.raises(ConfigError, match="SEGMENT_EVENTS_PER_SECOND"):
        SenderSettings.from_env({**SENDER_ENV, "SEGMENT_EVENTS_PER_SECOND": "0"})


def test_missing_runs_table_is_named_for_the_sender():
    # Given no RUNS_TABLE, When the sender's settings are read, Then the variable is named
    with pytest.raises(ConfigError, match=r"SenderSettings: RUNS_TABLE: Field required"):
        SenderSettings.from_env({"SYNCS_TABLE": "unrelated"})


def test_from_env_without_a_dict_reads_the_process_environment(monkeypatch):
    # Given the sender's variable in the process environment
    monkeypatch.setenv("RUNS_TABLE", "from-process-env")

    # When read without an explicit dict, Then os.environ is used
    assert SenderSettings.from_env().runs_table == "from-process-env"


def test_settings_are_frozen():
    # Given settings read once, When code tries to change them, Then it cannot
    settings = SenderSettings.from_env(SENDER_ENV)
    with pytest.raises(ValueError, match="frozen"):
        settings.runs_table = "other"
