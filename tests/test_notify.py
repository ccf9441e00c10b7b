"""Notifiers: webhook body/headers/signature as DESIGN.md, the HTTP helper's
retryable classification and redaction, the log channel's stderr lines."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from receivers import WebhookReceiver

from auditor import __version__
from auditor.errors import DeliveryError
from auditor.notify import LogNotifier, Message, WebhookNotifier, make_notifier, rfc3339
from auditor.notify.http import make_client, post_json
from auditor.notify.webhook import encode_body, verify_signature
from auditor.settings import ChannelSettings, Secret

SENT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
ALERT = {"rule": "hot_drain", "subject": "eth-hot-1/ETH", "severity": "critical",
         "state": "firing", "value": "0.42", "threshold": "0.2",
         "fingerprint": "3f2a9c0d1b2e" + "0" * 52, "summary": "hot wallet fell 42% in 10m",
         "since": "2026-11-24T09:59:00Z", "transition": "firing", "seq": 17}
TOKEN = "SECRET123"
HMAC_KEY = "whsec-do-not-print"


def message(test: bool = False) -> Message:
    return Message(exchange="example-ex", sent_at=SENT, head="ab" * 32, alerts=[ALERT],
                   test=test)


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return make_client(transport=httpx.MockTransport(handler))


def capture() -> tuple[list[httpx.Request], httpx.Client]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    return seen, mock_client(handler)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=HMAC_KEY.encode(), hang_seconds=3) as rx:
        yield rx


# -- formats -------------------------------------------------------------

def test_rfc3339_is_utc_with_z_and_whole_seconds() -> None:
    jst = timezone(timedelta(hours=9))
    assert rfc3339(datetime(2026, 11, 24, 19, 0, 0, 123456, tzinfo=jst)) == "2026-11-24T10:00:00Z"


def test_rfc3339_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        rfc3339(datetime(2026, 11, 24, 10, 0, 0))


def test_webhook_body_has_exactly_the_design_keys() -> None:
    body = json.loads(encode_body(message()))
    assert body == {"exchange": "example-ex", "sent_at": "2026-11-24T10:00:00Z",
                    "head": "ab" * 32, "alerts": [ALERT]}


def test_webhook_body_marks_test_messages_only() -> None:
    assert json.loads(encode_body(message(test=True)))["test"] is True
    assert "test" not in json.loads(encode_body(message()))


# -- webhook headers and signature (mock transport) ------------------------

def test_webhook_posts_json_with_user_agent_and_signature_over_raw_body() -> None:
    seen, client = capture()
    notifier = WebhookNotifier("soc", Secret(f"https://hooks.example/{TOKEN}"),
                               secret=Secret(HMAC_KEY), client=client, clock=lambda: 1795514400.7)
    notifier.send(message())
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == f"https://hooks.example/{TOKEN}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == f"custody-auditor/{__version__}"
    assert req.headers["x-auditor-timestamp"] == "1795514400"
    want = hmac.new(HMAC_KEY.encode(), b"1795514400." + req.content, hashlib.sha256).hexdigest()
    assert req.headers["x-auditor-signature"] == f"sha256={want}"
    assert req.content == encode_body(message())


def test_webhook_without_secret_sends_no_signature_headers() -> None:
    seen, client = capture()
    WebhookNotifier("soc", "https://hooks.example/h", client=client).send(message())
    assert "x-auditor-signature" not in seen[0].headers
    assert "x-auditor-timestamp" not in seen[0].headers


def test_verify_signature_accepts_own_signature_and_rejects_tampering() -> None:
    body, ts = encode_body(message()), "1795514400"
    header = "sha256=" + hmac.new(b"k", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert verify_signature(b"k", ts, body, header, now=1795514400)
    assert verify_signature(b"k", ts, body, header, now=1795514400 + 300)
    assert not verify_signature(b"wrong", ts, body, header, now=1795514400)
    assert not verify_signature(b"k", ts, body + b" ", header, now=1795514400)
    assert not verify_signature(b"k", ts, body, header, now=1795514400 + 301)  # replay
    assert not verify_signature(b"k", "1795514401", body, header, now=1795514400)
    assert not verify_signature(b"k", "-1", body, header, now=1795514400)
    assert not verify_signature(b"k", ts, body, header[len("sha256="):], now=1795514400)


# -- the HTTP helper's classification ---------------------------------------

@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_post_json_throttling_and_server_errors_are_retryable(status: int) -> None:
    client = mock_client(lambda r: httpx.Response(status))
    with pytest.raises(DeliveryError) as err:
        post_json("https://hooks.example/x", b"{}", client=client)
    assert err.value.retryable is True
    assert str(status) in str(err.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 301])
def test_post_json_client_errors_and_redirects_are_permanent(status: int) -> None:
    client = mock_client(lambda r: httpx.Response(status, headers={"Location": "https://x/"}))
    with pytest.raises(DeliveryError) as err:
        post_json("https://hooks.example/x", b"{}", client=client)
    assert err.value.retryable is False


def test_post_json_returns_2xx_response() -> None:
    client = mock_client(lambda r: httpx.Response(204))
    assert post_json("https://hooks.example/x", b"{}", client=client).status_code == 204


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError,
                                 httpx.RemoteProtocolError])
def test_post_json_timeouts_and_connection_errors_are_retryable_and_redacted(exc: type) -> None:
    url = f"https://user:pw@hooks.example:8443/hooks/{TOKEN}?key={TOKEN}"

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(f"failed talking to {request.url}", request=request)

    with pytest.raises(DeliveryError) as err:
        post_json(Secret(url), b'{"a":1}', client=mock_client(handler))
    assert err.value.retryable is True
    text = str(err.value) + repr(err.value)
    assert "https://hooks.example:8443" in text
    assert TOKEN not in text and "pw" not in text
    # No chained httpx exception whose text carries the URL.
    assert err.value.__context__ is None and err.value.__cause__ is None


def test_post_json_unsupported_scheme_is_permanent() -> None:
    with pytest.raises(DeliveryError) as err:
        post_json(f"ftp://hooks.example/{TOKEN}", b"{}", client=make_client())
    assert err.value.retryable is False
    assert TOKEN not in str(err.value)


# -- against a real local receiver ------------------------------------------

def real_notifier(rx: WebhookReceiver, secret: str = HMAC_KEY, timeout: float = 5) -> WebhookNotifier:
    return WebhookNotifier("soc", Secret(rx.url(f"/hooks/{TOKEN}")), secret=Secret(secret),
                           timeout=timeout)


@pytest.mark.integration
def test_receiver_verifies_signature_of_real_post(receiver: WebhookReceiver) -> None:
    real_notifier(receiver).send(message())
    (got,) = receiver.requests
    assert got.path == f"/hooks/{TOKEN}"
    assert got.signature_ok is True
    assert got.json()["alerts"][0]["seq"] == 17
    assert verify_signature(HMAC_KEY.encode(), got.headers["x-auditor-timestamp"], got.body,
                            got.headers["x-auditor-signature"],
                            now=int(got.headers["x-auditor-timestamp"]))


@pytest.mark.integration
def test_receiver_rejects_signature_made_with_wrong_secret(receiver: WebhookReceiver) -> None:
    real_notifier(receiver, secret="not-the-receivers-secret").send(message())
    assert receiver.requests[0].signature_ok is False


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "retryable"), [(429, True), (500, True), (400, False)])
def test_real_receiver_status_is_classified(receiver: WebhookReceiver, mode: int,
                                            retryable: bool) -> None:
    receiver.respond(mode)
    with pytest.raises(DeliveryError) as err:
        real_notifier(receiver).send(message())
    assert err.value.retryable is retryable
    assert TOKEN not in str(err.value) and HMAC_KEY not in str(err.value)


@pytest.mark.integration
def test_hanging_receiver_times_out_as_retryable(receiver: WebhookReceiver) -> None:
    receiver.respond("hang")
    with pytest.raises(DeliveryError) as err:
        real_notifier(receiver, timeout=0.3).send(message())
    assert err.value.retryable is True
    assert "within 0.3s" in str(err.value)


@pytest.mark.integration
def test_stopped_receiver_is_retryable_then_reachable_on_same_port(
        receiver: WebhookReceiver) -> None:
    port = receiver.port
    receiver.stop()
    with pytest.raises(DeliveryError) as err:
        real_notifier(receiver).send(message())
    assert err.value.retryable is True
    assert TOKEN not in str(err.value)
    receiver.start()
    assert receiver.port == port
    real_notifier(receiver).send(message())
    assert receiver.seqs() == [17]


# -- log channel -------------------------------------------------------------

def test_log_channel_writes_one_readable_line_per_alert_to_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    second = dict(ALERT, seq=18, transition="resolved", severity="warning",
                  summary="back to\nnormal", value=None, threshold=None)
    LogNotifier("console").send(Message("example-ex", SENT, "00", [ALERT, second]))
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == ("ALERT example-ex CRITICAL firing hot_drain eth-hot-1/ETH value 0.42 vs "
                        "threshold 0.2 - hot wallet fell 42% in 10m (fp 3f2a9c0d1b2e seq 17)")
    assert lines[1] == ("ALERT example-ex WARNING resolved hot_drain eth-hot-1/ETH - back to "
                        "normal (fp 3f2a9c0d1b2e seq 18)")
    assert len(lines) == 2


def test_log_channel_broken_stream_is_a_retryable_delivery_error() -> None:
    class Broken:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    with pytest.raises(DeliveryError) as err:
        LogNotifier("console", stream=Broken()).send(message())  # type: ignore[arg-type]
    assert err.value.retryable is True


# -- factory -----------------------------------------------------------------

def test_make_notifier_builds_each_channel_type_without_leaking_url() -> None:
    log = make_notifier(ChannelSettings(name="console", type="log"))
    hook = make_notifier(ChannelSettings(name="soc", type="webhook",
                                         url=Secret(f"https://h.example/{TOKEN}"),
                                         secret=Secret(HMAC_KEY)))
    assert isinstance(log, LogNotifier) and log.name == "console"
    assert isinstance(hook, WebhookNotifier) and hook.name == "soc"
    assert TOKEN not in repr(hook) and HMAC_KEY not in repr(hook)


def test_make_notifier_webhook_without_url_names_the_channel() -> None:
    with pytest.raises(ValueError, match="'soc'"):
        make_notifier(ChannelSettings(name="soc", type="webhook"))


# -- redaction helpers and the wire form ---------------------------------------

def test_scrub_hides_url_tokens_and_secrets_but_keeps_the_host_label() -> None:
    from auditor.notify.http import collect_secrets, scrub

    chans = [ChannelSettings(name="soc", type="webhook",
                             url=Secret(f"https://u:pw1234@h.example:8443/hooks/{TOKEN}?k={TOKEN}"),
                             secret=Secret(HMAC_KEY))]
    text = f"https://h.example:8443 failed at /hooks/{TOKEN}?k={TOKEN} with {HMAC_KEY} pw1234"
    out = scrub(text, collect_secrets(chans))
    assert out.startswith("https://h.example:8443 failed")
    assert TOKEN not in out and HMAC_KEY not in out and "pw1234" not in out


def test_wire_alert_turns_a_stored_transition_into_the_design_alert_object() -> None:
    from auditor.notify.base import wire_alert

    stored = {"seq": 5, "kind": "resolved", "fingerprint": "f" * 64, "rule": "hot_ratio",
              "subject": "combined", "severity": "warning", "at": "2026-11-24T10:00:00Z",
              "since": "2026-11-24T09:00:00Z", "summary": "ok again", "value": "0.03",
              "threshold": "0.04", "details": {}}
    wire = wire_alert(stored)
    assert list(wire)[:11] == ["rule", "subject", "severity", "state", "value", "threshold",
                               "fingerprint", "summary", "since", "transition", "seq"]
    assert (wire["state"], wire["transition"], wire["seq"]) == ("resolved", "resolved", 5)
    assert "kind" not in wire and wire["at"] == "2026-11-24T10:00:00Z"
    assert wire_alert(ALERT) == ALERT
