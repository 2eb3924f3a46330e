"""Importing a complaints export: incidents a minute and peak memory, live and as history.

    .venv/bin/python bench/import_incidents.py [--live 1000 4000] [--history 2000 20000]
                                               [--postgres URL]

Each size runs the ``import-incidents`` flow in a fresh process on Prefect's local server
(started, and warmed up with an empty flow, before the clock starts), into a migrated, empty
database:

- live: a helpdesk export (every complaint by email, severities and spends mixed, one row in a
  hundred refused for a bad address) through every recovery stage, its apologies and check-in
  invitations sent through a loopback SMTP sink (a counting server in a process of its own);
- history: the FCC sample in tests/data repeated under new ticket numbers, through the shipped
  ``fcc`` map: filed as past complaints, nothing sent.

Prints, per run, the incidents filed a minute (goal: at least 600), the messages sent and the
peak memory (max RSS) of the importing process (goal: flat, within 20 % from the smallest size
to the largest). Prefect's server runs in its own process and is not counted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # scratch.py and nightly.py, when run from elsewhere

from nightly import sink, smtp_sink  # noqa: E402
from scratch import scratch_database  # noqa: E402

HELPDESK_MAP = """\
ref: {column: ticket}
fields:
  channel: {column: via, values: {Email: email, Phone: phone}}
  received_at: {column: opened}
  summary: {column: subject}
  category: {value: late_delivery}
  severity: {column: priority, values: {P1: high, P2: medium, P3: low}}
  fault: {column: fault}
  customer.ref: {column: account}
  customer.name: {column: name}
  customer.email: {column: email}
  customer.annual_value: {column: spend}
"""
FCC_SAMPLE = ROOT / "tests" / "data" / "fcc_comcast_complaints_2015_300.csv"


def write_live(path: Path, size: int) -> None:
    opened = (datetime.now(UTC) - timedelta(hours=3)).isoformat(timespec="seconds")
    with path.open("w", encoding="utf-8", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["ticket", "via", "opened", "subject", "priority", "fault", "account",
                       "name", "email", "spend"])  # fmt: skip
        for n in range(size):
            email = "not-an-email" if n % 100 == 99 else f"customer{n}@example.com"
            rows.writerow([
                f"T-{n:07d}", "Email", opened, f"Order {n} arrived a week late",
                f"P{n % 3 + 1}", ("ours", "shared", "external")[n % 3], f"A-{n:07d}",
                f"Customer {n} Lee", email, (n * 37) % 4000,
            ])  # fmt: skip


def write_history(path: Path, size: int) -> None:
    with FCC_SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header, sample = next(reader), list(reader)
    with path.open("w", encoding="utf-8", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(header)
        for n in range(size):
            rows.writerow([f"{900000 + n}", *sample[n % len(sample)][1:]])


# Runs in a fresh process, so that each run's peak memory is its own.
def child(file: str, map_file: str) -> None:
    from prefect import flow

    from amends.flows.import_incidents import import_incidents
    from amends.flows.in_process import in_process_run

    @flow(name="warm-up")
    def warm_up() -> None:
        """Starts Prefect's local server, as a deployment's server would already be running."""

    with in_process_run():
        warm_up()
        started = time.perf_counter()
        report = import_incidents(file=file, map_file=map_file)
        seconds = time.perf_counter() - started
    from sqlalchemy import func, select

    from amends.domain import MessageStatus
    from amends.runtime import runtime
    from amends.storage import models

    with runtime().db.session() as session:
        sent = session.scalar(
            select(func.count()).where(models.Message.status == MessageStatus.SENT)
        )
    figures = {
        "seconds": seconds,
        "filed": report.added,
        "refused": len(report.refused),
        "sent": sent,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(figures))


def run(kind: str, size: int, postgres: str | None, port: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"amends-import-{kind}-") as folder:
        home = Path(folder)
        file = home / f"{kind}_{size}.csv"
        if kind == "live":
            write_live(file, size)
            map_file = home / "helpdesk.yaml"
            map_file.write_text(HELPDESK_MAP, encoding="utf-8")
        else:
            write_history(file, size)
            map_file = ROOT / "amends" / "recovery" / "maps" / "fcc.yaml"
        with scratch_database(postgres, f"_{kind}_{size}") as scratch:
            url = scratch or f"sqlite:///{home / 'amends.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENDS_", "PREFECT_"))}
            env.update(
                AMENDS_HOME=str(home),
                AMENDS_DATABASE_URL=url,
                AMENDS_SMTP_PORT=str(port),
                PREFECT_HOME=str(home / "prefect"),
                PREFECT_SERVER_ANALYTICS_ENABLED="false",
                PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL",
                DO_NOT_TRACK="1",
                # A busy machine starts Prefect's server slowly; its start is not timed.
                PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
            )
            if scratch:
                subprocess.run(
                    [sys.executable, "-m", "amends", "db", "upgrade"], env=env, check=True,
                    capture_output=True,
                )  # fmt: skip
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(file), str(map_file)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise SystemExit(f"the {kind} run failed:\n{done.stdout}\n{done.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", type=int, nargs="*", default=[1000, 4000])
    parser.add_argument("--history", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--postgres", help="a PostgreSQL URL: amends' database there")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.sink:
        sink(args.sink)
        return

    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"import incidents on {database}")
    print(f"{'run':>8} {'rows':>7} {'seconds':>8} {'filed':>7} {'per min':>8} {'sent':>6} ", end="")
    print(f"{'peak MB':>8}")
    with smtp_sink() as port:
        for kind, sizes in (("live", args.live), ("history", args.history)):
            peaks = []
            for size in sizes:
                f = run(kind, size, args.postgres, port)
                per_minute = f["filed"] / f["seconds"] * 60
                peaks.append(f["peak_mb"])
                print(
                    f"{kind:>8} {size:>7} {f['seconds']:>8.1f} {f['filed']:>7} "
                    f"{per_minute:>8.0f} {f['sent']:>6} {f['peak_mb']:>8.0f}",
                    flush=True,
                )
            if len(peaks) > 1:
                print(
                    f"{kind:>8} peak memory {min(peaks):.0f}-{max(peaks):.0f} MB: largest "
                    f"{max(peaks) / min(peaks) - 1:+.0%} over the smallest (goal: within 20 %)"
                )
    print("goal: at least 600 incidents a minute")


if __name__ == "__main__":
    main()
