r"""Deploy amends' four deployments to a Prefect server's work pool, from any folder of a machine
with amends installed: the same as ``prefect deploy --all`` on the installed prefect.yaml, with
the schedules in AMENDS_BUSINESS_TIMEZONE (from amends' settings: Europe/Madrid unless set).

    prefect work-pool create amends --type process
    PREFECT_API_URL=http://127.0.0.1:4200/api python -m amends.deployments.deploy [--pool amends]

``--prefect-file FILE`` deploys an edited copy of the declaration instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Deploy every declared deployment; prints each one's name."""
    parser = argparse.ArgumentParser(
        prog="python -m amends.deployments.deploy",
        description="Deploy amends' deployments to a work pool (PREFECT_API_URL's server).",
    )
    parser.add_argument("--pool", help="the work pool (default: the one prefect.yaml names)")
    parser.add_argument(
        "--prefect-file", type=Path, help="a prefect.yaml to deploy instead of amends' own"
    )
    args = parser.parse_args(argv)
    # Imported here: importing amends.deployments must not import Prefect.
    from amends.deployments.serving import deploy_all
    from amends.settings import Settings

    for name in deploy_all(Settings(), work_pool=args.pool, prefect_file=args.prefect_file):
        print(f"Deployed {name}")


if __name__ == "__main__":
    main()
