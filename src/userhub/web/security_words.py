"""What the security pages say about an account's events, sessions and keys, in the reader's
language: the owner's pages (``pages/account_security.py``) and the administrators'
(``pages/admin.py``) word them alike. Presentation shared by two views lives here, since views
never import each other."""

from __future__ import annotations

from babel.lists import format_list
from flask_babel import LazyString, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..models import ApiToken, SecurityEvent
from ..services import api_keys, passkeys, security_log, sessions

# What each event of the log is, for its owner. ``%(name)s``: the key's name, from the event.
EVENT_WORDS: dict[str, LazyString] = {
    security_log.REGISTERED: _l("Account created"),
    security_log.LOGGED_IN: _l("Logged in"),
    security_log.LOGIN_FAILED: _l("Failed log-in: wrong password"),
    security_log.LOGGED_OUT: _l("Logged out"),
    security_log.SESSION_ENDED: _l("Another session was ended"),
    security_log.LOGGED_OUT_EVERYWHERE: _l("Logged out everywhere, API tokens revoked"),
    security_log.PASSWORD_CHANGED: _l("Password changed"),
    security_log.PASSWORD_RESET: _l("Password reset by a mailed link"),
    security_log.EMAIL_CHANGED: _l("E-mail address changed"),
    security_log.API_KEY_CREATED: _l("API key created: %(name)s"),
    security_log.API_KEY_REVOKED: _l("API key revoked: %(name)s"),
    security_log.TOKEN_REVOKED: _l("An API log-in token was revoked"),
    security_log.ACCOUNT_LOCKED: _l("Account locked after failed log-ins"),
    security_log.ACCOUNT_UNLOCKED: _l("Account unlocked"),
    security_log.ACCOUNT_UPDATED: _l("Account details changed"),
    security_log.ACCOUNT_DELETED: _l("Account deleted"),
    security_log.ACCOUNT_DEACTIVATED: _l("Account deactivated by an administrator"),
    security_log.ACCOUNT_REACTIVATED: _l("Account reactivated by an administrator"),
    security_log.DELETION_REQUESTED: _l("Deletion of the account asked for"),
    security_log.DELETION_CANCELLED: _l("Deletion of the account cancelled"),
    security_log.DATA_EXPORTED: _l("Your data was downloaded"),
    security_log.PASSWORD_RESET_SENT: _l("An administrator mailed a password-reset link"),
    security_log.TOTP_ENABLED: _l("Authenticator app added"),
    security_log.TOTP_DISABLED: _l("Authenticator app removed"),
    security_log.RECOVERY_CODES_GENERATED: _l("New recovery codes made"),
    security_log.RECOVERY_CODE_USED: _l("A recovery code was used"),
    security_log.PASSKEY_ADDED: _l("Passkey added: %(name)s"),
    security_log.PASSKEY_REMOVED: _l("Passkey removed: %(name)s"),
    security_log.SECOND_FACTOR_FAILED: _l("Failed log-in: wrong code after the right password"),
    security_log.REAUTHENTICATED: _l("Identity confirmed again"),
    security_log.FACTORS_RESET: _l("Second factors removed"),
}
# Events whose details change what they were.
API_LOG_IN = _l("Logged in to the API (a token was issued)")
OTHER_SESSIONS_ENDED = _l("Other sessions logged out")
EVERY_SESSION_ENDED = _l("Every session logged out")
EMAIL_REMOVED = _l("E-mail address removed")
PASSKEY_REFUSED = {
    security_log.LOGIN_FAILED: _l("Failed log-in: a passkey was refused"),
    security_log.SECOND_FACTOR_FAILED: _l(
        "Failed log-in: a passkey was refused after the right password"
    ),
}
METHOD_WORDS = {
    sessions.PASSWORD: _l("Password"),
    "password+totp": _l("Password and authenticator app"),
    "password+recovery-code": _l("Password and a recovery code"),
    "password+passkey": _l("Password and a passkey"),
    passkeys.METHOD: _l("Passkey"),
}
SCOPE_WORDS = {
    api_keys.READ: _l("read"),
    api_keys.WRITE: _l("write"),
    api_keys.ADMIN: _l("admin"),
}


def event_words(event: SecurityEvent) -> str:
    """The event in a few words of the reader's language (plain text: the page escapes it)."""
    details = security_log.details_of(event)
    words = EVENT_WORDS.get(event.type)
    if event.type == security_log.LOGGED_IN and event.api_key_id is not None:
        words = API_LOG_IN
    elif event.type == security_log.SESSION_ENDED and details.get("all_sessions"):
        words = EVERY_SESSION_ENDED
    elif event.type == security_log.SESSION_ENDED and "ended_sessions" in details:
        words = OTHER_SESSIONS_ENDED
    elif event.type == security_log.EMAIL_CHANGED and details.get("removed"):
        words = EMAIL_REMOVED
    elif event.type in PASSKEY_REFUSED and details.get("method") == passkeys.METHOD:
        words = PASSKEY_REFUSED[event.type]
    if words is None:
        return event.type
    return str(words) % {"name": details.get("name", "")}


def browser_words(summary: str | None) -> str:
    """A browser as the session or event recorded it ("Firefox 133 on Windows"), or words
    saying it is not known (no header, or one nobody recognises)."""
    return summary if summary and summary != "Other" else _("Unknown browser")


def scope_names(key: ApiToken) -> str:
    """A key's scopes in the reader's words and list style ("read and write", "只读和读写"), in
    the order of ``api_keys.SCOPES``."""
    words = [str(SCOPE_WORDS.get(scope, scope)) for scope in (key.scopes or "").split()]
    return format_list(words, locale=get_locale())


# What a template needs to name ways of logging in, scopes and browsers.
WORDS_FOR_TEMPLATES = {
    "method_words": METHOD_WORDS,
    "scope_names": scope_names,
    "browser_words": browser_words,
}
