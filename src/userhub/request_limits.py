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
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return
    if "wsgi.input_terminated" not in request.environ:
        return  # without a length or a server-terminated stream Werkzeug reads no body at all
    if len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    app.before_request(refuse_truncated_stream)
