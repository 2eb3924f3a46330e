"""Importing a complaints export through a map: the shipped CFPB and FCC maps on real samples,
a helpdesk export filed live, and the refusals a map or a row earns."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest
from sqlalchemy import func, select

from amends.domain import ApprovalStatus, CaseState, Channel, MessageKind, Stage
from amends.errors import ImportFileError
from amends.messages.catalogue import filed_incident
from amends.recovery.batch import dry_run, import_incidents, read_rows
from amends.recovery.mapping import IncidentMap, MapError, load_map
from amends.reporting.report import Period, build_report
from amends.runtime import Runtime
from amends.storage import models
from tests.factories import DATA

MAPS = files("amends.recovery") / "maps"

HELPDESK_MAP = """\
ref: {column: Ticket}
fields:
  channel:
    column: Via
    values: {Email: email, "Postal mail": letter, Phone: phone}
  received_at: {column: Opened}
  summary: {column: Subject}
  details: {template: "{Subject} (priority {Priority})"}
  category: {value: late_delivery}
  severity:
    column: Priority
    values: {P1: critical, P2: high, P3: medium, P4: low}
    default: medium
  fault: {value: ours}
  customer.ref: {column: Account}
  customer.name: {column: Name}
  customer.email: {column: Email}
  customer.annual_value: {column: Spend, default: 0}
  costs.economic: {column: Lost, default: 0}
