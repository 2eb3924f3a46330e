"""Incident maps: how the rows of a complaints export become incidents.

A map (YAML) names, for each incident field, where its value comes from: a ``column`` of the
file, a constant ``value``, or a ``template`` joining several columns; a column's cells may go
through a ``values`` table (``Postal mail: letter``), with a ``default`` for an empty cell or a
value the table lacks. ``ref`` names the column that identifies a complaint; without it a
complaint's ref is a digest of its row, so the same file imported twice files nothing new.
``history`` marks the file's complaints as past ones, answered and closed outside amends: the
columns for when the business first answered and closed each one keep their own timeline.

Example maps ship in ``amends/recovery/maps/``; the README documents the format.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from amends.domain import Costs, Customer, Incident
from amends.errors import AmendsError
from amends.recovery.policy import _line_of, read_yaml

MAX_MAP_BYTES = 256 * 1024
SHIPPED_MAPS = Path(__file__).with_name("maps")
REF_PREFIX = "ROW-"

# The incident fields a map may fill, with the dotted names of the nested ones.
_TOP = [name for name in Incident.model_fields if name not in ("ref", "customer", "costs")]
_CUSTOMER = [f"customer.{name}" for name in Customer.model_fields if name != "social"]
FIELDS = frozenset(
    _TOP
    + _CUSTOMER
    + ["customer.social.platform", "customer.social.handle"]
    + [f"costs.{name}" for name in Costs.model_fields]
)
REQUIRED = ("channel", "received_at", "summary", "category", "severity", "fault")
REQUIRED_CUSTOMER = ("customer.ref", "customer.name")
_TIMES = frozenset({"received_at"})


class MapError(AmendsError):
    """A map file cannot be used; the message names its line and field."""


class RowError(ValueError):
    """A row's cell cannot become its field's value; the message names the field."""


class Source(BaseModel):
    """Where one field's value comes from: exactly one of ``column``, ``value``, ``template``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = Field(default=None, min_length=1, max_length=200)
    value: str | int | float | bool | None = None
    template: str | None = Field(default=None, min_length=1, max_length=1000)
    values: dict[str, str | int | float | bool] | None = None
    default: str | int | float | bool | None = None
    format: str | None = Field(default=None, min_length=2, max_length=100)
    prefix: str = Field(default="", max_length=30)

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        given = [n for n in ("column", "value", "template") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value or template")
        if self.values is not None and self.column is None:
            raise ValueError("values translates a column's cells: give the column")
        return self

    @field_validator("template")
    @classmethod
    def _plain_names(cls, template: str | None) -> str | None:
        # Only {column} placeholders: no attribute or index look-ups, no format specs.
        for _, name, spec, conversion in string.Formatter().parse(template or ""):
            if name is not None and (not name or spec or conversion or "." in name or "[" in name):
                raise ValueError(f"{{{name}}}: a template names whole columns, as {{column}}")
        return template

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return []

    def read(self, cells: dict[str, str], field: str) -> Any:
        """The field's value from a row, or None when the row gives none and there is no
        default.

        Raises:
            RowError: the cell is not in the values table and there is no default.
        """
        if self.value is not None:
            return self.value
        if self.template is not None:
            text = self.template.format_map({n: cells.get(n, "") for n in self.columns()})
            return self.prefix + text.strip() if text.strip() else self.default
        cell = cells.get(self.column or "", "")
        if cell == "":
            return self.default
        if self.values is None:
            return self.prefix + cell
        found = self.values.get(cell)
        if found is None:  # "postal mail" for "Postal mail": one word typed two ways
            folded = {key.casefold(): value for key, value in self.values.items()}
            found = folded.get(cell.casefold(), self.default)
        if found is None:
            raise RowError(
                f"{field}: {cell!r} (column {self.column}) is not in the map's values: "
                + ", ".join(sorted(self.values))
            )
        return found


class History(BaseModel):
    """Past complaints: when the business first answered and closed each one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_response_at: Source | None = None
    closed_at: Source | None = None


class IncidentMap(BaseModel):
    """A map from a complaints file's columns to incidents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: Source | None = None
    timezone: str = "UTC"
    history: History | None = None
    fields: dict[str, Source]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{zone!r} is not an IANA time zone, such as America/New_York"
            ) from None
        return zone

    @field_validator("fields")
    @classmethod
    def _known(cls, fields: dict[str, Source]) -> dict[str, Source]:
        unknown = sorted(set(fields) - FIELDS)
        if unknown:
            raise ValueError(
                f"unknown incident field(s) {', '.join(unknown)}; the fields are "
                + ", ".join(sorted(FIELDS))
            )
        missing = [name for name in REQUIRED + REQUIRED_CUSTOMER if name not in fields]
        if missing:
            raise ValueError(f"the map must fill {', '.join(missing)}")
        return fields

    def sources(self) -> dict[str, Source]:
        """Every source by what it fills: the fields, the ref and the history columns."""
        named = dict(self.fields)
        if self.ref is not None:
            named["ref"] = self.ref
        if self.history is not None:
            for name in ("first_response_at", "closed_at"):
                if getattr(self.history, name) is not None:
                    named[f"history.{name}"] = getattr(self.history, name)
        return named

    def columns(self) -> set[str]:
        return {column for source in self.sources().values() for column in source.columns()}

    def check_header(self, header: list[str]) -> list[str]:
        """Problems with a file's header: each column the map names that the file lacks."""
        return [
            f"{name} names column {column!r}, which the file does not have"
            for name, source in self.sources().items()
            for column in source.columns()
            if column not in header
        ]


