"""``/problems``: what each problem ``type`` means, at the address the type names.

A problem document's ``type`` is ``/problems/<kind>`` (``web/problems.py``); RFC 9457 asks that
such an address, when a person opens it, describe the kind of error. The pages are hidden from
the OpenAPI document, whose ``Problem`` schema lists the same kinds.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import abort, render_template

from ..web.problems import PROBLEM_TYPES

bp = APIBlueprint("problems", __name__, url_prefix="/problems", enable_openapi=False)


@bp.get("")
def index() -> str:
    """Every kind of problem, by status."""
    kinds = sorted(PROBLEM_TYPES.values(), key=lambda kind: (kind.status, kind.slug))
    return render_template("problems.html", kinds=kinds, chosen=None)


@bp.get("/<slug>")
def problem_type(slug: str) -> str:
    """One kind of problem: its status and what it means."""
    kind = PROBLEM_TYPES.get(slug)
    if kind is None:
        abort(404)
    return render_template("problems.html", kinds=[kind], chosen=kind)
