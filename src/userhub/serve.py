"""``userhub serve``: the production server (granian, WSGI), one worker per CPU core.

The tutorial warns that Flask's built-in server is for development only; this is what to run
instead. Windows works too (granian ships Windows wheels). gunicorn is an alternative on
Linux/macOS: ``gunicorn -w 4 -b 127.0.0.1:5000 'userhub:create_app()'``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from .config import ConfigError, load_config, read_environment


def worker_count(configured: int) -> int:
    return configured if configured > 0 else (os.cpu_count() or 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="userhub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run userhub under granian")
    serve.add_argument("--host", help="address to listen on (USERHUB_HOST)")
    serve.add_argument("--port", type=int, help="port (USERHUB_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (USERHUB_WORKERS; 0 = cores)")
    args = parser.parse_args(argv)

    try:
        settings = load_config(read_environment())
        # Build the app once before forking: a bad setting stops here with one clear message,
        # and the development secret exists before any worker looks for it.
        from . import create_app

        create_app()
    except ConfigError as exc:
        parser.exit(2, f"userhub: {exc}\n")

    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "userhub:create_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=args.host or settings["USERHUB_HOST"],
        port=args.port or settings["USERHUB_PORT"],
        workers=worker_count(
            args.workers if args.workers is not None else settings["USERHUB_WORKERS"]
        ),
        respawn_failed_workers=True,
    ).serve()


if __name__ == "__main__":
    main()
