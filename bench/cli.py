"""How long the command line takes: ``amends --help`` against a bare Python start, and the demo.

    .venv/bin/python bench/cli.py [--runs 7] [--skip-demo]

Prints medians and ratios. The demo runs in a fresh data folder and a fresh PREFECT_HOME, as a
new user meets it (Prefect's temporary server starts from nothing), then again in the same
folders (the server's database exists; every case resumes and nothing is sent).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENDS_", "PREFECT_"))}

    bare = statistics.median(timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs))
    help_ = statistics.median(
        timed([sys.executable, "-m", "amends", "--help"], env) for _ in range(args.runs)
    )
    imports = statistics.median(
        timed([sys.executable, "-c", "import prefect"], env) for _ in range(args.runs)
    )
    print(f"python -c pass          median {bare * 1000:7.0f} ms")
    print(
        f"amends --help           median {help_ * 1000:7.0f} ms  ({help_ / bare:.1f}x bare Python)"
    )
    print(f"python -c 'import prefect' median {imports * 1000:4.0f} ms  (what --help avoids)")

    if args.skip_demo:
        return
    with tempfile.TemporaryDirectory(prefix="amends-bench-") as folder:
        root = Path(folder)
        demo_env = {**env, "PREFECT_HOME": str(root / "prefect"), "AMENDS_HOME": str(root / "var")}
        demo = [sys.executable, "-m", "amends", "demo"]
        first = timed(demo, demo_env, cwd=root)
        again = timed(demo, demo_env, cwd=root)
    print(f"amends demo, fresh      {first:7.1f} s")
    print(f"amends demo, re-run     {again:7.1f} s  (resumes 7 cases, sends nothing)")


if __name__ == "__main__":
    main()
