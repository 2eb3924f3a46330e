"""One incident's own work as the business's history grows: it must not slow with the years.

    .venv/bin/python bench/history.py [--sizes 0 50000 200000] [--runs 5] [--sqlite] [--recent]

Fills amends' database (a scratch PostgreSQL schema of AMENDS_TEST_POSTGRES_URL by default, or
a SQLite file with ``--sqlite``) with past cases received 31 days to two years ago (with
``--recent``, in the last 29 days: the period the figures view covers) (each customer's, closed
or open, with two sent messages), size by size, and after each measures
amends' own work for a new incident without Prefect (``bench/incident.py``'s: take-in, the six
stages, delivery to a loopback catcher, the case summary and the five views, whose figures
cover the last 30 days). Prints the median per size (goal: flat).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from e2e.prefect_server import POSTGRES_URL  # noqa: E402
from scratch import scratch_database  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from amends.delivery.mailcatcher import MailCatcher  # noqa: E402
from amends.settings import Settings  # noqa: E402
from amends.storage.db import Database  # noqa: E402


def add_history(engine: Engine, count: int, *, recent: bool = False) -> None:
    """``count`` past cases in bulk (not through the stages: only their rows matter here),
    received 31 days to two years ago, or with ``recent`` 1 to 29 days ago."""
    from sqlalchemy import func, insert, select

    from amends.domain import (
        CaseState,
        Category,
        Channel,
        Decision,
        Fault,
        MessageKind,
        MessageStatus,
        ReplyChannel,
        Severity,
        Stage,
    )  # fmt: skip
    from amends.storage import models

    if count <= 0:
        return
    now = models.utcnow()
    first, days = (1, 29) if recent else (31, 700)
    with engine.begin() as connection:
        # Ids above any taken (PostgreSQL's sequences stay far below them; SQLite goes on
        # from the largest), shared by each past case's customer, incident and case.
        taken = max(
            connection.scalar(select(func.coalesce(func.max(table.id), 0)))
            for table in (models.Customer, models.Incident, models.Case)
        )
        ids = range(max(taken + 1, 10_000_000), max(taken + 1, 10_000_000) + count)
        connection.execute(
            insert(models.Customer.__table__),
            [{"id": i, "ref": f"PAST-{i}", "name": "Past customer", "email": f"p{i}@example.com",
              "locale": "en", "annual_value": 500.0} for i in ids],
        )  # fmt: skip
        connection.execute(
            insert(models.Incident.__table__),
            [{"id": i, "ref": f"PAST-{i}", "customer_id": i, "channel": Channel.EMAIL,
              "received_at": now - timedelta(days=first + i % days), "summary": "Late delivery",
              "details": "", "category": Category.LATE_DELIVERY, "severity": Severity.LOW,
              "fault": Fault.OURS, "abusive": False, "costs": {}, "payload": {},
              "created_at": now} for i in ids],
        )  # fmt: skip
        connection.execute(
            insert(models.Case.__table__),
            [{"id": i, "incident_id": i, "customer_id": i,
              "state": CaseState.OPEN if i % 3 == 0 else CaseState.CLOSED,
              "stage": Stage.REENGAGE, "decision": Decision.RECOVER,
              "reply_channel": ReplyChannel.EMAIL, "first_response_due": now, "opened_at": now,
              "updated_at": now, "closed_at": now, "history": False} for i in ids],
        )  # fmt: skip
        connection.execute(
            insert(models.Message.__table__),
            [{"customer_id": i, "case_id": i, "key": f"past-{i}-{kind.value}",
              "stage": Stage.FOLLOW_UP, "kind": kind, "channel": ReplyChannel.EMAIL,
              "recipient": f"p{i}@example.com", "subject": "Sorry", "body": "<p>Sorry</p>",
              "status": MessageStatus.SENT, "attempts": 1, "unconfirmed": 0, "created_at": now,
              "sent_at": now}
             for i in ids for kind in (MessageKind.APOLOGY, MessageKind.CHECKIN_INVITATION)],
        )  # fmt: skip
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 50_000, 200_000])
    parser.add_argument("--runs", type=int, default=5, help="incidents per size (default 5)")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    parser.add_argument(
        "--recent", action="store_true", help="past cases of the last 29 days, not older ones"
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="amends-bench-history-") as folder,
        scratch_database(None if args.sqlite else POSTGRES_URL, "_history") as url,
        MailCatcher(Path(folder) / "mail") as catcher,
    ):
        os.environ.update(AMENDS_HOME=str(Path(folder) / "var"), AMENDS_SMTP_PORT=str(catcher.port))
        if url is not None:
            os.environ["AMENDS_DATABASE_URL"] = url
        from incident import own_work

        from amends.runtime import runtime

        database = Database(url or Settings().sqlalchemy_url)
        database.upgrade()
        rt = runtime()
        numbers, filled = itertools.count(1), 0
        own_work(next(numbers))  # warm-up: imports, templates, first connections
        print(f"database: {rt.db.engine.dialect.name}")
        for size in sorted(args.sizes):
            add_history(database.engine, size - filled, recent=args.recent)
            filled = size
            seconds = []
            for _ in range(args.runs):
                started = time.perf_counter()
                own_work(next(numbers))
                seconds.append(time.perf_counter() - started)
            print(f"past cases {size:>8,}   own work per incident  median "
                  f"{statistics.median(seconds) * 1000:6.0f} ms", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
