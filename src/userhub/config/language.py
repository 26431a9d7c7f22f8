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

from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"
ENGLISH = "en"
CHINESE = "zh_Hans_CN"
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
TRADITIONAL = {"hant", "tw", "hk", "mo"}  # the subtags of Chinese in Traditional characters


def catalogue_for(tag: str) -> str | None:
    """Which of our catalogues serves a reader of ``tag`` (a browser's ``zh-CN`` or a locale's
    ``zh_CN``): English for any English; Chinese unless it asks for Traditional characters
    (``zh-TW``, ``zh-HK``, ``zh-MO``, ``zh-Hant``), which we have no catalogue for; None for
    any other language. The pages (``web/i18n.py``) and the command line both ask here."""
    subtags = tag.lower().replace("_", "-").split("-")
    if subtags[0] == "en":
        return ENGLISH
    if subtags[0] == "zh" and not TRADITIONAL.intersection(subtags[1:]):
        return CHINESE
    return None


def reader_locale(environ: Mapping[str, str] | None = None) -> str:
    """The catalogue for the first locale variable set (``zh_CN.UTF-8``: Chinese); English
    for ``C``, ``POSIX``, a language we have no catalogue for, or none set."""
    environ = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        if value := environ.get(name, ""):
            first = value.split(":")[0].split(".")[0].split("@")[0]  # zh_CN.UTF-8 -> zh_CN
            return catalogue_for(first) or ENGLISH
    return ENGLISH


@cache
def _catalogue(locale: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS), [locale])


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the reader's language, ``%(name)s`` placeholders filled in."""
    text = _catalogue(reader_locale()).gettext(message)
    return text % variables if variables else text
