r"""Serve amends' deployments from one process: no work pool needed. The same as `amends serve`.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m amends.deployments.serve

Then trigger a recovery from the Prefect UI (Deployments > recover-incident > Run > Custom run)
or from the shell:

    prefect deployment run recover-incident/recover-incident \
        --params "{\"incident\": $(cat incident.json)}"

The nightly-reengagement deployment runs on its own at 02:00 and recovery-report on Mondays at
07:00, in the business profile's time zone; monitor-mentions every 15 minutes (as
prefect.yaml says).
``--prefect-file FILE`` serves an edited copy of the declaration instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Serve every declared deployment until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m amends.deployments.serve",
        description="Serve amends' deployments from this process (PREFECT_API_URL's server).",
    )
    parser.add_argument(
        "--prefect-file", type=Path, help="a prefect.yaml to serve instead of amends' own"
    )
    args = parser.parse_args(argv)
    # Imported here: importing amends.deployments must not import Prefect.
    from amends.deployments.serving import serve_all
    from amends.settings import Settings

    serve_all(Settings(), prefect_file=args.prefect_file)


if __name__ == "__main__":
    main()
