"""Sending one mail: over SMTP (STARTTLS or TLS from the start) or into a folder as a file.

``USERHUB_MAIL_URL`` picks the transport (its form is checked in ``config/values.py``):

* ``smtp://[user:password@]host[:port]`` (port 587 by default): STARTTLS whenever the server
  offers it; ``?starttls=require`` refuses to send in clear when it does not; ``?starttls=never``
  for a relay on loopback that offers a certificate nobody can check;
* ``smtps://[user:password@]host[:port]`` (port 465 by default): TLS from the first byte;
* ``file:///folder``: each mail is written as one ``.eml`` file (the development default,
  ``instance/mail/``), and a log line names it.

Certificates are checked against the system's CAs (``SSL_CERT_FILE`` names another bundle).
A failure is sorted the way SMTP sorts it: ``TemporaryFailure`` (a 4xx reply, a server out of
reach, a TLS problem: try again later) or ``PermanentFailure`` (a 5xx reply: this mail will
never be accepted). The outbox (``outbox.py``) decides what to do with each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("userhub")

SMTP_TIMEOUT = 30  # seconds for each step of a conversation: a dead relay must not hang a sender
SUBMISSION_PORT = 587
SMTPS_PORT = 465


class DeliveryFailure(Exception):
    """The mail was not handed over. ``str()`` says why, without the server's password.
    ``about_this_mail``: the server refused this mail (its recipient, its content), and the
    connection can carry the next one; otherwise the connection or the settings failed."""

    def __init__(self, reason: str, *, about_this_mail: bool = False) -> None:
        super().__init__(reason)
        self.about_this_mail = about_this_mail


class TemporaryFailure(DeliveryFailure):
    """Try again later: the server said 4xx, could not be reached, or TLS failed."""


class PermanentFailure(DeliveryFailure):
    """The server refused this mail for good (5xx)."""


class Connection(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> None: ...


class Transport(Protocol):
    def connect(self) -> contextlib.AbstractContextManager[Connection]: ...


@dataclass(frozen=True)
class FileTransport:
    """Writes each mail into ``folder`` as ``<time>-<random>.eml``, atomically (a reader never
    sees half a file)."""

    folder: Path

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TemporaryFailure(f"cannot create {self.folder}: {exc.strerror}") from exc
        yield self

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
            with os.fdopen(fd, "wb") as handle:
                handle.write(message)
            final = self.folder / f"{_timestamp()}-{Path(temporary).stem.lstrip('.')}.eml"
            os.replace(temporary, final)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write into {self.folder}: {exc.strerror}") from exc
        log.info("mail to %s written to %s", recipient, final, extra={"mail_file": str(final)})


def _timestamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # "auto", "require" or "never"
    username: str | None
    password: str | None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            client = self._open()
        except (OSError, smtplib.SMTPException) as exc:
            # Whatever the reply (a refused login is a 535), it is about the server or our
            # settings, not this mail: it is worth trying again once the settings are fixed.
            raise TemporaryFailure(f"{self.host}:{self.port}: {_reason(exc)}") from exc
        try:
            yield _SmtpConnection(client, f"{self.host}:{self.port}")
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()

    def _open(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        try:
            client.ehlo()
            if not self.implicit_tls and self.starttls != "never":
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif self.starttls == "require":
                    raise TemporaryFailure(
                        f"{self.host}:{self.port} does not offer STARTTLS, and USERHUB_MAIL_URL "
                        "says starttls=require: nothing is sent in clear"
                    )
            if self.username is not None:
                client.login(self.username, self.password or "")
        except BaseException:
            client.close()
            raise
        return client


@dataclass(frozen=True)
class _SmtpConnection:
    client: smtplib.SMTP
    server: str

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            self.client.sendmail(sender, [recipient], message)
        except (OSError, smtplib.SMTPException) as exc:
            raise _failure(exc, self.server) from exc


def _failure(exc: BaseException, server: str) -> DeliveryFailure:
    """SMTP's own sorting of a reply to this mail's recipient or its content: 5xx is
    permanent, 4xx (or no answer) is not. A refused sender (MAIL FROM) is our settings' fault,
    not the mail's: temporary, like a refused log-in."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, _ = next(iter(exc.recipients.values()))  # one recipient per mail
    elif isinstance(exc, smtplib.SMTPResponseException) and not isinstance(
        exc, smtplib.SMTPSenderRefused
    ):
        code = exc.smtp_code
    else:
        return TemporaryFailure(f"{server}: {_reason(exc)}")
    kind = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return kind(f"{server} answered {_reason(exc)}", about_this_mail=True)


def _reason(exc: BaseException) -> str:
    """A failure in a line: the server's code and words, or the error's."""
    if isinstance(exc, DeliveryFailure):
        return str(exc)
    reply: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, reply = exc.smtp_code, exc.smtp_error
    else:
        return f"{type(exc).__name__}: {exc}"
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {text}"


def transport_for(url: str) -> Transport:
    """The transport ``USERHUB_MAIL_URL`` describes."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileTransport(Path(unquote(parts.path)))
    implicit = parts.scheme == "smtps"
    return SmtpTransport(
        host=parts.hostname or "localhost",
        port=parts.port or (SMTPS_PORT if implicit else SUBMISSION_PORT),
        implicit_tls=implicit,
        starttls=parse_qs(parts.query).get("starttls", ["auto"])[0],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
