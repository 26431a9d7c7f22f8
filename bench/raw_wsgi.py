"""The limit: the tutorial's two GET routes as a bare WSGI callable, no framework at all.

Serve: ``granian --interface wsgi bench.raw_wsgi:app``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

RESPONSE_JSON = json.dumps(
    {"message": "Success", "data": {"id": 1, "name": "Zhang San"}}, ensure_ascii=False
).encode()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/response_json":
        body, content_type = RESPONSE_JSON, "application/json"
    elif path == "/test_get":
        name = parse_qs(environ.get("QUERY_STRING", "")).get("user_name", [""])[0]
        body, content_type = ("Hello," + html.escape(name)).encode(), "text/html; charset=utf-8"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"Not Found"]
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
