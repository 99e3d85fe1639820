"""CSV cells that a spreadsheet would run as formulas are written as text."""

import csv
import io

import pytest

from config import csvsafe


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+31612345678", "-2+3", "@SUM(A1:A2)", "\t=cmd", "\r=cmd", '=HYPERLINK("http://x","y")'],
)
def test_cells_starting_a_formula_are_quoted(value):
    assert csvsafe.safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["ana@example.com", "Ana", "", "2026-01-01T00:00:00+00:00", " =x", "a=b"])
def test_plain_text_is_left_alone(value):
    assert csvsafe.safe_cell(value) == value


def test_numbers_and_none():
    assert csvsafe.safe_cell(-5) == -5
    assert csvsafe.safe_cell(3.5) == 3.5
    assert csvsafe.safe_cell(None) == ""


def test_writer_to_a_file_round_trips_as_text():
    buffer = io.StringIO()
    out = csvsafe.writer(buffer)
    out.writerow(["name", "formula"])
    out.writerows([["Ana", "=2+5"], ["Bob", "@cmd|' /C calc'!A0"]])
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows == [["name", "formula"], ["Ana", "'=2+5"], ["Bob", "'@cmd|' /C calc'!A0"]]


def test_stream_rows_yields_encoded_lines():
    lines = list(csvsafe.stream_rows([["a", "-1"], ["b", "c,d"]]))
    assert lines == ["a,'-1\r\n", 'b,"c,d"\r\n']
