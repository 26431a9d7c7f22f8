"""Marks a view carries for the pipeline: how its errors are answered, whether it needs a body.

The pipeline asks the view a request targets (``current_view``) rather than naming views by
endpoint, so a view states what it needs where it is defined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

F = TypeVar("F", bound=Callable[..., Any])


def mark(name: str, value: Any = True) -> Callable[[F], F]:
    """Leave ``name`` on the view (decorators above it copy it up with ``functools.wraps``)."""

    def decorate(view: F) -> F:
        setattr(view, name, value)
        return view

    return decorate


def current_view(*, or_marked: str | None = None) -> Callable[..., Any] | None:
    """The view this request matched. With ``or_marked``, a request that matched none by its
    method (a 405) gets a view at the same path that carries that mark, if there is one."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None and or_marked is not None:
        for rule in current_app.url_map.iter_rules():
            if rule.rule == request.path:
                view = current_app.view_functions.get(rule.endpoint)
                if hasattr(view, or_marked):
                    break
    return view


def is_marked(name: str) -> bool:
    """Whether the view this request matched carries ``name``."""
    return bool(getattr(current_view(), name, False))
