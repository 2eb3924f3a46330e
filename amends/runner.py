"""The command line's one way into Prefect: run amends' flows in this process, hand an incident
to a Prefect server, serve the deployments.

The command line calls this module for everything Prefect does and imports neither Prefect nor
the flows itself, so ``amends --help`` and the read-only commands answer at once, and the core
never reaches Prefect (it never imports this module either).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from amends.errors import PrefectUnavailable

if TYPE_CHECKING:
    from amends.domain import Incident
    from amends.listening.sources import MonitorReport, SourceSpec
    from amends.nightly.reengagement import NightReport
    from amends.reporting.casebook import CaseOutcome
    from amends.runtime import Runtime
    from amends.settings import Settings
    from amends.tasks.report import ReportRun


# The start of Prefect's own message when its temporary server is not up in time.
_EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


@contextmanager
def _temporary_server() -> Iterator[None]:
    """Prefect's temporary server failing to start (its timeout passed on a busy machine) as
    one line that says what to do, instead of Prefect's traceback with the server's output."""
    try:
        yield
    except RuntimeError as error:
        if not str(error).startswith(_EPHEMERAL_TIMEOUT):
            raise
        from prefect.settings import get_current_settings

        timeout = get_current_settings().server.ephemeral.startup_timeout_seconds
        raise PrefectUnavailable(
            f"Prefect's temporary server did not start within {timeout} s (a busy machine?), so "
            "nothing ran: run the command again, set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_"
            "SECONDS higher, or start a server (prefect server start) and set PREFECT_API_URL"
        ) from None


def prepare(verbose: bool) -> None:
    """Quiet, offline-friendly Prefect defaults for a terminal; the environment still wins."""
    # The run's logs still reach the Prefect UI; the terminal gets the command's own report.
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL"
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def api_url() -> str | None:
    """The Prefect server's API this process talks to, if one is configured."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def task_runtime() -> Runtime:
    """The runtime the tasks use: SMTP credentials from the Prefect block that
    ``AMENDS_SMTP_BLOCK`` names."""
    from amends.tasks._runtime import task_runtime as tasks_runtime

    with _temporary_server():  # a block is read from the API
        return tasks_runtime()


def run_incident(incident: Incident) -> CaseOutcome:
    """Run the recover-incident flow in this process and return the case's outcome."""
    from prefect import tags

    from amends.flows.in_process import in_process_run
    from amends.flows.incident import recover_incident
    from amends.tasks.intake import run_tags

    # Here, in the thread that runs the flow: both are context variables. Tags given at the
    # run's creation spare label-run a call to the API.
    with _temporary_server(), in_process_run(), tags(*run_tags(incident)):
        return recover_incident(incident)


def file_incident(incident: Incident, *, by_event: bool) -> tuple[dict[str, str], str]:
    """Hand the incident to the Prefect server: as a run of the recover-incident deployment,
    or as an event its trigger turns into one. Returns what was filed and a line saying where
    to watch it."""
    from prefect.utilities.urls import url_for

    from amends.tasks.filing import file_by_deployment, file_by_event

    if by_event:
        event = file_by_event(incident)
        report = {"event": event.event, "event_id": str(event.id)}
        line = f"Incident {incident.ref} filed as event {event.id}; "
        return report, line + "the deployment's trigger runs it."
    run = file_by_deployment(incident)
    url = url_for(run) or ""
    report = {"flow_run_id": str(run.id), "flow_run_name": run.name, "url": url}
    return report, f"Flow run {run.name} ({run.id}) scheduled: {url}"


def run_report(since: date | None, until: date | None, output: Path | None) -> ReportRun:
    """Run the recovery-report flow in this process."""
    from amends.flows.report import ReportRequest, recovery_report

    with _temporary_server():
        return recovery_report(ReportRequest(since=since, until=until, output=output))


def run_monitor(
    sources: list[SourceSpec] | None, handles: list[str] | None, max_incidents: int | None
) -> MonitorReport:
    """Run the monitor-mentions flow in this process."""
    from amends.flows.monitor import MonitorRequest, monitor_mentions

    request = MonitorRequest(sources=sources, handles=handles, max_incidents=max_incidents)
    with _temporary_server():
        return monitor_mentions(request)


def run_nightly(now: datetime | None, watch: Callable[[str, int, int], None]) -> NightReport:
    """Run the nightly-reengagement flow in this process; ``watch`` hears each step's progress."""
    from amends.flows.in_process import in_process_run
    from amends.flows.nightly import nightly_reengagement
    from amends.tasks.nightly import watching

    with _temporary_server(), watching(watch), in_process_run():
        return nightly_reengagement(now=now)


def serve(settings: Settings) -> None:
    """Serve amends' deployments from this process until interrupted."""
    from amends.flows.serving import serve_all

    serve_all(settings)


__all__: Iterable[str] = [
    "api_url",
    "file_incident",
    "prepare",
    "run_incident",
    "run_monitor",
    "run_nightly",
    "run_report",
    "serve",
    "task_runtime",
]
