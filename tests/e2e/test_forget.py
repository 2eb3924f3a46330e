"""``amends forget`` leaves nothing of the customer in Prefect or in amends' data folder: an
incident filed with ``amends incident`` against a real Prefect server (its run taken in and
scrubbed) and another filed as the UI's form does and never run (its parameters still whole),
then ``forget``; then Prefect's database (a SQLite file; a PostgreSQL-backed server), its
folder (result storage) and amends' data folder are searched for the customer's name, email,
phone, address and handle.

amends' suppression list keeps the addresses it suppresses (an opt-out outlives the customer),
so its rows are left out of the search. Prefect's SQLite file is read row by row (a dump), not
byte by byte: SQLite keeps freed pages until the file is vacuumed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from e2e.prefect_server import PrefectServer, prefect_server
from factories import incident_data
from sqlalchemy.engine import make_url

from amends.delivery.mailcatcher import MailCatcher

pytestmark = pytest.mark.e2e

# The customer of incident_data, in the spellings they are stored in.
PERSONAL = ["Rodolfo", "rk@example", "+34612345678", "612 345 678", "Calle Mayor", "@rk"]


def _found(text: str) -> list[str]:
    return [detail for detail in PERSONAL if detail.lower() in text.lower()]


def _sqlite_rows(path: Path, skip_table: str | None = None) -> str:
    """Every row of a SQLite database, as SQL text (the tables ``skip_table`` left out)."""
    connection = sqlite3.connect(path)
    try:
        lines = connection.iterdump()
        return "\n".join(
            line for line in lines if not (skip_table and f'INTO "{skip_table}"' in line)
        )
    finally:
        connection.close()


def _prefect_database(server: PrefectServer, database: str) -> str:
    if database == "sqlite":
        return _sqlite_rows(server.home / "prefect.db")
    url = make_url(server.database_url)
    done = subprocess.run(
        ["pg_dump", "--data-only", "-h", url.host, "-p", str(url.port or 5432),
         "-U", url.username or "postgres", url.database],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout


def _files(folder: Path, leave_out: set[str]) -> str:
    """The bytes of every file under ``folder`` (but those named in ``leave_out``), as text."""
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in folder.rglob("*")
        if path.is_file() and path.name not in leave_out
    )


def _traces(server: PrefectServer, database: str, home: Path) -> dict[str, list[str]]:
    sqlite_files = {"prefect.db", "prefect.db-wal", "prefect.db-shm"}
    amends_files = {"amends.db", "amends.db-wal", "amends.db-shm"}
    return {
        "prefect database": _found(_prefect_database(server, database)),
        "prefect folder": _found(_files(server.home, sqlite_files)),
        "amends database": _found(_sqlite_rows(home / "amends.db", skip_table="suppressions")),
        "amends folder": _found(_files(home, amends_files)),
    }


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_after_forget_nothing_of_the_customer_is_left(tmp_path: Path, database: str) -> None:
    home = tmp_path / "amends"
    with (
        MailCatcher(home / "mail") as catcher,
        prefect_server(tmp_path, database=database) as server,
    ):
        env = {**server.env, "AMENDS_HOME": str(home), "AMENDS_SMTP_PORT": str(catcher.port)}
        server.run("amends", "db", "upgrade", env=env)
        filed = tmp_path / "incident.json"
        filed.write_text(json.dumps(incident_data(ref="FORGET-1")))
        server.run("amends", "incident", str(filed), env=env)
        [run] = server.flow_runs("recover-incident")
        assert run["name"] == "FORGET-1" and run["parameters"]["incident"] is None
        # Filed from the form, and no worker took it yet: the parameters are whole.
        form = incident_data(ref="FORGET-2", complaint_message_id="<forget-2@customer.example>")
        server.api("POST", "/flow_runs/", flow_id=run["flow_id"], parameters={"incident": form},
                   state={"type": "SCHEDULED"})  # fmt: skip
        before = _traces(server, database, home)
        assert before["prefect database"] and before["amends database"], before

        out = server.run("amends", "forget", "C-42", "--yes", env=env)
        assert "2 flow run(s)" in out, out
        # Prefect deletes a deleted run's logs in the background, soon after.
        deadline = time.monotonic() + 60
        while (left := _traces(server, database, home)) != {k: [] for k in left}:
            assert time.monotonic() < deadline, left
            time.sleep(1)
        assert server.flow_runs("recover-incident") == []
