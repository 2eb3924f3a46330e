"""Incidents by the thousand: a complaints export filed and recovered a batch at a time.

A batch goes through the stages one incident goes through, with the same domain functions
(intake's checks and records, :func:`~amends.recovery.stages.complete` for each stage), but
set-based, as the nightly run works: one transaction per stage for the whole batch, not one
flow run per row. A case whose offer needs a manager stops after *empower*, its approval asked
as for one incident, and is handed back to wait for the answer; the others go on.

Past complaints (a map's ``history``) are recorded with their own timeline, closed, and run no
stage: nothing is sent for them, and the report counts no breach of theirs.

Reading the file is :mod:`amends.storage.imports`' streaming reader: a line at a time, a bad row
reported with its line and field and left out, memory flat however long the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from amends.domain import CaseState, Incident, ReplyChannel, Stage
from amends.errors import AmendsError, ImportFileError, IncidentConflict
from amends.recovery import intake
from amends.recovery.mapping import IncidentMap, MappedRow, RowError, map_row
from amends.recovery.stages import Step, complete, load_step, run_stage
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.db import analyze
from amends.storage.imports import ImportReport, _parse_row, _records, read_header

BATCH = 200  # incidents a transaction carries through a stage
ORDER = (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT, Stage.FOLLOW_UP, Stage.REENGAGE)

Row = tuple[int, MappedRow]


@dataclass
class IncidentImport(ImportReport):
    """What an import of incidents did: ``added`` new cases (``history`` of them past
    complaints), ``unchanged`` ones filed before, each refused row with its line, and the
    incidents waiting for a manager's approval."""

    history: int = 0
    awaiting: list[str] = field(default_factory=list)

    def merge(self, other: IncidentImport) -> None:
        self.added += other.added
        self.unchanged += other.unchanged
        self.history += other.history
        self.refused.extend(other.refused)
        self.awaiting.extend(other.awaiting)


# --- reading ------------------------------------------------------------------------------------


def read_rows(path: Path, mapping: IncidentMap, report: ImportReport) -> Iterator[Row]:
    """Every row that maps to a valid incident, with its line; the others go to
    ``report.refused``. The header is checked against the map before any row is read.

    Raises:
        ImportFileError: unreadable, not UTF-8, or without a column the map names.
    """
    header, skip = read_header(path)
    problems = mapping.check_header(header)
    if problems:
        raise ImportFileError(f"{path}: " + "; ".join(problems))
    return _mapped(path, mapping, header, skip, report)


def _mapped(
    path: Path, mapping: IncidentMap, header: list[str], skip: int, report: ImportReport
) -> Iterator[Row]:
    def parse(cells: dict[str, str]) -> MappedRow:
        return map_row(mapping, cells, list(cells.values()))

    for line, cells, problem in _records(path, skip):
        if problem is None and len(cells) > len(header):
            problem = "more cells than the header has columns"
        row = None
        if problem is None:
            try:
                problem, row = _parse_row(dict(zip(header, cells, strict=False)), parse)
            except RowError as error:
                problem = str(error)
        if problem is None:
            yield line, row
        else:
            report.refused.append((line, problem))


def batches(rows: Iterator[Row], size: int | None = None) -> Iterator[list[Row]]:
    while batch := list(itertools.islice(rows, size or BATCH)):
        yield batch


# --- filing -------------------------------------------------------------------------------------


def check_rows(
    rt: Runtime, rows: list[Row], report: ImportReport
) -> list[tuple[Row, ReplyChannel]]:
    """The rows intake would accept, with their reply channels, checked without writing: a
    live complaint's customer must be reachable and its templates present."""
    ready, templates_seen = [], set()
    for line, row in rows:
        incident = row.incident
        try:
            if row.history:
                reply = rt.policy.mirror_channel(incident.channel, rt.channels.keys())
            else:
                reply = intake.check_reachable(rt, incident)
                if (reply, incident.customer.locale) not in templates_seen:
                    intake.check_templates_for(rt, incident, reply)
                    templates_seen.add((reply, incident.customer.locale))
        except AmendsError as error:
            report.refused.append((line, str(error)))
            continue
        ready.append(((line, row), reply))
    return ready


