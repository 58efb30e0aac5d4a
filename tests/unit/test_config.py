"""Project files and sync items: valid ones load, every mistake names the sync (or connection) and field."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from segsync.config import (
    Column,
    DuckDBConnection,
    GroupSync,
    SecretRef,
    SegmentConnection,
    TrackSync,
    UserSync,
    Value,
    format_target,
    load_project,
    parse_sync,
    parse_target,
)
from segsync.errors import ConfigError
from segsync.state import destination_id

PROJECT_YAML = """\
version: 1
connections:
  warehouse:
    type: duckdb
    path: data/warehouse.duckdb
  segment:
    type: segment
    region: eu
    write_key: {env: SEGMENT_WRITE_KEY}
syncs:
  - name: users
    source: warehouse
    destination: segment
    model: SELECT id, email, plan FROM users
    object: user
    key: id
    traits:
      email: email
      plan: plan
      source: {value: warehouse}
  - name: orders
    source: warehouse
    destination: segment
    model: SELECT order_id, user_id, placed_at, total FROM orders
    schedule: rate(1 hour)
    object: track
    key: order_id
    event: {value: Order Completed}
    user_id: user_id
    timestamp: placed_at
    properties:
      total: total
"""

USER_SYNC = {
    "name": "x",
    "source": "warehouse",
    "destination": "segment",
    "model": "SELECT id, email FROM users",
    "object": "user",
    "key": "id",
    "traits": {"email": "email"},
}

TRACK_SYNC = {
    "name": "x",
    "source": "warehouse",
    "destination": "segment",
    "model": "SELECT id, user_id FROM events",
    "object": "track",
    "key": "id",
    "event": {"value": "Signed Up"},
    "user_id": "user_id",
}


def base_project() -> dict:
    """The valid project above as data, for a test to break one thing in."""
    return yaml.safe_load(PROJECT_YAML)


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "segsync.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(tmp_path: Path, data: dict | str) -> str:
    """Load ``data`` as a project file and return the ConfigError's message."""
    with pytest.raises(ConfigError) as caught:
        load_project(write(tmp_path, data))
    return str(caught.value)


def with_sync(sync: dict) -> dict:
    """The valid project with its syncs replaced by ``sync`` alone."""
    project = base_project()
    project["syncs"] = [sync]
    return project


# --- a valid project -------------------------------------------------------------------------------


def test_valid_project_loads_both_sync_kinds_with_their_mappings(tmp_path):
    # Given a project file with a User sync and a Track sync
    path = write(tmp_path, PROJECT_YAML)

    # When it is loaded
    project = load_project(path)

    # Then each sync has its kind, defaults and mapping sources (columns and constants)
    users, orders = project.syncs
    assert isinstance(users, UserSync)
    assert (users.behavior, users.key_field, users.enabled) == ("update_or_create", "userId", True)
    assert users.traits == {"email": "email", "plan": "plan", "source": Value(value="warehouse")}
    assert isinstance(orders, TrackSync)
    assert orders.behavior == "append"
    assert orders.event == Value(value="Order Completed")
    assert (orders.user_id, orders.anonymous_id, orders.timestamp) == ("user_id", None, "placed_at")
    assert orders.schedule == "rate(1 hour)"
    # and the connections are typed, the Segment one pointing at its region's API
    segment = project.connections["segment"]
    assert isinstance(segment, SegmentConnection)
    assert segment.write_key == SecretRef(env="SEGMENT_WRITE_KEY")
    assert segment.api_base == "https://events.eu1.segmentapis.com"
    assert project.sync("orders") is orders


def test_duckdb_path_is_resolved_relative_to_the_project_file_not_the_working_directory(tmp_path, monkeypatch):
    # Given a project file in its own directory, loaded from elsewhere
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    path = write(project_dir, PROJECT_YAML)
    monkeypatch.chdir(tmp_path)

    # When it is loaded
    warehouse = load_project(path).connections["warehouse"]

    # Then the relative DuckDB path points next to the file, as an absolute path
    assert isinstance(warehouse, DuckDBConnection)
    assert Path(warehouse.path) == (project_dir / "data" / "warehouse.duckdb").resolve()
    assert Path(warehouse.path).is_absolute()


