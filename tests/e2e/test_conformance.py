"""What reaches the endpoint conforms to Segment's spec: the demo, and every mapping feature and type."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from segsync.config import load_project
from segsync.local.capture import CaptureServer, read_captured
from segsync.local.run import run_local
from tests.segment_spec import problems

from ..conftest import point_at

THINGS_SQL = """
CREATE TABLE things AS SELECT * FROM (VALUES
    ('t1', 'acc_1', 'Order Completed', TIMESTAMP '2026-03-01 10:30:05.123', DATE '2026-03-01',
     170141183460469231731687303715884105727::HUGEINT, 12345678901234567890.1234567890::DECIMAL(38, 10),
     12.34::DECIMAL(10, 2), 0.5::DOUBLE, true, '0b7c4f36-4bd6-4f0e-9a70-3f6a9e2d5b1c'::UUID,
     '\\xCA\\xFE'::BLOB,
     ['a', 'b'], {'plan': 'pro', 'seats': 3}, '{"ip": "203.0.113.9", "locale": "fr-FR"}'),
    ('t2', 'acc_1', 'Order Refunded', TIMESTAMP '2026-03-02 00:00:00', NULL,
     1::HUGEINT, 1.5::DECIMAL(38, 10),
     0.10::DECIMAL(10, 2), 'NaN'::DOUBLE, NULL, NULL, NULL,
     [], {'plan': NULL, 'seats': 1}, NULL),
    ('t3', 'acc_2', 'Order Completed', TIMESTAMP '2026-03-03 23:59:59', DATE '2026-03-03',
     2::HUGEINT, 2.0::DECIMAL(38, 10),
     99.99::DECIMAL(10, 2), 'Infinity'::DOUBLE, false, NULL, NULL,
     ['c'], {'plan': 'free', 'seats': 0}, '{"ip": '),
    ('t4', NULL, '', TIMESTAMP '2026-03-04 00:00:00', NULL,
     3::HUGEINT, 3.0::DECIMAL(38, 10),
     1.00::DECIMAL(10, 2), 1.0::DOUBLE, true, NULL, NULL,
     NULL, NULL, '{}')
) AS t(id, account_id, event_name, occurred_at, day, big, money, exact, ratio, flag, uid, blob, tags, attrs,
       ctx)
"""

THING_SYNCS = [
    {
        "name": "things-users",
        "object": "user",
        "source": "warehouse",
        "destination": "segment",
        "model": "SELECT * FROM things",
        "key": "id",
        "sync_all_properties": True,
        "normalization": "camelCase",
        "traits": {"flag": {"column": "flag", "nulls": "send"}, "source": {"value": "warehouse"}},
        "mappings": {"context": "ctx", "integrations.All": {"value": True}, "integrations.Mixpanel": "flag"},
    },
    {
        "name": "things-accounts",
        "object": "group",
        "source": "warehouse",
        "destination": "segment",
        "model": "SELECT * FROM things",
        "key": "id",
        "group_id": "account_id",
        "user_id": "id",
        "traits": {"money": "money"},
        "mappings": {"traits.profile": "attrs", "context.traits.tags": "tags"},
    },
    {
        "name": "things-events",
        "object": "track",
        "source": "warehouse",
        "destination": "segment",
        "model": "SELECT * FROM things",
        "key": "id",
        "event": "event_name",
        "user_id": "id",
        "timestamp": "occurred_at",
        "null_values": "send",
        "properties": {"ratio": {"column": "ratio", "nulls": "omit"}, "day": "day", "uid": "uid"},
        "mappings": {
            "properties": "attrs",
            "properties.amount.exact": "exact",
            "properties.amount.big": "big",
        },
    },
]


def _at_capture(path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "conformance-write-key")
    return point_at(path, capture.url)


@pytest.fixture
def things_project(tmp_path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four rows of every type a model returns, synced as users, accounts and events."""
    warehouse = tmp_path / "things.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(THINGS_SQL)
    path = tmp_path / "things.yml"
    connections = {
        "warehouse": {"type": "duckdb", "path": str(warehouse)},
        "segment": {"type": "segment", "write_key": {"env": "SEGMENT_WRITE_KEY"}},
    }
    path.write_text(yaml.safe_dump({"version": 1, "connections": connections, "syncs": THING_SYNCS}))
    return _at_capture(path, capture, monkeypatch)


