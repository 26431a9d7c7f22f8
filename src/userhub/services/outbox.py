"""The outbox: mail the app promised, stored with the change that caused it, sent by one sender.

A request that promises a mail calls ``enqueue`` inside its transaction: the mail commits with
the change or not at all, and the request answers without waiting for SMTP. Senders (the
background thread of every ``userhub serve`` worker, ``mail_sender.py``, and
``flask --app userhub mail send``) call ``deliver_due``:

* **claiming** is one conditional UPDATE of a row that is due (``status='pending'`` and
  ``next_attempt_at`` passed) which pushes ``next_attempt_at`` a lease ahead and names the
  sender: of several senders, on any number of workers, instances or Galera nodes, exactly one
  sees its UPDATE change the row (a Galera node that loses certification gets a deadlock error,
  which counts as "not mine"); the others skip it;
* **sent**: the row is marked sent and its body erased (it may hold a live link);
* **refused for now** (4xx, server down, TLS trouble): the row is due again after a backoff
  (10 s, doubling, at most an hour), for ``GIVE_UP_AFTER`` in all;
* **refused for good** (5xx), or retried for too long: the row is marked failed and an error
  logged; ``flask --app userhub mail retry`` puts it back;
* a sender that dies between claim and answer (a SIGKILLed worker) leaves the row claimed: it
  is due again when the claim (``USERHUB_MAIL_CLAIM_SECONDS``) ends, and another sender sends
  it. A mail is therefore sent at least once, and twice only if a sender died after the SMTP
  server took the mail and before the row was marked: SMTP offers nothing better.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError

from .. import transactions
from ..extensions import db
from ..metrics import MAIL_DEFERRED, MAIL_FAILED, MAIL_SENT
from ..models import EmailLink, OutboxMessage, utcnow
from .mail_transport import PermanentFailure, TemporaryFailure, Transport, transport_for

log = logging.getLogger("userhub")

PENDING, SENT, FAILED = "pending", "sent", "failed"
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=2)
BATCH = 20  # rows claimed per round, sent over one SMTP connection

# Set when a transaction that enqueued mail commits: the sender of this process wakes at once
# instead of at its next poll.
mail_committed = threading.Event()


def enqueue(message: EmailMessage, *, kind: str, user_id: int | None = None) -> None:
    """Add ``message`` to the outbox in the current transaction (the caller commits);
    ``user_id``: the account it is about (an export lists it, a deletion removes it)."""
    recipient = parseaddr(str(message["To"]))[1]
    db.session.add(
        OutboxMessage(
            recipient=recipient,
            user_id=user_id,
            kind=kind,
            message=message.as_bytes(policy=SMTP),  # CRLF: smtplib sends bytes as they are
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
    )
    transactions.on_commit(mail_committed.set)


def mail_about(user_id: int, addresses: Collection[str]) -> ColumnElement[bool]:
    """The outbox rows about an account: those naming it, and those queued before revision
    0007 (which name none) to one of its ``addresses``; for its export and its deletion."""
    return or_(
        OutboxMessage.user_id == user_id,
        and_(OutboxMessage.user_id.is_(None), OutboxMessage.recipient.in_(addresses)),
    )


def sender_name() -> str:
    """Who claims a row, as the queue shows it: host, process and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def backoff(attempts: int) -> timedelta:
    """How long a refused mail waits after its ``attempts``-th try: 10 s, 20 s, 40 s … 1 h."""
    wait: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(wait, LONGEST_RETRY)


@dataclass(frozen=True)
class Sender:
    """One sender of the outbox: where its mail goes, the name its claims carry, and the
    envelope's From. The background thread of a worker and ``flask --app userhub mail send``
    are each one."""

    transport: Transport
    name: str
    envelope_from: str

    @classmethod
    def configured(cls, config: Mapping[str, Any]) -> Sender | None:
        """The sender the settings describe; None without ``USERHUB_MAIL_URL``."""
        url = config.get("USERHUB_MAIL_URL")
        if not url:
            return None
        envelope_from = parseaddr(config["USERHUB_MAIL_FROM"])[1]
        return cls(transport_for(url), sender_name(), envelope_from)

    def send_due(self) -> int:
        """Claim and send batches of due mail until one comes back short; how many mails
        were claimed in all."""
        claimed = total = deliver_due(self.transport, self.name, self.envelope_from)
        while claimed == BATCH:
            claimed = deliver_due(self.transport, self.name, self.envelope_from)
            total += claimed
        return total


