r"""Serve amends' deployments from one process: no work pool needed.

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/serve.py

Then trigger a recovery from the Prefect UI (Deployments > recover-incident > Run > Custom run)
or from the shell:

    prefect deployment run recover-incident/recover-incident \
        --params "{\"incident\": $(cat incident.json)}"
"""

from __future__ import annotations

from prefect import serve

from flows.incident import recover_incident


def main() -> None:
    serve(
        recover_incident.to_deployment(
            name="recover-incident",
            description="Recover a customer from one incident, stage by stage.",
            tags=["amends"],
        )
    )


if __name__ == "__main__":
    main()
