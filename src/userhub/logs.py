"""The ``userhub`` logger: one stderr handler, level from ``USERHUB_LOG_LEVEL``."""

from __future__ import annotations

import logging

from flask import Flask

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def register_logging(app: Flask) -> None:
    logger = logging.getLogger("userhub")
    level = logging.getLevelName(str(app.config["USERHUB_LOG_LEVEL"]).upper())
    logger.setLevel(level if isinstance(level, int) else logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
