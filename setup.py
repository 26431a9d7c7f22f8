"""The build step pyproject.toml cannot say: compile the translation catalogues into the wheel.

``messages.po`` is the source, kept in git; ``messages.mo`` is what Flask-Babel reads, and is
never committed (a binary that would drift from its source). ``make`` compiles it for a
checkout; this compiles it into every wheel, whether built from the checkout or from the sdist
(``python -m build``, ``pip wheel .``, ``pip install .``), so a deployer's install serves Chinese
pages without a step of its own. Babel is a build requirement (``[build-system]``).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOGUES = Path("src", "userhub", "translations")


class BuildWithCatalogues(build_py):
    """``build_py``, then each ``<locale>/LC_MESSAGES/messages.po`` compiled beside its copy."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for source in sorted(CATALOGUES.glob("*/LC_MESSAGES/messages.po")):
            target = Path(self.build_lib, "userhub", source.relative_to("src/userhub"))
            target = target.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as po:
                catalogue = read_po(po, locale=source.parts[-3])
            with target.open("wb") as mo:
                write_mo(mo, catalogue)  # fuzzy entries left out, as `pybabel compile` does


setup(cmdclass={"build_py": BuildWithCatalogues})
