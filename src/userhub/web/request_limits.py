"""Limits on the request body: how long it may take to arrive, and how large it may be.

**Time.** ``userhub serve`` receives a body before any thread runs the request (cli/front.py);
one not received within ``USERHUB_RECEIVE_TIMEOUT`` seconds reaches the app marked as timed
out, and is answered 408 here, in the route's format, before any view runs.

**Size**, for bodies sent without a length (under ``flask run`` or another WSGI server).
Werkzeug refuses a body whose Content-Length is over the limit, but a chunked body (no
Content-Length) is only cut off at the limit, and a form or JSON document parsed from the cut-off
part would be silently incomplete. This check runs before anything reads the body (CSRF
included) and refuses such a body with 413 instead.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

# The mark cli/front.py puts in the environ of a request whose body did not arrive in time
# (a string here, not an import: the web layer does not import the command line).
RECEIVE_TIMED_OUT = "userhub.receive_timed_out"


def refuse_late_body() -> None:
    if RECEIVE_TIMED_OUT in request.environ:
        raise RequestTimeout(
            _("The request body did not arrive in time. Check the connection and send it again.")
        )


def refuse_truncated_stream() -> None:
    environ = request.environ
    # Cheap question first: a body without a length is a chunked one (RFC 9112, 6.3), and
    # most requests are not chunked. (Werkzeug already refuses a Content-Length over the limit.)
    if "HTTP_TRANSFER_ENCODING" not in environ:
        return
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return
    if "wsgi.input_terminated" not in environ:
        return  # without a length or a server-terminated stream Werkzeug reads no body at all
    if len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    app.before_request(refuse_late_body)
    app.before_request(refuse_truncated_stream)
