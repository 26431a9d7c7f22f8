"""The SMTP sink the mail tests deliver to behaves as a real server would, seen from Python's
own SMTP client: if it did not, a mail test could pass against it and fail against a real one."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

import pytest

from tests.smtp_server import SinkStarter, SmtpSink, TlsAuthority

SENDER = "noreply@userhub.test"
TIMEOUT = 5
USER, PASSWORD = "mailer", "p@ss:word/1"


def mail(to: str, subject: str = "Welcome") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"userhub <{SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("你好 — hello\n")
    return message


def connect(sink: SmtpSink) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", sink.port, timeout=TIMEOUT)
    client.ehlo()
    return client


def test_a_message_arrives_with_its_envelope(smtp_sink: SmtpSink) -> None:
    assert smtp_sink.url == f"smtp://127.0.0.1:{smtp_sink.port}"
    with pytest.raises(AssertionError, match="0 of 1 message"):
        smtp_sink.wait_for(1, timeout=0.05)
    with connect(smtp_sink) as client:
        assert not client.has_extn("starttls")  # plain mode: no TLS on offer
        # The second recipient is a Bcc: in the envelope only.
        client.send_message(mail("ann@example.com"), to_addrs=["ann@example.com", "bob@b.test"])

    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["ann@example.com", "bob@b.test"]
    assert received.message["To"] == "ann@example.com"
    assert received.message["Subject"] == "Welcome"
    assert received.message.get_content() == "你好 — hello\n"
    assert received.raw.startswith(b"From: userhub <noreply@userhub.test>\r\n")
    assert (received.tls, received.login) == (None, None)


def test_starttls_with_the_ca_from_ssl_cert_file(
    start_smtp_sink: SinkStarter, tls_authority: TlsAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = start_smtp_sink("starttls")
    assert sink.url == f"smtp://127.0.0.1:{sink.port}"

    untrusting = ssl.create_default_context()  # the system's CAs only
    with connect(sink) as client:
        assert client.has_extn("starttls")
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=untrusting)

    # What userhub is told: SSL_CERT_FILE, which OpenSSL's default paths read.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_authority.ca_file))
    with connect(sink) as client:
        client.starttls(context=ssl.create_default_context())
        client.ehlo()
        assert not client.has_extn("starttls")
        client.send_message(mail("ann@example.com", "over TLS"))
    # Offered, not required: a client that does not insist may still send in clear.
    with connect(sink) as client:
        client.send_message(mail("ann@example.com", "in clear"))

    over_tls, in_clear = sink.wait_for(2)
    assert over_tls.message["Subject"] == "over TLS" and over_tls.tls in {"TLSv1.2", "TLSv1.3"}
    assert in_clear.message["Subject"] == "in clear" and in_clear.tls is None


def test_smtps_speaks_tls_from_the_first_byte(
    start_smtp_sink: SinkStarter, tls_authority: TlsAuthority
) -> None:
    sink = start_smtp_sink("smtps")
    assert sink.url == f"smtps://127.0.0.1:{sink.port}"
    context = ssl.create_default_context(cafile=tls_authority.ca_file)
    with smtplib.SMTP_SSL("127.0.0.1", sink.port, timeout=TIMEOUT, context=context) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.send_message(mail("ann@example.com"))

    [received] = sink.wait_for(1)
    assert received.tls in {"TLSv1.2", "TLSv1.3"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_is_required_when_asked(start_smtp_sink: SinkStarter, mechanism: str) -> None:
    sink = start_smtp_sink(auth=(USER, PASSWORD))
    assert sink.url == f"smtp://mailer:p%40ss%3Aword%2F1@127.0.0.1:{sink.port}"
    with connect(sink) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(mail("ann@example.com"))
        assert refused.value.smtp_code == 530
        client.user, client.password = USER, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert wrong.value.smtp_code == 535
        client.password = PASSWORD
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == 235
        client.send_message(mail("ann@example.com"))

    [received] = sink.wait_for(1)
    assert received.login == USER


def test_auth_waits_for_starttls_in_starttls_mode(
    start_smtp_sink: SinkStarter, tls_authority: TlsAuthority
) -> None:
    sink = start_smtp_sink("starttls", auth=(USER, PASSWORD))
    with connect(sink) as client:
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN")
        assert code == 538  # encryption required
        client.starttls(context=ssl.create_default_context(cafile=tls_authority.ca_file))
        client.ehlo()
        assert client.has_extn("auth")
        client.login(USER, PASSWORD)
        client.send_message(mail("ann@example.com"))

    [received] = sink.wait_for(1)
    assert (received.login, received.tls is not None) == (USER, True)


@pytest.mark.parametrize(
    ("recipient", "code", "text"),
    [
        ("tempfail-ann@example.com", 451, b"4.3.0 try again later"),
        ("rejected.bob@example.com", 550, b"5.1.1 no such user"),
    ],
)
def test_answers_chosen_by_the_recipient(
    smtp_sink: SmtpSink, recipient: str, code: int, text: bytes
) -> None:
    with connect(smtp_sink) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(mail(recipient))
        assert refused.value.recipients == {recipient: (code, text)}
        # Beside an accepted recipient, the message goes to that one only.
        others = client.send_message(mail(recipient), to_addrs=[recipient, "ann@example.com"])
        assert others == {recipient: (code, text)}

    [received] = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["ann@example.com"]


def test_stop_refuses_connections_and_restart_keeps_the_port(smtp_sink: SmtpSink) -> None:
    port, url = smtp_sink.port, smtp_sink.url
    with connect(smtp_sink) as client:
        client.send_message(mail("ann@example.com", "before"))

    assert smtp_sink.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT)

    smtp_sink.restart()
    assert (smtp_sink.port, smtp_sink.url) == (port, url)
    with connect(smtp_sink) as client:
        client.send_message(mail("ann@example.com", "after"))
    assert [m.message["Subject"] for m in smtp_sink.wait_for(2)] == ["before", "after"]

    smtp_sink.clear()
    assert smtp_sink.messages() == []
