"""The nightly run's tasks: one task run per action, each working through its batches, then
one to send what they queued and one to leave the night's tables as artifacts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from prefect_email import EmailServerCredentials

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.delivery.outbox import DeliveryOutcome, DrainReport, drain, queued_messages
from amends.nightly.reengagement import ACTIONS, ActionReport, Night, NightReport, Progress
from amends.privacy import mask
from amends.runtime import Runtime
from amends.storage.models import utcnow
from amends.tasks._pacing import email_pace
from amends.tasks._runtime import configured, task_runtime

ACTION_NAMES = tuple(action.__name__ for action in ACTIONS)
_ACTIONS = {action.__name__: action for action in ACTIONS}

Watcher = Callable[[str, int, int], None]
_watchers: list[Watcher] = []


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Call ``watcher(step, done, total)`` as the night's steps progress in this process (the
    CLI's progress bar); the run's logs say the same for the Prefect UI."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


def _progress(step: str) -> Progress:
    logger = get_run_logger()
    logged = 0

    def report(done: int, total: int) -> None:
        nonlocal logged
        for watcher in _watchers:
            watcher(step, done, total)
        # About every tenth of the way, and at the end: enough to see it move in the UI.
        if done == total or done - logged >= max(total // 10, 1):
            logged = done
            logger.info("%s: %d of %d", step, done, total)

    return report


@task(name="nightly-action", cache_policy=NONE, task_run_name="{action}")
def run_action(action: str, now: datetime) -> ActionReport:
    """Run one nightly action over every candidate, in batches."""
    report = _ACTIONS[action](Night(task_runtime(), now), _progress(action))
    get_run_logger().info(
        "%s: %d done of %d candidates", report.title, report.done, report.candidates
    )
    return report


@task(name="send-queued-messages", cache_policy=NONE)
def send_queued(
    email_server_credentials: EmailServerCredentials | None = None,
    database: AmendsDatabase | None = None,
    webhooks: AmendsWebhooks | None = None,
) -> DrainReport:
    """Deliver every queued message that is due (the night's, and any still waiting from the
    day); each is claimed first, so none goes out twice.

    Args:
        email_server_credentials: The mail server to send through; the ``AMENDS_SMTP_*``
            settings (or ``AMENDS_SMTP_BLOCK``) when empty.
        database: amends' database; ``AMENDS_DATABASE_URL`` when empty.
        webhooks: The webhook channels; ``AMENDS_WEBHOOK_*`` when empty.
    """
    with configured(email_server_credentials, database, webhooks) as rt:
        return _send_due(rt)


def _send_due(rt: Runtime) -> DrainReport:
    """The task's work, on the runtime it was given."""
    total = len(queued_messages(rt.db, due_by=utcnow()))
    progress = _progress("send")
    done = 0

    def each(_: DeliveryOutcome) -> None:
        nonlocal done
        done += 1
        progress(done, total)

    report = drain(
        rt.db,
        rt.channels,
        claim_timeout=timedelta(seconds=rt.settings.claim_timeout_seconds),
        on_each=each,
        before_send=email_pace(rt.settings),
    )
    get_run_logger().info(
        "sent %d; %d to retry; %d failed; %d handed to staff; %d still queued, not tried",
        report.sent,
        report.retrying,
        report.failed,
        report.to_staff,
        report.waiting,
    )
    return report


@task(name="publish-night", cache_policy=NONE)
def publish_night(night: NightReport) -> None:
    """Leave the night as two table artifacts: counts by action, and the customers contacted
    (references only: the UI is often shared, so no names or addresses)."""
    counts: list[dict[str, object]] = [
        {"action": r.title, "candidates": r.candidates, "done": r.done} for r in night.actions
    ]
    counts.append({"action": "Staff actions opened", "candidates": "", "done": night.staff_actions})
    if night.sent is not None:
        s = night.sent
        counts += [
            {"action": "Messages sent", "candidates": "", "done": s.sent},
            {"action": "Messages to retry", "candidates": "", "done": s.retrying},
            {"action": "Messages failed", "candidates": "", "done": s.failed},
            {"action": "Messages handed to staff", "candidates": "", "done": s.to_staff},
            {"action": "Messages still queued", "candidates": "", "done": s.waiting},
        ]
    counts.append({"action": "Approved runs resumed", "candidates": "", "done": night.resumed})
    create_table_artifact(
        key="nightly-reengagement",
        table=counts,
        description="The nightly run: what each action found and did, and what was sent.",
    )
    contacted = [
        {"customer": mask(ref), "action": title, "channel": channel}
        for ref, title, channel in night.contacted
    ]
    named, total = len(contacted), night.done
    create_table_artifact(
        key="nightly-contacted",
        table=contacted or [{"customer": "", "action": "nobody contacted", "channel": ""}],
        description=(
            "Customers contacted and staff work opened tonight"
            + (f": the first {named} of {total}" if named < total else "")
            + "."
        ),
    )
