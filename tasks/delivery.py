"""Delivery: drain a case's outbox through the channel adapters."""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect_email import EmailServerCredentials

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.delivery.outbox import DeliveryOutcome, DrainReport, drain
from amends.errors import DeliveryPending
from amends.privacy import mask
from amends.runtime import Runtime
from amends.tasks._pacing import email_pace
from amends.tasks._runtime import configured


@task(name="deliver-messages", cache_policy=NONE, task_run_name="deliver-case-{case_id}")
def deliver_messages(
    case_id: int,
    email_server_credentials: EmailServerCredentials | None = None,
    database: AmendsDatabase | None = None,
    webhooks: AmendsWebhooks | None = None,
) -> DrainReport:
    """Send the case's queued messages that are due; each is claimed first, so none goes out
    twice, and a case's messages go out in the order they were decided.

    No retries here: a message that failed waits for the outbox's own pause (30 s, then longer)
    and goes out with `amends send` or the nightly run. Retrying within the run would spend its
    attempts in seconds (its next pause hours long) and resend to a server that takes the
    message and drops the connection.

    Args:
        case_id: The case whose outbox is drained.
        email_server_credentials: The mail server to send through; the flow's, or the
            ``AMENDS_SMTP_*`` settings, when empty.
        database: amends' database; the flow's, or ``AMENDS_DATABASE_URL``, when empty.
        webhooks: The webhook channels; the flow's, or ``AMENDS_WEBHOOK_*``, when empty.

    Raises:
        DeliveryPending: some messages hit a transient failure and stay queued.

    Example:
        Send a case's apology through a stored mail server::

            from prefect_email import EmailServerCredentials
            from amends.tasks import deliver_messages

            deliver_messages(case_id, EmailServerCredentials.load("BLOCK_NAME"))
    """
    with configured(email_server_credentials, database, webhooks) as rt:
        return _drain_case(rt, case_id)


def _drain_case(rt: Runtime, case_id: int) -> DrainReport:
    """The task's work, on the runtime it was given."""
    logger = get_run_logger()
    problems: list[str] = []

    def log(outcome: DeliveryOutcome) -> None:
        if outcome.error:
            problems.append(outcome.error)
            logger.warning(
                "%s by %s %s: %s",
                outcome.kind.value,
                outcome.channel.value,
                outcome.status.value,
                outcome.error,
            )
        else:
            logger.info("%s by %s sent", outcome.kind.value, outcome.channel.value)

    report = drain(
        rt.db,
        rt.channels,
        claim_timeout=timedelta(seconds=rt.settings.claim_timeout_seconds),
        case_id=case_id,
        on_each=log,
        before_send=email_pace(rt.settings),
    )
    if report.requeued:
        logger.warning(
            "%s message(s) left half-sent by a stopped sender go out again", report.requeued
        )
    if report.retrying:
        # The task's state message shows in the UI: the server's words may quote an address.
        raise DeliveryPending(f"{report.retrying} message(s) stay queued: {mask(problems[0])}")
    return report


def deliver_or_keep_queued(case_id: int) -> None:
    """Deliver the case's messages; those that fail stay queued, visibly, for a later sender,
    and the recovery goes on. Anything else is a bug and stops the run."""
    state = deliver_messages(case_id, return_state=True)
    if state.is_failed():
        error = state.result(raise_on_failure=False)
        if not isinstance(error, DeliveryPending):
            raise error
