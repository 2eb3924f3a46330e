"""amends' Prefect flows, to run, deploy or call as subflows from your own flows.

They only orchestrate: every step is a task in :mod:`amends.tasks`, and every decision is the
core's.

- ``recover-incident`` (:func:`recover_incident`): one :class:`Incident` through the six
  recovery stages; takes amends' blocks (:mod:`amends.blocks`) and prefect-email's
  ``EmailServerCredentials`` in place of the environment's settings.
- ``nightly-reengagement`` (:func:`nightly_reengagement`): check-ins, overdue cases and
  lapsed customers, once a night.
- ``monitor-mentions`` (:func:`monitor_mentions`, :class:`MonitorRequest`): public posts
  about the business, each complaint answered by a recovery.
- ``recovery-report`` (:func:`recovery_report`, :class:`ReportRequest`): a period's
  complaints followed until closed.

Example:
    Recover an incident from your own flow::

        from prefect import flow
        from amends.flows import Incident, recover_incident

        @flow
        def on_late_delivery(incident: Incident) -> None:
            recover_incident(incident)
"""

from __future__ import annotations

from amends.domain import Incident
from amends.flows.incident import recover_incident
from amends.flows.monitor import MonitorRequest, monitor_mentions
from amends.flows.nightly import nightly_reengagement
from amends.flows.report import ReportRequest, recovery_report

__all__ = [
    "Incident",
    "MonitorRequest",
    "ReportRequest",
    "monitor_mentions",
    "nightly_reengagement",
    "recover_incident",
    "recovery_report",
]
