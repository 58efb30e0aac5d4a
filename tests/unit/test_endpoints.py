"""The sender's policy: Segment's hosts and the deployment's API bases only; write keys from SEGMENT_* or its prefix."""

from __future__ import annotations

from typing import Any

import pytest

from segsync.endpoints import ApiBase, SenderPolicy, parse_allowed
from segsync.errors import ConfigError, PolicyError
from segsync.settings import SenderSettings

PROXY = "https://segment-proxy.example.com/relay"


def _destination(**changes: Any) -> dict[str, Any]:
    return {"type": "segment", "write_key": {"secret": "segsync/segment/acme"}, **changes}


@pytest.fixture
def policy() -> SenderPolicy:
    return SenderPolicy.of([PROXY], "segsync/segment/")


@pytest.mark.parametrize(
    "destination",
    [
        _destination(),
        _destination(region="eu"),
        _destination(endpoint="https://api.segment.io"),
        _destination(endpoint="https://API.Segment.io:443/"),
        _destination(endpoint=PROXY),
        _destination(endpoint=PROXY + "/v2"),
        _destination(write_key={"env": "SEGMENT_WRITE_KEY"}),
    ],
)
def test_segments_hosts_and_the_allowed_bases_pass(policy, destination):
    # Given a destination on Segment's hosts or under an allowed base, its key from SEGMENT_* or the prefix
    # When / Then the policy lets it through, validated
    assert (
        policy.destination(destination).api_base.lower().startswith(("https://api.segment.io", "https://events", PROXY))
    )


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("https://elsewhere.example.com", "may not post to https://elsewhere.example.com"),
        ("http://api.segment.io", "may not post to http://api.segment.io"),  # Segment, but not over HTTPS
        ("https://api.segment.io:8443", "may not post to https://api.segment.io:8443"),
        ("https://api.segment.io.evil.example", "may not post to https://api.segment.io.evil.example"),
        ("https://api.segment.io@evil.example", "carries credentials"),
        (
            "https://segment-proxy.example.com/relay-other",
            "may not post to https://segment-proxy.example.com/relay-other",
        ),
        ("https://segment-proxy.example.com", "may not post to https://segment-proxy.example.com"),
        ("https://api.segment.io/?next=https://evil.example", "has a query or fragment"),
        ("https://api.segment.io/#x", "has a query or fragment"),
    ],
)
def test_any_other_endpoint_is_refused_saying_where_it_may_post(policy, endpoint, why):
    # Given a chunk whose destination names an endpoint the deployment did not allow
    # When the policy checks it
    with pytest.raises(PolicyError) as refused:
        policy.destination(_destination(endpoint=endpoint))

    # Then it is refused, saying why
    assert str(refused.value).startswith("destination refused: ")
    assert why in str(refused.value)


def test_a_write_key_from_the_functions_own_environment_is_refused_even_past_the_model(policy):
    # Given a destination built without validation (the model refuses AWS_* itself), naming the AWS secret key
    from segsync.config import SecretRef, SegmentConnection

    forged = SegmentConnection.model_construct(
        type="segment",
        region="us",
        endpoint=None,
        write_key=SecretRef.model_construct(env="AWS_SECRET_ACCESS_KEY", secret=None),
    )

    # When the policy checks it, Then it is refused, naming the variable (never a value)
    with pytest.raises(PolicyError, match="starting with SEGMENT_, not from AWS_SECRET_ACCESS_KEY"):
        policy.check(forged)


def test_a_write_key_from_the_environment_is_refused_at_validation_naming_the_field(policy):
    # Given a chunk's destination naming AWS_SECRET_ACCESS_KEY, When the policy validates it
    with pytest.raises(ConfigError, match=r"write_key': .*must start with SEGMENT_"):
        policy.destination(_destination(write_key={"env": "AWS_SECRET_ACCESS_KEY"}))


@pytest.mark.parametrize("secret", ["segsync/warehouse/snowflake", "segsync/segmentx", "other/segsync/segment/acme"])
def test_a_secret_outside_the_senders_prefix_is_refused(policy, secret):
    # Given a write key said to live in a secret outside segsync/segment/
    # When / Then the policy refuses it before anything is read
    with pytest.raises(PolicyError, match=f"'{secret}' is not under the sender's prefix 'segsync/segment/'"):
        policy.destination(_destination(write_key={"secret": secret}))


def test_a_chunk_destination_that_is_not_segment_is_refused(policy):
    # Given a chunk whose destination is a warehouse connection, When / Then it is refused
    with pytest.raises(PolicyError, match="must be a segment connection, not duckdb"):
        policy.destination({"type": "duckdb", "path": "/tmp/x.duckdb"})


def test_api_bases_compare_by_scheme_host_port_and_path_prefix():
    # Given bases written differently
    base = ApiBase.parse("HTTPS://Example.COM.:443/a/")

    # When / Then the same origin and a path at or below matches, a sibling path or another port does not
    assert (base.scheme, base.host, base.port, base.path) == ("https", "example.com", 443, "/a")
    assert base.covers(ApiBase.parse("https://example.com/a/b"))
    assert not base.covers(ApiBase.parse("https://example.com/ab"))
    assert not base.covers(ApiBase.parse("https://example.com:444/a"))
    assert str(ApiBase.parse("http://[::1]:8765")) == "http://[::1]:8765"


def test_allowed_endpoints_are_read_from_the_environment_and_checked():
    # Given the sender's environment with two allowed bases (spaces and an empty entry around them)
    settings = SenderSettings.from_env(
        {"RUNS_TABLE": "runs", "SEGMENT_ALLOWED_ENDPOINTS": f" {PROXY}, ,http://127.0.0.1:8765 "}
    )

    # When / Then both are kept; without the variable none are, and the default prefix is the template's
    assert settings.segment_allowed_endpoints == (PROXY, "http://127.0.0.1:8765")
    default = SenderSettings.from_env({"RUNS_TABLE": "runs"})
    assert (default.segment_allowed_endpoints, default.segment_secrets_prefix) == ((), "segsync/segment/")
    assert parse_allowed("") == ()


@pytest.mark.parametrize(
    "entry", ["ftp://x.example", "https://user:pw@x.example", "https://x.example?q=1", "x.example"]
)
def test_a_bad_allowed_endpoint_is_refused_naming_the_variable(entry):
    # Given SEGMENT_ALLOWED_ENDPOINTS holding something that is not a plain API base
    # When / Then the sender's settings refuse it, naming the variable
    with pytest.raises(ConfigError, match="SEGMENT_ALLOWED_ENDPOINTS"):
        SenderSettings.from_env({"RUNS_TABLE": "runs", "SEGMENT_ALLOWED_ENDPOINTS": entry})
