"""The `email` channel: one multipart email per delivery over SMTP (smtplib).

Transport security, one of:

- `starttls`: connect in clear, upgrade with STARTTLS before AUTH and DATA
  (usually port 587); a server that does not offer STARTTLS is refused.
- `ssl`: TLS from the first byte (usually port 465).
- `plain`: no TLS, only to a relay on this host or with `insecure: true`
  (config_channels.py enforces that).

Certificates are checked against the system's CAs, or `ca_file`.

Failures are classified for the outbox: an SMTP 4xx reply, a dropped
connection, a refused connection or a timeout is retryable; a 5xx reply
(535: wrong username or password) is permanent, as are TLS problems (an
untrusted certificate or ssl/starttls not matching the port) which only a
config change fixes. Errors name the server as `smtp host:port` and never
contain the password.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from ..errors import DeliveryError
from ..settings import Secret
from .base import Message
from .email_body import build_email
from .text import clip, one_line

__all__ = ["EmailNotifier", "Security"]

Security = Literal["starttls", "ssl", "plain"]


class EmailNotifier:
    """Sends each message as one email to every address of `to`."""

    def __init__(self, name: str, host: str, port: int, *, sender: str, to: tuple[str, ...],
                 security: Security, username: str | None = None,
                 password: Secret | None = None, timeout: float = 10.0,
                 ca_file: Path | None = None):
        self.name = name
        self._host, self._port = host, port
        self._sender, self._to = sender, tuple(to)
        self._security: Security = security
        self._username, self._password = username, password
        self._timeout = timeout
        self._ca_file = ca_file

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, smtp={self._host}:{self._port})"

    @property
    def label(self) -> str:
        return f"smtp {self._host}:{self._port}"

    def send(self, message: Message) -> None:
        email = build_email(message, self._sender, self._to)
        failure: DeliveryError | None = None
        refused: Mapping[str, tuple[int, bytes]] = {}
        try:
            refused = self._deliver(email)
        except Exception as exc:  # noqa: BLE001 - every failure is classified; raised below
            failure = self._classify(exc)
        if failure is not None:
            raise failure  # no __context__: smtplib texts may quote what was sent
        if refused:
            raise self._refused(refused)

    # -- SMTP dialogue ------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)

    def _deliver(self, email: EmailMessage) -> Mapping[str, tuple[int, bytes]]:
        smtp: smtplib.SMTP
        if self._security == "ssl":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout,
                                    context=self._context())
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with smtp:
            smtp.ehlo()
            if self._security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password.reveal())
            # The envelope takes bare addresses; the headers keep any display names.
            envelope_to = [parseaddr(a)[1] for a in self._to]
            return smtp.send_message(email, parseaddr(self._sender)[1], envelope_to)

    # -- classification -----------------------------------------------------
    def _reply(self, code: int, text: bytes | str) -> str:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        if self._password is not None:
            raw = raw.replace(self._password.reveal(), "***")
        return f"{code} {clip(one_line(raw), 200)}".strip()

    def _classify(self, exc: Exception) -> DeliveryError:
        label = self.label
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            temporary = 400 <= exc.smtp_code < 500
            return DeliveryError(
                f"{label} refused the login of user {self._username!r} (SMTP {exc.smtp_code})"
                + ("; will retry" if temporary else "; check the channel's username and "
                   "password/password_file"), retryable=temporary)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return self._refused(exc.recipients)
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._response(exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if "timed out" in str(exc):  # smtplib turns a read timeout into a disconnect
                return self._network(TimeoutError())
            return DeliveryError(f"{label} closed the connection; will retry", retryable=True)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return self._unsupported(str(exc))
        if isinstance(exc, smtplib.SMTPException):
            return DeliveryError(f"{label}: {clip(one_line(exc), 200)}; check the channel's "
                                 "smtp settings", retryable=False)
        return self._network(exc)

    def _unsupported(self, text: str) -> DeliveryError:
        if "STARTTLS" in text:
            how = ("does not offer STARTTLS; use `ssl: true` (port 465) or a relay that "
                   "offers STARTTLS")
        elif "AUTH" in text:
            how = ("does not offer AUTH on this connection (many relays offer it only after "
                   "STARTTLS); set `starttls: true` or remove username and password")
        else:
            how = f"does not support what the channel needs ({clip(one_line(text), 120)})"
        return DeliveryError(f"{self.label} {how}", retryable=False)

    def _response(self, code: int, text: bytes | str) -> DeliveryError:
        if 400 <= code < 500:
            return DeliveryError(f"{self.label} answered {self._reply(code, text)}; will retry",
                                 retryable=True)
        return DeliveryError(f"{self.label} refused the message: {self._reply(code, text)}; "
                             "check the channel's from/to and the relay's rules",
                             retryable=False)

    def _refused(self, recipients: Mapping[str, tuple[int, bytes]]) -> DeliveryError:
        temporary = all(400 <= code < 500 for code, _ in recipients.values())
        who = ", ".join(f"{addr} ({self._reply(code, text)})"
                        for addr, (code, text) in sorted(recipients.items()))
        return DeliveryError(f"{self.label} refused recipients: {who}"
                             + ("; will retry" if temporary else "; fix the channel's `to`"),
                             retryable=temporary)

    def _network(self, exc: Exception) -> DeliveryError:
        label = self.label
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DeliveryError(f"{label}: the server's TLS certificate is not trusted "
                                 f"({exc.verify_message}); if the relay uses a private CA, "
                                 "set the channel's ca_file", retryable=False)
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(f"{label}: TLS failed ({exc.reason or type(exc).__name__}); "
                                 "check that `ssl: true` (port 465) or `starttls: true` "
                                 "(port 587) matches the port", retryable=False)
        if isinstance(exc, TimeoutError):
            return DeliveryError(f"{label} did not answer within {self._timeout:g}s; will retry "
                                 "(check the relay is up)", retryable=True)
        if isinstance(exc, OSError):
            return DeliveryError(f"{label} unreachable ({type(exc).__name__}); will retry "
                                 "(check the relay is up and reachable)", retryable=True)
        return DeliveryError(f"{label}: {type(exc).__name__} while sending (details withheld); "
                             "will retry", retryable=True)
