"""The background thread of each ``userhub serve`` worker: it empties the outbox, and it does
the housekeeping.

No extra process to start, no cron job and nothing to configure: each worker runs one thread.

* **Mail.** The outbox's claims (``outbox.py``) make sure a mail goes once however many
  threads run, on however many instances. The thread sends when a transaction of its own
  process commits mail (at once), and otherwise every ``POLL_SECONDS`` (mail left by another
  worker or instance, retries that came due, mail queued before a restart). With no
  ``USERHUB_MAIL_URL`` (production not yet configured) mail stays queued, and a warning says so
  once.
* **Housekeeping** (``housekeeping.py``: sent mail and dead links, ended sessions, old security
  events, expired tokens and keys) runs when the thread starts and then every
  ``HOUSEKEEPING_SECONDS``, whether or not mail is configured.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from . import housekeeping
from .outbox import Sender, mail_committed

log = logging.getLogger("userhub")

POLL_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 3600.0  # how often what has served its time is forgotten
PAUSE_AFTER_ERROR = 5.0  # the database out of reach: wait, then poll again


def start(app: Flask) -> threading.Thread:
    """Start this process's background thread (a daemon: it ends with the process; a mail it
    had claimed is sent by another sender when the claim's lease ends)."""
    thread = threading.Thread(target=_run, args=(app,), name="userhub-background", daemon=True)
    thread.start()
    return thread


def _run(app: Flask) -> None:
    sender = Sender.configured(app.config)
    if sender is None:
        log.warning(
            "USERHUB_MAIL_URL is not set: account mail is queued, not sent "
            "(flask --app userhub mail list shows it)"
        )
    housekeeping_due = time.monotonic()
    while True:
        if sender is not None:
            _send(app, sender)
        if time.monotonic() >= housekeeping_due:
            housekeeping_due = time.monotonic() + HOUSEKEEPING_SECONDS
            _keep_house(app)
        if sender is None:
            time.sleep(max(0.0, housekeeping_due - time.monotonic()))
        else:
            mail_committed.wait(POLL_SECONDS)
            mail_committed.clear()


def _send(app: Flask, sender: Sender) -> None:
    try:
        with app.app_context():
            sender.send_due()
    except Exception:
        log.exception("the mail sender could not read the outbox; trying again shortly")
        mail_committed.wait(PAUSE_AFTER_ERROR)


def _keep_house(app: Flask) -> None:
    """One round of housekeeping; a failure (the database out of reach) waits for the next
    round: nothing is lost by forgetting an hour later."""
    try:
        with app.app_context():
            pruned = housekeeping.prune_all()
    except Exception:
        log.exception("housekeeping failed; trying again in an hour")
        return
    if pruned.total:
        log.info("housekeeping: %s", pruned)