def test_absolute_duckdb_path_is_kept_as_written(tmp_path):
    # Given a DuckDB connection with an absolute path
    project = base_project()
    absolute = str(tmp_path / "elsewhere" / "wh.duckdb")
    project["connections"]["warehouse"]["path"] = absolute

    # When loaded, Then the path is untouched
    assert load_project(write(tmp_path, project)).connections["warehouse"].path == absolute


def test_endpoint_overrides_the_region_and_loses_its_trailing_slash(tmp_path):
    # Given a Segment connection with an explicit endpoint (a local capture server, say)
    project = base_project()
    project["connections"]["segment"]["endpoint"] = "http://127.0.0.1:8765/"

    # When loaded
    segment = load_project(write(tmp_path, project)).connections["segment"]

    # Then requests go to the endpoint, without a doubled slash before the path
    assert segment.api_base == "http://127.0.0.1:8765"


def test_asking_for_an_unknown_sync_lists_the_ones_that_exist(tmp_path):
    # Given a loaded project
    project = load_project(write(tmp_path, PROJECT_YAML))

    # When a missing sync is asked for, Then the error names it and the known syncs
    with pytest.raises(ConfigError, match=r"no sync named 'nope' \(have: users, orders\)"):
        project.sync("nope")


# --- mistakes in syncs ------------------------------------------------------------------------------


def test_misspelled_sync_field_is_refused_naming_the_sync_and_the_field(tmp_path):
    # Given a User sync with `trait:` where `traits:` was meant
    sync = {**USER_SYNC}
    sync["trait"] = sync.pop("traits")

    # When loaded
    message = load_error(tmp_path, with_sync(sync))

    # Then the typo is reported, not silently ignored
    assert "sync 'x'" in message
    assert "'trait'" in message
    assert "Extra inputs are not permitted" in message


def test_track_sync_without_any_identity_column_is_refused(tmp_path):
    # Given a Track sync with neither user_id nor anonymous_id
    sync = {k: v for k, v in TRACK_SYNC.items() if k != "user_id"}

    # When loaded
    message = load_error(tmp_path, with_sync(sync))

    # Then the sync is named and both options are suggested
    assert "sync 'x'" in message
    assert "user_id" in message
    assert "anonymous_id" in message


def test_track_sync_with_only_an_anonymous_id_is_valid():
    # Given a Track sync identified by anonymous_id alone, When parsed
    sync = parse_sync({**{k: v for k, v in TRACK_SYNC.items() if k != "user_id"}, "anonymous_id": "anon"})

    # Then it is accepted
    assert (sync.user_id, sync.anonymous_id) == (None, "anon")


def test_unknown_object_is_refused_naming_the_sync_and_the_accepted_objects(tmp_path):
    # Given a sync whose object is "users" instead of "user"
    message = load_error(tmp_path, with_sync({**USER_SYNC, "object": "users"}))

    # Then the sync is named and the valid objects are listed
    assert "sync 'x'" in message
    assert "'users'" in message
    assert "'user'" in message
    assert "'track'" in message


def test_sync_referencing_an_unknown_connection_is_refused(tmp_path):
    # Given a sync whose source is not defined
    message = load_error(tmp_path, with_sync({**USER_SYNC, "source": "snowflake_prod"}))

    # Then the sync and the missing source are named
    assert "sync 'x'" in message
    assert "source 'snowflake_prod' is not a warehouse connection" in message


def test_destination_that_is_a_warehouse_is_refused(tmp_path):
    # Given a sync sending to the warehouse connection
    message = load_error(tmp_path, with_sync({**USER_SYNC, "destination": "warehouse"}))

    # Then the sync and the wrong destination are named
    assert "sync 'x'" in message
    assert "destination 'warehouse' is not a segment connection" in message


