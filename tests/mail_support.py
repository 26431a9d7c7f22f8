"""What the mail tests share: an app whose mail goes to the SMTP sink, and the links in a mail.

Mail is read only from the sink's folder (what a real SMTP server received), never from the
app's memory or its outbox table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from tests.smtp_server import ReceivedMail, SmtpSink
from userhub.services import outbox

LINK = re.compile(r"https?://\S+")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "the mail has no plain-text part"
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None, "the mail has no HTML part"
    return str(part.get_content())


def links(message: EmailMessage) -> list[str]:
    return LINK.findall(text_of(message))


def link_in(message: EmailMessage, path: str) -> str:
    """The link to ``path`` in the mail's plain text, as written (absolute: a browser opens it)."""
    for link in links(message):
        if urlsplit(link).path == path:
            return link
    raise AssertionError(f"no link to {path} in:\n{text_of(message)}")


def token_in(message: EmailMessage, path: str) -> str:
    """The ``token`` of the link to ``path`` in the mail's plain text."""
    return parse_qs(urlsplit(link_in(message, path)).query)["token"][0]


def link_to(message: EmailMessage, path: str) -> str:
    """The link to ``path`` in the mail, as a test client opens it (``/email/verify?token=…``;
    a browser puts the server's address in front)."""
    return f"{path}?token={token_in(message, path)}"


@dataclass
class Mailbox:
    """The sink, and the app's outbox delivered to it on demand (what the background sender of
    ``userhub serve`` does, run here in the test's thread so that each step is deterministic)."""

    app: Flask
    sink: SmtpSink

    def deliver(self) -> int:
        """Send what is due now; how many mails were claimed."""
        sender = outbox.Sender.configured(self.app.config)
        assert sender is not None, "the app has no USERHUB_MAIL_URL"
        with self.app.app_context():
            return sender.send_due()

    def received(self) -> list[ReceivedMail]:
        return self.sink.messages()

    def new_mail(self, count: int = 1) -> list[ReceivedMail]:
        """Deliver, wait for ``count`` new mails at the sink, and return them (then forget
        them, so the next call sees only what came after)."""
        self.deliver()
        arrived = self.sink.wait_for(count)
        self.sink.clear()
        assert len(arrived) == count, [m.message["Subject"] for m in arrived]
        return arrived

    def only(self, to: str) -> EmailMessage:
        """The one new mail, which must be to ``to``."""
        [mail] = self.new_mail()
        assert mail.rcpt_tos == [to]
        return mail.message


class MailboxBuilder(Protocol):
    """The ``build_mailbox`` fixture: ``build_mailbox(**config)``, an app built with ``config``
    whose mail goes to a sink of its own."""

    def __call__(self, **config: object) -> Mailbox: ...
