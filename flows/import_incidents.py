"""The ``import-incidents`` flow: a complaints export, filed and recovered a batch at a time."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect_email import EmailServerCredentials

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.flows.incident import recover_incident
from amends.recovery.batch import IncidentImport
from amends.tasks._runtime import configured
from amends.tasks.importing import file_and_recover, progress, read_batches, waiting_incidents
from amends.tasks.nightly import send_queued


def _run_name() -> str:
    return f"import-{Path(flow_run.parameters['file']).name}"


@flow(name="import-incidents", flow_run_name=_run_name)
def import_incidents(
    file: str,
    map_file: str,
    email_server_credentials: EmailServerCredentials | None = None,
    database: AmendsDatabase | None = None,
    webhooks: AmendsWebhooks | None = None,
) -> IncidentImport:
    """File every complaint of a CSV export through a map (``amends/recovery/maps``), one task
    per batch running the recovery stages set-based, and send what they queue after each batch.

    A case whose offer needs a manager's approval then waits for it in a recover-incident run
    of its own, as one incident does (Paused in the UI, or ``amends approve``). Importing the
    same file again files nothing new.

    Args:
        file: The CSV file, UTF-8 with a header row.
        map_file: The map from its columns to incident fields.
        email_server_credentials: The mail server to send through; the ``AMENDS_SMTP_*``
            settings (or ``AMENDS_SMTP_BLOCK``) when empty.
        database: amends' database; ``AMENDS_DATABASE_URL`` when empty.
        webhooks: The SMS, chat and social webhook channels; ``AMENDS_WEBHOOK_*`` when empty.
    """
    report, awaiting = IncidentImport(), []
    with configured(email_server_credentials, database, webhooks):
        for number, rows in enumerate(read_batches(file, map_file, report), start=1):
            done, waiting = file_and_recover(rows, number)
            report.merge(done)
            awaiting += waiting
            if done.added > done.history:
                send_queued(email_server_credentials, database, webhooks)
            progress(report)
        report.refused.sort()
        waiting_runs = waiting_incidents(awaiting)
        report.awaiting = [incident.ref for incident in waiting_runs]
        for incident in waiting_runs:
            recover_incident(incident, email_server_credentials, database, webhooks)
    return report