def test_source_that_is_a_segment_connection_is_refused(tmp_path):
    # Given a sync reading from the Segment connection
    message = load_error(tmp_path, with_sync({**USER_SYNC, "source": "segment"}))

    # Then it is refused as not a warehouse
    assert "sync 'x': source 'segment' is not a warehouse connection" in message


def test_two_syncs_with_the_same_name_are_refused(tmp_path):
    # Given two syncs both named "x"
    project = base_project()
    project["syncs"] = [USER_SYNC, TRACK_SYNC]

    # When loaded, Then the duplicate name is reported
    assert "sync 'x' is defined twice" in load_error(tmp_path, project)


@pytest.mark.parametrize("name", ["Users", "my sync", "-leading-dash", "_leading_underscore", "a" * 64, ""])
def test_sync_name_outside_the_pattern_is_refused(tmp_path, name):
    # Given a sync whose name is not lower-case letters, digits, '_' or '-' (1 to 63, alphanumeric first)
    message = load_error(tmp_path, with_sync({**USER_SYNC, "name": name}))

    # Then the name field is blamed
    assert "field 'name'" in message
    assert "should match pattern" in message


@pytest.mark.parametrize("name", ["users", "0day", "orders_v2", "eu-orders", "a" * 63])
def test_sync_names_inside_the_pattern_are_accepted(name):
    # Given a sync with an acceptable name, When parsed, Then it keeps the name
    assert parse_sync({**USER_SYNC, "name": name}).name == name


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    # Given two broken syncs
    project = base_project()
    project["syncs"][0]["object"] = "person"
    project["syncs"][1]["behaviour"] = "append"

    # When loaded
    message = load_error(tmp_path, project)

    # Then both are named, so the user fixes them in one pass
    assert "sync 'users'" in message
    assert "sync 'orders' field 'behaviour'" in message


# --- mistakes in connections ------------------------------------------------------------------------


def test_secret_ref_with_both_env_and_secret_is_refused(tmp_path):
    # Given a write key said to come from both an environment variable and Secrets Manager
    project = base_project()
    project["connections"]["segment"]["write_key"] = {"env": "SEGMENT_WRITE_KEY", "secret": "segsync/segment"}

    # When loaded
    message = load_error(tmp_path, project)

    # Then the connection and field are named, and "exactly one" is asked for
    assert "connection 'segment' field 'write_key'" in message
    assert "exactly one" in message


def test_secret_ref_with_neither_env_nor_secret_is_refused():
    # Given an empty secret reference, When validated, Then it is refused
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef()


def test_inline_write_key_is_refused_so_a_secret_never_sits_in_the_project_file(tmp_path):
    # Given a write key pasted as a plain string
    project = base_project()
    project["connections"]["segment"]["write_key"] = "wk_live_abc123"

    # When loaded
    message = load_error(tmp_path, project)

    # Then the field is refused and the key itself is not echoed back
    assert "connection 'segment' field 'write_key'" in message
    assert "wk_live_abc123" not in message


