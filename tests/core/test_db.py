"""Migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from amends import models
from amends.db import Database
from amends.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    assert db.upgrade() == ["0001", "0002", "0003", "0004"]
    assert db.is_current() and db.upgrade() == []
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
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
    assert db.upgrade() == ["0002", "0003", "0004"]
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


def test_the_core_never_imports_prefect() -> None:
    modules = [
        "approvals", "assess", "casebook", "channels", "checkins", "cli", "db", "demo", "domain",
        "empower", "errors", "intake", "mailcatcher", "mentions", "models", "outbox", "policy",
        "recovery", "rendering", "runtime", "settings",
    ]  # fmt: skip
    code = (
        "import sys\n"
        + "".join(f"import amends.{name}\n" for name in modules)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
