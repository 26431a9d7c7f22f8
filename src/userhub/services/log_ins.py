"""What every successful log-in does besides letting the user in: its ``logged-in`` event,
and a mail to the owner when it comes from a device the account has not used before.

A device is known to an account when it shows the device cookie naming it (``web/devices.py``):
the same notion that gives a known device its own budget of wrong passwords. A log-in from any
other client (a new browser, a cleared cookie jar, a thief) mails the owner when, where from
and with what, and a link that ends that session or token at once. An account's very first
log-in mails nothing: every device is new then, and it is the owner who just registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import transactions
from ..metrics import LOGIN_SUCCEEDED
from . import account_mail, security_log

if TYPE_CHECKING:
    from ..models import ApiToken, BrowserSession, User


def logged_in(
    user: User,
    *,
    method: str,
    known_device: bool,
    session: BrowserSession | None = None,
    token: ApiToken | None = None,
) -> None:
    """Record the log-in of ``session`` (a browser) or ``token`` (the API), in the caller's
    transaction, and mail the owner if the device is new to the account."""
    first = not security_log.has_logged_in(user.id)
    security_log.record(
        security_log.LOGGED_IN,
        user.id,
        session_id=session.id if session else None,
        api_key_id=token.id if token else None,
        method=method,
    )
    if not known_device and not first:
        account_mail.new_device(user, session=session, token=token)
    transactions.on_commit(LOGIN_SUCCEEDED.inc)  # once, whatever retries the transaction takes