@pytest.mark.parametrize("variable", ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SF_PASSWORD", "segment_write_key"])
def test_a_write_key_from_an_environment_variable_not_starting_with_segment_is_refused(tmp_path, variable):
    # Given a write key said to come from the function's own environment (its AWS credentials, say)
    project = base_project()
    project["connections"]["segment"]["write_key"] = {"env": variable}

    # When loaded (as `segsync validate` and `push` do)
    message = load_error(tmp_path, project)

    # Then the connection and field are named, and the rule is said
    assert "connection 'segment' field 'write_key'" in message
    assert f"must start with SEGMENT_ (e.g. SEGMENT_WRITE_KEY), not {variable}" in message


@pytest.mark.parametrize("endpoint", ["api.segment.io", "ftp://api.segment.io", "https://", "http:// spaced"])
def test_endpoint_that_is_not_an_http_url_is_refused(tmp_path, endpoint):
    # Given a Segment endpoint that is not an http(s) URL
    project = base_project()
    project["connections"]["segment"]["endpoint"] = endpoint

    # When loaded
    message = load_error(tmp_path, project)

    # Then the endpoint field is named with an example of a good one
    assert "connection 'segment' field 'endpoint'" in message
    assert "https://api.segment.io" in message


def test_unknown_connection_type_is_refused_naming_the_connection(tmp_path):
    # Given a connection of a type segsync does not know
    project = base_project()
    project["connections"]["warehouse"] = {"type": "bigquery", "project": "p"}

    # When loaded, Then the connection is named
    assert "connection 'warehouse'" in load_error(tmp_path, project)


# --- unreadable files ------------------------------------------------------------------------------


def test_missing_file_is_a_config_error_naming_the_path(tmp_path):
    # Given a path with no file, When loaded, Then a ConfigError says so
    with pytest.raises(ConfigError, match="no such project file") as caught:
        load_project(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(caught.value)


def test_invalid_yaml_is_a_config_error_without_exception_class_names(tmp_path):
    # Given a file that is not YAML
    message = load_error(tmp_path, "connections: [\n  syncs: {\n")

    # Then the message is for people: it says what is wrong, not which class raised
    assert "not valid YAML" in message
    for leaked in ("Traceback", "YAMLError", "ScannerError", "ParserError"):
        assert leaked not in message


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "hello\n"])
def test_file_that_is_not_a_mapping_is_a_config_error(tmp_path, text):
    # Given an empty file, a list or a scalar, When loaded, Then the expected shape is named
    assert "expected a mapping with 'connections' and 'syncs'" in load_error(tmp_path, text)


def test_validation_errors_do_not_leak_pydantic_class_names(tmp_path):
    # Given a project with a broken sync
    message = load_error(tmp_path, with_sync({**USER_SYNC, "object": "users"}))

    # Then the message reads as sentences, not as a pydantic dump
    assert "ValidationError" not in message
    assert "validation error" not in message.lower()


# --- sync items from DynamoDB ----------------------------------------------------------------------


def test_parse_sync_builds_the_same_models_as_the_project_file():
    # Given sync items as the syncs table holds them, When parsed
    user = parse_sync(USER_SYNC)
    track = parse_sync(TRACK_SYNC)

    # Then they are the same typed syncs a project file gives
    assert isinstance(user, UserSync)
    assert user.traits == {"email": "email"}
    assert isinstance(track, TrackSync)
    assert track.event == Value(value="Signed Up")


def test_parse_sync_round_trips_what_the_planner_puts_in_a_chunk(tmp_path):
    # Given each sync of a loaded project, dumped as the planner and the syncs table dump it
    for sync in load_project(write(tmp_path, PROJECT_YAML)).syncs:
        dumped = sync.model_dump(mode="json", by_alias=True, exclude_none=True)

        # When parsed back, Then nothing is lost
        assert parse_sync(copy.deepcopy(dumped)) == sync


def test_parse_sync_names_the_sync_and_the_misspelled_field():
    # Given a sync item with `trait` instead of `traits`
    item = {**USER_SYNC}
    item["trait"] = item.pop("traits")

    # When parsed
    with pytest.raises(ConfigError) as caught:
        parse_sync(item)

    # Then the error names the sync and the field, without the discriminator in the path
    message = str(caught.value)
    assert message.startswith("sync 'x': ")
    assert "field 'trait'" in message
    assert "user.trait" not in message


def test_parse_sync_refuses_a_track_item_without_identity():
    # Given a Track item with no user_id and no anonymous_id, When parsed, Then it names the sync
    with pytest.raises(ConfigError, match=r"sync 'x'.*'user_id' or 'anonymous_id'"):
        parse_sync({k: v for k, v in TRACK_SYNC.items() if k != "user_id"})


def test_parse_sync_without_a_name_still_says_which_field_is_wrong():
    # Given a nameless item with a bad object
    with pytest.raises(ConfigError) as caught:
        parse_sync({**{k: v for k, v in USER_SYNC.items() if k != "name"}, "object": "account"})

    # Then the sync is shown as unknown and the object tag is quoted
    assert str(caught.value).startswith("sync '?': ")
    assert "'account'" in str(caught.value)


