"""Customer imports at scale: rows a minute and peak memory, from 10,000 to 1,000,000 rows.

    .venv/bin/python bench/imports.py [--sizes 10000 100000 1000000] [--postgres URL]

For each size, writes a customers CSV like a shop's export (name, email, phone, time zone,
annual value, preferred channel; one row in a thousand refused for a bad email), then imports
it with ``amends.storage.imports.import_customers`` in a fresh process into a migrated, empty
database (SQLite in a temporary folder, or a PostgreSQL schema). Prints, per size, the rows a
minute and the peak memory (max RSS) of the importing process. Goals: at least 50,000 rows a
minute, and memory flat (within 20 %) from the smallest size to the largest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # scratch.py, when run from elsewhere

from scratch import scratch_database  # noqa: E402

ZONES = ("Europe/Madrid", "Europe/London", "America/New_York", "")
CHANNELS = ("email", "sms", "phone", "")


def write_export(path: Path, size: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("ref,name,email,phone,timezone,annual_value,preferred_channel,do_not_contact\n")
        for n in range(size):
            email = "not-an-email" if n % 1000 == 999 else f"customer{n}@example.com"
            phone = f"+44 20 7946 {n % 10000:04d}" if n % 3 == 0 else ""
            out.write(
                f"C-{n:07d},Customer {n} Lee,{email},{phone},{ZONES[n % 4]},"
                f"{(n * 37) % 5000},{CHANNELS[n % 4]},{'yes' if n % 50 == 0 else 'no'}\n"
            )


# Runs in a fresh process, so that each size's peak memory is its own.
IMPORT = """
import json, resource, sys, time
from pathlib import Path
from amends.storage.db import Database
from amends.storage.imports import import_customers
db = Database(sys.argv[1])
db.upgrade()
started = time.perf_counter()
report = import_customers(db, Path(sys.argv[2]))
took = time.perf_counter() - started
print(json.dumps({"seconds": took, "added": report.added, "refused": len(report.refused),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(size: int, folder: Path, postgres: str | None) -> dict:
    export = folder / f"customers_{size}.csv"
    write_export(export, size)
    with scratch_database(postgres, tag=f"_{size}") as url:
        url = url or f"sqlite:///{folder / f'amends_{size}.db'}"
        done = subprocess.run(
            [sys.executable, "-c", IMPORT, url, str(export)],
            check=True,
            capture_output=True,
            text=True,
        )
    export.unlink()
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL URL (a scratch schema)")
    args = parser.parse_args()
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"customer import on {database}")
    peaks = []
    with tempfile.TemporaryDirectory(prefix="amends-bench-imports-") as folder:
        for size in args.sizes:
            figures = run(size, Path(folder), args.postgres)
            peaks.append(figures["peak_mb"])
            rate = size / figures["seconds"] * 60
            print(
                f"{size:>9,} rows: {figures['seconds']:7.1f} s, {rate:9,.0f} rows/min, "
                f"peak {figures['peak_mb']:6.0f} MB ({figures['added']:,} added, "
                f"{figures['refused']:,} refused)",
                flush=True,
            )
    print(f"peak memory, largest over smallest size: {peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