@dataclass(frozen=True)
class MappedRow:
    """A row as an incident, with its history when the file holds past complaints."""

    incident: Incident
    history: bool = False
    first_response_at: datetime | None = None
    closed_at: datetime | None = None


def find_map(given: Path) -> Path:
    """The map file given, or a shipped one by its name (``cfpb``, ``fcc``)."""
    shipped = SHIPPED_MAPS / f"{given.name}.yaml"
    if not given.exists() and given.suffix == "" and given.name == str(given) and shipped.exists():
        return shipped
    return given


def load_map(path: Path) -> IncidentMap:
    """Read a map file.

    Raises:
        MapError: unreadable, not YAML, or wrong; naming the line and the field.
    """
    try:
        if path.stat().st_size > MAX_MAP_BYTES:
            raise MapError(f"{path} is larger than {MAX_MAP_BYTES // 1024} KiB: not a map")
    except OSError as error:
        raise MapError(f"cannot read map {path}: {error.strerror}") from None
    data, tree = read_yaml(path, MapError, "map")
    if not isinstance(data, dict):
        raise MapError(f"{path}: a map is a YAML mapping with at least fields:")
    # An unknown field is a typo more often than not: named where it is, with the right names.
    for name in data.get("fields") or {} if isinstance(data.get("fields"), dict) else {}:
        if name not in FIELDS:
            raise MapError(
                f"{path}: line {_line_of(tree, ('fields', name))}: fields.{name}: unknown "
                f"incident field; the fields are {', '.join(sorted(FIELDS))}"
            )
    try:
        return IncidentMap.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"line {_line_of(tree, _map_loc(problem['loc']))}: "
            f"{'.'.join(str(p) for p in _map_loc(problem['loc'])) or 'map'}: "
            f"{problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        )
        raise MapError(f"{path}: {problems}") from None


def _map_loc(loc: tuple) -> tuple:
    # Pydantic names a union's member tried ("str", "int"...): not where the problem is.
    return tuple(part for part in loc if part not in {"str", "int", "float", "bool"})


def row_ref(cells: list[str]) -> str:
    """A complaint's ref from its row alone: the same row gives the same ref in every file."""
    digest = hashlib.sha256("\x1f".join(cells).encode()).hexdigest()
    return f"{REF_PREFIX}{digest[:20]}"


def map_row(mapping: IncidentMap, cells: dict[str, str], raw: list[str]) -> MappedRow:
    """The incident a row describes.

    Raises:
        RowError: a cell is not in its values table, or not a date the map's format reads.
        ValidationError: the incident is not valid (naming the field).
    """
    zone = ZoneInfo(mapping.timezone)
    data: dict[str, Any] = {}
    for name, source in mapping.fields.items():
        value = source.read(cells, name)
        if value is None:
            continue
        if name in _TIMES:
            value = _time(value, source, zone, name)
        _put(data, name, value)
    data["ref"] = mapping.ref.read(cells, "ref") if mapping.ref else row_ref(raw)
    history = mapping.history is not None
    # Cells are text: "1200" is a number here, though an incident's JSON must give 1200.
    incident = Incident.model_validate(
        _lax(data), strict=False, context={"history": history} if history else None
    )
    times: dict[str, datetime | None] = {}
    for name in ("first_response_at", "closed_at"):
        source = getattr(mapping.history, name) if mapping.history else None
        value = source.read(cells, f"history.{name}") if source else None
        times[name] = _time(value, source, zone, f"history.{name}") if value else None
        if times[name] is not None and times[name] < incident.received_at:
            raise RowError(f"history.{name}: is before the complaint was received")
    return MappedRow(incident, history, times["first_response_at"], times["closed_at"])


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


_NUMBERS = {"annual_value", "tenure_years", "economic", "time_hours"}
_YES, _NO = {"yes", "y", "true", "1", "x"}, {"no", "n", "false", "0"}


def _lax(data: dict[str, Any]) -> dict[str, Any]:
    """Text cells as the numbers and yes/no the incident's strict fields take."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = _lax(value)
        elif key in _NUMBERS and isinstance(value, str):
            try:
                out[key] = float(value.replace(",", ""))
            except ValueError:
                out[key] = value  # the incident's own validation names the field
        elif key == "abusive" and isinstance(value, str) and value.lower() in _YES | _NO:
            out[key] = value.lower() in _YES
        elif key == "referrals" and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _time(value: Any, source: Source | None, zone: ZoneInfo, field: str) -> datetime:
    text = str(value)
    try:
        if source is not None and source.format:
            moment = datetime.strptime(text, source.format)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        how = f"the map's format {source.format}" if source and source.format else "ISO 8601"
        raise RowError(f"{field}: {text!r} is not a date as {how}") from None
    if isinstance(moment, date) and not isinstance(moment, datetime):
        moment = datetime.combine(moment, time())
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)
