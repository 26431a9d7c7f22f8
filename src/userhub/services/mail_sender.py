"""The background sender: a thread in each ``userhub serve`` worker that empties the outbox.

No extra process to start and nothing to configure: each worker runs one, and the outbox's
claims (``outbox.py``) make sure a mail goes once however many run, on however many instances.
It wakes when a transaction of its own process commits mail (at once), and otherwise every
``POLL_SECONDS`` (mail left by another worker or instance, retries that came due, mail queued
before a restart). With no ``USERHUB_MAIL_URL`` (production not yet configured) mail stays
queued and a warning says so once.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from .outbox import Sender, mail_committed, prune

log = logging.getLogger("userhub")

POLL_SECONDS = 5.0
PRUNE_SECONDS = 3600.0  # how often old sent mail and dead links are forgotten
PAUSE_AFTER_ERROR = 5.0  # the database out of reach: wait, then poll again


def start(app: Flask) -> threading.Thread:
    """Start this process's sender (a daemon thread: it ends with the process; a mail it had
    claimed is sent by another sender when the claim's lease ends)."""
    thread = threading.Thread(target=_run, args=(app,), name="userhub-mail", daemon=True)
    thread.start()
    return thread


def _run(app: Flask) -> None:
    sender = Sender.configured(app.config)
    if sender is None:
        log.warning(
            "USERHUB_MAIL_URL is not set: account mail is queued, not sent "
            "(flask --app userhub mail list shows it)"
        )
        return
    pruned_at = 0.0
    while True:
        mail_committed.wait(POLL_SECONDS)
        mail_committed.clear()
        try:
            with app.app_context():
                sender.send_due()
                if time.monotonic() - pruned_at > PRUNE_SECONDS:
                    prune()
                    pruned_at = time.monotonic()
        except Exception:
            log.exception("the mail sender could not read the outbox; trying again shortly")
            mail_committed.wait(PAUSE_AFTER_ERROR)
