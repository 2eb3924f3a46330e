"""How long the command line takes, as a user meets it.

    .venv/bin/python bench/cli.py [--runs 7] [--skip-demo]

Prints medians and ratios:

- ``amends --help`` against a bare Python start, and ``import prefect`` (what it avoids);
- ``amends incident FILE`` with nothing configured, in a fresh data folder and PREFECT_HOME:
  the first command (it starts the data folder's Prefect server) and the ``--runs`` after it
  (they use that server), a new customer each time, mail to a loopback catcher (goal: at most
  3 s from the second command on);
- ``amends demo`` in another fresh folder, which starts its own server, then again (every case
  resumes and nothing is sent; goal: at most 20 s).

Each folder's server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # factories

from factories import incident_data  # noqa: E402

from amends.delivery.mailcatcher import MailCatcher  # noqa: E402


def timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def amends(*args: str) -> list[str]:
    return [sys.executable, "-m", "amends", *args]


def incidents(root: Path, env: dict[str, str], runs: int) -> tuple[float, list[float]]:
    """The first ``amends incident`` and those after it, each a new customer's."""
    seconds = []
    with MailCatcher(root / "mail") as catcher:
        env = {**env, "AMENDS_SMTP_PORT": str(catcher.port)}
        try:
            for number in range(runs + 1):
                path = root / f"incident-{number}.json"
                data = incident_data(
                    ref=f"INC-BENCH-{number}",
                    complaint_message_id=f"<bench-{number}@customer.example>",
                    customer={"ref": f"C-BENCH-{number}", "email": f"c{number}@example.com"},
                )
                path.write_text(json.dumps(data))
                seconds.append(timed(amends("incident", str(path)), env, cwd=root))
        finally:
            subprocess.run(amends("server", "stop"), env=env, capture_output=True)
    return seconds[0], seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENDS_", "PREFECT_"))}
    # As users run it: Python keeps the compiled modules (this machine's default says not to).
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    bare = statistics.median(timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs))
    help_ = statistics.median(timed(amends("--help"), env) for _ in range(args.runs))
    imports = statistics.median(
        timed([sys.executable, "-c", "import prefect"], env) for _ in range(args.runs)
    )
    print(f"python -c pass             median {bare * 1000:7.0f} ms")
    print(
        f"amends --help              median {help_ * 1000:7.0f} ms  "
        f"({help_ / bare:.1f}x bare Python)"
    )
    print(f"python -c 'import prefect' median {imports * 1000:7.0f} ms  (what --help avoids)")

    def fresh(root: Path) -> dict[str, str]:
        return {**env, "PREFECT_HOME": str(root / "prefect"), "AMENDS_HOME": str(root / "var")}

    with tempfile.TemporaryDirectory(prefix="amends-bench-") as folder:
        first, after = incidents(Path(folder), fresh(Path(folder)), args.runs)
    print(f"amends incident, first     {first:7.1f} s  (starts the data folder's Prefect server)")
    print(
        f"amends incident, after     median {statistics.median(after):5.2f} s  "
        f"(of {len(after)}: {min(after):.2f}-{max(after):.2f} s; goal at most 3 s)"
    )

    if args.skip_demo:
        return
    with tempfile.TemporaryDirectory(prefix="amends-bench-") as folder:
        root = Path(folder)
        try:
            first = timed(amends("demo"), fresh(root), cwd=root)
            again = timed(amends("demo"), fresh(root), cwd=root)
        finally:
            subprocess.run(amends("server", "stop"), env=fresh(root), capture_output=True)
    print(f"amends demo, fresh         {first:7.1f} s  (starts the server; goal at most 20 s)")
    print(f"amends demo, re-run        {again:7.1f} s  (resumes every case, sends nothing)")


if __name__ == "__main__":
    main()
