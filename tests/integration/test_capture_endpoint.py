"""The local capture endpoint answers like Segment's Tracking API and records what it accepts."""

import gzip
import re

import orjson
import pytest
import requests

from segsync.local.capture import CaptureServer, FaultPlan, read_captured

WRITE_KEY = "wk_capture_SECRET"
AUTH = (WRITE_KEY, "")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


@pytest.fixture
def capture(tmp_path):
    with CaptureServer(tmp_path / "out" / "captured.ndjson") as server:
        yield server


def post(server, body: bytes, *, path="/v1/batch", auth=AUTH, gzipped=False, session=requests):
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return session.post(server.url + path, data=body, headers=headers, auth=auth, timeout=5)


def batch(*messages, **extra) -> bytes:
    return orjson.dumps({"batch": list(messages), **extra})


def test_accepted_batch_is_recorded_as_ndjson_with_received_at_and_sent_at(capture):
    # Given a gzipped batch, one message with its own sentAt
    body = batch(
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u2", "event": "Signed Up", "sentAt": "2026-01-01T00:00:00.000Z"},
        sentAt="2026-11-29T01:02:03.456+00:00",
    )

    # When posted
    response = post(capture, body, gzipped=True)

    # Then Segment's success answer comes back and each message is one NDJSON line
    assert response.status_code == 200
    assert response.json() == {"success": True}
    lines = capture.out_path.read_bytes().splitlines()
    assert len(lines) == 2
    first, second = read_captured(capture.out_path)
    assert first["traits"] == {"plan": "pro"}
    assert first["sentAt"] == "2026-11-29T01:02:03.456+00:00"
    assert second["sentAt"] == "2026-01-01T00:00:00.000Z"  # a message's own sentAt wins
    assert ISO_UTC.match(first["receivedAt"])
    assert (capture.requests, capture.messages, capture.statuses) == (1, 2, {200: 1})
    # and the write key is nowhere in the file
    assert WRITE_KEY.encode() not in capture.out_path.read_bytes()


@pytest.mark.parametrize("kind", ["identify", "track", "group", "page", "screen", "alias"])
def test_single_message_endpoints_record_the_message_with_its_type(capture, kind):
    # Given one message posted to its own endpoint, without a type
    message = {"userId": "u1", "event": "Viewed"}

    # When posted
    response = post(capture, orjson.dumps(message), path=f"/v1/{kind}")

    # Then it is recorded with the endpoint's type
    assert response.status_code == 200
    [recorded] = read_captured(capture.out_path)
    assert recorded["type"] == kind and recorded["userId"] == "u1"


@pytest.mark.parametrize("auth", [None, ("", ""), ("", "password-only")])
def test_a_request_without_a_write_key_is_refused_with_401(capture, auth):
    # Given a request with no Basic auth user
    # When posted
    response = post(capture, batch({"type": "track", "userId": "u", "event": "E"}), auth=auth)

    # Then it is refused and nothing recorded
    assert response.status_code == 401
    assert read_captured(capture.out_path) == []


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_body_over_500_kb_is_refused_with_400(capture, gzipped):
    # Given a batch of 512,001 uncompressed bytes (it compresses well, the limit is on the JSON)
    message = {"type": "track", "userId": "u", "event": "E", "properties": {"p": ""}}
    body = batch(message)
    message["properties"]["p"] = "x" * (512_001 - len(body))
    body = batch(message)
    assert len(body) == 512_001

    # When posted
    response = post(capture, body, gzipped=gzipped)

    # Then it is refused and nothing recorded
    assert response.status_code == 400
    assert capture.messages == 0


def test_a_body_of_exactly_500_kb_is_accepted(capture):
    # Given a batch of exactly 512,000 bytes
    message = {"type": "track", "userId": "u", "event": "E", "properties": {"p": ""}}
    message["properties"]["p"] = "x" * (512_000 - len(batch(message)))

    # When posted, Then it is accepted
    assert post(capture, batch(message), gzipped=True).status_code == 200
    assert capture.messages == 1


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", orjson.dumps({"batch": {"type": "track"}}), orjson.dumps({"batch": [1]})],
    ids=["invalid-json", "not-an-object", "batch-not-a-list", "message-not-an-object"],
)
def test_a_malformed_body_is_refused_with_400(capture, body):
    # Given a body Segment cannot read, When posted, Then 400
    assert post(capture, body).status_code == 400
    assert capture.messages == 0


def test_broken_gzip_is_refused_with_400(capture):
    # Given a body that claims gzip but is not
    headers = {"Content-Encoding": "gzip"}

    # When posted
    response = requests.post(capture.url + "/v1/batch", data=b"plain", headers=headers, auth=AUTH, timeout=5)

    # Then it is refused
    assert response.status_code == 400


