"""The one Markdown table writer: cells that hold pipes, backslashes, line breaks or tags stay one cell, in its
own reader and in Python-Markdown's rendering."""

from __future__ import annotations

import math
import re

import markdown
import pytest

from fairway.markdown import ragged_rows, split_row, table, tables

AWKWARD = ["|x| <= 0.1", "a\\|b", "ends with \\", "two\nlines\r\nand\ttab", "<script>alert(1)</script>", "", "`a|b`"]


def rendered_rows(text: str) -> list[int]:
    """Cells per row of every table Python-Markdown renders."""
    out = markdown.markdown(text, extensions=["tables"])
    return [len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>(.*?)</tr>", out, flags=re.S)]


def test_awkward_cells_stay_in_their_column_when_read_back_and_rendered() -> None:
    text = table(["rule", "required", "result"], [["r", cell, "pass"] for cell in AWKWARD])
    assert ragged_rows(text) == []
    [rows] = tables(text)
    assert [len(r) for r in rows] == [3] * (len(AWKWARD) + 1)
    assert [r[2] for r in rows[1:]] == ["pass"] * len(AWKWARD)
    assert rendered_rows(text) == [3] * (len(AWKWARD) + 1)
    html = markdown.markdown(text, extensions=["tables"])
    assert "<td>|x| &lt;= 0.1</td>" in html and "<script>" not in html
    assert "<td>two lines and tab</td>" in html and "<td>ends with \\</td>" in html


def test_the_old_unescaped_writer_is_caught_by_the_reader() -> None:
    naive = "| rule | required |\n|---|---|\n| sp | |x| <= 0.1 |"
    assert ragged_rows(naive) == ["table 1: 4 cells, header 2: sp |  | x | <= 0.1"]


def test_values_are_formatted_once() -> None:
    [rows] = tables(table(["a", "b", "c", "d", "e"], [[0.12345, math.nan, None, True, 7]]))
    assert rows[1] == ["0.123", "not measurable", "n/a", "yes", "7"]


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        table(["a", "b"], [["only one"]])


def test_split_row_keeps_escaped_pipes_and_drops_the_outer_ones() -> None:
    assert split_row("| a \\| b | c |") == ["a \\| b", "c"]
    assert split_row("a | b") == ["a", "b"]
    assert split_row("| a | b \\|") == ["a", "b \\|"]


def test_tables_in_code_fences_are_not_read() -> None:
    assert tables("```\n| a | b |\n|---|---|\n| x |\n```\n") == []
