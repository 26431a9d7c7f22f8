"""Redirect targets taken from a request (``next``) are followed only within this site."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_safe_redirect(target: str | None) -> bool:
    """True for a path on this site: ``/account`` yes; ``//evil.example``, ``https://…`` no."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
