"""The email channel against a real SMTP server on 127.0.0.1 (aiosmtpd): plain,
STARTTLS and SSL with a self-signed certificate trusted through `ca_file`,
AUTH, the multipart body, and each failure classified as retryable or
permanent without the password in the error."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from smtp_receiver import Cert, SmtpReceiver, free_port, make_cert

from auditor.errors import DeliveryError
from auditor.notify import Message
from auditor.notify.email import EmailNotifier, Security
from auditor.settings import Secret

SENT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
HEAD = "ab" * 32
TX = "0x" + "cd" * 32
PASSWORD = "smtp-pa55-word!"
DRAIN = {"rule": "hot_drain", "subject": "eth-hot-1/ETH", "severity": "critical",
         "state": "firing", "value": "0.42", "threshold": "0.2",
         "fingerprint": "3f2a9c0d1b2e" + "0" * 52,
         "summary": "hot wallet fell 42% in 10m <check> & act:\nfreeze withdrawals",
         "since": "2026-11-24T09:59:00Z", "transition": "firing", "seq": 17,
         "details": {"wallet": "eth-hot-1", "tx": TX}}
RESOLVED = {"rule": "hot_ratio", "subject": "combined", "severity": "warning",
            "state": "resolved", "value": "0.03", "threshold": "0.04", "fingerprint": "9" * 64,
            "summary": "back under 4%", "since": "2026-11-24T08:00:00Z",
            "transition": "resolved", "seq": 18}
STALE = dict(RESOLVED, rule="stale_data", subject="ethereum", state="firing",
             transition="firing", severity="warning", seq=19)

pytestmark = pytest.mark.integration


def message(*alerts: dict[str, Any], test: bool = False) -> Message:
    return Message("example-ex", SENT, HEAD, list(alerts or (RESOLVED, DRAIN, STALE)), test=test)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("tls"))


def notifier(port: int, security: Security = "plain", *, user: str | None = None,
             password: str | None = None, ca_file: Path | None = None,
             timeout: float = 5, to: tuple[str, ...] = ("sec@example.com",)) -> EmailNotifier:
    return EmailNotifier("mail", "127.0.0.1", port, sender="Custody Auditor <auditor@example.com>",
                         to=to, security=security, username=user,
                         password=Secret(password) if password else None, timeout=timeout,
                         ca_file=ca_file)


def refused(mailer: EmailNotifier, msg: Message | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as err:
        mailer.send(msg or message())
    text = str(err.value) + repr(err.value)
    assert PASSWORD not in text
    assert err.value.__context__ is None and err.value.__cause__ is None
    return err.value


@pytest.fixture
def plain() -> Iterator[SmtpReceiver]:
    with SmtpReceiver("plain") as rx:
        yield rx


# -- what is sent ---------------------------------------------------------------------

def test_plain_smtp_sends_multipart_alternative_with_text_and_html(plain: SmtpReceiver) -> None:
    notifier(plain.port, to=("sec@example.com", "CFO <cfo@example.com>")).send(message())
    (got,) = plain.messages
    assert got.mail_from == "auditor@example.com"
    assert got.rcpt_tos == ["sec@example.com", "cfo@example.com"]
    assert not got.tls and got.login is None
    mail = got.email
    assert mail["Subject"] == "[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+2 more)"
    assert mail["From"] == "Custody Auditor <auditor@example.com>"
    assert mail["To"] == "sec@example.com, CFO <cfo@example.com>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]


def test_plain_text_part_lists_each_alert_and_what_to_do(plain: SmtpReceiver) -> None:
    notifier(plain.port).send(message(DRAIN))
    text = plain.messages[0].email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.splitlines() == [
        "custody-auditor example-ex: 1 alert transition", "",
        "CRITICAL firing: hot_drain eth-hot-1/ETH",
        "  rule         hot_drain",
        "  subject      eth-hot-1/ETH",
        "  value        0.42",
        "  threshold    0.2",
        "  wallet       eth-hot-1",
        f"  tx           {TX}",
        "  since        2026-11-24T09:59:00Z",
        f"  fingerprint  {DRAIN['fingerprint']}",
        "  seq          17",
        "  What to do:  hot wallet fell 42% in 10m <check> & act:",
        "               freeze withdrawals",
        "",
        f"Audit-log head when sent: {HEAD}",
        "Sent 2026-11-24T10:00:00Z by custody-auditor.",
        ("Acknowledge a firing alert (stops repeats) with `auditor alerts ack FINGERPRINT`; "
         "`auditor alerts list` shows every open alert.")]


def test_html_part_escapes_values_and_holds_the_same_facts(plain: SmtpReceiver) -> None:
    notifier(plain.port).send(message(DRAIN))
    page = plain.messages[0].email.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "hot wallet fell 42% in 10m &lt;check&gt; &amp; act:<br>freeze withdrawals" in page
    assert "<check>" not in page
    for fact in ("hot_drain", "eth-hot-1/ETH", "0.42", "0.2", TX, DRAIN["fingerprint"], HEAD,
                 "What to do:"):
        assert fact in page


def test_test_message_is_marked_in_subject_and_both_parts(plain: SmtpReceiver) -> None:
    notifier(plain.port).send(message(DRAIN, test=True))
    mail = plain.messages[0].email
    assert mail["Subject"].startswith("[TEST] [CRITICAL] custody-auditor example-ex")
    for kind in ("plain", "html"):
        assert "TEST message sent by `auditor test-alert`" in \
            mail.get_body((kind,)).get_content()  # type: ignore[union-attr]


def test_resolved_only_message_is_labelled_resolved(plain: SmtpReceiver) -> None:
    notifier(plain.port).send(message(RESOLVED))
    assert plain.messages[0].email["Subject"] == ("[RESOLVED] custody-auditor example-ex: "
                                                  "hot_ratio combined")


# -- TLS and AUTH -----------------------------------------------------------------------

def test_starttls_with_auth_through_a_trusted_ca_file(cert: Cert) -> None:
    with SmtpReceiver("starttls", cert, users={"auditor": PASSWORD}) as rx:
        notifier(rx.port, "starttls", user="auditor", password=PASSWORD,
                 ca_file=cert.cert_file).send(message())
        (got,) = rx.messages
    assert got.tls and got.login == "auditor"
    assert got.email.get_content_type() == "multipart/alternative"


def test_ssl_with_auth_through_a_trusted_ca_file(cert: Cert) -> None:
    with SmtpReceiver("ssl", cert, users={"auditor": PASSWORD}) as rx:
        notifier(rx.port, "ssl", user="auditor", password=PASSWORD,
                 ca_file=cert.cert_file).send(message())
        (got,) = rx.messages
    assert got.tls and got.login == "auditor"


def test_plain_smtp_with_auth(cert: Cert) -> None:
    with SmtpReceiver("plain", users={"auditor": PASSWORD}) as rx:
        notifier(rx.port, user="auditor", password=PASSWORD).send(message())
        assert rx.messages[0].login == "auditor" and not rx.messages[0].tls


def test_wrong_password_is_permanent_and_the_password_is_not_shown(cert: Cert) -> None:
    with SmtpReceiver("starttls", cert, users={"auditor": "the-right-one"}) as rx:
        err = refused(notifier(rx.port, "starttls", user="auditor", password=PASSWORD,
                               ca_file=cert.cert_file))
        assert rx.messages == []
    assert not err.retryable
    assert str(err) == (f"smtp 127.0.0.1:{rx.port} refused the login of user 'auditor' "
                        "(SMTP 535); check the channel's username and password/password_file")


def test_untrusted_certificate_is_permanent_and_points_at_ca_file(cert: Cert) -> None:
    with SmtpReceiver("starttls", cert) as rx:
        err = refused(notifier(rx.port, "starttls"))
    assert not err.retryable and "not trusted" in str(err) and "ca_file" in str(err)


def test_starttls_against_a_server_without_it_is_permanent(plain: SmtpReceiver) -> None:
    err = refused(notifier(plain.port, "starttls"))
    assert not err.retryable and "does not offer STARTTLS" in str(err)
    assert plain.messages == []


def test_ssl_against_a_plain_port_is_a_permanent_tls_error(plain: SmtpReceiver,
                                                           cert: Cert) -> None:
    err = refused(notifier(plain.port, "ssl", ca_file=cert.cert_file))
    assert not err.retryable and "TLS failed" in str(err) and "port" in str(err)


# -- server answers -----------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "retryable"), [("451 4.3.0 try again later", True),
                                                  ("554 5.7.1 rejected as spam", False)])
def test_data_reply_4xx_is_retryable_and_5xx_permanent(plain: SmtpReceiver, reply: str,
                                                       retryable: bool) -> None:
    plain.data_reply = reply
    err = refused(notifier(plain.port))
    assert err.retryable is retryable
    assert reply.split()[0] in str(err) and f"smtp 127.0.0.1:{plain.port}" in str(err)


def test_one_refused_recipient_of_two_is_permanent_and_named(plain: SmtpReceiver) -> None:
    plain.rcpt_reply["gone@example.com"] = "550 5.1.1 no such user"
    err = refused(notifier(plain.port, to=("sec@example.com", "gone@example.com")))
    assert not err.retryable and "gone@example.com (550" in str(err)
    assert len(plain.messages) == 1  # the other recipient got it


def test_every_recipient_deferred_is_retryable(plain: SmtpReceiver) -> None:
    plain.rcpt_reply["sec@example.com"] = "450 4.2.1 mailbox busy"
    err = refused(notifier(plain.port))
    assert err.retryable and "sec@example.com (450" in str(err)


def test_connection_refused_is_retryable() -> None:
    err = refused(notifier(free_port()))
    assert err.retryable and "unreachable" in str(err)


def test_a_server_that_never_greets_times_out_as_retryable() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        err = refused(notifier(silent.getsockname()[1], timeout=0.3))
    assert err.retryable and "within 0.3s" in str(err)
