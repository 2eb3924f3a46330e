"""The ``recover-incident`` flow: one incident, through the six recovery stages in order."""

from __future__ import annotations

from prefect import flow
from prefect.states import Failed, State
from prefect_email import EmailServerCredentials

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.domain import Incident
from amends.reporting.casebook import CaseOutcome
from amends.tasks._runtime import configured
from amends.tasks.approval import wait_for_approval
from amends.tasks.assess import assess
from amends.tasks.delivery import deliver_or_keep_queued
from amends.tasks.empower import empower
from amends.tasks.follow_up import follow_up
from amends.tasks.intake import take_in
from amends.tasks.monitor import monitor
from amends.tasks.reengage import reengage
from amends.tasks.report import publish_case_summary, report


# Parameters are validated by take-in, with every rule and one line naming the field, not by
# Prefect (a traceback quoting the input); results are never persisted: they would hold the
# customer in Prefect's result storage.
@flow(name="recover-incident", validate_parameters=False, persist_result=False)
def recover_incident(
    incident: Incident | None = None,
    incident_ref: str | None = None,
    email_server_credentials: EmailServerCredentials | None = None,
    database: AmendsDatabase | None = None,
    webhooks: AmendsWebhooks | None = None,
) -> CaseOutcome | State:
    """Recover a customer from an incident: assess, empower, monitor, report, follow up and
    re-engage, then summarise the case in an artifact.

    The first task records the incident in amends' database and leaves in the run's parameters
    only its reference (``{"incident": null, "incident_ref": "INC-1001"}``): nothing personal
    stays in Prefect. An invalid incident fails the run at once, with one line naming the field.

    An offer above the frontline limit sets the run aside for a manager's approval (the UI's
    Resume form, or ``amends approve``): a deployment's run is suspended and starts again from
    the top when resumed, from its incident's reference. Running it again for the same incident
    resumes the case:
    completed stages and sent messages are never repeated.

    Args:
        incident: The incident as the operator filed it.
        incident_ref: Instead of the incident: the reference of one already on file.
        email_server_credentials: The mail server to send through; the ``AMENDS_SMTP_*``
            settings (or ``AMENDS_SMTP_BLOCK``) when empty.
        database: amends' database; ``AMENDS_DATABASE_URL`` when empty.
        webhooks: The SMS, chat and social webhook channels; ``AMENDS_WEBHOOK_*`` when empty.
    """
    # Every task below runs with the blocks given, in place of the environment's settings.
    with configured(email_server_credentials, database, webhooks):
        taken = take_in(incident, incident_ref)
        if taken.refused:
            return Failed(message=taken.refused)
        case_id = taken.case_id
        assess(case_id)
        offer = empower(case_id)
        if offer.data.get("needs_approval"):
            # Above the frontline limit: Suspended (a deployment's run) or Paused until a
            # manager answers.
            wait_for_approval(case_id)
        monitor(case_id)
        report(case_id)
        follow_up(case_id)
        reengage(case_id)
        # The apology, then the check-in invitations it announces, in the order decided.
        deliver_or_keep_queued(case_id)
        # The case's artifact, and the operator's views it changed.
        return publish_case_summary(case_id)