def file_batch(rt: Runtime, rows: list[Row]) -> tuple[IncidentImport, dict[int, int]]:
    """Record a batch's incidents and open their cases in one transaction; return what was
    done and the new live cases (case id -> line) that the stages still have to run."""
    report = IncidentImport()
    ready = check_rows(rt, rows, report)
    live: dict[int, int] = {}
    with rt.db.session() as session:
        refs = [row.incident.ref for (_, row), _ in ready]
        filed = dict(
            session.execute(
                select(models.Incident.ref, models.Incident.payload).where(
                    models.Incident.ref.in_(refs)
                )
            ).all()
        )
        clashes = intake.refs_on_file_in_other_case(
            session, [row.incident.customer.ref for (_, row), _ in ready]
        )
        for (line, row), reply in ready:
            incident = row.incident
            payload = incident.model_dump(mode="json")
            try:
                if incident.ref in filed:
                    # The same file again files nothing new; another with the same ref but
                    # other details is refused, as for one incident. A case an interrupted
                    # import left unfinished resumes where it stopped.
                    case_id = intake._existing_case(session, incident, payload)
                    report.unchanged += 1
                    if case_id is not None and _unfinished(session, case_id):
                        live[case_id] = line
                    continue
                if incident.customer.ref in clashes:
                    raise IncidentConflict(
                        f"customer.ref {incident.customer.ref!r} differs only in case from "
                        f"customer {clashes[incident.customer.ref]!r} on file"
                    )
                intake._refuse_same_complaint(session, incident)
            except AmendsError as error:
                report.refused.append((line, str(error)))
                continue
            case = intake.record_case(session, rt, incident, reply, payload)
            filed[incident.ref] = payload  # twice in one file: the second is unchanged
            report.added += 1
            if row.history:
                _keep_history(session, case, row)
                report.history += 1
            else:
                live[case.id] = line
        session.flush()
        session.expunge_all()
    return report, live


def _unfinished(session: Session, case_id: int) -> bool:
    case = session.get(models.Case, case_id)
    return not case.history and case.stage is not Stage.REENGAGE


def _keep_history(session: Session, case: models.Case, row: MappedRow) -> None:
    """A past complaint: closed as it was, answered when it was, and never pursued."""
    case.history = True
    case.opened_at = row.incident.received_at
    case.first_response_at = row.first_response_at
    case.state = CaseState.CLOSED
    case.closed_at = row.closed_at
    answered = f"first answered {row.first_response_at:%Y-%m-%d}" if row.first_response_at else ""
    closed = f"closed {row.closed_at:%Y-%m-%d}" if row.closed_at else ""
    told = "; ".join(part for part in (answered, closed) if part)
    session.add(
        models.CaseEvent(
            case_id=case.id,
            kind="imported_history",
            text="Imported as a past complaint: no stage runs and nothing is sent"
            + (f" ({told})." if told else "."),
        )
    )


# --- the stages ---------------------------------------------------------------------------------


def run_batch(rt: Runtime, cases: dict[int, int], report: IncidentImport) -> list[int]:
    """Run the stages over a batch's cases, a stage at a time for all of them, in one
    transaction; return the cases that wait for a manager's approval (their stages stop after
    *empower*).

    If the batch fails, it is run again case by case, so one bad case is reported with its line
    and the others go on.
    """
    steps: list[Step] = []
    try:
        with rt.db.session() as session:
            loaded = _load(session, list(cases))  # held: the session keeps only what is held
            steps = [load_step(session, rt, case.id) for case in loaded]
            for step in steps:  # no stage has run yet: no outcome to look for
                if step.case.stage is None:
                    step.outcomes = {}
            active, awaiting = steps, []
            for stage in ORDER:
                results = [complete(step, stage) for step in active]
                if stage is Stage.EMPOWER:
                    waits = [r.data.get("needs_approval", False) for r in results]
                    awaiting = [s.case.id for s, wait in zip(active, waits, strict=True) if wait]
                    active = [s for s, wait in zip(active, waits, strict=True) if not wait]
            session.flush()
            session.expunge_all()
        return awaiting
    except AmendsError:
        for step in steps:  # the batch's transaction is gone: so are its files
            for path in step.files:
                path.unlink(missing_ok=True)
    return _case_by_case(rt, cases, report)


