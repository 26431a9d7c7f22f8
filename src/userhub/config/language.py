"""The command line's language: the reader's locale, as every gettext program reads it.

A page asks the browser; a command has no request, so it reads ``LANGUAGE``, ``LC_ALL``,
``LC_MESSAGES`` and ``LANG`` in that order (``zh_CN.UTF-8`` reads Chinese). Messages come from
the same catalogue as the pages (``make translations`` collects every ``gettext`` call), so a
learner whose terminal speaks Chinese is told in Chinese what to fix, and everyone else in
English. It works before the app exists: a setting can be wrong before there is an app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel.core import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"
ENGLISH = "en"
CHINESE = "zh_Hans_CN"
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
TRADITIONAL_SCRIPT = "Hant"


def reader_locale(environ: Mapping[str, str] | None = None) -> str:
    """``zh_Hans_CN`` when the first locale set asks for Chinese in simplified characters
    (``zh_CN``, ``zh_SG``, ``zh``), else ``en`` (``C``, ``POSIX``, anything else)."""
    environ = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if not value:
            continue
        first = value.split(":")[0].split(".")[0].split("@")[0]  # zh_CN.UTF-8 -> zh_CN
        if first in {"C", "POSIX"}:
            return ENGLISH
        try:
            locale = Locale.parse(first)
        except (ValueError, UnknownLocaleError):
            return ENGLISH
        if locale.language == "zh" and _script(locale) != TRADITIONAL_SCRIPT:
            return CHINESE
        return ENGLISH
    return ENGLISH


def _script(locale: Locale) -> str | None:
    """Babel fills in no script for ``zh_TW``; its likely script is Traditional."""
    if locale.script:
        return str(locale.script)
    return TRADITIONAL_SCRIPT if locale.territory in {"TW", "HK", "MO"} else None


@cache
def _catalogue(locale: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS), [locale])


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the reader's language, ``%(name)s`` placeholders filled in."""
    text = _catalogue(reader_locale()).gettext(message)
    return text % variables if variables else text
