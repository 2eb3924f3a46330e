"""Latency of one incident: the recover-incident flow beside an empty six-task flow.

    .venv/bin/python bench/incident.py [--runs 20] [--heartbeat]

Starts a Prefect server on a fresh PostgreSQL database (tests/e2e/prefect_server.py, the
end-to-end tests' start-up), puts amends' own database on a fresh PostgreSQL schema and its
mail on a loopback SMTP catcher, then calls both flows in this process with PREFECT_API_URL
pointing at that server, alternating, ``--runs`` times each (the tests' incident with a new
customer every run, after one warm-up of each). Prints both medians and their ratio (goal: at
most 1.2). PostgreSQL is that of AMENDS_TEST_POSTGRES_URL (default 127.0.0.1:5432, database
test).

The incident runs as ``amends incident`` runs it (``amends.runner.run_incident``), and the empty
flow with the same settings (flows/in_process.py); ``--heartbeat`` calls both flows plainly,
with Prefect's flow-run heartbeat on, as before the fixes, to compare.

A third measure runs amends' own work for an incident without Prefect, on the same databases
and mail server: take-in, the six stages, delivery, and the case summary and five views made
ready (not sent to the API). No change to the flow can bring the ratio below
(empty + own work) / empty: it prints that floor too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]  # scratch.py, factories, e2e

from e2e.prefect_server import POSTGRES_URL, clean_env, prefect_server  # noqa: E402
from factories import make_incident  # noqa: E402
from scratch import scratch_database  # noqa: E402

from amends.delivery.mailcatcher import MailCatcher  # noqa: E402
from amends.domain import Incident  # noqa: E402


def incident(number: int) -> Incident:
    """The tests' incident, with a customer of its own for run ``number``: a new case each run."""
    return make_incident(
        ref=f"INC-BENCH-{number}",
        complaint_message_id=f"<complaint-{number}@customer.example>",
        customer={"ref": f"C-BENCH-{number}", "email": f"customer{number}@example.com"},
    )


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


OWN_WORK = 10_000  # its incidents' numbers: cases of their own


def own_work(number: int) -> None:
    """What recover-incident does for an incident, in amends' core, without Prefect."""
    from datetime import timedelta

    from amends.delivery.outbox import drain
    from amends.domain import STAGES
    from amends.privacy import case_details, redact
    from amends.recovery.intake import open_case, validate_incident
    from amends.recovery.stages import run_stage
    from amends.reporting.casebook import case_markdown, case_outcome
    from amends.runtime import runtime
    from amends.tasks.views import view_artifacts

    rt = runtime()
    zone = rt.settings.business_timezone
    case_id = open_case(rt, validate_incident(incident(number), zone))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    claim_timeout = timedelta(seconds=rt.settings.claim_timeout_seconds)
    drain(rt.db, rt.channels, claim_timeout=claim_timeout, case_id=case_id)
    outcome = case_outcome(rt.db, case_id)
    redact(case_markdown(outcome, zone), case_details(rt.db, case_id))
    view_artifacts(rt)


def measure(runs: int, heartbeat: bool) -> tuple[list[float], list[float], list[float], int]:
    """Seconds per run of the empty flow, of recover-incident and of amends' own work for an
    incident; the number of cases filed."""
    from prefect import flow, task
    from prefect.cache_policies import NONE
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    from amends.flows.in_process import in_process_run
    from amends.flows.incident import recover_incident
    from amends.runner import run_incident

    @task(cache_policy=NONE)
    def step(number: int) -> int:
        return number

    @flow(name="empty-six-tasks")
    def empty() -> None:
        """The floor: what Prefect itself costs for a flow with six tasks."""
        for number in range(6):
            step(number)

    # As `amends incident` runs it, or (--heartbeat) as it did before its fixes.
    settings, recover = (
        (contextlib.nullcontext(), recover_incident)
        if heartbeat
        else (in_process_run(), run_incident)
    )
    empties, incidents, own = [], [], []
    with settings:
        empty()  # warm-up: first connections, imports, the flow's registration
        recover(incident(0))
        own_work(OWN_WORK)
        for number in range(1, runs + 1):
            empties.append(timed(empty))
            incidents.append(timed(lambda n=number: recover(incident(n))))
            own.append(timed(lambda n=number: own_work(OWN_WORK + n)))
    # The runs' last logs and events, before the server stops.
    APILogWorker.drain_all()
    EventsWorker.drain_all()
    return empties, incidents, own, 2 * runs + 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each flow (default 20)")
    parser.add_argument(
        "--heartbeat", action="store_true", help="keep the flow-run heartbeat on (before the fix)"
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="amends-bench-incident-") as folder,
        prefect_server(Path(folder)) as server,
        scratch_database(POSTGRES_URL, "_incident") as amends_url,
        MailCatcher(Path(folder) / "mail") as catcher,
    ):
        assert amends_url is not None
        from amends.storage.db import Database

        database = Database(amends_url)
        database.upgrade()
        database.dispose()
        # Before Prefect is imported: this process is a client of that server.
        home = Path(folder) / "client-home"
        os.environ.update(clean_env(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(home)))
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
        os.environ.update(
            AMENDS_HOME=str(Path(folder) / "var"),
            AMENDS_DATABASE_URL=amends_url,
            AMENDS_SMTP_PORT=str(catcher.port),
        )
        empties, incidents, own, cases = measure(args.runs, args.heartbeat)
        mails = len(catcher.messages())

    empty_median, incident_median = statistics.median(empties), statistics.median(incidents)
    own_median = statistics.median(own)
    print(f"runs: {args.runs} of each; heartbeat {'on' if args.heartbeat else 'off'}")
    print(f"empty six-task flow   median {empty_median * 1000:7.0f} ms")
    print(
        f"recover-incident      median {incident_median * 1000:7.0f} ms  ({mails} mails, "
        f"{cases} cases)"
    )
    print(f"own work, no Prefect  median {own_median * 1000:7.0f} ms  (take-in to views)")
    print(f"ratio incident/empty  {incident_median / empty_median:.2f} (goal <= 1.2)")
    floor = (empty_median + own_median) / empty_median
    print(f"floor of the ratio    {floor:.2f} ((empty + own work) / empty)")


if __name__ == "__main__":
    main()
