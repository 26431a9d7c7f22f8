"""README.md and README.zh-CN.md say the same things, so a reader of either misses no step.

A learner follows one README only. These tests compare what both must carry alike, whatever the
language: the tutorial's route table and the deviations table, row for row (the tables follow
an HTML comment that names them); every command of the fenced code blocks; and every relative
link, which must reach an existing file and heading.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = ROOT / "README.md"
CHINESE = ROOT / "README.zh-CN.md"
READMES = [ENGLISH, CHINESE]

CODE = re.compile(r"`([^`]+)`")
SECTION = re.compile(r"§\d+")
# A status code written outside backticks ("status 409"), not part of a longer number or path.
STATUS = re.compile(r"(?<![\w.%/-])[1-5]\d\d(?![\w.%])")
FENCE = re.compile(r"^```[\w-]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMENT = re.compile(r"(?:^|\s)#.*$")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # words for the reader to replace: <the token from above>
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def marked_table(text: str, name: str) -> list[list[str]]:
    """The body rows of the table after ``<!-- NAME table: ... -->``, each a list of cells."""
    lines = text.splitlines()
    marker = f"<!-- {name} table:"
    starts = [i for i, line in enumerate(lines) if line.startswith(marker)]
    assert len(starts) == 1, f"expected one {marker!r} comment before the table, found {starts}"
    rows = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    assert len(rows) > 2, f"no table after {marker!r}"
    return rows[2:]  # after the header and the |---| line


def cell_facts(column: int, cell: str, last: bool) -> tuple[str, ...]:
    """What a cell says in either language, sorted: its code spans; in the first column its §
    numbers too, in the last the status codes it names outside code."""
    prose = CODE.sub(" ", cell)
    extra = SECTION.findall(prose) if column == 0 else STATUS.findall(prose) if last else []
    return tuple(sorted([*CODE.findall(cell), *extra]))


def row_facts(row: list[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        cell_facts(column, cell, last=column == len(row) - 1) for column, cell in enumerate(row)
    )


def table_differences(name: str) -> list[str]:
    """Each difference between the two READMEs' tables, said so a reader can find it."""
    english, chinese = (marked_table(read(path), name) for path in READMES)
    en_facts, zh_facts = [row_facts(row) for row in english], [row_facts(row) for row in chinese]
    if len(english) != len(chinese):  # an added or lost row: name it, not every row after it
        only_en = Counter(en_facts) - Counter(zh_facts)
        only_zh = Counter(zh_facts) - Counter(en_facts)
        return [
            f"{name} table: {len(english)} rows in README.md, {len(chinese)} in README.zh-CN.md",
            *(f"row only in README.md: {english[en_facts.index(r)][:2]}" for r in only_en),
            *(f"row only in README.zh-CN.md: {chinese[zh_facts.index(r)][:2]}" for r in only_zh),
        ]
    problems = []
    for number, (en_row, zh_row) in enumerate(zip(en_facts, zh_facts, strict=True), start=1):
        if len(en_row) != len(zh_row):
            problems.append(f"{name} table row {number}: {len(en_row)} vs {len(zh_row)} cells")
            continue
        for column, (en_cell, zh_cell) in enumerate(zip(en_row, zh_row, strict=True), start=1):
            if en_cell != zh_cell:
                problems.append(
                    f"{name} table row {number}, column {column}: "
                    f"only in README.md {sorted((Counter(en_cell) - Counter(zh_cell)).elements())}"
                    f", only in README.zh-CN.md "
                    f"{sorted((Counter(zh_cell) - Counter(en_cell)).elements())}"
                )
    return problems


def commands(text: str) -> set[str]:
    """Every command line of the fenced code blocks: continuation lines joined, comments and
    extra spaces removed, a placeholder in angle brackets (in the reader's language) as <…>."""
    found = set()
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            command = PLACEHOLDER.sub("<…>", " ".join(COMMENT.sub("", line).split()))
            if command:
                found.add(command)
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, letters, digits, spaces and hyphens kept
    (any script), the rest dropped, spaces turned into hyphens."""
    kept = (
        ch
        for ch in heading.strip().lower()
        if ch in " -" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file: its headings' (numbered when repeated) and explicit ids."""
    text = FENCE.sub("", read(path))
    seen: Counter[str] = Counter()
    found = set(re.findall(r'id="([^"]+)"', text))
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", read(path))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.relative_to(ROOT)}")
    return broken


@pytest.mark.parametrize("name", ["tutorial", "deviations"])
def test_tables_match_row_for_row(name: str) -> None:
    problems = table_differences(name)
    assert not problems, "\n".join(problems)


def test_code_blocks_hold_the_same_commands() -> None:
    english, chinese = (commands(read(path)) for path in READMES)
    problems = [f"only in README.md: {line}" for line in sorted(english - chinese)]
    problems += [f"only in README.zh-CN.md: {line}" for line in sorted(chinese - english)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", READMES, ids=lambda path: path.name)
def test_relative_links_reach_a_file_and_heading(path: Path) -> None:
    broken = broken_links(path)
    assert not broken, "\n".join(broken)


def test_the_comparison_sees_a_difference() -> None:
    """The helpers above find what they must: a row or a command in one README only, a
    missing status code, a link to nowhere (so the tests above cannot pass vacuously)."""
    table = "<!-- t table: x -->\n| a | b |\n|---|---|\n| §3 `GET /` | 302 `Hello,` |\n"
    rows = marked_table(table, "t")
    assert rows == [["§3 `GET /`", "302 `Hello,`"]]
    assert row_facts(rows[0]) == (("GET /", "§3"), ("302", "Hello,"))
    block = "```sh\ncurl a \\\n  -i   # note\n# only a comment\ncurl -H '<some token>'\n```\n"
    assert commands(block) == {"curl a -i", "curl -H '<…>'"}
    assert slug("Windows（PowerShell）") == "windowspowershell"
    assert slug("The JSON API (`/api/v1`)") == "the-json-api-apiv1"
    assert len(commands(read(ENGLISH))) > 20  # the READMEs' blocks are found at all
