"""How long the monitor-mentions flow takes over the shared Twitter sample (5,000 tweets, the
100 support accounts as the business): reading and keeping them, and each recovery it opens.

Run: .venv/bin/python bench/monitor.py [INCIDENTS]   (default 10; a temporary data folder and
Prefect home, so nothing of yours is touched)
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "twitter_support_sample_5000.csv"


def main() -> int:
    incidents = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    home = Path(tempfile.mkdtemp(prefix="amends-bench-monitor-"))
    os.environ.update(
        AMENDS_HOME=str(home / "var"),
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    from amends.flows.monitor import MonitorRequest, monitor_mentions
    from amends.listening.sources import SourceSpec

    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        brands = sorted(
            {"@" + r["author_id"] for r in csv.DictReader(handle) if r["inbound"] == "False"}
        )
    spec = SourceSpec(name="sample", kind="file", location=str(SAMPLE))

    def run(cap: int) -> float:
        started = time.perf_counter()
        monitor_mentions(MonitorRequest(sources=[spec], handles=brands, max_incidents=cap))
        return time.perf_counter() - started

    from prefect import flow

    flow(name="warm-up")(lambda: None)()  # Prefect's temporary server starts: not counted
    keeping = run(0)  # read, recognise and keep all 5,000
    with_no_incident = run(0)  # everything seen: reads the file, keeps nothing new
    opening = run(incidents) - with_no_incident
    print(f"read and keep 5,000 tweets (2,718 customers'): {keeping:.1f} s")
    print(f"read them again, nothing new: {with_no_incident:.1f} s")
    print(
        f"{incidents} incidents opened, each a recover-incident subflow: {opening:.1f} s, "
        f"{opening / incidents:.2f} s each"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