# --- constants --------------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["x", 42, 1.5, True, None, ["a", "b"], {"nested": 1}])
def test_value_constants_parse_in_place_of_a_column(constant):
    # Given a trait that is a constant `{value: ...}`, When parsed
    sync = parse_sync({**USER_SYNC, "traits": {"email": "email", "tier": {"value": constant}}})

    # Then the constant is kept as a Value and the column as a plain name
    assert sync.traits == {"email": "email", "tier": Value(value=constant)}


@pytest.mark.parametrize("bad", [{}, {"val": "x"}, {"value": "x", "column": "y"}, "", 42])
def test_a_mapping_source_must_be_a_column_name_or_exactly_a_value(bad):
    # Given a trait that is neither a column name nor `{value: ...}`, When parsed, Then it is refused
    with pytest.raises(ConfigError, match=r"sync 'x'.*traits\.tier"):
        parse_sync({**USER_SYNC, "traits": {"tier": bad}})


# --- Group syncs and mapping options --------------------------------------------------------------

GROUP_SYNC = {
    "name": "x",
    "source": "warehouse",
    "destination": "segment",
    "model": "SELECT account_id, owner_id FROM accounts",
    "object": "group",
    "key": "account_id",
    "user_id": "owner_id",
}

FEATURES_YAML = """\
name: x
source: warehouse
destination: segment
model: SELECT * FROM users
object: user
key: id
sync_all_properties: true
normalization: Title Case
null_values: send
traits:
  plan: {column: plan, nulls: omit}
  cleared: {value: null}
mappings:
  context.ip: last_ip
  context.traits.email: email
  integrations.All: {value: false}
  integrations.Mixpanel: {value: true}
  integrations."Segment.io": {value: {apiHost: eu}}
  traits.address.city: city
  context: ctx
"""


def test_a_group_sync_loads_with_update_or_create_and_its_group_id_defaulting_to_the_key():
    # Given a Group sync item, When parsed
    sync = parse_sync(GROUP_SYNC)

    # Then it is a GroupSync with its defaults
    assert isinstance(sync, GroupSync)
    assert (sync.behavior, sync.group_id, sync.group_column, sync.user_id) == (
        "update_or_create",
        None,
        "account_id",
        "owner_id",
    )


def test_a_group_sync_needs_a_user():
    with pytest.raises(ConfigError, match=r"^sync 'x': a group sync needs 'user_id' or 'anonymous_id'"):
        parse_sync({k: v for k, v in GROUP_SYNC.items() if k != "user_id"})


def test_every_mapping_option_reads_well_in_yaml_and_round_trips_as_plain_console_data():
    # Given a sync using every mapping option, as written in a project file
    sync = parse_sync(yaml.safe_load(FEATURES_YAML))

    # When it is dumped as the syncs table and the chunks hold it
    item = sync.model_dump(mode="json", by_alias=True, exclude_none=True)

    # Then it is plain maps, lists, strings, numbers and booleans (no JSON in strings), a null constant
    # survives exclude_none, and parsing it back gives the same sync
    assert item["traits"] == {"plan": {"column": "plan", "nulls": "omit"}, "cleared": {"value": None}}
    assert item["mappings"]['integrations."Segment.io"'] == {"value": {"apiHost": "eu"}}
    assert item["mappings"]["context.ip"] == "last_ip"
    assert _plain(item)
    assert parse_sync(copy.deepcopy(item)) == sync
    assert (sync.sync_all_properties, sync.normalization, sync.null_values) == (True, "Title Case", "send")
    assert sync.traits["plan"] == Column(column="plan", nulls="omit")


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, str):
        return not value.lstrip().startswith(("{", "["))
    return value is None or isinstance(value, bool | int | float)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("userId", "would overwrite 'userId', which is set by the sync's identity columns"),
        ("anonymousId", "would overwrite 'anonymousId'"),
        ("type", "would overwrite 'type', which is set by the sync's object"),
        ("messageId", "would overwrite 'messageId', which is set by segsync"),
        ("groupId", "would overwrite 'groupId', which is set by the sync's group_id"),
        ("event", "would overwrite 'event'"),
        ("timestamp", "would overwrite 'timestamp'"),
        ("sentAt", "would overwrite 'sentAt'"),
        ("userId.x", "would overwrite 'userId'"),
        (
            "properties.total",
            "is not a field this message carries: start it with traits, context, integrations",
        ),
        ("plan", "is not a field this message carries"),
        ("context.library.name", "is reserved: context.library names segsync"),
        ("traits..plan", "is not a dotted path"),
        ("traits.plan.", "is not a dotted path"),
        ('traits."plan', "is not a dotted path"),
    ],
)
def test_a_mapping_target_that_would_clobber_or_does_not_exist_is_refused(tmp_path, target, says):
    # Given a User sync mapping a column to a target it must not write
    message = load_error(tmp_path, with_sync({**USER_SYNC, "mappings": {target: "email"}}))

    # Then the sync, the field and the target are named with the reason
    assert "sync 'x' field 'mappings'" in message
    assert f"target '{target}'" in message
    assert says in message


