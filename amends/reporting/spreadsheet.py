"""CSV for spreadsheets: a cell that would run as a formula when opened is neutralised.

A customer's name like ``=HYPERLINK("http://evil.example")`` must stay text: a text cell that
starts with = + - @ (or a tab or carriage return) gets a leading apostrophe, as OWASP
recommends. Numbers stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet shows it, never as a formula it runs."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def write_csv(rows: Iterable[Mapping[str, Any]], columns: list[str], out: TextIO) -> None:
    """Write ``rows`` (dicts by column) as CSV with a header row, every cell made safe."""
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