def _by(messages: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    key = {"identify": "userId", "group": "userId", "track": "userId"}[kind]
    return {m[key]: m for m in messages if m["type"] == kind}


def _utc(value: str) -> bool:
    moment = datetime.fromisoformat(value)
    return moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0


def test_every_demo_payload_conforms_to_the_segment_spec(project_file, capture, monkeypatch):
    # Given the small demo (300 users, 2,000 events) pointed at the capture endpoint
    project = load_project(_at_capture(project_file, capture, monkeypatch))

    # When the whole local pipeline runs
    report = run_local(project)

    # Then every row arrived, and every payload passes the independent spec check
    messages = read_captured(capture.out_path)
    assert report.dead_letter_messages == 0
    assert [(r.sync, r.rows_read, r.sent, r.rejected) for r in report.runs] == [
        ("demo-users", 300, 300, 0),
        ("demo-events", 2_000, 2_000, 0),
    ]
    assert len(messages) == 2_300
    assert {m["messageId"]: problems(m, received=True) for m in messages if problems(m, received=True)} == {}
    # and times are ISO-8601 in UTC: event times, send times and timestamp traits alike
    for message in messages:
        assert _utc(message["sentAt"])
        assert message["type"] != "track" or _utc(message["timestamp"])
        assert message["type"] != "identify" or _utc(message["traits"]["createdAt"])
    # and the demo's mapping features arrived: Sync All Properties (camelCase), context and integrations
    identify = next(m for m in messages if m["type"] == "identify")
    assert set(identify["traits"]) == {
        "email", "name", "plan", "createdAt", "lifetimeValue", "isActive", "country", "source"
    }  # fmt: skip
    track = next(m for m in messages if m["type"] == "track")
    assert track["context"]["page"]["path"] == track["properties"]["path"]
    assert track["integrations"] == {"All": True}


def test_every_type_and_mapping_feature_reaches_the_endpoint_in_spec_or_is_rejected(things_project, capture):
    # Given four rows holding every type (HUGEINT, DECIMAL(38,10), NaN, ±Infinity, UUID, BLOB, LIST,
    # STRUCT, JSON text, naive TIMESTAMP, DATE) synced by a User, a Group and a Track sync
    project = load_project(things_project)

    # When the local pipeline runs
    report = run_local(project)

    # Then every row was sent or rejected, and everything sent passes the spec check
    messages = read_captured(capture.out_path)
    assert report.dead_letter_messages == 0
    assert [(r.sync, r.rows_read, r.sent, r.rejected) for r in report.runs] == [
        ("things-users", 4, 3, 1),  # t3: its context column is not valid JSON
        ("things-accounts", 4, 3, 1),  # t4: no account
        ("things-events", 4, 3, 1),  # t4: an empty event name
    ]
    assert [problems(m, received=True) for m in messages] == [[]] * 9

    # and values arrive as the warehouse holds them, in JSON Segment reads without surprises
    users, accounts, events = _by(messages, "identify"), _by(messages, "group"), _by(messages, "track")
    assert users["t1"]["traits"] == {
        "accountId": "acc_1",
        "eventName": "Order Completed",
        "occurredAt": "2026-03-01T10:30:05.123000+00:00",  # naive TIMESTAMP: UTC, with its offset
        "day": "2026-03-01",
        "big": "170141183460469231731687303715884105727",  # past 64 bits: text, never a rounded float
        "money": "12345678901234567890.1234567890",  # more digits than a double: exact text
        "exact": 12.34,
        "ratio": 0.5,
        "flag": True,
        "uid": "0b7c4f36-4bd6-4f0e-9a70-3f6a9e2d5b1c",
        "blob": base64.b64encode(b"\xca\xfe").decode(),
        "tags": ["a", "b"],
        "attrs": {"plan": "pro", "seats": 3},
        "source": "warehouse",
    }
    assert users["t1"]["context"] == {
        "library": users["t1"]["context"]["library"],
        "ip": "203.0.113.9",
        "locale": "fr-FR",
    }
    assert users["t1"]["integrations"] == {"All": True, "Mixpanel": True}
    # NaN is no value: left out like any null; a null flag is sent because that field sends nulls
    assert "ratio" not in users["t2"]["traits"] and users["t2"]["traits"]["flag"] is None
    assert users["t2"]["traits"]["money"] == 1.5 and users["t2"]["traits"]["exact"] == 0.1
    assert users["t2"]["integrations"] == {"All": True}
    assert "t3" not in users

    assert accounts["t1"]["groupId"] == "acc_1"
    assert accounts["t1"]["traits"] == {
        "money": "12345678901234567890.1234567890",
        "profile": {"plan": "pro", "seats": 3},
    }
    assert accounts["t2"]["traits"]["profile"] == {"plan": None, "seats": 1}
    assert accounts["t1"]["context"]["traits"] == {"tags": ["a", "b"]}
    assert accounts["t1"]["messageId"] != accounts["t2"]["messageId"]

    assert events["t1"]["timestamp"] == "2026-03-01T10:30:05.123+00:00"
    assert events["t1"]["properties"] == {
        "plan": "pro",
        "seats": 3,
        "day": "2026-03-01",
        "uid": str(uuid.UUID("0b7c4f36-4bd6-4f0e-9a70-3f6a9e2d5b1c")),
        "ratio": 0.5,
        "amount": {"exact": 12.34, "big": "170141183460469231731687303715884105727"},
    }
    # the Track sync sends nulls, except ratio; Infinity, like NaN, is no value
    assert events["t2"]["properties"]["day"] is None and "ratio" not in events["t2"]["properties"]
    assert "ratio" not in events["t3"]["properties"]
