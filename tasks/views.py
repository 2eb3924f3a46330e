"""The operator's views in the Prefect UI: artifacts with stable keys, so the *Artifacts* page
always shows their latest version; every incident run and the nightly run bring them up to date.

- ``open-cases``: cases not closed, with state, stage, owner, next step and when it is due;
- ``staff-todos``: open staff actions, soonest first;
- ``approvals-waiting``: offers a manager may still answer;
- ``messages-sent``: every case's messages, recipients masked;
- ``recovery-figures``: the recovery rate and a text chart of the last 30 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import timedelta
from zoneinfo import ZoneInfo

from prefect import task
from prefect.artifacts import Artifact, MarkdownArtifact, TableArtifact
from prefect.cache_policies import NONE

from amends.reporting import views
from amends.reporting.report import build_headline, report_period
from amends.runtime import Runtime
from amends.storage.models import utcnow
from amends.tasks._runtime import task_runtime

VIEWS = ("open-cases", "staff-todos", "approvals-waiting", "messages-sent", "recovery-figures")
FIGURE_DAYS = 30


def _table(key: str, rows: list[dict], description: str, empty: str) -> TableArtifact:
    # An empty table shows as nothing at all in the UI: say that there is nothing (in a named
    # column: the UI fails to draw a table whose column has no name).
    return TableArtifact(key=key, table=rows or [{"note": empty}], description=description)


def view_artifacts(rt: Runtime) -> list[Artifact]:
    """The five views, read from amends' database, ready to publish."""
    zone = rt.settings.business_timezone
    today = utcnow().astimezone(ZoneInfo(zone)).date()
    period = report_period(zone, since=today - timedelta(days=FIGURE_DAYS - 1), until=today)
    return [
        _table(
            "open-cases",
            views.open_cases(rt),
            f"Open cases, the newest {views.ROWS} (times in {zone}); `amends cases` lists all",
            "No open case.",
        ),
        _table(
            "staff-todos",
            views.staff_todos(rt),
            f"Staff to-dos, the {views.ROWS} due soonest (times in {zone}); `amends actions` "
            "lists all",
            "Nothing for staff.",
        ),
        _table(
            "approvals-waiting",
            views.approvals_waiting(rt),
            f"Offers waiting for a manager (times in {zone})",
            "No approval waiting.",
        ),
        _table(
            "messages-sent",
            views.messages_sent(rt),
            f"Messages, the newest {views.ROWS}, recipients masked (times in {zone})",
            "No message yet.",
        ),
        MarkdownArtifact(
            key="recovery-figures",
            markdown=views.recovery_figures(build_headline(rt, period)),
            description=f"Recovery figures, the last {FIGURE_DAYS} days",
        ),
    ]


def publish(artifacts: Sequence[Artifact]) -> None:
    """Create the artifacts side by side: each is a call to the API, which answers them in
    parallel, so six take about the time of two. Each thread runs in a copy of this context, so
    the artifacts belong to the calling task's run."""
    with ThreadPoolExecutor(max_workers=len(artifacts)) as pool:
        calls = [pool.submit(copy_context().run, artifact.create) for artifact in artifacts]
        for call in calls:
            call.result()  # an API error is the task's


@task(name="publish-views", cache_policy=NONE)
def publish_views() -> None:
    """Bring the five views up to date."""
    publish(view_artifacts(task_runtime()))
