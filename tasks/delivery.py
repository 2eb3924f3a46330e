"""Delivery: drain a case's outbox through the channel adapters."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from amends.errors import AmendsError
from amends.outbox import DeliveryOutcome, deliver, queued_messages
from amends.runtime import runtime


class DeliveryPending(AmendsError):
    """Some messages hit a transient failure and stay queued; Prefect retries the task."""


@task(
    name="deliver-messages",
    cache_policy=NONE,
    retries=2,
    retry_delay_seconds=[2, 10],
    task_run_name="deliver-case-{case_id}",
)
def deliver_messages(case_id: int) -> list[DeliveryOutcome]:
    """Send the case's queued messages; each is claimed first, so none goes out twice."""
    rt = runtime()
    logger = get_run_logger()
    outcomes = [deliver(rt.db, message, rt.channels) for message in queued_messages(rt.db, case_id)]
    for outcome in outcomes:
        if outcome.error:
            logger.warning(
                "%s by %s %s: %s",
                outcome.kind.value,
                outcome.channel.value,
                outcome.status.value,
                outcome.error,
            )
        else:
            logger.info(
                "%s by %s %s", outcome.kind.value, outcome.channel.value, outcome.status.value
            )
    pending = [o for o in outcomes if o.transient]
    if pending:
        raise DeliveryPending(f"{len(pending)} message(s) stay queued: {pending[0].error}")
    return outcomes
