"""Privacy: masking for shared screens, a customer's export, and forgetting them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from factories import recover
from sqlalchemy import select

from amends.delivery.consent import suppress
from amends.domain import Stage
from amends.errors import AmendsError, NotFound
from amends.listening.mentions import PublicPost, record_posts
from amends.nightly.aftercare import record_exit_answers
from amends.nightly.reengagement import run_night
from amends.privacy import (
    ERASED,
    export,
    forget,
    forget_report_rows,
    mask,
    mask_address,
    mask_email,
    mask_handle,
    mask_name,
    mask_phone,
    personal_details,
    redact,
)
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.imports import import_customers

PERSONAL = ("Rodolfo", "rk@example.com", "+34612345678", "Calle Mayor", "Cleaning crew missed")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("550 <rk@example.com>: no such user", "550 <r***@***>: no such user"),
        ("Call +34 612 345 678 today", "Call +34***678 today"),
        ("Call +34612345678.", "Call +34***678."),
        (
            "Case INC-1001 on 2026-11-22 for 600.00 EUR",
            "Case INC-1001 on 2026-11-22 for 600.00 EUR",
        ),
    ],
)
def test_mask_hides_addresses_and_numbers_and_nothing_else(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_export_gives_a_customer_everything_held_about_them(rt: Runtime) -> None:
    recover(rt)
    record_exit_answers(rt, "C-42", {"why": "Prices went up"}, actor="dana")
    data = json.loads(json.dumps(export(rt.db, "C-42")))
    assert data["customer"]["email"] == "rk@example.com"
    assert [i["ref"] for i in data["incidents"]] == ["INC-1001"]
    assert {m["kind"] for m in data["messages"]} == {"apology", "checkin_invitation"}
    assert len(data["checkins"]) == 5 and data["timeline"] and data["offers"]
    assert [a["why"] for a in data["exit_answers"]] == ["Prices went up"]
    with pytest.raises(NotFound):
        export(rt.db, "C-404")


def test_forget_erases_every_trace_and_keeps_the_figures(rt: Runtime, tmp_path: Path) -> None:
    case_id = recover(rt, customer={"addressed_as": "Don Rodolfo"})
    recover(rt, ref="INC-1002", channel="letter", complaint_message_id=None, severity="low")
    suppress(rt.db, "rk@example.com", scope="marketing", reason="opt_out")
    record_exit_answers(
        rt, "C-42", {"stay": "Rodolfo: if the Cleaning crew missed less"}, actor="dana"
    )
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "1.eml").write_text("To: rk@example.com\n\nSorry, Rodolfo")
    (mail / "2.eml").write_text("To: someone@example.com\n\nHello")
    with rt.db.session() as session:
        files = [
            Path(m.attachment) for m in session.scalars(select(models.Message)) if m.attachment
        ]
    assert files and all(path.is_file() for path in files)

    assert forget(rt.db, "C-42", mail_dir=mail) == len(files) + 1
    assert not any(path.exists() for path in files)
    assert sorted(p.name for p in mail.iterdir()) == ["2.eml"]
    with rt.db.session() as session:
        for table in models.Base.metadata.sorted_tables:
            if table.name == "suppressions":
                continue  # kept on purpose: an opt-out outlives the customer
            for row in session.execute(select(table)):
                for word in PERSONAL:
                    assert word not in repr(tuple(row)), (table.name, word)
        case = session.get(models.Case, case_id)
        assert (case.decision, case.incident.severity, case.incident.costs["economic"]) == (
            "recover",
            "high",
            450.0,
        )
        assert session.scalar(select(models.Offer.value).filter_by(case_id=case_id)) > 0
        customer = session.scalars(select(models.Customer)).one()
        assert (customer.name, customer.do_not_contact) == ("Forgotten customer", True)
        suppressed = session.execute(select(models.Suppression.address, models.Suppression.scope))
        assert {tuple(row) for row in suppressed} == {
            ("rk@example.com", "marketing"),
            ("rk@example.com", "all"),
            ("+34612345678", "all"),
        }
        assert ERASED in {e.text for e in session.scalars(select(models.CaseEvent))}
    # What staff read of the case still reads, by its ref and its number, without the words.
    for ref in ("INC-1001", case_id):
        outcome = case_outcome(rt.db, ref)
        assert outcome.decision == "recover"
        assert outcome.reasons and not any(word in " ".join(outcome.reasons) for word in PERSONAL)


def test_their_posts_are_found_as_the_monitor_stage_finds_them(rt: Runtime) -> None:
    # A post read before the customer was known (so linked to no one), under "@RK" on the
    # network, while the business's records say "rk": the same person.
    record_posts(
        rt.db,
        [
            PublicPost(
                platform="twitter",
                handle="@RK",
                url="https://twitter.example/rk/2",
                text="Lovely sunny morning in the office today.",
                posted_at="2026-11-21T10:00:00Z",
            )
        ],
        rt.policy.listening,
    )
    recover(rt)
    with rt.db.session() as session:
        session.execute(models.Customer.__table__.update().values(social_handle="rk"))
        assert session.scalars(select(models.Mention.customer_id)).all() == [None]
    assert [p["url"] for p in export(rt.db, "C-42")["public_posts"]] == [
        "https://twitter.example/rk/2"
    ]


def test_a_forgotten_customer_is_never_written_to_again(rt: Runtime, tmp_path: Path) -> None:
    case_id = recover(rt)
    record_posts(
        rt.db,
        [
            PublicPost(
                platform="twitter",
                handle="@RK",  # as the network spells it: the monitor matches in any case
                url="https://twitter.example/rk/1",
                text="Rodolfo here: four days without cleaning!",
                posted_at="2026-11-20T10:00:00Z",
            )
        ],
        rt.policy.listening,
    )
    forget(rt.db, "C-42")
    with rt.db.session() as session:
        assert session.scalars(select(models.Mention.text)).all() == [ERASED]
    # Imported again from the business's own systems: still never written to.
    path = tmp_path / "customers.csv"
    path.write_text("ref,name,email\nC-42,Rodolfo K.,rk@example.com\n")
    import_customers(rt.db, path)
    with rt.db.session() as session:
        session.execute(
            models.Customer.__table__.update().values(last_purchase_on=date(2025, 1, 1))
        )
    assert run_night(rt).done == 0  # lapsed, but their address is suppressed
    with pytest.raises(AmendsError, match="data was erased"):
        run_stage(rt, case_id, Stage.REENGAGE)


def test_each_detail_has_its_mask() -> None:
    assert mask_name("Rodolfo K.") == "R*** K***"
    assert mask_handle("@rodolfo_k") == "@r***"
    assert mask_address("Calle Mayor 12, 28013 Madrid") == "***, 28013 Madrid"
    assert mask_email("rk@example.com") == "r***@***"
    assert mask_phone("+34612345678") == "+34***678"


def test_redact_hides_one_customers_details_however_written() -> None:
    details = personal_details(
        "Rodolfo K.", "rk@example.com", "+34612345678", "Calle Mayor 12\nMadrid", "@rk"
    )
    text = (
        "Call RODOLFO K\\. on +34612345678, write to Calle  Mayor 12, Madrid and reply to "
        "@rk (rk@example\\.com); the work is late."
    )
    redacted = redact(text, details)
    for detail in ("odolfo", "612345", "Mayor", "@rk", "rk@"):
        assert detail.lower() not in redacted.lower()
    # The town stays (no one is found by it), and so do words that merely contain a handle.
    assert "Madrid" in redacted and "work" in redacted


def test_forget_drops_their_quotes_from_the_reports(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "2026-11"
    folder.mkdir(parents=True)
    feedback = folder / "feedback.csv"
    feedback.write_text(
        "theme,source,customer_ref,recorded_at,text\n"
        "late,checkin,C-42,2026-11-20T09:00:00+00:00,Still late for Rodolfo\n"
        "late,checkin,C-7,2026-11-21T09:00:00+00:00,Better now\n",
        encoding="utf-8",
    )
    assert forget_report_rows(tmp_path / "reports", "C-42") == 1
    text = feedback.read_text(encoding="utf-8")
    assert "C-42" not in text and "Rodolfo" not in text and "C-7" in text
    assert forget_report_rows(tmp_path / "reports", "C-42") == 0  # nothing left to drop