def _case_by_case(rt: Runtime, cases: dict[int, int], report: IncidentImport) -> list[int]:
    awaiting = []
    for case_id, line in cases.items():
        try:
            for stage in ORDER:
                result = run_stage(rt, case_id, stage)
                if stage is Stage.EMPOWER and result.data.get("needs_approval"):
                    awaiting.append(case_id)
                    break
        except AmendsError as error:
            report.refused.append((line, f"filed; {stage.value} failed: {error}"))
    return awaiting


def _load(session: Session, case_ids: list[int]) -> list[models.Case]:
    """The batch's cases, incidents and customers in one query: each step then finds its own
    without asking the database."""
    return list(
        session.scalars(
            select(models.Case)
            .where(models.Case.id.in_(case_ids))
            .options(joinedload(models.Case.incident), joinedload(models.Case.customer))
            .order_by(models.Case.id)
        ).unique()
    )


def incidents_of(rt: Runtime, case_ids: list[int]) -> list[Incident]:
    """The incidents of these cases as filed: what a recover-incident run resumes."""
    with rt.db.session() as session:
        cases = session.scalars(
            select(models.Case)
            .where(models.Case.id.in_(case_ids))
            .options(joinedload(models.Case.incident))
        )
        return [Incident.model_validate(case.incident.payload) for case in cases]


# What a batch writes to: each is analysed after the import's batches 1, 2, 4, 8 and so on,
# so its statistics are never behind by more than half its rows (at most log2 of the batches).
GROWN = tuple(
    table.__tablename__
    for table in (
        models.Customer, models.Incident, models.Case, models.StageOutcome, models.Message,
        models.StaffAction, models.Offer, models.CheckIn, models.CaseEvent,
    )
)  # fmt: skip


def import_batch(rt: Runtime, rows: list[Row], number: int = 1) -> tuple[IncidentImport, list[int]]:
    """File the file's ``number``-th batch and run its stages; return what was done and the
    cases waiting for a manager's approval."""
    report, live = file_batch(rt, rows)
    awaiting = run_batch(rt, live, report)
    if number & (number - 1) == 0:
        with rt.db.engine.begin() as connection:
            analyze(connection, GROWN)
    return report, awaiting


def import_incidents(
    rt: Runtime,
    path: Path,
    mapping: IncidentMap,
    *,
    on_batch: Callable[[IncidentImport], None] | None = None,
) -> tuple[IncidentImport, list[int]]:
    """File and recover a whole file in this process, batch by batch (the flow does the same
    with a task per batch); return the report and the cases waiting for approval."""
    report = IncidentImport()
    awaiting: list[int] = []
    for number, batch in enumerate(batches(read_rows(path, mapping, report)), start=1):
        done, waiting = import_batch(rt, batch, number)
        awaiting.extend(waiting)
        report.merge(done)
        if on_batch:
            on_batch(report)
    report.refused.sort()
    return report, awaiting


def dry_run(rt: Runtime, path: Path, mapping: IncidentMap) -> IncidentImport:
    """What importing the file would refuse, and how many rows it would file: nothing written."""
    report = IncidentImport()
    for batch in batches(read_rows(path, mapping, report)):
        ready = check_rows(rt, batch, report)
        with rt.db.session() as session:
            refs = [row.incident.ref for (_, row), _ in ready]
            filed = set(
                session.scalars(select(models.Incident.ref).where(models.Incident.ref.in_(refs)))
            )
        for (_, row), _ in ready:
            if row.incident.ref in filed:
                report.unchanged += 1
            else:
                report.added += 1
                report.history += row.history
    report.refused.sort()
    return report
