"""userhub as a deployer gets it: an sdist and a wheel built from this checkout, the wheel installed
(not editable) into a fresh venv outside the repository, then ``flask --app userhub db upgrade``
and ``userhub serve`` from there, with none of the checkout on the path: the very commands of
``deploy/userhub.service`` (its venv moved to the test's), which ``systemd-analyze`` checks too.

The catalogues are compiled by the build (setup.py), never committed: a wheel without them served
every Chinese reader English under ``<html lang="zh-CN">`` (issue 23). The install takes the
pinned versions of requirements/prod.txt, as ``make install`` does; pip reaches PyPI (or its
cache) for them, as a deployer's does.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live_server import (
    ServerProcess,
    free_port,
    server_environment,
    wait_until_ready,
)

pytestmark = pytest.mark.wheel
REPOSITORY = Path(__file__).resolve().parents[1]
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
UNIT = REPOSITORY / "deploy" / "userhub.service"
UNIT_VENV = "/opt/userhub"
PACKAGE_DATA = (
    "userhub/translations/zh_Hans_CN/LC_MESSAGES/messages.mo",
    "userhub/templates/base.html",
    "userhub/templates/mail/_layout.html",
    "userhub/static/hello-flask.gif",
    "userhub/static/swagger-ui/swagger-ui-bundle.js",
    "userhub/migrations/env.py",
    "userhub/migrations/alembic.ini",
)


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``python -m build``: the sdist from the checkout, then the wheel from the sdist."""
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", dist, REPOSITORY, cwd=dist)
    (sdist,) = dist.glob("userhub-*.tar.gz")
    (wheel,) = dist.glob("userhub-*-py3-none-any.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def venv(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository, with the wheel and the locked dependencies."""
    home = tmp_path_factory.mktemp("deployed")
    assert not home.is_relative_to(REPOSITORY)
    run(sys.executable, "-m", "venv", home / "venv", cwd=home)
    pip = home / "venv" / "bin" / "pip"
    lock = REPOSITORY / "requirements" / "prod.txt"
    run(pip, "install", "-q", "--disable-pip-version-check", built[1], "-c", lock, cwd=home)
    return home / "venv"


def unit_commands(venv: Path) -> dict[str, list[str]]:
    """``ExecStartPre`` and ``ExecStart`` of the shipped systemd unit, for this venv."""
    commands = {}
    for line in UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in {"ExecStartPre", "ExecStart"}:
            commands[key] = value.replace(UNIT_VENV, str(venv)).split()
    return commands


@pytest.fixture(scope="module")
def server(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("site")
    env = server_environment(f"sqlite:///{home / 'userhub.db'}", home / "instance", "production")
    del env["PYTHONPATH"]  # the installed package only, never the checkout's src/
    port = free_port()
    env.update(USERHUB_PORT=str(port), USERHUB_WORKERS="1")
    commands = unit_commands(venv)
    run(*commands["ExecStartPre"], cwd=home, env=env)  # flask --app userhub db upgrade
    log_path = home / "server.log"
    command = commands["ExecStart"]  # userhub serve
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=log)
    running = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(running.base, process, log_path)
        yield running.base
    finally:
        running.stop()


def test_the_sdist_carries_sources_and_the_wheel_the_compiled_catalogue(
    built: tuple[Path, Path],
) -> None:
    sdist, wheel = built
    with tarfile.open(sdist) as archive:
        sources = {name.partition("/")[2] for name in archive.getnames()}
    assert "src/userhub/translations/zh_Hans_CN/LC_MESSAGES/messages.po" in sources
    assert "setup.py" in sources and "requirements/prod.txt" in sources
    assert not [name for name in sources if name.endswith((".mo", ".pyc"))]
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    assert set(PACKAGE_DATA) <= files
    assert not [name for name in files if "__pycache__" in name]


def test_the_installed_package_is_the_wheel_not_the_checkout(venv: Path) -> None:
    where = run(venv / "bin" / "python", "-c", "import userhub; print(userhub.__file__)", cwd=venv)
    assert Path(where.strip()).is_relative_to(venv)
    version = run(venv / "bin" / "userhub", "--version", cwd=venv)
    assert version.startswith("userhub 0.") and "unknown" not in version


def test_a_chinese_reader_of_a_wheel_install_gets_chinese_pages(server: str) -> None:
    login = requests.get(f"{server}/login", headers=CHINESE, timeout=10)
    assert login.status_code == 200
    assert '<html lang="zh-CN">' in login.text
    assert "登录" in login.text and "Log in" not in login.text
    english = requests.get(f"{server}/login", timeout=10)
    assert '<html lang="en">' in english.text and "Log in" in english.text


def test_a_wheel_install_serves_the_tutorial_and_its_assets(server: str) -> None:
    home = requests.get(server + "/", timeout=10)
    assert home.status_code == 200 and "Hello World! Hello Flask!" in home.text
    assert requests.get(f"{server}/static/hello-flask.gif", timeout=10).content[:6] == b"GIF89a"
    docs = requests.get(f"{server}/docs", timeout=10)
    assert docs.status_code == 200
    bundle = requests.get(f"{server}/static/swagger-ui/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    saved = requests.post(
        f"{server}/save_data_to_mysql",
        json={"username": "张三", "password": "correct horse battery staple"},
        timeout=30,
    )
    assert saved.text == "Commit Status:Succeeded, Message:Data inserted successfully."


def test_the_systemd_unit_is_valid_and_runs_the_installed_commands(
    venv: Path, tmp_path: Path
) -> None:
    """``systemd-analyze verify`` reads the unit as systemd would (no systemd runs here to
    start it): no unknown key, no missing program."""
    commands = unit_commands(venv)
    assert commands == {
        "ExecStartPre": [str(venv / "bin" / "flask"), "--app", "userhub", "db", "upgrade"],
        "ExecStart": [str(venv / "bin" / "userhub"), "serve"],
    }
    unit = tmp_path / "userhub.service"
    unit.write_text(UNIT.read_text().replace(UNIT_VENV, str(venv)))
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and checked.stderr == "" and checked.stdout == ""
