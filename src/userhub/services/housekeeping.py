"""Housekeeping: what has served its time is deleted, so no table grows without end.

``prune_all`` forgets sent mail and dead mailed links (``outbox.prune``), browser sessions past
either lifetime (``sessions.prune``), security events older than
``USERHUB_SECURITY_LOG_RETENTION_DAYS`` (``security_log.prune``) and expired log-in tokens and
API keys (``tokens.prune``), and log-in steps and passkey ceremonies never finished
(``challenges.prune``), and authenticator apps set up a day ago and never confirmed
(``totp.prune``); and it deletes for good the accounts whose owners asked for it and whose
grace period is over (``account_deletion.purge_due``). Each runs in short transactions of its
own, a batch of rows (or one account) at a time, so none holds locks for long, even on a
Galera cluster.

Nothing needs scheduling: the background thread of every ``userhub serve`` worker runs it
hourly, whether or not mail is configured (``mail_sender.py``). ``flask --app userhub prune``
runs it once, for deployers who prefer cron or run another server. Several running it at once
is harmless: each deletes by id what it found, and counts only the rows it deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import account_deletion, challenges, outbox, security_log, sessions, tokens, totp


@dataclass(frozen=True)
class Pruned:
    """How many rows of each kind went."""

    mail_and_links: int
    sessions: int
    security_events: int
    tokens: int
    challenges: int = 0
    totp_set_ups: int = 0
    deleted_accounts: int = 0

    @property
    def total(self) -> int:
        return (
            self.mail_and_links
            + self.sessions
            + self.security_events
            + self.tokens
            + self.challenges
            + self.totp_set_ups
            + self.deleted_accounts
        )


def prune_all() -> Pruned:
    """Forget everything past its time, kind by kind; how many rows of each went."""
    mail_and_links = outbox.prune()
    ended_sessions = sessions.prune()
    old_events = security_log.prune()
    expired_tokens = tokens.prune()
    old_challenges = challenges.prune()
    abandoned_set_ups = totp.prune()
    deleted_accounts = account_deletion.purge_due()
    return Pruned(
        mail_and_links,
        ended_sessions,
        old_events,
        expired_tokens,
        old_challenges,
        abandoned_set_ups,
        deleted_accounts,
    )
