"""Security headers on every response.

* ``Content-Security-Policy``: scripts, styles, images and requests only from this site, no
  inline script or style anywhere (the pages have none; ``/docs`` starts Swagger UI from a
  file, and a browser test checks it renders and runs "Try it out" with nothing refused), no
  plugins, no ``<base>`` tricks, forms post only here, and no framing (``frame-ancestors
  'none'``, with ``X-Frame-Options: DENY`` for older browsers).
* ``X-Content-Type-Options: nosniff``: a response is only ever read as its declared type.
* ``Referrer-Policy: same-origin``: addresses, which may carry a ``user_name``, never leave
  the site in a ``Referer``.
* ``Strict-Transport-Security`` when cookies are Secure (production behind HTTPS).

``Cache-Control: no-store`` is not among them: only answers that carry account data get it,
marked where that becomes known (``private_answers.py``).

A view that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.wrappers import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000"


def init_app(app: Flask) -> None:
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if app.config["SESSION_COOKIE_SECURE"]:
        headers.append(("Strict-Transport-Security", HSTS))

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in headers:
            response.headers.setdefault(name, value)
        return response
