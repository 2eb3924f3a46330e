"""amends' Prefect tasks, one module per recovery stage plus intake and delivery, to use in
your own flows.

A task adds what Prefect is for (logging, retries, artifacts, run labels); the decision itself
lives in the core, in :mod:`amends`, and the task calls it. Idempotency lives in the database,
not in Prefect's result cache, so every task here runs with ``cache_policy=NONE``, and running
one again for the same case never repeats its work.

- Intake: :func:`open_case` records an :class:`~amends.domain.Incident` and returns its case
  id; :func:`take_in` validates, records and opens it, leaving only its reference in the run.
- The stages, each taking the case id and needing the ones before it: :func:`assess`,
  :func:`empower` (then :func:`wait_for_approval` when its result says ``needs_approval``),
  :func:`monitor`, :func:`report`, :func:`follow_up`, :func:`reengage`.
- Delivery: :func:`deliver_messages` sends a case's queued messages, :func:`send_queued` every
  case's; both take prefect-email's ``EmailServerCredentials`` and amends' blocks
  (:mod:`amends.blocks`).
- :func:`publish_case_summary` leaves the case's artifact (key ``case-<number>``, the case's
  number), brings the operator's views up to date and returns the case's outcome;
  :func:`publish_views` brings only the views up to date.

Example:
    A case opened and answered from your own flow, its apology sent through a stored mail
    server::

        from prefect import flow
        from prefect_email import EmailServerCredentials
        from amends.tasks import assess, deliver_messages, empower, follow_up, monitor
        from amends.tasks import open_case, report

        @flow
        def apologise(incident):
            case_id = open_case(incident)
            for stage in (assess, empower, monitor, report, follow_up):
                stage(case_id)
            deliver_messages(case_id, EmailServerCredentials.load("BLOCK_NAME"))

The task modules import only this package's private helpers (``_runtime``, ``_stage``,
``_pacing``) and never :mod:`amends.flows`, so importing them all here makes no cycle.
"""

from __future__ import annotations

from amends.tasks.approval import wait_for_approval
from amends.tasks.assess import assess
from amends.tasks.delivery import deliver_messages
from amends.tasks.empower import empower
from amends.tasks.follow_up import follow_up
from amends.tasks.intake import open_case, take_in
from amends.tasks.monitor import monitor
from amends.tasks.nightly import send_queued
from amends.tasks.reengage import reengage
from amends.tasks.report import publish_case_summary, report
from amends.tasks.views import publish_views

__all__ = [
    "assess",
    "deliver_messages",
    "empower",
    "follow_up",
    "monitor",
    "open_case",
    "publish_case_summary",
    "publish_views",
    "reengage",
    "report",
    "send_queued",
    "take_in",
    "wait_for_approval",
]
