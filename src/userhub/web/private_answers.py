"""Answers that carry account data stay out of caches: ``Cache-Control: no-store``.

Neither a shared cache nor the browser's disk may keep them. Two moments make an answer private,
and each marks it where it happens, so that a request with neither (the tutorial's
``/response_json``, a static file, a visitor's home page) pays nothing and keeps its caching:

* the request loads a logged-in user, from the session cookie (``sessions.py``) or a Bearer
  token (``api/auth.py``): ``for_user`` names them in the log line and marks the answer,
  whatever it turns out to be (a page, JSON, an error);
* the answer sets or clears the session cookie (a log-in, a log-out, the first form a browser
  gets, with its CSRF token): ``sessions.py`` marks it where the cookie is written.

The token of ``POST /api/v1/tokens`` carries its own ``no-store`` (and an ``Idempotency-Key``
replay repeats it). A view that chose its own ``Cache-Control`` keeps it.
"""

from __future__ import annotations

from flask import after_this_request
from werkzeug.wrappers import Response

from .logs import note_user

NO_STORE = "no-store"


def keep_out_of_caches(response: Response) -> Response:
    """``Cache-Control: no-store``, unless the view chose its own caching."""
    response.headers.setdefault("Cache-Control", NO_STORE)
    return response


def for_user(user_id: int) -> None:
    """This request acts for ``user_id``: its log line names them, and its answer is kept out of
    caches."""
    note_user(user_id)
    after_this_request(keep_out_of_caches)
