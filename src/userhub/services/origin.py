"""Where the current action comes from: the client's address and browser, and the session or
API key it used, as the security log and the session table record them.

Services know no HTTP, so the web layer tells them: it installs ``provide`` once
(``web/origin.py``), and what it returns is worked out only when something is recorded, never
on the requests that record nothing. Outside a request (a command) the origin is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    ip: str | None = None
    user_agent: str | None = None  # a summary, e.g. "Chrome 156 on Linux"
    session_id: int | None = None  # the browser session the request came with
    api_key_id: int | None = None  # the token or API key it came with


NOWHERE = Origin()
_provider: Callable[[], Origin] = lambda: NOWHERE  # noqa: E731 (replaced by the web layer)


def provide(provider: Callable[[], Origin]) -> None:
    """Install the function that tells the current request's origin."""
    global _provider
    _provider = provider


def current() -> Origin:
    return _provider()
