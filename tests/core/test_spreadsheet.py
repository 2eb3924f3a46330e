"""CSV cells that a spreadsheet would run as formulas stay text."""

from __future__ import annotations

import csv
import io

import pytest

from amends.reporting.spreadsheet import safe_cell, write_csv


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+34 612", "'+34 612"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("Ann = Bob", "Ann = Bob"),
        (-2.5, -2.5),  # a number stays a number
        (None, ""),
    ],
)
def test_a_formula_is_neutralised_and_nothing_else(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


def test_write_csv_makes_every_cell_safe() -> None:
    out = io.StringIO()
    write_csv([{"name": "=cmd|' /C calc'!A0", "value": 3}], ["name", "value"], out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["name", "value"],
        ["'=cmd|' /C calc'!A0", "3"],
    ]