def test_more_than_2500_messages_get_200_but_are_dropped_like_segment_does(capture):
    # Given a batch of 2,501 small messages
    body = batch(*({"type": "track", "userId": f"u{i}", "event": "E"} for i in range(2_501)))

    # When posted
    response = post(capture, body, gzipped=True)

    # Then Segment's silent success comes back, yet nothing is kept
    assert response.status_code == 200
    assert capture.dropped == 2_501
    assert capture.messages == 0
    assert read_captured(capture.out_path) == []


def test_an_unknown_path_is_404(capture):
    assert post(capture, b"{}", path="/v2/batch").status_code == 404


def test_a_keep_alive_connection_serves_many_requests(capture):
    # Given one session (one pooled connection)
    with requests.Session() as session:
        # When several batches go through it
        statuses = [post(capture, batch({"type": "identify", "userId": f"u{i}"}), session=session) for i in range(5)]

    # Then all are recorded
    assert [r.status_code for r in statuses] == [200] * 5
    assert capture.messages == 5


def test_fault_plan_parses_from_a_cli_string():
    # Given the compact form a CLI flag carries
    text = "seq=429, 429,ok,reset,slow ; rate=0.2;status=503;retry_after=1;seed=7;slow=2.5"

    # When parsed
    plan = FaultPlan.parse(text)

    # Then every field is set
    assert plan.sequence == [429, 429, "ok", "reset", "slow"]
    assert (plan.error_rate, plan.error_status, plan.retry_after, plan.seed, plan.slow_seconds) == (
        0.2,
        503,
        1.0,
        7,
        2.5,
    )


@pytest.mark.parametrize("text", ["seq=429,boom", "rate=2", "speed=1", "rate", "status=abc", "status=999"])
def test_a_bad_fault_plan_is_refused_with_a_clear_error(text):
    with pytest.raises(ValueError, match=r"fault|rate|status"):
        FaultPlan.parse(text)


def test_sequence_faults_answer_in_order_without_recording(tmp_path):
    # Given a plan of 429, 500, a reset, then normal service
    faults = FaultPlan.parse("seq=429,500,reset,ok;retry_after=2")
    with CaptureServer(tmp_path / "c.ndjson", faults=faults) as capture:
        body = batch({"type": "identify", "userId": "u"})

        # When four requests arrive
        throttled = post(capture, body)
        failed = post(capture, body)
        with pytest.raises(requests.ConnectionError):
            post(capture, body)
        ok = post(capture, body)

    # Then each got its fault, Retry-After only on the 429, and only the last was recorded
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2")
    assert failed.status_code == 500 and "Retry-After" not in failed.headers
    assert ok.status_code == 200
    assert capture.requests == 4
    assert capture.statuses == {429: 1, 500: 1, 200: 1}
    assert len(read_captured(capture.out_path)) == 1


def statuses_with(tmp_path, plan_text: str, n: int) -> list[int]:
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan.parse(plan_text)) as capture:
        return [post(capture, batch({"type": "identify", "userId": "u"})).status_code for _ in range(n)]


def test_error_rate_with_a_seed_replays_the_same_failures(tmp_path):
    # Given two servers with the same seeded error rate
    plan = "rate=0.3;status=503;seed=7"

    # When each answers 30 requests
    first = statuses_with(tmp_path, plan, 30)
    second = statuses_with(tmp_path, plan, 30)

    # Then the failures fall on the same requests, and some (not all) failed
    assert first == second
    assert set(first) == {200, 503}


def test_reject_if_refuses_a_batch_holding_one_bad_message(tmp_path):
    # Given a plan that rejects one message
    faults = FaultPlan(reject_if=lambda m: m.get("userId") == "bad")
    with CaptureServer(tmp_path / "c.ndjson", faults=faults) as capture:
        # When a batch with it, then one without it, arrive
        mixed = post(capture, batch({"type": "identify", "userId": "ok"}, {"type": "identify", "userId": "bad"}))
        clean = post(capture, batch({"type": "identify", "userId": "ok"}))

    # Then only the clean batch is recorded
    assert (mixed.status_code, clean.status_code) == (400, 200)
    assert [m["userId"] for m in read_captured(capture.out_path)] == ["ok"]


def test_url_is_only_known_once_started(tmp_path):
    # Given a server not yet started, Then asking its URL is an error, not a wrong port
    server = CaptureServer(tmp_path / "c.ndjson")
    with pytest.raises(RuntimeError):
        _ = server.url
    # When started, Then it names a loopback port
    with server:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", server.url)
