"""The mail userhub sends about an account, composed and put in the outbox.

Each function is called inside the transaction of the change it is about, so the mail commits
with it (``outbox.enqueue``). A mail is built now, in the reader's language (the request's, or
the command line's), from two templates, ``templates/mail/<kind>.txt`` and ``.html``: plain
text and HTML alternatives, a ``Message-ID``, ``Auto-Submitted: auto-generated`` (RFC 3834,
so auto-responders stay quiet), no images, no tracking, and never a password. Links start with
``USERHUB_PUBLIC_URL``: mail is read far from the request, and behind a proxy the request's own
host is not the public one.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from ..models import User, utc_minute, utcnow
from . import email_links, origin, outbox

if TYPE_CHECKING:
    from ..models import ApiToken, BrowserSession

SUBJECTS = {
    "verify-email": _l("Confirm your e-mail address"),
    "reset-password": _l("Reset your password"),
    "change-email": _l("Confirm your new e-mail address"),
    "email-change-requested": _l("Your e-mail address is being changed"),
    "email-removed": _l("Your e-mail address was removed"),
    "password-changed": _l("Your password was changed"),
    "account-locked": _l("Someone is trying to log in to your account"),
    "new-device": _l("A new log-in to your account"),
    "recovery-code-used": _l("A recovery code of your account was used"),
    "deletion-requested": _l("Your account will be deleted"),
}


def public_link(endpoint: str, **values: Any) -> str:
    """An absolute link to ``endpoint``, starting with ``USERHUB_PUBLIC_URL``."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return f"{current_app.config['USERHUB_PUBLIC_URL']}{path}"


def message_id(domain: str) -> str:
    """A unique Message-ID (RFC 5322). Not ``email.utils.make_msgid``: it draws from the random
    module's shared state, which the code that sends a mail does not own (a property-based
    test's generator refuses a strategy that touches it); 128 bits from the system instead."""
    return f"<{secrets.token_hex(16)}@{domain}>"


def compose(kind: str, to: str, **context: Any) -> EmailMessage:
    """The mail ``kind`` to ``to``, both parts from its templates, in the current language."""
    sender = current_app.config["USERHUB_MAIL_FROM"]
    name, address = parseaddr(sender)
    message = EmailMessage()
    message["Subject"] = str(SUBJECTS[kind])
    message["From"] = Address(display_name=name, addr_spec=address)
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    language = language_tag()
    context.update(kind=kind, subject=message["Subject"], locale=language)
    message.set_content(_render(f"mail/{kind}.txt", context))
    message.add_alternative(_render(f"mail/{kind}.html", context), subtype="html")
    message["Content-Language"] = language  # after the parts: set_content drops Content-*
    return message


def language_tag() -> str:
    """The reader's language as the pages' ``<html lang>`` says it: ``en``, ``zh-CN``."""
    locale = get_locale()
    if locale is None:
        return "en"
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language


def _render(name: str, context: dict[str, Any]) -> str:
    """A mail template, without the pages' context processors (a mail may be composed outside
    any request: a command, the bulk import)."""
    return current_app.jinja_env.get_template(name).render(context)


def _send(kind: str, to: str, user: User, **context: Any) -> None:
    outbox.enqueue(compose(kind, to, user=user, **context), kind=kind, user_id=user.id)


def _link(
    endpoint: str,
    user: User,
    purpose: str,
    *,
    email: str | None = None,
    target_id: int | None = None,
) -> str:
    """A new link of ``purpose`` for ``user`` (``email_links.make``), as the address of the
    page ``endpoint`` that uses it."""
    token = email_links.make(user, purpose, email=email, target_id=target_id)
    return public_link(endpoint, token=token)


def verify_email(user: User) -> None:
    """A link that proves ``user.email`` is theirs."""
    assert user.email is not None
    link = _link("email.verify", user, email_links.VERIFY, email=user.email)
    _send("verify-email", user.email, user, link=link)


def reset_password(user: User) -> None:
    assert user.email is not None
    _send(
        "reset-password",
        user.email,
        user,
        link=_link("email.reset_password", user, email_links.RESET),
        minutes=int(email_links.lifetime(email_links.RESET).total_seconds() // 60),
    )


def change_email(user: User, new_email: str) -> None:
    """The link to the new address that makes it the account's, and to the old one a notice
    with a link that says "this was not me"."""
    link = _link("email.confirm_change", user, email_links.CHANGE, email=new_email)
    _send("change-email", new_email, user, new_email=new_email, link=link)
    if user.email is not None:
        undo = _link("email.undo_change", user, email_links.UNDO, email=user.email)
        _send("email-change-requested", user.email, user, new_email=new_email, undo_link=undo)


def email_removed(user: User, old_email: str) -> None:
    undo = _link("email.undo_change", user, email_links.UNDO, email=old_email)
    _send("email-removed", old_email, user, undo_link=undo)


def password_changed(user: User) -> None:
    """The notice after a password change or reset, with the way to get the account back."""
    if user.email is not None:
        forgot = public_link("email.forgot_password")
        _send("password-changed", user.email, user, forgot_link=forgot)


def account_locked(user: User) -> None:
    """Too many wrong passwords from strangers: the owner's link to get in regardless."""
    if user.email is not None:
        _send(
            "account-locked",
            user.email,
            user,
            link=_link("email.unlock", user, email_links.UNLOCK),
            forgot_link=public_link("email.forgot_password"),
        )


def new_device(
    user: User, *, session: BrowserSession | None = None, token: ApiToken | None = None
) -> None:
    """A log-in from a device the account has not used: when, from where, with what, and a
    link that ends that session (or revokes that token) without logging in."""
    if user.email is None:
        return
    if session is not None:
        end = _link("email.end_session", user, email_links.END_SESSION, target_id=session.id)
    else:
        assert token is not None
        end = _link("email.end_token", user, email_links.END_TOKEN, target_id=token.id)
    where = origin.current()
    _send(
        "new-device",
        user.email,
        user,
        when=utc_minute(utcnow()),
        ip=where.ip,
        browser=_inert(where.user_agent),
        via="browser" if session is not None else "api",
        end_link=end,
        forgot_link=public_link("email.forgot_password"),
    )


def _inert(client_text: str | None) -> str | None:
    """Words a client chose (its browser summary), as a mail may show them: letters, digits,
    spaces and brackets only. A browser summary has no more, but a made-up ``User-Agent`` can
    put ``http://…`` in it, which mail readers would make a link of, in a mail about security."""
    if not client_text:
        return None
    words = " ".join(re.sub(r"[^\w ()+-]+", " ", client_text).split())
    return words or None


def recovery_code_used(user: User, remaining: int) -> None:
    """The notice after a recovery code was spent: how many are left, and what to do if it was
    not the owner (who then has lost both the password and the codes)."""
    if user.email is not None:
        _send(
            "recovery-code-used",
            user.email,
            user,
            remaining=remaining,
            forgot_link=public_link("email.forgot_password"),
            two_factor_link=public_link("two_factor.overview"),
        )


def deletion_requested(user: User, due: datetime) -> None:
    """The owner asked for the account's deletion: when it happens, what goes, and a link that
    keeps the account (it works until then)."""
    if user.email is not None:
        keep = _link("email.cancel_deletion", user, email_links.CANCEL_DELETION, email=user.email)
        _send("deletion-requested", user.email, user, due=utc_minute(due), keep_link=keep)
