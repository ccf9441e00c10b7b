"""Secrets of the new channels through the real path: config-built notifiers,
the outbox worker and the SQLite store. Receivers on 127.0.0.1 refuse or
fail; then the routing key, bot token, SMTP password and Slack webhook path
must appear in no DeliveryReport error, log record, stderr line or byte of
the store file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from receivers import WebhookReceiver
from smtp_receiver import SmtpReceiver

from auditor.model import Transition
from auditor.notify import make_notifier
from auditor.outbox import deliver_pending
from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, Secret
from auditor.store import Store, transition_to_json

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
SLACK_PATH = "/services/T0001/B0002/slackpathsecret42"
PD_KEY = "R0123456789abcdef0123456789abcde"
BOT = "123456789:AAbotTOKENsecret_0123456789-xyz"
PASSWORD = "smtp-pa55-word!"
SECRETS = (SLACK_PATH, "slackpathsecret42", PD_KEY, BOT, BOT.split(":")[1], PASSWORD)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "a.db")
    yield s
    s.close()


def channels(http: WebhookReceiver, smtp: SmtpReceiver) -> tuple[ChannelSettings, ...]:
    return (
        ChannelSettings(name="slack", type="slack", url=Secret(http.url(SLACK_PATH)), timeout=2),
        ChannelSettings(name="pager", type="pagerduty", routing_key=Secret(PD_KEY),
                        url=Secret(http.url("/v2/enqueue")), timeout=2),
        ChannelSettings(name="tg", type="telegram", bot_token=Secret(BOT), chat_id="@secteam",
                        url=Secret(http.url("")), timeout=2),
        ChannelSettings(name="mail", type="email", smtp_host="127.0.0.1", smtp_port=smtp.port,
                        username="auditor", password=Secret(PASSWORD), sender="a@example.com",
                        to=("sec@example.com",), timeout=2),
        ChannelSettings(name="console", type="log"),
    )


def transition(seq: int) -> dict[str, object]:
    t = Transition(kind="firing", fingerprint=f"{seq:064x}", rule="hot_drain",
                   subject="eth-hot-1/ETH", severity="critical", at=NOW, since=NOW,
                   summary="hot wallet fell 42%", value=Decimal("0.42"),
                   threshold=Decimal("0.2"), details={"wallet": "eth-hot-1"})
    return transition_to_json(t, seq)


@pytest.mark.parametrize("status", [400, 500])
def test_failed_deliveries_leave_no_secret_in_errors_logs_stderr_or_store(
        tmp_path: Path, store: Store, status: int, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver() as http, SmtpReceiver("plain", users={"auditor": "other"}) as smtp:
        http.respond(status)  # 400: permanent, dead letters; 500: retries
        settings = AlertSettings(retry=RetrySettings(first=1, max=2, budget=3600),
                                 channels=channels(http, smtp))
        notifiers = {c.name: make_notifier(c) for c in settings.channels}
        for seq, channel in enumerate(("slack", "pager", "tg", "mail"), start=1):
            store.enqueue(channel, [transition(seq)], NOW)
        report = deliver_pending(store, notifiers, settings, "example-ex", NOW,
                                 rand=lambda: 1.0)
        paths = {r.path for r in http.requests}  # each channel was tried
        assert {SLACK_PATH, "/v2/enqueue", f"/bot{BOT}/sendMessage"} <= paths
        assert smtp.messages == []
    assert report.delivered + report.retried + report.dead >= 4
    assert len(report.errors) >= 4
    store.close()
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("a.db*"))
    out, err = capsys.readouterr()
    texts = ["\n".join(report.errors), caplog.text, out, err,
             stored.decode("utf-8", "replace")]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    assert "smtp 127.0.0.1" in "\n".join(report.errors)  # the errors do name the receivers