"""
HEADER = [
    "Ticket",
    "Via",
    "Opened",
    "Subject",
    "Priority",
    "Account",
    "Name",
    "Email",
    "Spend",
    "Lost",
]


def helpdesk(tmp_path: Path, rows: list[list[str]]) -> tuple[Path, IncidentMap]:
    file, map_file = tmp_path / "tickets.csv", tmp_path / "helpdesk.yaml"
    with file.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    map_file.write_text(HELPDESK_MAP, encoding="utf-8")
    return file, load_map(map_file)


def ticket(n: int, **cells: str) -> list[str]:
    opened = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    row = {
        "Ticket": f"T-{n}",
        "Via": "Email",
        "Opened": opened,
        "Subject": f"Parcel {n} arrived a week late",
        "Priority": "P3",
        "Account": f"A-{n}",
        "Name": f"Customer {n}",
        "Email": f"customer{n}@example.com",
        "Spend": "120",
        "Lost": "",
    } | cells
    return [row[name] for name in HEADER]


def count(rt: Runtime, model: type) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("sample", "shipped", "first_ref"),
    [
        ("cfpb_complaints_2013_300.csv", "cfpb.yaml", "CFPB-468882"),
        ("fcc_comcast_complaints_2015_300.csv", "fcc.yaml", "FCC-250635"),
    ],
)
def test_shipped_maps_file_real_exports_as_history_once_sending_nothing(
    rt: Runtime, sample: str, shipped: str, first_ref: str
) -> None:
    mapping = load_map(Path(str(MAPS / shipped)))
    report, awaiting = import_incidents(rt, DATA / sample, mapping)
    assert (report.added, report.history, report.refused, awaiting) == (300, 300, [], [])

    with rt.db.session() as session:
        case = session.scalar(
            select(models.Case).join(models.Incident).where(models.Incident.ref == first_ref)
        )
        assert case.history and case.state is CaseState.CLOSED and case.decision is None
        assert case.opened_at == case.incident.received_at  # its own timeline
        assert filed_incident(case).ref == first_ref  # read back, with no contact on file
        assert session.scalar(select(func.count()).select_from(models.StageOutcome)) == 0
    assert count(rt, models.Message) == 0

    period = Period(label="all", since=datetime(2013, 1, 1, tzinfo=UTC), until=datetime.now(UTC))
    figures = build_report(rt, period)
    assert figures.complaints == 300
    assert figures.first_response_breaches == 0 and figures.resolution_breaches == 0

    again, _ = import_incidents(rt, DATA / sample, mapping)
    assert (again.added, again.unchanged) == (0, 300)
    assert count(rt, models.Case) == 300


def test_cfpb_channels_come_from_the_maps_table(rt: Runtime) -> None:
    mapping = load_map(Path(str(MAPS / "cfpb.yaml")))
    rows = dict(
        (row.incident.ref, row.incident.channel)
        for _, row in read_rows(DATA / "cfpb_complaints_2013_300.csv", mapping, _sink())
    )
    with (DATA / "cfpb_complaints_2013_300.csv").open(encoding="utf-8") as handle:
        via = {f"CFPB-{r['complaint_id']}": r["submitted_via"] for r in csv.DictReader(handle)}
    expected = {"Postal mail": Channel.LETTER, "Phone": Channel.PHONE, "Web": Channel.WEB_FORM}
    for ref, submitted in via.items():
        if submitted in expected:
            assert rows[ref] is expected[submitted]


def _sink():  # type: ignore[no-untyped-def]
    from amends.storage.imports import ImportReport

    return ImportReport()


def test_history_keeps_when_each_complaint_was_answered_and_closed(
    rt: Runtime, tmp_path: Path
) -> None:
    file = tmp_path / "past.csv"
    file.write_text(
        "id,when,answered,closed,what\n"
        "1,2024-03-01 09:00,2024-03-01 15:00,2024-03-04 10:00,Broken kettle\n"
        "2,2024-03-02 09:00,2024-02-01 15:00,,Answered before it arrived\n",
        encoding="utf-8",
    )
    map_file = tmp_path / "past.yaml"
    map_file.write_text(
        "ref: {column: id, prefix: OLD-}\n"
        "timezone: Europe/Madrid\n"
        "history:\n"
        "  first_response_at: {column: answered}\n"
        "  closed_at: {column: closed}\n"
        "fields:\n"
        "  channel: {value: phone}\n"
        "  received_at: {column: when}\n"
        "  summary: {column: what}\n"
        "  category: {value: quality}\n"
        "  severity: {value: low}\n"
        "  fault: {value: ours}\n"
        "  customer.ref: {column: id, prefix: P-}\n"
        "  customer.name: {value: Past customer}\n",
        encoding="utf-8",
    )
    report, _ = import_incidents(rt, file, load_map(map_file))
    assert report.added == 1
    assert report.refused == [
        (3, "history.first_response_at: is before the complaint was received")
    ]
    with rt.db.session() as session:
        case = session.scalars(select(models.Case)).one()
        assert case.first_response_at == datetime(2024, 3, 1, 14, 0, tzinfo=UTC)  # CET
        assert case.closed_at == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    figures = build_report(
        rt,
        Period(
            label="March",
            since=datetime(2024, 3, 1, tzinfo=UTC),
            until=datetime(2024, 4, 1, tzinfo=UTC),
        ),
    )
    assert figures.first_response.median_hours == 6.0
    assert figures.first_response_breaches == 0


def test_a_helpdesk_export_runs_every_stage_and_queues_each_apology(
    rt: Runtime, tmp_path: Path
) -> None:
    file, mapping = helpdesk(
        tmp_path,
        [
            ticket(1),
            ticket(2, Via="Carrier pigeon"),
            ticket(3, Email="not an address"),
            ticket(4),
            ticket(5, Opened="2999-01-01T00:00:00+00:00"),
        ],
    )
    report, awaiting = import_incidents(rt, file, mapping)
    assert (report.added, awaiting) == (2, [])
    problems = dict(report.refused)
    assert sorted(problems) == [3, 4, 6]
    assert problems[3].startswith("channel: 'Carrier pigeon' (column Via) is not in the map's")
    assert problems[4].startswith("customer.email:")
    assert problems[6].startswith("received_at:") and "future" in problems[6]

    with rt.db.session() as session:
        done = session.scalars(
            select(models.StageOutcome.stage).where(models.StageOutcome.case_id.is_not(None))
        ).all()
        assert sorted(done).count(Stage.REENGAGE) == 2 and len(done) == 12
        apologies = session.scalars(
            select(models.Message.recipient).where(models.Message.kind == MessageKind.APOLOGY)
        ).all()
        assert sorted(apologies) == ["customer1@example.com", "customer4@example.com"]
    messages = count(rt, models.Message)

    again, _ = import_incidents(rt, file, mapping)
    assert (again.added, again.unchanged, len(again.refused)) == (0, 2, 3)
    assert count(rt, models.Message) == messages


def test_the_planner_sees_the_tables_an_import_grows(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A table that grew faster than autovacuum analyses it is planned as the small table it
    # was, each query reading all of it: PostgreSQL's statistics are taken after batches 1, 2,
    # 4, 8 and so on. Ten rows in batches of two: the last look is after the fourth batch.
    monkeypatch.setattr("amends.recovery.batch.BATCH", 2)
    file, mapping = helpdesk(tmp_path, [ticket(n) for n in range(1, 11)])
    report, _ = import_incidents(rt, file, mapping)
    assert report.added == 10
    with rt.db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            seen = connection.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE oid IN ('cases'::regclass, 'incidents'::regclass, 'customers'::regclass)"
            ).all()
            assert sorted(seen) == [("cases", 8), ("customers", 8), ("incidents", 8)]
        else:  # SQLite's planner uses the indexes without statistics: none are taken
            assert (
                connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"
                ).all()
                == []
            )


def test_an_offer_above_the_frontline_limit_waits_for_a_manager(
    rt: Runtime, tmp_path: Path
) -> None:
    file, mapping = helpdesk(tmp_path, [ticket(1), ticket(2, Spend="20000", Lost="2000")])
    report, awaiting = import_incidents(rt, file, mapping)
    assert report.added == 2 and len(awaiting) == 1
    with rt.db.session() as session:
        case = session.get(models.Case, awaiting[0])
        assert case.incident.ref == "T-2" and case.stage is Stage.EMPOWER
        approval = session.scalars(select(models.Approval)).one()
        assert approval.status == ApprovalStatus.PENDING
        other = session.scalar(
            select(models.Case).join(models.Incident).where(models.Incident.ref == "T-1")
        )
        assert other.stage is Stage.REENGAGE


def test_a_row_that_changed_since_it_was_filed_is_refused_not_overwritten(
    rt: Runtime, tmp_path: Path
) -> None:
    file, mapping = helpdesk(tmp_path, [ticket(1)])
    import_incidents(rt, file, mapping)
    changed, _ = helpdesk(tmp_path, [ticket(1, Subject="Another story entirely")])
    report, _ = import_incidents(rt, changed, mapping)
    assert report.added == 0
    assert (
        report.refused[0][0] == 2 and "already recorded with other details" in report.refused[0][1]
    )


def test_without_a_ref_column_the_same_row_gets_the_same_ref(rt: Runtime, tmp_path: Path) -> None:
    file, _ = helpdesk(tmp_path, [ticket(1), ticket(2)])
    map_file = tmp_path / "noref.yaml"
    map_file.write_text(HELPDESK_MAP.replace("ref: {column: Ticket}\n", ""), encoding="utf-8")
    mapping = load_map(map_file)
    first, _ = import_incidents(rt, file, mapping)
    again, _ = import_incidents(rt, file, mapping)
    assert (first.added, again.added, again.unchanged) == (2, 0, 2)
    with rt.db.session() as session:
        refs = session.scalars(select(models.Incident.ref)).all()
    assert all(ref.startswith("ROW-") for ref in refs)


def test_a_dry_run_writes_nothing(rt: Runtime, tmp_path: Path) -> None:
    file, mapping = helpdesk(tmp_path, [ticket(1), ticket(2, Via="Fax machine")])
    report = dry_run(rt, file, mapping)
    assert (report.added, [line for line, _ in report.refused]) == (1, [3])
    assert count(rt, models.Case) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "fields:\n  channel: {value: email}\n  colour: {value: red}\n",
            "line 3: fields.colour: unknown incident field",
        ),
        (
            HELPDESK_MAP.replace("summary: {column: Subject}", "summary: {column: S, value: x}"),
            "line 7: fields.summary: give exactly one of column, value or template",
        ),
        (
            HELPDESK_MAP.replace("{Subject} (priority", "{Subject.__class__} (priority"),
            "line 8: fields.details.template: {Subject.__class__}: a template names whole",
        ),
        (HELPDESK_MAP.replace("  fault: {value: ours}\n", ""), "the map must fill fault"),
        ("timezone: Mars/Olympus\n" + HELPDESK_MAP, "line 1: timezone: 'Mars/Olympus'"),
        ("- just\n- a list\n", "a map is a YAML mapping"),
    ],
)
def test_a_wrong_map_is_refused_naming_its_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    map_file = tmp_path / "map.yaml"
    map_file.write_text(text, encoding="utf-8")
    with pytest.raises(MapError) as refused:
        load_map(map_file)
    assert expected in str(refused.value)


def test_a_file_without_a_column_the_map_names_files_nothing(rt: Runtime, tmp_path: Path) -> None:
    file, mapping = helpdesk(tmp_path, [ticket(1)])
    file.write_text(file.read_text().replace("Priority", "Urgency"), encoding="utf-8")
    with pytest.raises(ImportFileError, match="names column 'Priority', which the file does not"):
        import_incidents(rt, file, mapping)
    assert count(rt, models.Case) == 0


def test_hostile_cells_are_refused_with_their_line(rt: Runtime, tmp_path: Path) -> None:
    file, mapping = helpdesk(
        tmp_path,
        [
            ticket(1, Subject="Late\x1b[31m parcel"),
            ticket(2, Name='=HYPERLINK("http://evil")'),
            ticket(3, Ticket="../../etc/passwd"),
        ],
    )
    report, _ = import_incidents(rt, file, mapping)
    problems = dict(report.refused)
    assert problems[2] == "Subject: must not contain control characters"
    assert problems[4].startswith("ref:")
    # A formula is only text here: it reaches no spreadsheet unescaped (see reporting).
    assert report.added == 1


def test_a_case_whose_stage_fails_is_reported_and_the_batch_goes_on(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amends.errors import AmendsError
    from amends.recovery import stages

    follow_up = stages.STAGES[Stage.FOLLOW_UP]

    def failing(step: stages.Step):  # type: ignore[no-untyped-def]
        if step.incident.ref == "T-2":
            raise AmendsError("the mail template broke")
        return follow_up(step)

    monkeypatch.setitem(stages.STAGES, Stage.FOLLOW_UP, failing)
    file, mapping = helpdesk(tmp_path, [ticket(1), ticket(2), ticket(3)])
    report, _ = import_incidents(rt, file, mapping)
    assert report.added == 3
    assert report.refused == [(3, "filed; follow_up failed: the mail template broke")]
    with rt.db.session() as session:
        stage_of = dict(
            session.execute(select(models.Incident.ref, models.Case.stage).join(models.Case)).all()
        )
        to = session.scalars(select(models.Message.recipient)).all()
    assert stage_of == {"T-1": Stage.REENGAGE, "T-2": Stage.REPORT, "T-3": Stage.REENGAGE}
    assert "customer2@example.com" not in to and "customer3@example.com" in to


def test_an_import_interrupted_before_the_stages_resumes_them(rt: Runtime, tmp_path: Path) -> None:
    from amends.recovery.batch import IncidentImport, file_batch

    file, mapping = helpdesk(tmp_path, [ticket(1), ticket(2)])
    filed, _ = file_batch(rt, list(read_rows(file, mapping, IncidentImport())))
    assert filed.added == 2  # and the process stopped here

    report, _ = import_incidents(rt, file, mapping)
    assert (report.added, report.unchanged) == (0, 2)
    with rt.db.session() as session:
        assert set(session.scalars(select(models.Case.stage))) == {Stage.REENGAGE}
    assert count(rt, models.Message) == 4
