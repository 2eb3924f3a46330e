"""The nightly run at scale: the Prefect flow against a bare script doing the same work.

    .venv/bin/python bench/nightly.py [--sizes 10000 100000] [--postgres URL]

For each size, builds that many customers (10 % lapsed, 20 % with a check-in due in the next
day), then runs the night twice on identical data, each in a fresh process, against one
loopback SMTP server (a counting sink, in a process of its own):

- baseline: a plain script, no Prefect: ``amends.nightly.reengagement.run_night`` (the same
  set-based queries) and ``amends.delivery.outbox.drain`` (the same sends);
- flow: the ``nightly-reengagement`` flow, on Prefect's local server, started (and warmed up
  with an empty flow) before the clock starts, as a deployed server would be.

Prints the wall time of both and their ratio (goal: at most 1.3), the messages each sent, and
the peak memory (max RSS) of each process (goal for the flow: under 400 MB, and within 20 %
between the smallest and the largest size). Prefect's server runs in its own process and is
not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # scratch.py, when run from elsewhere

from scratch import scratch_database  # noqa: E402

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CHUNK = 5000


# --- data ---------------------------------------------------------------------------------------


def build(url: str, size: int) -> None:
    """``size`` customers: every tenth lapsed, every fifth with a check-in due tomorrow (and
    an open case whose apology went out), the rest recently active."""
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
    )
    from amends.storage import models
    from amends.storage.db import Database

    db = Database(url)
    db.upgrade()
    opened = NOW - timedelta(days=3)
    long_ago, recently = (NOW - timedelta(days=200)).date(), (NOW - timedelta(days=10)).date()
    with db.engine.begin() as connection:
        for start in range(0, size, CHUNK):
            numbers = range(start + 1, min(start + CHUNK, size) + 1)
            connection.execute(
                insert(models.Customer),
                [
                    {
                        "id": n,
                        "ref": f"C-{n}",
                        "name": f"Customer {n}",
                        "email": f"customer{n}@example.com",
                        "locale": "es" if n % 3 == 0 else "en",
                        "annual_value": 500.0 + n % 50 * 100,
                        "last_purchase_on": long_ago if n % 10 == 0 else recently,
                        "last_contact_on": long_ago if n % 10 == 0 else recently,
                        "do_not_contact": False,
                        "unanswered_calls": 0,
                        "created_at": opened,
                        "updated_at": opened,
                    }
                    for n in numbers
                ],
            )
            due = [n for n in numbers if n % 5 == 1]  # never one of the lapsed
            connection.execute(
                insert(models.Incident),
                [
                    {
                        "id": n,
                        "ref": f"INC-{n}",
                        "customer_id": n,
                        "channel": Channel.EMAIL,
                        "received_at": opened,
                        "summary": "Cleaning crew missed a visit",
                        "details": "",
                        "category": Category.SERVICE_FAILURE,
                        "severity": Severity.MEDIUM,
                        "fault": Fault.OURS,
                        "abusive": False,
                        "costs": {},
                        "payload": {},
                        "created_at": opened,
                    }
                    for n in due
                ],
            )
            connection.execute(
                insert(models.Case),
                [
                    {
                        "id": n,
                        "incident_id": n,
                        "customer_id": n,
                        "state": CaseState.OPEN,
                        "stage": Stage.REENGAGE,
                        "decision": Decision.RECOVER,
                        "reply_channel": ReplyChannel.EMAIL,
                        "first_response_due": opened + timedelta(hours=24),
                        "opened_at": opened,
                        "updated_at": opened,
                    }
                    for n in due
                ],
            )
            connection.execute(
                insert(models.Message),
                [
                    {
                        "customer_id": n,
                        "case_id": n,
                        "key": f"case-{n}:follow_up:apology:email",
                        "stage": Stage.FOLLOW_UP,
                        "kind": MessageKind.APOLOGY,
                        "channel": ReplyChannel.EMAIL,
                        "recipient": f"customer{n}@example.com",
                        "subject": "Sorry",
                        "body": "<p>Sorry.</p>",
                        "message_id": f"<apology-{n}@bench.example>",
                        "status": MessageStatus.SENT,
                        "attempts": 1,
                        "created_at": opened,
                        "sent_at": opened,
                    }
                    for n in due
                ],
            )
            connection.execute(
                insert(models.CheckIn),
                [
                    {
                        "case_id": n,
                        "number": 1,
                        "starts_at": NOW + timedelta(hours=24),
                        "duration_minutes": 30,
                        "uid": f"case-{n}-checkin-1@bench.example",
                        "sequence": 0,
                        "status": "scheduled",
                        "misses": 0,
                        "created_at": opened,
                    }
                    for n in due
                ],
            )
        if connection.dialect.name == "postgresql":
            for table in ("customers", "incidents", "cases"):
                connection.execute(
                    text(f"select setval('{table}_id_seq', (select max(id) from {table}))")
                )
    db.dispose()


# --- the two ways to run the night, each in a process of its own -------------------------------


def run_baseline() -> dict[str, float]:
    from amends.delivery.outbox import drain
    from amends.nightly.reengagement import run_night
    from amends.runtime import runtime

    rt = runtime()
    started = time.perf_counter()
    night = run_night(rt, NOW)
    sent = drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    return {"seconds": time.perf_counter() - started, "queued": night.done, "sent": sent.sent}


def run_flow() -> dict[str, float]:
    from prefect import flow

    from amends.flows.nightly import nightly_reengagement

    @flow(name="warm-up")
    def warm_up() -> None:
        """Starts Prefect's local server, as a deployment's server would already be running."""

    warm_up()
    started = time.perf_counter()
    night = nightly_reengagement(now=NOW)
    return {
        "seconds": time.perf_counter() - started,
        "queued": night.done,
        "sent": night.sent.sent,
    }


def child(kind: str) -> None:
    figures = run_baseline() if kind == "baseline" else run_flow()
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(figures))


def in_process(kind: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise SystemExit(f"the {kind} run failed:\n{done.stdout}\n{done.stderr}")


# --- the SMTP sink ------------------------------------------------------------------------------


def sink(port: int) -> None:
    """Accept and count mail on loopback until killed."""
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(asyncio.Event().wait())


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    from amends.delivery.mailcatcher import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--sink", str(port)])
    time.sleep(1.5)
    try:
        yield port
    finally:
        process.terminate()
        process.wait()


# --- the bench ----------------------------------------------------------------------------------


def measure(size: int, postgres: str | None, port: int) -> dict[str, dict[str, float]]:
    results = {}
    for kind in ("baseline", "flow"):
        with tempfile.TemporaryDirectory(prefix=f"amends-nightly-{kind}-") as folder:
            home = Path(folder)
            with scratch_database(postgres, f"_{kind}") as scratch:
                url = scratch or f"sqlite:///{home / 'amends.db'}"
                build(url, size)
                env = {k: v for k, v in os.environ.items() if not k.startswith("AMENDS_")}
                env.update(
                    AMENDS_HOME=str(home),
                    AMENDS_DATABASE_URL=url,
                    AMENDS_SMTP_PORT=str(port),
                    PREFECT_HOME=str(home / "prefect"),
                    PREFECT_SERVER_ANALYTICS_ENABLED="false",
                    PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL",
                    DO_NOT_TRACK="1",
                )
                results[kind] = in_process(kind, env)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--postgres", help="a PostgreSQL URL: amends' database there")
    parser.add_argument("--child", choices=["baseline", "flow"], help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.sink:
        sink(args.sink)
        return

    peaks = {}
    print(f"{'customers':>10} {'run':>9} {'seconds':>8} {'queued':>7} {'sent':>7} {'peak MB':>8}")
    with smtp_sink() as port:
        for size in args.sizes:
            results = measure(size, args.postgres, port)
            for kind, figures in results.items():
                print(
                    f"{size:>10} {kind:>9} {figures['seconds']:>8.1f} {figures['queued']:>7} "
                    f"{figures['sent']:>7} {figures['peak_mb']:>8.0f}"
                )
            ratio = results["flow"]["seconds"] / results["baseline"]["seconds"]
            print(f"{size:>10} flow/baseline wall-time ratio: {ratio:.2f} (goal <= 1.3)")
            peaks[size] = results["flow"]["peak_mb"]
    if len(peaks) > 1:
        low, high = min(peaks.values()), max(peaks.values())
        print(
            f"flow peak memory {low:.0f}-{high:.0f} MB: largest {high / low - 1:+.0%} over the "
            f"smallest (goals: under 400 MB, within 20 %)"
        )


if __name__ == "__main__":
    main()
