"""Slack, PagerDuty, Telegram and Teams against a real receiver on 127.0.0.1
(tests/receivers.py): the exact request bodies, and each answer classified
as retryable or permanent without a secret in the error. Answers the local
receiver cannot give (Slack's error words, Retry-After, Teams' errors inside
a 200) go through httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from receivers import WebhookReceiver

from auditor.errors import DeliveryError
from auditor.notify import Message
from auditor.notify.http import make_client
from auditor.notify.pagerduty import PagerDutyNotifier
from auditor.notify.slack import MAX_ALERT_SECTIONS, SlackNotifier
from auditor.notify.teams import TeamsNotifier
from auditor.notify.telegram import MAX_CHARS, TelegramNotifier
from auditor.settings import Secret

SENT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
HEAD = "ab" * 32
TX = "0x" + "cd" * 32
SLACK_PATH = "/services/T0001/B0002/slackpathsecret42"
PD_KEY = "R0123456789abcdef0123456789abcde"
BOT = "123456789:AAbotTOKENsecret_0123456789-xyz"
TEAMS_PATH = "/webhookb2/teams-secret-path-77"
DRAIN = {"rule": "hot_drain", "subject": "eth-hot-1/ETH", "severity": "critical",
         "state": "firing", "value": "0.42", "threshold": "0.2",
         "fingerprint": "3f2a9c0d1b2e" + "0" * 52,
         "summary": "hot wallet fell 42% in 10m <check> & act", "since": "2026-11-24T09:59:00Z",
         "transition": "firing", "seq": 17, "at": "2026-11-24T10:00:00Z",
         "details": {"wallet": "eth-hot-1", "asset": "ETH", "tx": TX}}
RESOLVED = {"rule": "hot_ratio", "subject": "combined", "severity": "warning",
            "state": "resolved", "value": "0.03", "threshold": "0.04", "fingerprint": "9" * 64,
            "summary": "back under 4%", "since": "2026-11-24T08:00:00Z",
            "transition": "resolved", "seq": 18}

pytestmark = pytest.mark.integration


def message(*alerts: dict[str, Any], test: bool = False) -> Message:
    return Message("example-ex", SENT, HEAD, list(alerts or (DRAIN, RESOLVED)), test=test)


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return make_client(transport=httpx.MockTransport(handler))


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(hang_seconds=3) as receiver:
        yield receiver


def refused(send: Callable[[], None], *secrets: str) -> DeliveryError:
    """The DeliveryError `send` raises, checked to carry none of `secrets`."""
    with pytest.raises(DeliveryError) as err:
        send()
    text = str(err.value) + repr(err.value)
    for secret in secrets:
        assert secret not in text
    return err.value


# -- slack ------------------------------------------------------------------------

def slack(rx: WebhookReceiver, timeout: float = 5) -> SlackNotifier:
    return SlackNotifier("slack", Secret(rx.url(SLACK_PATH)), timeout=timeout)


def test_slack_posts_block_kit_with_one_section_per_alert(rx: WebhookReceiver) -> None:
    slack(rx).send(message())
    (got,) = rx.requests
    assert got.path == SLACK_PATH and got.headers["content-type"] == "application/json"
    assert got.json() == {
        "text": "[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+1 more)",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                        "text": "example-ex: 2 alerts (1 resolved)"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                ":rotating_light: *CRITICAL* · firing · `hot_drain` · *eth-hot-1/ETH*\n"
                "value *0.42* vs threshold *0.2*\n"
                f"wallet `eth-hot-1` · tx `{TX}`\n"
                "hot wallet fell 42% in 10m &lt;check&gt; &amp; act\n"
                "fp `3f2a9c0d1b2e` · seq 17")}},
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                ":white_check_mark: *RESOLVED* · resolved · `hot_ratio` · *combined*\n"
                "value *0.03* vs threshold *0.04*\n"
                "back under 4%\n"
                "fp `999999999999` · seq 18")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                f"audit-log head `{HEAD}` · sent 2026-11-24T10:00:00Z"}]},
        ]}


def test_slack_test_message_is_marked_test_in_header_text_and_body(rx: WebhookReceiver) -> None:
    slack(rx).send(message(DRAIN, test=True))
    body = rx.requests[0].json()
    assert body["text"].startswith("[TEST] [CRITICAL] custody-auditor example-ex")
    assert body["blocks"][0]["text"]["text"] == "TEST · example-ex: 1 alert"
    assert "TEST message sent by `auditor test-alert`" in body["blocks"][1]["text"]["text"]


def test_slack_caps_sections_within_slacks_50_blocks(rx: WebhookReceiver) -> None:
    many = [dict(DRAIN, seq=i) for i in range(60)]
    slack(rx).send(message(*many))
    blocks = rx.requests[0].json()["blocks"]
    assert len(blocks) <= 50
    assert sum(b["type"] == "section" for b in blocks) == MAX_ALERT_SECTIONS
    assert blocks[-2]["elements"][0]["text"] == (
        f"…and {60 - MAX_ALERT_SECTIONS} more; see `auditor alerts list`")


@pytest.mark.parametrize(("mode", "retryable"), [(500, True), (429, True), (400, False),
                                                 (403, False)])
def test_slack_answers_are_classified_without_the_webhook_path(rx: WebhookReceiver, mode: int,
                                                               retryable: bool) -> None:
    rx.respond(mode)
    err = refused(lambda: slack(rx).send(message()), SLACK_PATH, "slackpathsecret42")
    assert err.retryable is retryable
    assert f"http://127.0.0.1:{rx.port}" in str(err)


def test_slack_hanging_receiver_is_a_retryable_timeout(rx: WebhookReceiver) -> None:
    rx.respond("hang")
    err = refused(lambda: slack(rx, timeout=0.3).send(message()), SLACK_PATH)
    assert err.retryable and "within 0.3s" in str(err)


def test_slack_429_with_retry_after_is_retryable_and_says_how_long() -> None:
    client = mock(lambda r: httpx.Response(429, headers={"Retry-After": "30"}, text="rate_limited"))
    notifier = SlackNotifier("slack", Secret(f"https://hooks.slack.com{SLACK_PATH}"),
                             client=client)
    err = refused(lambda: notifier.send(message()), SLACK_PATH)
    assert err.retryable and "Retry-After 30s" in str(err)


def test_slack_removed_webhook_names_slacks_error_word_and_is_permanent() -> None:
    client = mock(lambda r: httpx.Response(404, text="no_service"))
    notifier = SlackNotifier("slack", Secret(f"https://hooks.slack.com{SLACK_PATH}"),
                             client=client)
    err = refused(lambda: notifier.send(message()), SLACK_PATH)
    assert not err.retryable
    assert str(err).startswith("https://hooks.slack.com:443 refused the message with HTTP 404 "
                               "(no_service); the webhook was removed")


# -- pagerduty ----------------------------------------------------------------------

def pagerduty(rx: WebhookReceiver) -> PagerDutyNotifier:
    return PagerDutyNotifier("pager", Secret(PD_KEY), url=rx.url("/v2/enqueue"), timeout=5)


def test_pagerduty_sends_one_trigger_or_resolve_per_transition(rx: WebhookReceiver) -> None:
    rx.respond(202)
    pagerduty(rx).send(message())
    first, second = rx.requests
    assert first.path == second.path == "/v2/enqueue"
    assert first.json() == {
        "routing_key": PD_KEY, "event_action": "trigger", "dedup_key": DRAIN["fingerprint"],
        "client": "custody-auditor",
        "payload": {
            "summary": "[CRITICAL] hot_drain eth-hot-1/ETH: hot wallet fell 42% in 10m "
                       "<check> & act",
            "source": "example-ex", "severity": "critical",
            "timestamp": "2026-11-24T10:00:00Z", "component": "eth-hot-1/ETH",
            "class": "hot_drain",
            "custom_details": {"rule": "hot_drain", "subject": "eth-hot-1/ETH", "value": "0.42",
                               "threshold": "0.2", "seq": 17, "transition": "firing",
                               "head": HEAD, "fingerprint": DRAIN["fingerprint"],
                               "since": "2026-11-24T09:59:00Z", "wallet": "eth-hot-1",
                               "tx": TX}}}
    assert second.json() == {"routing_key": PD_KEY, "event_action": "resolve",
                             "dedup_key": "9" * 64}


@pytest.mark.parametrize("kind", ["escalated", "repeat", "outflow_reorged"])
def test_pagerduty_updates_of_an_open_alert_are_triggers_with_the_same_dedup_key(
        rx: WebhookReceiver, kind: str) -> None:
    rx.respond(202)
    pagerduty(rx).send(message(dict(DRAIN, transition=kind)))
    event = rx.requests[0].json()
    assert (event["event_action"], event["dedup_key"]) == ("trigger", DRAIN["fingerprint"])
    assert event["payload"]["custom_details"]["transition"] == kind


def test_pagerduty_summary_is_cut_to_the_events_api_limit(rx: WebhookReceiver) -> None:
    rx.respond(202)
    pagerduty(rx).send(message(dict(DRAIN, summary="x" * 5000, severity="warning")))
    payload = rx.requests[0].json()["payload"]
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("…")
    assert payload["severity"] == "warning"


def test_pagerduty_test_message_is_marked(rx: WebhookReceiver) -> None:
    rx.respond(202)
    pagerduty(rx).send(message(DRAIN, test=True))
    payload = rx.requests[0].json()["payload"]
    assert payload["summary"].startswith("[TEST] [CRITICAL] hot_drain")
    assert payload["custom_details"]["test"] is True


@pytest.mark.parametrize(("mode", "retryable"), [(429, True), (500, True), (503, True),
                                                 (400, False)])
def test_pagerduty_answers_are_classified_without_the_routing_key(
        rx: WebhookReceiver, mode: int, retryable: bool) -> None:
    rx.respond(mode)
    err = refused(lambda: pagerduty(rx).send(message(DRAIN)), PD_KEY)
    assert err.retryable is retryable
    if not retryable:
        assert "routing_key" in str(err)


def test_pagerduty_retryable_failure_after_a_success_raises_retryable() -> None:
    answers = iter([202, 500])
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(next(answers))

    notifier = PagerDutyNotifier("pager", Secret(PD_KEY), client=mock(handler))
    err = refused(lambda: notifier.send(message()), PD_KEY)
    assert err.retryable and "event 2 of 2" in str(err)
    assert [e["event_action"] for e in seen] == ["trigger", "resolve"]


def test_pagerduty_permanent_refusal_of_one_event_still_sends_the_others() -> None:
    answers = iter([400, 202])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["event_action"])
        return httpx.Response(next(answers))

    notifier = PagerDutyNotifier("pager", Secret(PD_KEY), client=mock(handler))
    err = refused(lambda: notifier.send(message()), PD_KEY)
    assert not err.retryable and "refused 1 of 2 events" in str(err)
    assert seen == ["trigger", "resolve"]


def test_pagerduty_default_url_is_the_events_api() -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(202)

    PagerDutyNotifier("pager", Secret(PD_KEY), client=mock(handler)).send(message(DRAIN))
    assert urls == ["https://events.pagerduty.com/v2/enqueue"]


# -- telegram --------------------------------------------------------------------------

def telegram(rx: WebhookReceiver, timeout: float = 5) -> TelegramNotifier:
    return TelegramNotifier("tg", Secret(BOT), "-1001234567890", url=rx.url(""), timeout=timeout)


def test_telegram_posts_html_text_to_send_message(rx: WebhookReceiver) -> None:
    telegram(rx).send(message())
    (got,) = rx.requests
    assert got.path == f"/bot{BOT}/sendMessage"
    body = got.json()
    assert {k: body[k] for k in ("chat_id", "parse_mode", "disable_web_page_preview")} == {
        "chat_id": "-1001234567890", "parse_mode": "HTML", "disable_web_page_preview": True}
    assert body["text"] == (
        "<b>[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+1 more)</b>\n\n"
        "\N{POLICE CARS REVOLVING LIGHT} <b>CRITICAL</b> firing · <code>hot_drain</code> · "
        "<b>eth-hot-1/ETH</b>\nvalue 0.42 vs threshold 0.2\n"
        f"wallet <code>eth-hot-1</code> · tx <code>{TX}</code>\n"
        "hot wallet fell 42% in 10m &lt;check&gt; &amp; act\n"
        "fp <code>3f2a9c0d1b2e</code> · seq 17\n\n"
        "\N{WHITE HEAVY CHECK MARK} <b>RESOLVED</b> resolved · <code>hot_ratio</code> · "
        "<b>combined</b>\nvalue 0.03 vs threshold 0.04\nback under 4%\n"
        "fp <code>999999999999</code> · seq 18\n\n"
        f"audit-log head <code>{HEAD}</code>")


def test_telegram_long_messages_stay_within_4096_characters(rx: WebhookReceiver) -> None:
    many = [dict(DRAIN, seq=i, summary="y" * 300) for i in range(40)]
    telegram(rx).send(message(*many, test=True))
    text = rx.requests[0].json()["text"]
    assert len(text) <= MAX_CHARS and "more; see <code>auditor alerts list</code>" in text
    assert text.startswith("<b>[TEST]") and "TEST message" in text


@pytest.mark.parametrize(("mode", "retryable"), [(429, True), (502, True), (400, False)])
def test_telegram_answers_are_classified_without_the_bot_token(
        rx: WebhookReceiver, mode: int, retryable: bool) -> None:
    rx.respond(mode)
    err = refused(lambda: telegram(rx).send(message()), BOT, BOT.split(":")[1])
    assert err.retryable is retryable
    assert str(err).startswith(f"http://127.0.0.1:{rx.port} ")


def test_telegram_timeout_is_retryable_without_the_bot_token(rx: WebhookReceiver) -> None:
    rx.respond("hang")
    err = refused(lambda: telegram(rx, timeout=0.3).send(message()), BOT, BOT.split(":")[1])
    assert err.retryable


def test_telegram_wrong_token_is_permanent_and_the_token_is_masked_even_if_echoed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"ok": False, "error_code": 401,
                                         "description": f"Unauthorized: {BOT}"})

    notifier = TelegramNotifier("tg", Secret(BOT), "@secteam", client=mock(handler))
    err = refused(lambda: notifier.send(message()), BOT)
    assert not err.retryable and "@BotFather" in str(err)
    assert str(err).startswith("https://api.telegram.org:443 refused the message with HTTP 401")


def test_telegram_429_says_when_to_retry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"ok": False, "error_code": 429,
                                         "description": "Too Many Requests: retry after 7",
                                         "parameters": {"retry_after": 7}})

    notifier = TelegramNotifier("tg", Secret(BOT), "@secteam", client=mock(handler))
    err = refused(lambda: notifier.send(message()), BOT)
    assert err.retryable and "(retry after 7s)" in str(err)


# -- teams ---------------------------------------------------------------------------------

def test_teams_posts_an_adaptive_card_with_facts_per_alert(rx: WebhookReceiver) -> None:
    rx.respond(202)
    TeamsNotifier("teams", Secret(rx.url(TEAMS_PATH)), timeout=5).send(message())
    body = rx.requests[0].json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == ("[CRITICAL] custody-auditor example-ex: hot_drain "
                                       "eth-hot-1/ETH (+1 more)")
    drain, resolved = card["body"][1], card["body"][2]
    assert drain["items"][0] == {"type": "TextBlock", "wrap": True, "weight": "Bolder",
                                 "color": "Attention",
                                 "text": "CRITICAL · firing · hot_drain · eth-hot-1/ETH"}
    assert drain["items"][1]["facts"] == [
        {"title": "rule", "value": "hot_drain"}, {"title": "subject", "value": "eth-hot-1/ETH"},
        {"title": "value", "value": "0.42"}, {"title": "threshold", "value": "0.2"},
        {"title": "wallet", "value": "eth-hot-1"}, {"title": "tx", "value": TX},
        {"title": "since", "value": "2026-11-24T09:59:00Z"},
        {"title": "fingerprint", "value": "3f2a9c0d1b2e"}, {"title": "seq", "value": "17"}]
    assert drain["items"][2]["text"] == "hot wallet fell 42% in 10m <check> & act"
    assert resolved["items"][0]["color"] == "Good"
    assert card["body"][-1]["text"] == f"audit-log head {HEAD} · sent 2026-11-24T10:00:00Z"


@pytest.mark.parametrize(("mode", "retryable"), [(429, True), (500, True), (400, False)])
def test_teams_answers_are_classified_without_the_url_path(rx: WebhookReceiver, mode: int,
                                                           retryable: bool) -> None:
    rx.respond(mode)
    notifier = TeamsNotifier("teams", Secret(rx.url(TEAMS_PATH)), timeout=5)
    err = refused(lambda: notifier.send(message()), TEAMS_PATH)
    assert err.retryable is retryable


@pytest.mark.parametrize(("embedded", "retryable"), [(429, True), (400, False)])
def test_teams_legacy_errors_inside_a_200_are_classified(embedded: int, retryable: bool) -> None:
    text = f"Microsoft Teams endpoint returned HTTP error {embedded} with ContextId tcid=0"
    client = mock(lambda r: httpx.Response(200, text=text))
    notifier = TeamsNotifier("teams", Secret(f"https://example.webhook.office.com{TEAMS_PATH}"),
                             client=client)
    err = refused(lambda: notifier.send(message()), TEAMS_PATH)
    assert err.retryable is retryable and f"HTTP {embedded} inside a 200" in str(err)


def test_teams_legacy_success_answer_is_accepted() -> None:
    client = mock(lambda r: httpx.Response(200, text="1"))
    TeamsNotifier("teams", "https://example.webhook.office.com/x", client=client).send(message())


def test_pagerduty_maps_ack_to_acknowledge_and_sends_no_page_for_silence_notices() -> None:
    from datetime import UTC, datetime

    from auditor.notify.base import Message
    from auditor.notify.pagerduty import build_events

    base = {"rule": "hot_ratio", "subject": "combined", "severity": "warning", "fingerprint": "ab" * 32}
    msg = Message(exchange="ex", sent_at=datetime(2026, 11, 24, tzinfo=UTC), head="0" * 64, alerts=[
        {**base, "transition": "acknowledged"}, {**base, "transition": "silenced"},
        {**base, "transition": "unsilenced"}, {**base, "transition": "resolved", "state": "resolved"}])
    assert [e["event_action"] for e in build_events(msg, "k")] == ["acknowledge", "resolve"]
