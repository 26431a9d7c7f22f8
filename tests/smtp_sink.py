"""A real SMTP server for the mail tests, in a process of its own: aiosmtpd on 127.0.0.1.

    python -m tests.smtp_sink --port P --maildir DIR [--mode plain|starttls|smtps]
        [--tls-cert CERT --tls-key KEY] [--auth USER:PASSWORD]

Run it from the repository root; it blocks until SIGTERM (or Ctrl+C) and then exits 0.

**Ready.** Once it listens it prints one line to stdout, ``smtp-sink listening on
127.0.0.1:PORT``, and nothing else afterwards (its log goes to stderr). ``--port 0`` takes a free
port, which that line names.

**What it keeps.** Each accepted message is two files in DIR, both written to a temporary name
and then renamed into place: ``NAME.json``, the envelope (``mail_from``, ``rcpt_tos``, their
ESMTP options, ``tls``: the TLS version the message came over or null, ``login``: the AUTH user
or null), then ``NAME.eml``, the message exactly as received. The ``.eml`` appears last, so a
reader that lists ``*.eml`` always finds its envelope. Names sort in order of arrival, across
restarts too. The file is in place before the client is told ``250``.

**Modes.** ``plain`` offers no TLS. ``starttls`` offers STARTTLS but accepts mail in clear too,
as most servers do (a client that insists on TLS has to refuse by itself). ``smtps`` speaks TLS
from the first byte. ``--auth`` requires AUTH PLAIN or LOGIN with those credentials before
MAIL; over a clear connection AUTH is offered only in ``plain`` mode, in ``starttls`` mode only
after STARTTLS.

**Answers on demand**, by the recipient's local part: ``tempfail…`` gets
``451 4.3.0 try again later`` at RCPT, ``reject…`` gets ``550 5.1.1 no such user``, and
``slow…`` is accepted only after ``SLOW_SECONDS`` (a sender can be killed mid-conversation,
before the mail was handed over).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
import time
import warnings
from itertools import count
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthenticatorType, AuthResult, Envelope, LoginPassword, Session

MODES = ("plain", "starttls", "smtps")
READY = "smtp-sink listening on"
HOST = "127.0.0.1"
TEMPFAIL = "451 4.3.0 try again later"
REJECT = "550 5.1.1 no such user"

log = logging.getLogger("smtp_sink")


def write_atomically(path: Path, data: bytes) -> None:
    """A reader sees the whole file or none of it: written beside, then renamed."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


SLOW_SECONDS = 3.0


class Maildir:
    """aiosmtpd's handler: answers RCPT by local part, keeps each message with its envelope."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = count()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local_part = address.rpartition("@")[0].lower()
        if local_part.startswith("tempfail"):
            return TEMPFAIL
        if local_part.startswith("reject"):
            return REJECT
        if local_part.startswith("slow"):
            await asyncio.sleep(SLOW_SECONDS)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and server.transport is not None
        ssl_object = server.transport.get_extra_info("ssl_object")
        credentials = session.auth_data
        login = credentials.login.decode() if isinstance(credentials, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "tls": ssl_object.version() if ssl_object is not None else None,
            "login": login,
        }
        # Nanoseconds first: the names sort in order of arrival, also after a restart.
        name = f"{time.time_ns()}-{os.getpid()}-{next(self._numbers):06d}"
        write_atomically(self.folder / f"{name}.json", json.dumps(record).encode())
        write_atomically(self.folder / f"{name}.eml", envelope.original_content)
        log.info("kept %s from %s to %s", name, envelope.mail_from, envelope.rcpt_tos)
        return "250 2.0.0 OK"


def credentials_check(user: str, password: str) -> AuthenticatorType:
    """aiosmtpd's ``authenticator``: PLAIN and LOGIN hand it the login and the password. A
    failure is left to aiosmtpd (``handled=False``), which answers ``535 5.7.8``."""
    expected = LoginPassword(user.encode(), password.encode())

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        good = data == expected
        return AuthResult(success=good, handled=False, auth_data=data if good else None)

    return authenticate


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(options: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    handler = Maildir(Path(options.maildir))
    tls = server_context(options.tls_cert, options.tls_key) if options.mode != "plain" else None
    user, _, password = (options.auth or "").partition(":")

    def connection() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp-sink.localhost",  # the default, socket.getfqdn(), asks DNS each time
            enable_SMTPUTF8=True,
            tls_context=tls if options.mode == "starttls" else None,
            require_starttls=False,
            auth_required=options.auth is not None,
            # aiosmtpd knows of TLS only through STARTTLS: on an smtps connection, already
            # encrypted, it would refuse AUTH if told to require TLS.
            auth_require_tls=options.mode == "starttls",
            authenticator=credentials_check(user, password) if options.auth else None,
            loop=loop,
        )

    server = await loop.create_server(
        connection, HOST, options.port, ssl=tls if options.mode == "smtps" else None
    )
    stopping = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopping.set)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY} {HOST}:{port}", flush=True)
    await stopping.wait()
    server.close()  # the open connections end with the process


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.smtp_sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="0: a free one")
    parser.add_argument("--maildir", required=True, help="where each message is kept")
    parser.add_argument("--mode", choices=MODES, default="plain")
    parser.add_argument("--tls-cert", help="PEM certificate chain (starttls, smtps)")
    parser.add_argument("--tls-key", help="PEM private key (starttls, smtps)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with these")
    options = parser.parse_args(argv)
    if options.mode != "plain" and not (options.tls_cert and options.tls_key):
        parser.error(f"--mode {options.mode} needs --tls-cert and --tls-key")
    if options.auth is not None and ":" not in options.auth:
        parser.error("--auth takes USER:PASSWORD")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    # AUTH in clear is what --mode plain --auth asks for; aiosmtpd warns of it on every connection.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    Path(options.maildir).mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
