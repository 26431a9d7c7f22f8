"""How mail is handed over: STARTTLS (asked for, or required), TLS from the start, AUTH,
certificates checked, the SMTP server's 4xx and 5xx sorted, the file:// folder of development,
and the ``flask --app userhub mail`` commands. One backend is enough here: the outbox's SQL is
the flows' (test_mail.py) and the senders' (test_mail_delivery.py) to cover on both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import time_machine
from flask import Flask

from tests.helpers import PASSWORD
from tests.mail_support import Mailbox, token_in
from tests.smtp_server import SinkStarter, TlsAuthority
from userhub.models import OutboxMessage
from userhub.services import outbox

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
MailApp = Callable[..., Mailbox]


@pytest.fixture
def mail_app(
    build_app: Callable[..., Flask], database_url: str, start_smtp_sink: SinkStarter
) -> MailApp:
    """A mailbox whose app sends to a sink of ``mode``, with ``query`` added to the URL."""

    def make(
        mode: str = "plain", query: str = "", auth: tuple[str, str] | None = None, **config: object
    ) -> Mailbox:
        sink = start_smtp_sink(mode, auth=auth)
        app = build_app(database_url, USERHUB_MAIL_URL=sink.url + query, **config)
        return Mailbox(app, sink)

    return make


def register(mailbox: Mailbox, name: str = "zhangsan") -> None:
    body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com"}
    answer = mailbox.app.test_client().post("/api/v1/users", json=body)
    assert answer.status_code == 201, answer.get_json()


def rows(mailbox: Mailbox) -> list[OutboxMessage]:
    with mailbox.app.app_context():
        return outbox.listed()


def test_starttls_required_sends_nothing_to_a_server_that_does_not_offer_it(
    mail_app: MailApp,
) -> None:
    mailbox = mail_app("plain", "?starttls=require")
    register(mailbox)
    assert mailbox.deliver() == 1
    [row] = rows(mailbox)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "STARTTLS" in (row.last_error or "")
    assert mailbox.received() == []


def test_starttls_is_used_with_a_trusted_certificate(
    mail_app: MailApp, tls_authority: TlsAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_authority.ca_file))
    mailbox = mail_app("starttls", "?starttls=require")
    register(mailbox)
    [mail] = mailbox.new_mail()
    assert mail.tls is not None and mail.tls.startswith("TLS")


def test_an_untrusted_certificate_stops_the_mail_until_it_is_fixed(mail_app: MailApp) -> None:
    mailbox = mail_app("starttls")  # the sink's CA is not among the system's
    register(mailbox)
    mailbox.deliver()
    [row] = rows(mailbox)
    assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in (row.last_error or "")
    assert mailbox.received() == []


def test_smtps_with_a_login(
    mail_app: MailApp, tls_authority: TlsAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_authority.ca_file))
    mailbox = mail_app("smtps", auth=("mailer", "s3cret:with@odd/chars"))
    register(mailbox)
    [mail] = mailbox.new_mail()
    assert (mail.login, mail.tls is not None) == ("mailer", True)


def test_a_refused_login_keeps_the_mail_for_when_the_settings_are_fixed(
    build_app: Callable[..., Flask], database_url: str, start_smtp_sink: SinkStarter
) -> None:
    sink = start_smtp_sink("plain", auth=("mailer", "right"))
    wrong = sink.url.replace(":right@", ":wrong@")
    app = build_app(database_url, USERHUB_MAIL_URL=wrong)
    mailbox = Mailbox(app, sink)
    register(mailbox)
    mailbox.deliver()
    [row] = rows(mailbox)
    assert row.status == "pending" and "535" in (row.last_error or "")
    assert "wrong" not in (row.last_error or "")  # the password is not in the error


def test_a_4xx_waits_and_a_5xx_gives_up_while_the_others_go_out(mail_app: MailApp) -> None:
    mailbox = mail_app()
    for name in ("tempfail1", "reject1", "fine1"):
        register(mailbox, name)
    mailbox.deliver()
    assert [m.rcpt_tos for m in mailbox.sink.wait_for(1)] == [["fine1@example.com"]]
    states = {row.recipient: (row.status, row.attempts) for row in rows(mailbox)}
    assert states == {
        "tempfail1@example.com": ("pending", 1),
        "reject1@example.com": ("failed", 1),
        "fine1@example.com": ("sent", 1),
    }
    assert mailbox.deliver() == 0  # the 4xx waits for its backoff


def test_sent_mail_keeps_no_body(mail_app: MailApp) -> None:
    mailbox = mail_app()
    register(mailbox)
    mailbox.new_mail()
    [row] = rows(mailbox)
    assert (row.status, row.message) == ("sent", None)  # its link lives only in the mailbox


def test_old_sent_mail_and_dead_links_are_forgotten(mail_app: MailApp) -> None:
    mailbox = mail_app()
    register(mailbox)
    mailbox.new_mail()
    with mailbox.app.app_context():
        assert outbox.prune() == 0  # nothing old yet
        with time_machine.travel(timedelta(days=31)):
            assert outbox.prune() == 2  # the sent mail, and its verification link
        assert outbox.listed() == []


def test_the_mail_commands_show_send_and_retry_the_queue(mail_app: MailApp) -> None:
    mailbox = mail_app()
    register(mailbox, "reject2")
    register(mailbox, "someone")
    runner = mailbox.app.test_cli_runner()
    status = runner.invoke(args=["mail", "status"])
    assert "pending: 2" in status.output and mailbox.sink.url in status.output
    sent = runner.invoke(args=["mail", "send"])
    assert sent.exit_code == 0 and "failed: 1" in sent.output
    listed = runner.invoke(args=["mail", "list", "--status", "failed"])
    assert "reject2@example.com" in listed.output and "550" in listed.output
    retried = runner.invoke(args=["mail", "retry"])
    assert "1 mail(s) due now" in retried.output
    assert {row.status for row in rows(mailbox)} == {"pending", "sent"}


def test_development_mail_lands_in_the_instance_folder_with_a_log_line(
    build_app: Callable[..., Flask],
    database_url: str,
    isolated_environment: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(database_url)
    assert app.config["USERHUB_MAIL_URL"] == (isolated_environment / "mail").as_uri()
    body = {"username": "zhangsan", "password": PASSWORD, "email": "zhangsan@example.com"}
    assert app.test_client().post("/api/v1/users", json=body).status_code == 201
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code == 0, result.output
    [written] = (isolated_environment / "mail").glob("*.eml")
    assert str(written) in caplog.text
    mail = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert token_in(mail, "/email/verify")