def test_a_track_sync_has_properties_not_traits_and_says_where_traits_go():
    with pytest.raises(ConfigError) as caught:
        parse_sync({**TRACK_SYNC, "mappings": {"traits.plan": "plan"}})
    assert "start it with properties, context, integrations" in str(caught.value)
    assert "context.traits is allowed" in str(caught.value)


def test_a_field_mapped_both_by_name_and_by_path_is_refused():
    with pytest.raises(ConfigError, match=r"target 'traits.email' is mapped twice: also in traits.email"):
        parse_sync({**USER_SYNC, "mappings": {"traits.email": "email_address"}})


@pytest.mark.parametrize(
    ("mappings", "says"),
    [
        ({"context": {"value": "ip"}}, "takes a whole object, so a constant there must be an object"),
        ({"integrations.All": {"value": "yes"}}, "must be true, false or an options object, not 'yes'"),
        (
            {"integrations": {"value": {"All": 1}}},
            "must map each destination to true, false or an options object",
        ),
    ],
)
def test_a_constant_of_the_wrong_shape_for_its_target_is_refused(mappings, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        parse_sync({**USER_SYNC, "mappings": mappings})


@pytest.mark.parametrize("constant", [float("nan"), float("inf"), {"score": float("-inf")}, [1.0, float("nan")]])
def test_a_constant_that_is_not_finite_json_is_refused(constant):
    with pytest.raises(ConfigError, match=r"field 'traits.tier.value': a constant must be plain JSON: NaN"):
        parse_sync({**USER_SYNC, "traits": {"tier": {"value": constant}}})


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("null_values", "drop", "Input should be 'send' or 'omit'"),
        (
            "normalization",
            "kebab-case",
            "'snake_case', 'camelCase', 'PascalCase', 'Title Case' or 'lowercase'",
        ),
        ("traits", {"tier": {"column": "plan", "nulls": "maybe"}}, "Input should be 'send' or 'omit'"),
        ("traits", {"tier": {"column": ""}}, "at least 1 character"),
        (
            "traits",
            {"tier": ["plan"]},
            "give a column name, {value: constant} or {column: name, nulls: send|omit}",
        ),
    ],
)
def test_a_bad_mapping_option_names_the_field(field, value, says):
    with pytest.raises(ConfigError) as caught:
        parse_sync({**USER_SYNC, field: value})
    assert f"field '{field}" in str(caught.value)
    assert says in str(caught.value)


