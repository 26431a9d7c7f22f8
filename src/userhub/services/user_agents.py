"""A browser's ``User-Agent`` in a few words ("Chrome 156 on Linux"), for the session list,
the security log and the new-device mail.

The header itself is never stored: it is long, identifies a client more than a person needs to
see, and is whatever the client says. The parsing is ua-parser's (the uap-core rules, kept up
to date by that project), cached, because one client sends the same string again and again.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

from ..models import USER_AGENT_MAX_LENGTH

MAX_HEADER = 512  # longer headers are cut before parsing: no client needs more to be known


@lru_cache(maxsize=1024)
def summarise(header: str) -> str | None:
    """ "Firefox 133 on Windows", "curl 8", "Mobile Safari 17 on iOS (iPhone)"; None for no
    header, "Other" for one nobody recognises."""
    header = header[:MAX_HEADER].strip()
    if not header:
        return None
    result = parse(header)
    browser, system, device = result.user_agent, result.os, result.device
    words = browser.family if browser else "Other"
    if browser and browser.major:
        words += f" {browser.major}"
    if system and system.family != "Other":
        words += f" on {system.family}"
    if (
        device
        and device.family not in ("Other", "Spider")
        and device.family != getattr(system, "family", None)
    ):
        words += f" ({device.family})"
    return words[:USER_AGENT_MAX_LENGTH]
