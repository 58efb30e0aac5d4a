"""SegmentClient against the capture endpoint over loopback: wire format, retries, budgets, secrecy."""

import base64
import gzip
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import requests

from segsync.errors import DeliveryError
from segsync.local.capture import CaptureServer, FaultPlan, read_captured
from segsync.segment import BatchRejected, SegmentClient

WRITE_KEY = "wk_TOPSECRET_0123456789"
SENT_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
FAR = 1_000_000.0  # a deadline no test reaches


class FakeTime:
    """A clock that only moves when the client sleeps, so backoff is checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def track(i: int) -> bytes:
    return orjson.dumps({"type": "track", "event": "Order Completed", "userId": f"u{i}", "messageId": f"m{i}"})


MESSAGES = [track(i) for i in range(3)]


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def capture(tmp_path, request):
    """A capture server; indirect parametrization (see ``plan``) gives it a FaultPlan."""
    faults = getattr(request, "param", None)
    with CaptureServer(tmp_path / "captured.ndjson", faults=faults) as server:
        yield server


def client_for(server, fake_time, **kwargs) -> SegmentClient:
    options = {"sleep": fake_time.sleep, "clock": fake_time.clock, "rng": lambda: 1.0, **kwargs}
    return SegmentClient(server.url, WRITE_KEY, **options)


def plan(**kwargs):
    return pytest.mark.parametrize("capture", [FaultPlan(**kwargs)], indirect=True, ids=[""])


def test_batch_arrives_gzipped_with_basic_auth_user_agent_and_a_fresh_sent_at(capture, fake_time):
    # Given a client whose session lets the test see each request as sent
    sent: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    client = client_for(capture, fake_time, session=session)

    # When a batch is sent
    result = client.send(MESSAGES, deadline=FAR)

    # Then the request carries Segment's auth, gzip and JSON headers, and a batch body with sentAt
    request = sent[0]
    assert request.url == f"{capture.url}/v1/batch"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("segsync/")
    body = orjson.loads(gzip.decompress(request.body))
    assert [orjson.dumps(m) for m in body["batch"]] == MESSAGES
    assert SENT_AT.match(body["sentAt"])
    # and the capture recorded every message, with the batch's sentAt copied in
    captured = read_captured(capture.out_path)
    assert [m["userId"] for m in captured] == ["u0", "u1", "u2"]
    assert {m["sentAt"] for m in captured} == {body["sentAt"]}
    assert result.attempts == 1 and result.retries == 0 and result.status == 200
    assert result.bytes_sent == len(request.body)
    assert result.waited_s == 0.0
    session.close()


@plan(sequence=[500, 500])
def test_server_errors_are_retried_with_exponential_backoff(capture, fake_time):
    # Given Segment answers 500 twice, then accepts
    client = client_for(capture, fake_time)

    # When a batch is sent
    result = client.send(MESSAGES, deadline=FAR)

    # Then it is delivered on the third attempt after 0.5 s and 1 s waits (jitter at its top, rng=1)
    assert (result.attempts, result.retries) == (3, 2)
    assert fake_time.sleeps == [0.5, 1.0]
    assert result.waited_s == 1.5
    assert capture.statuses == {500: 2, 200: 1}
    assert len(read_captured(capture.out_path)) == len(MESSAGES)


@plan(sequence=[500])
def test_backoff_uses_full_jitter(capture, fake_time):
    # Given a random source that draws a quarter
    client = client_for(capture, fake_time, rng=lambda: 0.25)

    # When a 500 is retried
    client.send(MESSAGES, deadline=FAR)

    # Then the wait is that fraction of the 0.5 s step
    assert fake_time.sleeps == [0.125]


@plan(sequence=[500] * 9)
def test_backoff_is_capped_at_60_seconds_per_wait(capture, fake_time):
    # Given nine 500s in a row
    client = client_for(capture, fake_time)

    # When the batch is finally delivered
    client.send(MESSAGES, deadline=FAR)

    # Then the doubling stops at 60 s
    assert fake_time.sleeps == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]


@plan(sequence=[429, 429], retry_after=7)
def test_429_waits_for_retry_after_and_tells_the_rate_limiter(capture, fake_time):
    # Given Segment throttles twice with Retry-After: 7, and a rate limiter listening
    throttled: list[float] = []
    client = client_for(capture, fake_time, on_throttle=throttled.append)

    # When a batch is sent
    result = client.send(MESSAGES, deadline=FAR)

    # Then each wait is the server's, not the backoff's, and the limiter heard both
    assert fake_time.sleeps == [7.0, 7.0]
    assert throttled == [7.0, 7.0]
    assert result.attempts == 3


@plan(sequence=[503], retry_after=1000)
def test_retry_after_is_capped_at_300_seconds(capture, fake_time):
    # Given a 503 asking for a 1,000 s pause
    client = client_for(capture, fake_time)

    # When it is retried, Then the client waits no more than 300 s
    client.send(MESSAGES, deadline=FAR)
    assert fake_time.sleeps == [300.0]


@pytest.mark.parametrize(
    "capture", [FaultPlan(sequence=[s]) for s in (408, 410, 429, 460, 500, 502, 503, 504)], indirect=True
)
def test_statuses_the_official_library_retries_are_retried(capture, fake_time):
    # Given one retryable failure, When sent, Then the second attempt delivers
    assert client_for(capture, fake_time).send(MESSAGES, deadline=FAR).attempts == 2


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_wrong_write_key_or_url_fails_the_whole_batch_without_bisecting(tmp_path, fake_time, status):
    # Given Segment refuses the credentials or the address, not the content
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan(sequence=[status])) as capture:
        client = client_for(capture, fake_time)

        # When it is sent
        with pytest.raises(DeliveryError) as caught:
            client.send(MESSAGES, deadline=FAR)

        # Then one attempt, no retry, and the error names the status for the operator
        assert str(status) in str(caught.value)
        assert capture.requests == 1
        assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_rotated_write_key_is_read_again_once_and_the_batch_retried_with_it(tmp_path, fake_time, status):
    # Given Segment refuses the old key once, and the secret now holds a new one
    sent: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: sent.append(response.request.headers["Authorization"]))
    reads: list[str] = []

    def read_again() -> str:
        reads.append("new-write-key")
        return "new-write-key"

    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan(sequence=[status])) as capture:
        client = client_for(capture, fake_time, session=session, refresh_key=read_again)

        # When a batch is sent
        result = client.send(MESSAGES, deadline=FAR)

    # Then the key was read again once, and the retry (at once, no backoff) used it and was delivered
    assert reads == ["new-write-key"] and result.attempts == 2 and fake_time.sleeps == []
    new = "Basic " + base64.b64encode(b"new-write-key:").decode()
    assert sent[0] != new and sent[1] == new
    session.close()


def test_a_key_refused_again_after_reading_it_again_fails_the_batch(tmp_path, fake_time):
    # Given Segment refuses every key, and reading the key again gives a new one each time
    keys = iter(["second-key", "third-key"])
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan(sequence=[401, 401, 401])) as capture:
        client = client_for(capture, fake_time, refresh_key=lambda: next(keys))

        # When a batch is sent
        with pytest.raises(DeliveryError, match="HTTP 401 after 2 attempt"):
            client.send(MESSAGES, deadline=FAR)

        # Then it was retried once with the key read again, never more
        assert capture.requests == 2


def test_an_unchanged_key_is_not_retried(tmp_path, fake_time):
    # Given Segment refuses the key, and the secret still holds the same one
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan(sequence=[403])) as capture:
        client = client_for(capture, fake_time, refresh_key=lambda: WRITE_KEY)

        # When / Then the batch fails after one request
        with pytest.raises(DeliveryError, match="HTTP 403 after 1 attempt"):
            client.send(MESSAGES, deadline=FAR)
        assert capture.requests == 1


@pytest.mark.parametrize("status", [400, 413, 422])
def test_content_4xx_give_up_at_once_with_batch_rejected(tmp_path, fake_time, status):
    # Given Segment refuses the batch with a 4xx that a retry cannot fix
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan(sequence=[status])) as capture:
        client = client_for(capture, fake_time)

        # When it is sent
        with pytest.raises(BatchRejected) as caught:
            client.send(MESSAGES, deadline=FAR)

        # Then there is a single attempt and the caller learns the status, to bisect the batch
        assert caught.value.status == status
        assert capture.requests == 1
        assert fake_time.sleeps == []


@plan(reject_if=lambda m: m.get("userId") == "u1")
def test_one_bad_message_rejects_the_batch_with_a_short_detail(capture, fake_time):
    # Given a batch holding one message Segment refuses
    client = client_for(capture, fake_time)

    # When sent
    with pytest.raises(BatchRejected) as caught:
        client.send(MESSAGES, deadline=FAR)

    # Then the detail quotes the response, briefly, and nothing was recorded
    assert caught.value.status == 400
    assert "rejected" in caught.value.detail
    assert len(caught.value.detail) <= 200
    assert read_captured(capture.out_path) == []


@pytest.mark.parametrize("capture", [FaultPlan(sequence=[501]), FaultPlan(sequence=[505])], indirect=True)
def test_501_and_505_are_not_retried(capture, fake_time):
    # Given a status the official library does not retry
    client = client_for(capture, fake_time)

    # When sent, Then delivery fails after one attempt, without waiting
    with pytest.raises(DeliveryError, match=r"HTTP 50[15] after 1 attempt"):
        client.send(MESSAGES, deadline=FAR)
    assert capture.requests == 1
    assert fake_time.sleeps == []


@plan(sequence=["reset"])
def test_a_connection_reset_is_retried(capture, fake_time):
    # Given the connection is dropped without an answer once
    client = client_for(capture, fake_time)

    # When sent
    result = client.send(MESSAGES, deadline=FAR)

    # Then the second attempt delivers
    assert result.attempts == 2
    assert len(read_captured(capture.out_path)) == len(MESSAGES)


@plan(sequence=["slow"], slow_seconds=5)
def test_a_read_timeout_is_retried(capture, fake_time):
    # Given Segment takes longer to answer than the read timeout, once
    client = client_for(capture, fake_time, read_timeout=0.2)

    # When sent
    result = client.send(MESSAGES, deadline=FAR)

    # Then the client gives up waiting and the retry delivers
    assert result.attempts == 2


@plan(sequence=[503, 503, 503], retry_after=10)
def test_no_wait_is_started_that_would_end_past_the_deadline(capture, fake_time):
    # Given Segment asks for 10 s pauses and 15 s remain
    client = client_for(capture, fake_time)

    # When sent
    with pytest.raises(DeliveryError, match="2 attempt") as caught:
        client.send(MESSAGES, deadline=15.0)

    # Then one wait fitted, the second would have ended at 20 s, so the client stopped at 10 s
    assert fake_time.sleeps == [10.0]
    assert fake_time.now <= 15.0
    assert "503" in str(caught.value)


def test_a_spent_budget_sends_nothing(capture, fake_time):
    # Given a deadline already reached
    fake_time.now = 100.0
    client = client_for(capture, fake_time)

    # When sent, Then it fails at once without a request
    with pytest.raises(DeliveryError, match="0 attempt"):
        client.send(MESSAGES, deadline=100.0)
    assert capture.requests == 0


@plan(sequence=[500, 500, 500])
def test_retries_run_out_after_max_retries(capture, fake_time):
    # Given more failures than the client may retry
    client = client_for(capture, fake_time, max_retries=2)

    # When sent, Then it reports the attempts made and the last failure
    with pytest.raises(DeliveryError, match=r"3 attempt\(s\): last failure HTTP 500"):
        client.send(MESSAGES, deadline=FAR)
    assert fake_time.sleeps == [0.5, 1.0]


class EchoKeyHandler(BaseHTTPRequestHandler):
    """A hostile server that quotes the caller's credentials back in its error."""

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = f"bad request from {self.headers['Authorization']} key={WRITE_KEY}".encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoKeyHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_write_key_never_appears_in_errors_or_repr(echo_server, tmp_path, fake_time):
    # Given a server that echoes the key, and one that is unreachable
    client = SegmentClient(echo_server, WRITE_KEY, sleep=fake_time.sleep, clock=fake_time.clock)
    with CaptureServer(tmp_path / "c.ndjson") as gone:
        unreachable_url = gone.url
    unreachable = SegmentClient(unreachable_url, WRITE_KEY, sleep=fake_time.sleep, clock=fake_time.clock)

    # When both fail
    with pytest.raises(BatchRejected) as rejected:
        client.send(MESSAGES, deadline=FAR)
    with pytest.raises(DeliveryError) as undelivered:
        unreachable.send(MESSAGES, deadline=5.0)

    # Then no text a log could show holds the key
    texts = [str(rejected.value), repr(rejected.value), rejected.value.detail, repr(client)]
    texts += [str(undelivered.value), repr(undelivered.value), repr(unreachable)]
    token = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert all(WRITE_KEY not in text and token not in text for text in texts)
    assert "***" in rejected.value.detail
    assert "ConnectionError" in str(undelivered.value)
    client.close()
    unreachable.close()
