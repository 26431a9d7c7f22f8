"""Answers a browser saves as a file: ``Content-Disposition: attachment`` with a name that
every client can read, and never cached (they carry account data).

The name is given twice (RFC 6266): ``filename`` in ASCII for old clients (other letters
decomposed and their accents dropped, anything else replaced by ``_``), and ``filename*``, the
whole name in UTF-8, when it is not ASCII, which a browser prefers."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import current_app
from werkzeug.wrappers import Response

from .private_answers import NO_STORE

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def ascii_name(name: str) -> str:
    """``name`` with only letters, digits, ``.``, ``_`` and ``-`` of ASCII: ``Zoë`` → ``Zoe``,
    ``张三`` → ``_``."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")  # accents
    return UNSAFE.sub("_", letters)


def disposition(filename: str) -> str:
    """The ``Content-Disposition`` of an attachment named ``filename``."""
    simple = ascii_name(filename)
    if simple == filename:
        return f'attachment; filename="{simple}"'
    return f"attachment; filename=\"{simple}\"; filename*=UTF-8''{quote(filename, safe='')}"


def attachment(body: bytes | str, mimetype: str, filename: str) -> Response:
    """A 200 the browser saves as ``filename``, kept out of every cache."""
    response: Response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = disposition(filename)
    response.headers["Cache-Control"] = NO_STORE
    return response
