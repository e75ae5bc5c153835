"""The one Markdown table writer of Fairway's documents, and a reader that checks a document's tables.

A cell is text, never Markdown structure: `table` escapes what would end or split it. A backslash becomes `\\\\`
and a pipe `\\|` (so the gate's `|x| <= 0.1` stays one cell, and a trailing backslash cannot escape the
separator), line breaks and tabs become spaces (a table row is one line), and a `<` that could open an HTML tag
becomes `&lt;`. Numbers are formatted once here: floats with three decimals, NaN as `not measurable`, None as
`n/a`.

`tables` reads every table of a Markdown text back as rows of cells, splitting on unescaped pipes the way
GitHub-flavoured Markdown does (stricter than Python-Markdown, which does not split inside code spans), so a
test can check that every row of every table has the header's number of cells.
"""

from __future__ import annotations

import math
import re
from typing import Any

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def cell_text(value: Any, digits: int = 3) -> str:
    """A value as the text of a cell (before escaping)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "not measurable" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def escape_cell(text: str) -> str:
    """Text that stays inside one table cell and renders as itself."""
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = " ".join(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n"))
    return _TAG_START.sub("&lt;", text).strip() or " "


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; every row must have the header's number of cells."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}: {row!r}")
    lines = ["| " + " | ".join(escape_cell(str(h)) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape_cell(cell_text(v)) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def split_row(line: str) -> list[str]:
    """The cells of one table line: split on pipes not escaped by a backslash; outer pipes are optional."""
    cells, current, i = [], [], 0
    text = line.strip()
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    trailing_pipe = text.endswith("|") and not current  # the last pipe was a separator, not an escaped one
    cells.append("".join(current))
    if text.startswith("|"):
        cells = cells[1:]
    if trailing_pipe:
        cells = cells[:-1]
    return [c.strip() for c in cells]


def tables(markdown_text: str) -> list[list[list[str]]]:
    """Every table in a Markdown text (a line with a pipe followed by a separator line), as its rows of cells,
    header first, separator left out. Fenced code blocks are skipped."""
    lines = markdown_text.splitlines()
    found: list[list[list[str]]] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and "|" in line and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip()):
            rows = [split_row(line)]
            i += 2
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                rows.append(split_row(lines[i]))
                i += 1
            found.append(rows)
            continue
        i += 1
    return found


def ragged_rows(markdown_text: str) -> list[str]:
    """Rows whose number of cells differs from their table's header (empty when every table parses)."""
    problems = []
    for number, rows in enumerate(tables(markdown_text), start=1):
        width = len(rows[0])
        problems += [f"table {number}: {len(row)} cells, header {width}: {' | '.join(row)}"
                     for row in rows[1:] if len(row) != width]  # fmt: skip
    return problems