def deliver_due(transport: Transport, sender: str, envelope_from: str) -> int:
    """Claim up to ``BATCH`` due mails and send them over one connection; how many were
    claimed (the caller goes on while a batch comes back full)."""
    claimed = [row_id for row_id in _due_ids() if _claim(row_id, sender)]
    if not claimed:
        return 0
    try:
        with transport.connect() as connection:
            for row_id in claimed:
                message = db.session.get(OutboxMessage, row_id)
                if message is None or message.message is None:
                    continue
                try:
                    connection.send(envelope_from, message.recipient, message.message)
                except PermanentFailure as exc:
                    _give_up(row_id, str(exc))
                except TemporaryFailure as exc:
                    _retry_later(row_id, message.attempts, message.created_at, str(exc))
                    if not exc.about_this_mail:
                        raise  # the connection itself failed: the rest wait too
                else:
                    _mark_sent(row_id, sender)
    except TemporaryFailure as exc:
        for row_id in claimed:
            row = db.session.get(OutboxMessage, row_id)
            if row is not None and row.status == PENDING and row.claimed_by == sender:
                _retry_later(row_id, row.attempts, row.created_at, str(exc))
    return len(claimed)


def _due_ids() -> list[int]:
    now = utcnow()
    rows = db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id)
        .limit(BATCH)
    ).all()
    db.session.rollback()  # end the read: the claims below are transactions of their own
    return list(rows)


def _claim(row_id: int, sender: str) -> bool:
    """One conditional UPDATE: True only for the one sender whose UPDATE changed the row."""
    now = utcnow()
    statement = (
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row_id,
            OutboxMessage.status == PENDING,
            OutboxMessage.next_attempt_at <= now,
        )
        .values(
            claimed_by=sender,
            next_attempt_at=now
            + timedelta(seconds=current_app.config["USERHUB_MAIL_CLAIM_SECONDS"]),
            attempts=OutboxMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    try:
        changed: int = db.session.execute(statement).rowcount  # type: ignore[attr-defined]
        db.session.commit()
    except DBAPIError as exc:
        db.session.rollback()
        if transactions.is_retryable(exc):
            return False  # another sender (on another node) claimed it at the same moment
        raise
    return changed == 1


def _finish(row_id: int, **values: object) -> None:
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    transactions.committed(lambda: db.session.execute(statement))
    db.session.expire_all()


def _mark_sent(row_id: int, sender: str) -> None:
    _finish(row_id, status=SENT, sent_at=utcnow(), message=None, last_error=None)
    MAIL_SENT.inc()
    log.info("mail %d sent", row_id, extra={"mail_id": row_id, "mail_sender": sender})


def _give_up(row_id: int, reason: str) -> None:
    _finish(row_id, status=FAILED, last_error=reason[:500], claimed_by=None)
    MAIL_FAILED.inc()
    log.error(
        "mail %d refused for good: %s (flask --app userhub mail retry %d sends it again)",
        row_id,
        reason,
        row_id,
        extra={"mail_id": row_id},
    )


def _retry_later(row_id: int, attempts: int, created_at: datetime, reason: str) -> None:
    if utcnow() - created_at > GIVE_UP_AFTER:
        _give_up(row_id, f"still refused after {GIVE_UP_AFTER.days} days: {reason}")
        return
    wait = backoff(attempts)
    _finish(
        row_id,
        next_attempt_at=utcnow() + wait,
        last_error=reason[:500],
        claimed_by=None,
    )
    MAIL_DEFERRED.inc()
    log.warning(
        "mail %d not sent (%s); trying again in %d s",
        row_id,
        reason,
        wait.total_seconds(),
        extra={"mail_id": row_id},
    )


KEEP_SENT = timedelta(days=30)  # what `mail list` can still show of sent mail


def prune() -> int:
    """Forget sent mail older than ``KEEP_SENT`` (its body went at once; this is the rest) and
    mailed links dead for a day; how many rows went. The senders run it now and then."""
    now = utcnow()
    old_mail = (
        delete(OutboxMessage)
        .where(OutboxMessage.status == SENT, OutboxMessage.next_attempt_at < now - KEEP_SENT)
        .execution_options(synchronize_session=False)
    )
    dead_links = (
        delete(EmailLink)
        .where(EmailLink.expires_at < now - timedelta(days=1))
        .execution_options(synchronize_session=False)
    )

    def run() -> int:
        mail = db.session.execute(old_mail).rowcount  # type: ignore[attr-defined]
        links = db.session.execute(dead_links).rowcount  # type: ignore[attr-defined]
        return int(mail) + int(links)

    return transactions.committed(run)


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    failed: int
    sent: int


def counts() -> QueueCounts:
    rows = dict(
        db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    )
    return QueueCounts(rows.get(PENDING, 0), rows.get(FAILED, 0), rows.get(SENT, 0))


def listed(status: str | None = None, limit: int = 50) -> list[OutboxMessage]:
    """The newest rows (of ``status``), for ``flask --app userhub mail list``."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return list(db.session.scalars(query))


def retry(ids: list[int] | None = None) -> int:
    """Make failed mails (``ids``, or every failed one) and waiting ones due now; how many."""
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.status.in_((PENDING, FAILED)), OutboxMessage.message.is_not(None))
        .values(status=PENDING, next_attempt_at=utcnow(), claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    if ids:
        statement = statement.where(OutboxMessage.id.in_(ids))
    changed = transactions.committed(
        lambda: db.session.execute(statement).rowcount  # type: ignore[attr-defined]
    )
    mail_committed.set()
    return int(changed)
