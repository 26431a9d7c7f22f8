"""Two languages for people: English and 简体中文 (Flask-Babel).

A visitor reads the language they picked with the switcher (a cookie kept for a year), else
the best match of their browser's ``Accept-Language`` (``zh``, ``zh-CN``, ``zh-Hans`` and
``zh-SG`` read Chinese), else English. Everything a person reads on the pages, in flash
messages and in error texts is translated; the tutorial's own words (``Hello,``, ``Data
received.``, ``Commit Status:…``, the home page's title and content) are literals of its
contract and never are (docs/architecture.md).

Catalogues live in ``translations/<locale>/LC_MESSAGES/messages.po``; ``make`` compiles them to
``.mo`` in a checkout, the wheel's build does it for an install (``setup.py``), and ``make
translations`` re-extracts the strings. ``tests/test_translations.py`` fails when a string has
no Chinese translation. A language whose catalogue was not compiled is not offered at all, so
``<html lang>`` always names the language the page is really in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apiflask import APIBlueprint
from flask import (
    Flask,
    abort,
    after_this_request,
    current_app,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask_babel import Babel, get_locale
from werkzeug.wrappers import Response

from ..config.language import catalogue_for
from .redirects import is_safe_redirect


@dataclass(frozen=True)
class Language:
    tag: str  # BCP 47, for URLs and <html lang>
    locale: str  # Babel's name, for the catalogue
    name: str  # in its own language, as the switcher shows it


LANGUAGES = (
    Language("en", "en", "English"),
    Language("zh-CN", "zh_Hans_CN", "简体中文"),
)
BY_TAG = {language.tag: language for language in LANGUAGES}
BY_LOCALE = {language.locale: language for language in LANGUAGES}
DEFAULT = LANGUAGES[0]
EXTENSION_KEY = "userhub.languages"  # app.extensions: the languages this install can serve
COOKIE = "userhub_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

log = logging.getLogger("userhub")
babel = Babel()
bp = APIBlueprint("i18n", __name__, enable_openapi=False)


def select_locale() -> str:
    """The switcher's choice, else the browser's preference, else English (also for the CLI,
    which has no request)."""
    if not has_request_context():
        return DEFAULT.locale
    # Flask-Babel asks once per request, when words are needed: only such an answer varies.
    after_this_request(vary_on_language)
    served = served_languages()
    chosen = BY_TAG.get(request.cookies.get(COOKIE, ""))
    if chosen in served:
        return chosen.locale
    for value, _quality in request.accept_languages:  # in the browser's order of preference
        language = language_for(value)
        if language in served:
            return language.locale
    return DEFAULT.locale


def language_for(tag: str) -> Language | None:
    """Which of our languages serves a reader of ``tag`` (``config.language.catalogue_for``:
    any English; Chinese unless in Traditional characters), or None."""
    locale = catalogue_for(tag)
    return BY_LOCALE[locale] if locale else None


def served_languages() -> tuple[Language, ...]:
    languages: tuple[Language, ...] = current_app.extensions[EXTENSION_KEY]
    return languages


def compiled_languages(translations: Path) -> tuple[Language, ...]:
    """English (the templates' own words), and each language whose catalogue is compiled: the
    ones a page can really be in."""
    return (DEFAULT,) + tuple(
        language
        for language in LANGUAGES[1:]
        if Path(translations, language.locale, "LC_MESSAGES", "messages.mo").exists()
    )


def current_language() -> Language:
    locale = get_locale()
    return BY_LOCALE.get(str(locale), DEFAULT) if locale is not None else DEFAULT


def here() -> str:
    """Where the switcher returns to: this page, if it can be fetched again with GET."""
    if request.method == "GET" and request.url_rule is not None:
        return request.full_path.rstrip("?")
    return url_for("tutorial.index")


@bp.get("/language/<tag>")
def choose(tag: str) -> Response:
    """Remember the visitor's language in a cookie, then go back to the page they were on."""
    language = BY_TAG.get(tag)
    if language is None:
        abort(404)
    target = request.args.get("next", "")
    response = redirect(target if is_safe_redirect(target) else url_for("tutorial.index"))
    response.set_cookie(
        COOKIE,
        language.tag,
        max_age=COOKIE_MAX_AGE,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


def vary_on_language(response: Response) -> Response:
    """A response whose words were chosen by language depends on these headers: caches must
    not serve one reader's language to another. (The tutorial's fixed bodies do not vary, and
    do not pay for this: it is added to a request only when its language is chosen.)"""
    response.vary.add("Accept-Language")
    response.vary.add("Cookie")
    return response


def template_globals() -> dict[str, Any]:
    return {"languages": served_languages(), "current_language": current_language(), "here": here}


def warn_if_not_compiled(translations: Path, served: tuple[Language, ...]) -> None:
    """An install that skipped the compile step serves English to everyone: say so once."""
    for language in LANGUAGES:
        if language not in served:
            log.warning(
                "no compiled catalogue for %s in %s: its readers get English pages; run "
                "`pybabel compile -d src/userhub/translations` (make does it, and a wheel's "
                "build does it too)",
                language.tag,
                translations,
            )


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_locale=DEFAULT.locale)
    translations = Path(app.root_path, "translations")
    served = app.extensions[EXTENSION_KEY] = compiled_languages(translations)
    warn_if_not_compiled(translations, served)
    app.register_blueprint(bp)
    app.context_processor(template_globals)
