"""A real SMTP server on 127.0.0.1 for email tests (aiosmtpd), and a
self-signed certificate for its TLS modes.

    with SmtpReceiver(mode="starttls", cert=cert, users={"auditor": "pw"}) as rx:
        send to 127.0.0.1:rx.port ...
        rx.messages[0].email  # the parsed email.message.EmailMessage

`mode`: "plain" (no TLS), "starttls" (STARTTLS offered and required before
MAIL), "ssl" (TLS from the first byte), "plain-no-tls" ("plain" that never
offers STARTTLS). `data_reply` / `rcpt_reply` make the server answer DATA or
RCPT TO with a chosen SMTP reply ("451 4.3.0 try later").
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Cert", "Received", "SmtpReceiver", "free_port", "make_cert"]


@dataclass(frozen=True)
class Cert:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_cert(directory: Path) -> Cert:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auditor test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Cert(cert_file, key_file)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None  # the user that authenticated, if any
    tls: bool  # the session was encrypted (STARTTLS or SSL)

    @property
    def email(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Handler:
    receiver: SmtpReceiver
    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.receiver.rcpt_reply.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.receiver.data_reply:
            return self.receiver.data_reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data,
                                                                LoginPassword) else None
        tls = server.transport.get_extra_info("ssl_object") is not None
        with self.receiver.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content,
                                          login, tls))
        return "250 Message accepted"


class SmtpReceiver:
    def __init__(self, mode: str = "plain", cert: Cert | None = None,
                 users: dict[str, str] | None = None):
        self.mode = mode
        self.cert = cert
        self.users = users
        self.port = free_port()
        self.lock = threading.Lock()
        self.data_reply: str | None = None
        self.rcpt_reply: dict[str, str] = {}
        self._handler = _Handler(self)
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        with self.lock:
            return list(self._handler.messages)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.users is not None
              and self.users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> SmtpReceiver:
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if self.users is not None:
            kwargs["authenticator"] = self._authenticate
        if self.mode == "starttls":
            assert self.cert is not None
            kwargs.update(tls_context=self.cert.server_context(), require_starttls=True)
        elif self.mode == "ssl":
            assert self.cert is not None
            # aiosmtpd counts only STARTTLS as TLS for AUTH; the whole session is TLS here.
            kwargs.update(ssl_context=self.cert.server_context(), auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        self._controller = Controller(self._handler, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
