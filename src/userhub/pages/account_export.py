"""``POST /account/export``: the account page's "Download my data", everything userhub holds
about the account as a ZIP (``services/account_export.py``; the format is ``docs/export.md``).

A POST with the page's CSRF token, so another site cannot make the browser download (and log)
an export. Its limit is the API's (``USERHUB_RATELIMIT_EXPORT``, per account): past it, the
error page says how long to wait."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User
from ..services import account_export
from ..web.downloads import attachment
from ..web.ratelimits import count_export

bp = APIBlueprint("account_export", __name__, enable_openapi=False)


@bp.post("/account/export")
@login_required
def download() -> Response:
    """The account's data as ``userhub-export-<username>-<date>.zip``, never cached."""
    user: User = current_user._get_current_object()
    count_export(user.id)
    exported = account_export.document(user)
    name = f"{account_export.filename_stem(user, exported)}.zip"
    return attachment(account_export.zip_of(exported), "application/zip", name)
