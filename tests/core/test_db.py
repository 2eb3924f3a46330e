"""Migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from amends.db import Database
from amends.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    assert db.upgrade() == ["0001"]
    assert db.is_current() and db.upgrade() == []
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    db.dispose()


def test_the_core_never_imports_prefect() -> None:
    modules = [
        "assess", "casebook", "channels", "checkins", "cli", "db", "demo", "domain", "empower",
        "errors", "intake", "mailcatcher", "mentions", "models", "outbox", "policy", "recovery",
        "rendering", "runtime", "settings",
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
