"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV Injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a
single quote, which spreadsheets show as text. Every CSV the product writes goes through here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should show it; numbers stay numbers, None an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in row]


class _Echo:
    def write(self, value: str) -> str:
        return value


class SafeWriter:
    """``csv.writer`` with every cell neutralised; writes to a file or returns lines (stream)."""

    def __init__(self, target=None, **fmtparams):
        self._writer = csv.writer(target if target is not None else _Echo(), **fmtparams)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self._writer.writerow(safe_row(row))


def writer(target=None, **fmtparams) -> SafeWriter:
    """A safe ``csv.writer``; without a target, ``writerow`` returns the encoded line."""
    return SafeWriter(target, **fmtparams)


def stream_rows(rows: Iterable[Iterable[Any]], **fmtparams) -> Iterator[str]:
    """Encoded CSV lines for a StreamingHttpResponse."""
    line_writer = SafeWriter(None, **fmtparams)
    for row in rows:
        yield line_writer.writerow(row)
