"""Scale-out as the README's section runs it: a Prefect server and amends' database on
PostgreSQL, the installed deployments (amends deploy), and two process
workers, started outside any clone, sharing the work. Incidents come in at once, through the
deployment and through the incident event, beside a nightly run; every case is recovered once
and every message reaches the SMTP server once.
"""

from __future__ import annotations

import email
import json
import re
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from e2e.prefect_server import BIN, fresh_database, prefect_server, start, stop
from factories import incident_data
from sqlalchemy import create_engine, select

from amends.delivery.mailcatcher import MailCatcher
from amends.domain import MessageKind, MessageStatus, Stage
from amends.storage import models

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

INCIDENTS = 5  # the last one through the event; each gets an apology and an invitation
WORKERS = ("one", "two")
ACQUIRED = "prefect.concurrency-limit.acquired"


def _incident_files(folder: Path) -> list[Path]:
    folder.mkdir()
    files = []
    for n in range(INCIDENTS):
        data = incident_data(
            ref=f"SCALE-{n}",
            complaint_message_id=f"<scale-{n}@customer.example>",
            customer={"ref": f"C-S{n}", "email": f"customer{n}@example.com"},
        )
        files.append(folder / f"incident-{n}.json")
        files[-1].write_text(json.dumps(data))
    return files


def _taken_by(log: Path) -> set[str]:
    """The flow runs a worker's log says it took: those it tried to, but for those the server
    refused it because another worker had them already."""
    text = log.read_text()
    tried = set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", text))
    return tried - set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text))


def test_two_workers_share_the_work_and_each_message_goes_out_once(tmp_path: Path) -> None:
    with (
        fresh_database("amends_e2e") as amends_url,
        MailCatcher(tmp_path / "caught") as catcher,
        prefect_server(tmp_path) as server,
        ExitStack() as clients,
    ):
        amends = {
            "AMENDS_HOME": str(tmp_path / "var"),
            "AMENDS_DATABASE_URL": amends_url,
            "AMENDS_SMTP_PORT": str(catcher.port),
        }
        env = {**server.env, **amends}
        server.run("amends", "db", "upgrade", env=env)
        server.deploy()
        # The shared rate limit every send takes a slot of (generous: this checks it works).
        server.run("prefect", "gcl", "create", "amends-smtp", "--limit", "5",
                   "--slot-decay-per-second", "50")  # fmt: skip
        for name in WORKERS:
            server.worker(name, amends)

        *by_deployment, by_event = _incident_files(tmp_path / "incidents")
        commands = [[BIN / "amends", "incident", str(f), "--via-deployment"] for f in by_deployment]
        commands.append([BIN / "amends", "incident", str(by_event), "--via-event"])
        commands.append([BIN / "prefect", "deployment", "run",
                         "nightly-reengagement/nightly-reengagement"])  # fmt: skip
        started = []
        for n, command in enumerate(commands):
            log = server.logs / f"client-{n}.log"
            started.append((start([str(part) for part in command], env, log), log))
            clients.callback(stop, started[-1][0])
        for process, log in started:
            assert process.wait(300) == 0, log.read_text()

        incidents = server.wait_for_runs("recover-incident", INCIDENTS)
        nights = server.wait_for_runs("nightly-reengagement", 1)
        runs = incidents + nights
        assert [r["state_type"] for r in runs] == ["COMPLETED"] * len(runs), [
            (r["name"], r["state"]["message"]) for r in runs
        ]
        # One run per incident, the event's included, each named after its incident.
        assert sorted(r["name"] for r in incidents) == [f"SCALE-{n}" for n in range(INCIDENTS)]

        # Both workers took runs, and no run was taken by both.
        taken = [_taken_by(server.worker_log(name)) for name in WORKERS]
        assert all(taken), f"runs per worker: {[len(t) for t in taken]}"
        assert not set.intersection(*taken)
        assert set.union(*taken) == {r["id"] for r in runs}

        engine = create_engine(amends_url)
        with engine.connect() as connection:
            cases = connection.execute(
                select(models.Incident.ref, models.Case.stage).join(
                    models.Case, models.Case.incident_id == models.Incident.id
                )
            ).all()
            messages = connection.execute(
                select(models.Message.case_id, models.Message.kind, models.Message.message_id)
                .where(models.Message.status == MessageStatus.SENT)
            ).all()  # fmt: skip
        engine.dispose()
        # Every case went through every stage, once (a stage outcome is unique per case).
        assert sorted(cases) == [(f"SCALE-{n}", Stage.REENGAGE) for n in range(INCIDENTS)]
        kinds = Counter(kind for _, kind, _ in messages)
        assert kinds[MessageKind.APOLOGY] == kinds[MessageKind.CHECKIN_INVITATION] == INCIDENTS

        # What the SMTP server received: each sent message exactly once, nothing else.
        received = Counter(
            email.message_from_bytes(path.read_bytes())["Message-ID"] for path in catcher.messages()
        )
        assert received == Counter(message_id for _, _, message_id in messages)

        # Each send took a slot of the shared rate limit (events are recorded a moment later).
        deadline = time.monotonic() + 30
        while server.events(ACQUIRED) < len(messages) and time.monotonic() < deadline:
            time.sleep(1)
        assert server.events(ACQUIRED) == len(messages)