def test_an_unknown_object_lists_group_too(tmp_path):
    message = load_error(tmp_path, with_sync({**USER_SYNC, "object": "account"}))
    assert "sync 'x' field 'object'" in message
    assert "'user', 'track', 'group'" in message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("traits.plan", ("traits", "plan")),
        ("properties.order.total", ("properties", "order", "total")),
        ('integrations."Segment.io"', ("integrations", "Segment.io")),
        ("integrations.Google Analytics", ("integrations", "Google Analytics")),
        ("context", ("context",)),
    ],
)
def test_targets_are_dotted_paths_with_quotes_for_names_holding_a_dot(text, path):
    assert parse_target(text) == path
    assert parse_target(format_target(path)) == path


def test_the_same_target_spelled_twice_is_refused():
    with pytest.raises(ConfigError, match=r"""target 'traits."plan"' is mapped twice: also as 'traits.plan'"""):
        parse_sync({**USER_SYNC, "mappings": {"traits.plan": "plan", 'traits."plan"': "tier"}})


@pytest.mark.parametrize("event", ["", "  ", 42, None])
def test_a_constant_event_name_must_be_text(event):
    with pytest.raises(ConfigError, match=r"field 'event': a constant event name must be non-empty text"):
        parse_sync({**TRACK_SYNC, "event": {"value": event}})


@pytest.mark.parametrize("schedule", ["cron(0 25 * * ? *)", "rate(0 minutes)", "every day"])
def test_a_bad_schedule_names_the_sync_the_field_and_the_expression(tmp_path, schedule):
    # Given a sync whose schedule EventBridge would not accept, When the project loads
    message = load_error(tmp_path, with_sync({**USER_SYNC, "schedule": schedule}))

    # Then the error names the sync, the field and the expression (not a sync that never runs)
    assert "sync 'x' field 'schedule'" in message and schedule in message


def test_a_valid_schedule_is_kept_as_written(tmp_path):
    project = load_project(write(tmp_path, with_sync({**USER_SYNC, "schedule": "cron(15 2 * * ? *)"})))
    assert project.sync("x").schedule == "cron(15 2 * * ? *)"


def _segment(**fields) -> SegmentConnection:
    return SegmentConnection.model_validate({"type": "segment", "write_key": {"env": "SEGMENT_WRITE_KEY"}, **fields})


def test_the_capture_endpoint_is_one_destination_whatever_its_port_and_key():
    # Given segsync's capture endpoint on two ports, with the demo's key and a rehearsal's
    here = _segment(endpoint="http://127.0.0.1:8765", local_capture=True)
    there = SegmentConnection.model_validate(
        {"type": "segment", "endpoint": "http://127.0.0.1:8766", "local_capture": True,
         "write_key": {"env": "SEGMENT_REHEARSAL_WRITE_KEY"}}
    )  # fmt: skip

    # Then state knows them as one place, apart from any Segment source
    assert destination_id(here) == destination_id(there) == "local capture"
    assert destination_id(here) != destination_id(_segment(endpoint="http://127.0.0.1:8765"))


def test_a_real_destination_is_still_told_apart_by_its_api_base_and_key_source():
    ids = {
        destination_id(_segment()),
        destination_id(_segment(region="eu")),
        destination_id(_segment(endpoint="https://proxy.example.com:8443")),
        destination_id(_segment(endpoint="https://proxy.example.com:9443")),
        destination_id(SegmentConnection.model_validate({"type": "segment", "write_key": {"secret": "segsync/key"}})),
    }
    assert len(ids) == 5
    assert destination_id(_segment()) == "https://api.segment.io (env SEGMENT_WRITE_KEY)"


@pytest.mark.parametrize("endpoint", [None, "https://api.segment.io", "http://10.0.0.5:8765", "http://capture:8765"])
def test_only_an_endpoint_on_this_machine_can_be_the_capture_endpoint(endpoint):
    with pytest.raises(ValueError, match="local_capture needs an endpoint on this machine"):
        _segment(**({"endpoint": endpoint} if endpoint else {}), local_capture=True)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:0", "http://localhost:8765", "http://[::1]:8765"])
def test_loopback_endpoints_can_be_the_capture_endpoint(endpoint):
    assert _segment(endpoint=endpoint, local_capture=True).local_capture is True
