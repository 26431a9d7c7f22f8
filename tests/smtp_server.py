"""The mail tests' SMTP server: ``tests/smtp_sink.py`` run as a process, and a throwaway CA.

``SmtpSink`` starts, stops and restarts the sink (a restart keeps its port, so a userhub
configured with ``.url`` finds it again) and reads what it received. ``TlsAuthority`` is a CA
made by trustme and the sink's certificate for 127.0.0.1 and localhost; a userhub process is told
to trust it with ``SSL_CERT_FILE=<ca_file>``, as any OpenSSL-based client can be. The fixtures
(``smtp_sink``, ``start_smtp_sink``, ``tls_authority``) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import email.policy
import json
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import quote

import trustme

from tests.helpers import REPO
from tests.smtp_sink import MODES, READY

STARTUP_SECONDS = 10
EXIT_SECONDS = 10
POLL_SECONDS = 0.02
PARSER = BytesParser(policy=email.policy.default)


@dataclass(frozen=True)
class TlsAuthority:
    """A CA's certificate (for clients to trust) and a certificate it issued for 127.0.0.1
    and localhost, with its key (for the sink), as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, folder: Path) -> TlsAuthority:
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        authority = cls(folder / "ca.pem", folder / "sink-cert.pem", folder / "sink-key.pem")
        ca.cert_pem.write_to_path(str(authority.ca_file))
        authority.cert_file.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(authority.key_file))
        return authority


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted: parsed, as received, and its envelope."""

    message: EmailMessage  # parsed with lines ending in \n, as a mailbox on disk keeps them
    raw: bytes  # the bytes of DATA, lines ending in \r\n as SMTP sends them
    mail_from: str
    rcpt_tos: list[str]
    tls: str | None  # the TLS version it came over ("TLSv1.3"), None in clear
    login: str | None  # the user it authenticated as


class SmtpSink:
    """The sink in ``folder`` (its messages in ``folder/maildir``, its log in
    ``folder/sink.log``), listening on 127.0.0.1: a free port at the first start, the same one
    at every start after."""

    def __init__(
        self,
        folder: Path,
        mode: str = "plain",
        *,
        tls: TlsAuthority | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {MODES}")
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode!r} needs a TlsAuthority")
        if auth is not None and ":" in auth[0]:
            raise ValueError("the sink's --auth is USER:PASSWORD: no colon in the user name")
        self.folder = folder
        self.maildir = folder / "maildir"
        self.log_path = folder / "sink.log"
        self.mode = mode
        self.tls = tls
        self.auth = auth
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``USERHUB_MAIL_URL`` for this sink (add ``?starttls=require`` or ``never`` to taste):
        ``smtps://`` in smtps mode, with the credentials when it requires AUTH."""
        if not self.port:
            raise RuntimeError("the sink has not been started: it has no port yet")
        scheme = "smtps" if self.mode == "smtps" else "smtp"
        userinfo = ""
        if self.auth is not None:
            user, password = (quote(part, safe="") for part in self.auth)
            userinfo = f"{user}:{password}@"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "tests.smtp_sink", "--port", str(self.port)]
        command += ["--maildir", str(self.maildir), "--mode", self.mode]
        if self.tls is not None:
            command += ["--tls-cert", str(self.tls.cert_file), "--tls-key", str(self.tls.key_file)]
        if self.auth is not None:
            command += ["--auth", ":".join(self.auth)]
        return command

    def start(self) -> SmtpSink:
        """Start the process and return once it listens."""
        if self._process is not None:
            raise RuntimeError("the sink is already running")
        self.maildir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:  # appended to: a restart keeps the earlier log
            process = subprocess.Popen(
                self.command(), cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True
            )
        self._process = process
        try:
            assert process.stdout is not None
            line = self._ready_line(process, process.stdout)
            address = line.removeprefix(READY).strip()
            self.port = int(address.rpartition(":")[2])
        except BaseException:
            self.stop()
            raise
        return self

    def _ready_line(self, process: subprocess.Popen[str], stdout: IO[str]) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([stdout], [], [], min(left, 0.5))
            if readable:
                line = stdout.readline()
                if line.startswith(READY):
                    return line
                if not line:  # end of file: it exited
                    process.wait(timeout=EXIT_SECONDS)
                    break
            elif process.poll() is not None:
                break
        raise RuntimeError(
            f"the SMTP sink did not start (exit code {process.poll()}): {self.log()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; its exit code (None if it was not running).
        From then on a connection to the port is refused."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return code

    def restart(self) -> SmtpSink:
        """Stop, then start on the same port; the messages already received stay."""
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def messages(self) -> list[ReceivedMail]:
        """Every message received so far, in order of arrival."""
        received = []
        for path in sorted(self.maildir.glob("*.eml")):
            envelope = json.loads(path.with_suffix(".json").read_text())
            raw = path.read_bytes()
            received.append(
                ReceivedMail(
                    message=PARSER.parsebytes(raw.replace(b"\r\n", b"\n")),
                    raw=raw,
                    mail_from=envelope["mail_from"],
                    rcpt_tos=envelope["rcpt_tos"],
                    tls=envelope["tls"],
                    login=envelope["login"],
                )
            )
        return received

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """The messages, once at least ``count`` have arrived (userhub sends in the
        background); fails with the sink's log after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.messages()
            if len(received) >= count:
                return received
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(received)} of {count} message(s) arrived at the SMTP sink in "
                    f"{timeout}s; its log:\n{self.log()}"
                )
            time.sleep(POLL_SECONDS)

    def clear(self) -> None:
        """Forget the messages received so far (call it between deliveries)."""
        for path in self.maildir.glob("*.eml"):
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)


class SinkStarter(Protocol):
    """The ``start_smtp_sink`` fixture: ``start_smtp_sink("starttls", auth=("u", "p"))``."""

    def __call__(self, mode: str = "plain", *, auth: tuple[str, str] | None = None) -> SmtpSink: ...
