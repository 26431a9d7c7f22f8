"""``flask --app userhub calibrate-hashing``: the argon2id parameters this machine can afford,
as lines to paste into the environment (``services/hash_calibration.py`` measures)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_PARALLELISM, available_cores
from ..config.language import gettext
from ..services import hash_calibration, passwords


@click.command("calibrate-hashing")
@click.option(
    "--target-ms",
    type=click.IntRange(hash_calibration.MIN_TARGET_MS, hash_calibration.MAX_TARGET_MS),
    default=250,
    show_default=True,
    help="How long one password hash (one log-in) should take on this machine, in ms.",
)
@click.option(
    "--memory-kib",
    type=click.IntRange(ARGON2_MIN_MEMORY_KIB, passwords.IMPORT_MAX_MEMORY_KIB),
    default=None,
    help="Memory per hash in KiB.  [default: USERHUB_ARGON2_MEMORY_KIB]",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=ARGON2_MIN_PARALLELISM),
    default=None,
    help="Lanes per hash.  [default: USERHUB_ARGON2_PARALLELISM]",
)
@with_appcontext
def calibrate_hashing(target_ms: int, memory_kib: int | None, parallelism: int | None) -> None:
    """Measure argon2id here and print the USERHUB_ARGON2_* settings whose hash takes about
    --target-ms: the memory stays as configured, the iterations rise from OWASP's minimum.
    Also prints the log-ins per second a core, and this machine, can then check. Run it on
    the machine (and under the load) that will serve userhub."""
    config = current_app.config
    result = hash_calibration.calibrate(
        target_ms,
        memory_kib or config["ARGON2_MEMORY_KIB"],
        parallelism or config["ARGON2_PARALLELISM"],
    )
    cores = available_cores()
    if result.minimum_too_slow:
        click.echo(
            gettext(
                "Even OWASP's minimum takes longer here than %(target)s ms: use the minimum, "
                "nothing weaker is allowed.",
                target=target_ms,
            )
        )
    click.echo(
        gettext(
            "One hash takes %(wall).1f ms (%(cpu).1f ms of CPU) with t=%(t)s, m=%(m)s KiB, "
            "p=%(p)s.",
            wall=result.cost.wall_ms,
            cpu=result.cost.cpu_ms,
            t=result.time_cost,
            m=result.memory_kib,
            p=result.parallelism,
        )
    )
    click.echo(
        gettext(
            "Log-ins per second: %(core).1f per core, %(all).1f on this machine's %(cores)s "
            "cores; each hash being computed holds %(mib).1f MiB.",
            core=result.per_core_per_second,
            all=result.per_second(cores),
            cores=cores,
            mib=result.memory_kib / 1024,
        )
    )
    click.echo(gettext("Put these in the environment (or .env) of userhub:"))
    click.echo(f"USERHUB_ARGON2_TIME_COST={result.time_cost}")
    click.echo(f"USERHUB_ARGON2_MEMORY_KIB={result.memory_kib}")
    click.echo(f"USERHUB_ARGON2_PARALLELISM={result.parallelism}")
