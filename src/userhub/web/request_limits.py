"""The request-body limit (``MAX_CONTENT_LENGTH``) for bodies sent without a length.

Werkzeug refuses a body whose Content-Length is over the limit, but a chunked body (no
Content-Length) is only cut off at the limit, and a form or JSON document parsed from the cut-off
part would be silently incomplete. This check runs before anything reads the body (CSRF
included) and refuses such a body with 413 instead.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge


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
    app.before_request(refuse_truncated_stream)
