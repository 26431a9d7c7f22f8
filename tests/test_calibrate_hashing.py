"""``flask --app userhub calibrate-hashing``: the search (services/hash_calibration.py) on a
cost model whose answer is known, and the command measuring this machine for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner

from tests.helpers import AppBuilder
from userhub.config import (
    ARGON2_MIN_MEMORY_KIB,
    ARGON2_MIN_PARALLELISM,
    ARGON2_MIN_TIME_COST,
    available_cores,
)
from userhub.services.hash_calibration import Cost, calibrate

ENGLISH = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": "C"}
SETTING = re.compile(r"^(USERHUB_ARGON2_\w+)=(\d+)$", re.M)
ONE_HASH = re.compile(r"One hash takes ([\d.]+) ms \(([\d.]+) ms of CPU\) with t=(\d+), m=(\d+)")
RATES = re.compile(r"([\d.]+) per core, ([\d.]+) on this machine's (\d+) cores")
TOO_SLOW = "Even OWASP's minimum takes longer here than"


class TenMsAnIteration:
    """A machine where a hash costs 10 ms per iteration; it records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int, int]] = []

    def __call__(self, time_cost: int, memory_kib: int, parallelism: int) -> Cost:
        self.asked.append((time_cost, memory_kib, parallelism))
        return Cost(10.0 * time_cost, 10.0 * time_cost * parallelism)


@pytest.mark.parametrize(
    ("target_ms", "time_cost", "too_slow"),
    [(95, 10, False), (100, 10, False), (101, 11, False), (20, 2, False), (15, 2, True)],
)
def test_the_first_time_cost_that_reaches_the_target_is_chosen(
    target_ms: int, time_cost: int, too_slow: bool
) -> None:
    machine = TenMsAnIteration()
    result = calibrate(target_ms, 1024, 0, measure=machine)
    assert (result.time_cost, result.minimum_too_slow) == (time_cost, too_slow)
    # Asked below OWASP's floors, it measured and chose the floors, never less.
    assert (result.memory_kib, result.parallelism) == (ARGON2_MIN_MEMORY_KIB, 1)
    assert min(asked[0] for asked in machine.asked) == ARGON2_MIN_TIME_COST
    assert {asked[1:] for asked in machine.asked} == {(ARGON2_MIN_MEMORY_KIB, 1)}
    assert result.per_core_per_second == pytest.approx(1000 / (10.0 * time_cost))


def test_throughput_counts_every_lane_of_a_hash() -> None:
    """Two lanes finish a hash sooner on the clock but keep two cores busy."""
    result = calibrate(100, ARGON2_MIN_MEMORY_KIB, 2, measure=TenMsAnIteration())
    assert result.per_core_per_second == pytest.approx(1000 / 200)
    assert result.per_second(4) == pytest.approx(4 * 1000 / 200)


@pytest.fixture
def runner(build_app: AppBuilder, tmp_path: Path) -> FlaskCliRunner:
    """The command needs no database; the app's is an empty SQLite file."""
    return build_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}").test_cli_runner()


def calibrated(runner: FlaskCliRunner, *args: str) -> tuple[str, dict[str, int]]:
    result = runner.invoke(args=["calibrate-hashing", *args], env=ENGLISH)
    assert result.exit_code == 0, result.output
    settings = {name: int(value) for name, value in SETTING.findall(result.output)}
    assert settings.keys() == {
        "USERHUB_ARGON2_TIME_COST",
        "USERHUB_ARGON2_MEMORY_KIB",
        "USERHUB_ARGON2_PARALLELISM",
    }
    assert settings["USERHUB_ARGON2_TIME_COST"] >= ARGON2_MIN_TIME_COST
    assert settings["USERHUB_ARGON2_MEMORY_KIB"] >= ARGON2_MIN_MEMORY_KIB
    assert settings["USERHUB_ARGON2_PARALLELISM"] >= ARGON2_MIN_PARALLELISM
    return result.output, settings


def measured(output: str, settings: dict[str, int]) -> float:
    """The printed time of a hash, after checking the printed numbers agree."""
    hash_line = ONE_HASH.search(output)
    rates = RATES.search(output)
    assert hash_line is not None and rates is not None, output
    wall, cpu = float(hash_line[1]), float(hash_line[2])
    assert (int(hash_line[3]), int(hash_line[4])) == (
        settings["USERHUB_ARGON2_TIME_COST"],
        settings["USERHUB_ARGON2_MEMORY_KIB"],
    )
    per_core, per_machine, cores = float(rates[1]), float(rates[2]), int(rates[3])
    assert cores == available_cores()
    # 1000 / the CPU ms of a hash, as printed (each number rounded to one decimal).
    assert per_core == pytest.approx(1000 / cpu, rel=0.01, abs=0.1)
    assert per_machine == pytest.approx(per_core * cores, abs=0.1 * cores)
    return wall


def test_the_command_prints_settings_that_reach_the_target(runner: FlaskCliRunner) -> None:
    output, settings = calibrated(runner, "--target-ms", "30")
    wall = measured(output, settings)
    assert settings["USERHUB_ARGON2_MEMORY_KIB"] == ARGON2_MIN_MEMORY_KIB  # as configured
    if TOO_SLOW in output:  # a machine slower than 15 ms an iteration
        assert settings["USERHUB_ARGON2_TIME_COST"] == ARGON2_MIN_TIME_COST
        assert wall > 30
    else:
        assert wall >= 30


def test_a_target_below_the_minimums_cost_gets_the_minimum_and_says_so(
    runner: FlaskCliRunner,
) -> None:
    """128 MiB cannot be filled twice in 10 ms: the minimum iterations are too slow already."""
    output, settings = calibrated(runner, "--target-ms", "10", "--memory-kib", "131072")
    assert TOO_SLOW in output
    assert settings == {
        "USERHUB_ARGON2_TIME_COST": ARGON2_MIN_TIME_COST,
        "USERHUB_ARGON2_MEMORY_KIB": 131072,
        "USERHUB_ARGON2_PARALLELISM": 1,
    }
    assert measured(output, settings) > 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-ms", "5"], "Invalid value for '--target-ms': 5 is not in the range"),
        (["--target-ms", "20000"], "Invalid value for '--target-ms': 20000 is not in the range"),
        (["--target-ms", "fast"], "Invalid value for '--target-ms': 'fast' is not a valid"),
        (["--memory-kib", "1024"], "Invalid value for '--memory-kib': 1024 is not in the range"),
        (["--parallelism", "0"], "Invalid value for '--parallelism': 0 is not in the range"),
    ],
)
def test_a_bad_option_is_refused_before_anything_is_measured(
    runner: FlaskCliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(args=["calibrate-hashing", *args], env=ENGLISH)
    assert result.exit_code == 2
    assert message in result.output
    assert "USERHUB_ARGON2" not in result.output
