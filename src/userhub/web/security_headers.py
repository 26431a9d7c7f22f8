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

They are added to the header list the app hands to the server (a WSGI middleware), not in an
``after_request`` hook: werkzeug's ``Headers.setdefault`` searches the headers once per name,
and the hook cost about 10 µs of a ``/response_json`` that takes 60 µs in plain Flask. The
middleware sees every answer the hook saw, and also the 500 Flask writes when a hook itself
fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000"


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SecurityHeaders:
    """WSGI middleware: the headers above on every answer that does not set them itself."""

    def __init__(self, app: WSGIApp, headers: list[tuple[str, str]]) -> None:
        self.app = app
        self.headers = headers

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start_with_headers(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in self.headers if h[0].lower() not in present)
            return start_response(status, headers, *exc)

        return self.app(environ, start_with_headers)


def init_app(app: Flask) -> None:
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if app.config["SESSION_COOKIE_SECURE"]:
        headers.append(("Strict-Transport-Security", HSTS))
    app.wsgi_app = SecurityHeaders(app.wsgi_app, headers)  # type: ignore[method-assign]
