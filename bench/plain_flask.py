"""The framework alone: plain Flask with only the tutorial's two GET routes, as the tutorial
writes them (no sessions, CSRF, database or logging). userhub's GET routes are measured against
this under the same server and worker count (``bench/run.py``).

Serve: ``granian --interface wsgi bench.plain_flask:app``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from markupsafe import escape

app = Flask(__name__)
app.json.sort_keys = False  # type: ignore[attr-defined]
app.json.ensure_ascii = False  # type: ignore[attr-defined]


@app.get("/test_get")
def test_get() -> str:
    return "Hello," + escape(request.args.get("user_name", ""))


@app.get("/response_json")
def response_json() -> Response:
    return jsonify({"message": "Success", "data": {"id": 1, "name": "Zhang San"}})
