"""Migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from amends.delivery.outbox import installation_identifier, message_id_for
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.db import MIGRATIONS, Database, head_revision
from amends.storage.models import Base


# SQLite's reflection skips expression indexes (ix_customers_lower_ref); PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    assert db.upgrade() == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
    ]
    assert db.is_current() and db.upgrade() == []
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    db.dispose()


def test_the_head_revision_read_from_the_file_names_is_alembic_s(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert head_revision() == script.get_current_head()
    # Each script is named after its revision, which the head's reading relies on.
    assert all(rev.module.__file__.rsplit("/", 1)[1][:4] == rev.revision
               for rev in script.walk_revisions())  # fmt: skip
    db = Database(database_url)
    assert db.revision() is None and not db.is_current()
    config = db._alembic()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
    assert db.revision() == "0010" and not db.is_current()
    assert db.upgrade() == ["0011"]
    assert db.revision() == head_revision() == "0011" and db.is_current()
    db.dispose()


def test_0002_keeps_each_incident_s_fault(database_url: str) -> None:
    db = Database(database_url)
    config = db._alembic()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO customers (id, ref, name, locale, annual_value, created_at, "
                "updated_at) VALUES (1, 'C-1', 'Ann', 'en', 0, :now, :now)"
            ),
            {"now": "2026-11-01 10:00:00+00:00"},
        )
        for number, ours in ((1, True), (2, False)):
            connection.execute(
                text(
                    "INSERT INTO incidents (id, ref, customer_id, channel, received_at, summary, "
                    "details, category, severity, our_fault, abusive, costs, payload, created_at) "
                    "VALUES (:id, :ref, 1, 'email', :now, 'Late', '', 'other', 'low', :ours, "
                    "false, '{}', :payload, :now)"
                ),
                {
                    "id": number,
                    "ref": f"INC-{number}",
                    "ours": ours,
                    "now": "2026-11-01",
                    "payload": json.dumps({"ref": f"INC-{number}", "our_fault": ours}),
                },
            )
    assert db.upgrade() == [
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
    ]
    with db.engine.connect() as connection:
        faults = connection.execute(text("SELECT ref, fault FROM incidents ORDER BY id")).all()
    assert [tuple(row) for row in faults] == [("INC-1", "ours"), ("INC-2", "customer")]
    with db.engine.connect() as connection:
        payloads = connection.execute(select(models.Incident.payload).order_by(models.Incident.id))
        assert [p for (p,) in payloads] == [  # the incident as filed resumes in the new shape
            {"ref": "INC-1", "fault": "ours"},
            {"ref": "INC-2", "fault": "customer"},
        ]
    db.dispose()


# A customer, an incident and its case as every revision since 0001 can hold them.
CASE_3_OF_CUSTOMER_7 = (
    "INSERT INTO customers (id, ref, name, locale, annual_value, do_not_contact, "
    "unanswered_calls, created_at, updated_at) VALUES (7, 'C-7', 'Ann', 'en', 0, false, "
    "0, :now, :now)",
    "INSERT INTO incidents (id, ref, customer_id, channel, received_at, summary, details, "
    "category, severity, fault, abusive, costs, payload, created_at) VALUES (1, 'INC-1', "
    "7, 'email', :now, 'Late', '', 'other', 'low', 'ours', false, '{}', '{}', :now)",
    "INSERT INTO cases (id, incident_id, customer_id, state, reply_channel, "
    "first_response_due, opened_at, updated_at) VALUES (3, 1, 7, 'open', 'email', :now, "
    ":now, :now)",
)


def test_0004_gives_each_message_and_staff_action_its_case_s_customer(database_url: str) -> None:
    db = Database(database_url)
    config = db._alembic()
    now = "2026-11-01 10:00:00+00:00"
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        for statement in (
            *CASE_3_OF_CUSTOMER_7,
            "INSERT INTO messages (id, case_id, key, stage, kind, channel, recipient, subject, "
            "body, status, attempts, created_at) VALUES (1, 3, 'k', 'follow_up', 'apology', "
            "'email', 'a@example.com', '', 'Sorry', 'sent', 1, :now)",
            "INSERT INTO staff_actions (id, case_id, key, kind, role, instructions, status, "
            "created_at) VALUES (1, 3, 'a', 'call_back', 'frontline', 'Call', 'open', :now)",
        ):
            connection.execute(text(statement), {"now": now})
    assert db.upgrade() == ["0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011"]
    with db.engine.connect() as connection:
        for table in ("messages", "staff_actions"):
            owner = connection.execute(text(f"SELECT customer_id, case_id FROM {table}")).one()
            assert tuple(owner) == (7, 3)
    db.dispose()


def test_0004_downgrades_with_a_winback_letter_waiting_for_staff(
    rt: Runtime,
) -> None:
    from datetime import date

    from amends.nightly.reengagement import run_night

    with rt.db.session() as session:
        session.add(
            models.Customer(
                ref="C-1", name="Ann", postal_address="Calle Mayor 12", preferred_channel="letter",
                last_purchase_on=date(2025, 1, 1),
            )
        )  # fmt: skip
    assert run_night(rt).done == 1  # a letter, and the action to print it
    config = rt.db._alembic()
    with rt.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    with rt.db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM messages")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM staff_actions")).scalar() == 0


def test_0007_names_the_installation_and_keeps_every_id_that_went_out(database_url: str) -> None:
    db = Database(database_url)
    config = db._alembic()
    now = "2026-11-01 10:00:00+00:00"
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        for statement in (*CASE_3_OF_CUSTOMER_7,):
            connection.execute(text(statement), {"now": now})
        for id_, status, attempts in [(1, "sent", 1), (2, "queued", 1), (3, "queued", 0)]:
            connection.execute(
                text(
                    "INSERT INTO messages (id, customer_id, case_id, key, stage, kind, channel, "
                    "recipient, subject, body, message_id, status, attempts, created_at) VALUES "
                    "(:id, 7, 3, :key, 'follow_up', 'apology', 'email', 'a@example.com', '', "
                    "'Sorry', :message_id, :status, :attempts, :now)"
                ),
                {
                    "id": id_,
                    "key": f"k{id_}",
                    "message_id": f"<d{id_}.amends@acme.example>",
                    "status": status,
                    "attempts": attempts,
                    "now": now,
                },
            )
    assert db.upgrade() == ["0007", "0008", "0009", "0010", "0011"]
    with db.session() as session:
        installation = installation_identifier(session)
        ids = dict(session.execute(select(models.Message.id, models.Message.message_id)).all())
    assert len(installation) == 16
    # Sent, or tried (it may have reached the server): the id it went out with.
    assert (ids[1], ids[2]) == ("<d1.amends@acme.example>", "<d2.amends@acme.example>")
    # Never tried: the new form, with this installation's identifier.
    assert ids[3] == message_id_for("k3", "care@acme.example", installation=installation)
    db.dispose()
