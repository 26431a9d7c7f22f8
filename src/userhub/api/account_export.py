"""``GET /api/v1/users/me/export``: everything userhub holds about the caller, as one JSON
document (``services/account_export.py``; the format is ``docs/export.md``)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from werkzeug.wrappers import Response

from ..services import account_export
from ..web.downloads import attachment
from ..web.ratelimits import count_export
from .auth import caller, token_auth
from .base import api_blueprint
from .export_schemas import EXPORT_EXAMPLE, AccountExport

bp = api_blueprint(
    "api_account_export",
    tag={
        "name": "Your data",
        "description": "Everything userhub holds about your account, to download "
        "(`docs/export.md`).",
    },
)

EXPORT_LIMITED: Any = {
    "description": "Too many exports of this account (`USERHUB_RATELIMIT_EXPORT`, shared with "
    "the account page's download)",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


@bp.get("/users/me/export")
@bp.auth_required(token_auth)
@bp.output(AccountExport, example=EXPORT_EXAMPLE, description="The export, as a file to save")
@bp.doc(summary="Download my data", responses={429: EXPORT_LIMITED})
def export_me() -> Response:
    """Everything userhub holds about my account as one JSON document, `"format":
    "userhub-export/1"`: the profile, mailed links and mails, sessions, API keys and log-in
    tokens, the security log, the second factors. Never a secret (no password hash, token, key,
    session key, authenticator secret, recovery code or passkey key). The format is described
    field by field in `docs/export.md` of userhub's documentation.

    Any token or key may call it, a read-only key too. It is answered as an attachment
    (`Content-Disposition`, never cached) and recorded in the security log as
    `data-exported`. At most `USERHUB_RATELIMIT_EXPORT` (5 an hour) per account, together with
    the account page's download: past it 429 with `Retry-After`."""
    user = caller()
    count_export(user.id)
    exported = account_export.document(user)
    body = current_app.json.dumps(exported)
    name = f"{account_export.filename_stem(user, exported)}.json"
    return attachment(body, "application/json", name)
