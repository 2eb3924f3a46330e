"""The command line's one way into Prefect: run amends' flows in this process, hand an incident
to a Prefect server, serve the deployments.

The command line calls this module for everything Prefect does and imports neither Prefect nor
the flows itself, so ``amends --help`` and the read-only commands answer at once, and the core
never reaches Prefect (it never imports this module either).
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from amends.errors import ConfigurationError, PrefectUnavailable

if TYPE_CHECKING:
    from amends.domain import Incident
    from amends.listening.sources import MonitorReport, SourceSpec
    from amends.nightly.reengagement import NightReport
    from amends.privacy import Traces
    from amends.recovery.approvals import ApprovalRequest
    from amends.recovery.batch import IncidentImport
    from amends.reporting.casebook import CaseOutcome
    from amends.runtime import Runtime
    from amends.settings import Settings
    from amends.tasks.forgetting import PrefectErasure
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
            "SECONDS higher, or keep a server running: `amends server start`, or yours in "
            "PREFECT_API_URL"
        ) from None


def prepare(verbose: bool, home: Path | None = None) -> None:
    """Quiet, offline-friendly Prefect defaults for a terminal; the environment still wins.

    With no ``PREFECT_API_URL`` in the environment, the server that ``amends server start``
    runs for the data folder ``home``, if it runs, is used: the command starts at once and its
    runs stay in the UI. Call it before anything imports Prefect, which reads its settings once.
    """
    # The run's logs still reach the Prefect UI; the terminal gets the command's own report.
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL"
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    if os.environ.get("PREFECT_API_URL") or home is None:
        return
    server = LocalServer.find(home)
    if server is not None:
        os.environ["PREFECT_API_URL"] = server.api_url


@dataclass(frozen=True)
class LocalServer:
    """A Prefect server amends keeps running for one data folder, with its own database there
    (``<home>/prefect``), until ``amends server stop``."""

    pid: int
    port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def folder(home: Path) -> Path:
        return home / "prefect"

    @classmethod
    def find(cls, home: Path) -> LocalServer | None:
        """The server recorded for this data folder, if it is up and answers."""
        record = cls.folder(home) / "server.json"
        try:
            server = cls(**json.loads(record.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return server if server.answers(timeout=2.0) else None

    def answers(self, timeout: float) -> bool:
        try:
            # Plain HTTP on loopback: no TLS context to build (a tenth of a second).
            health = httpx.get(f"{self.api_url}/health", timeout=timeout, verify=False)
            return health.status_code == 200
        except httpx.HTTPError:
            return False

    @classmethod
    def start(cls, home: Path, port: int | None = None, wait_seconds: float = 90.0) -> LocalServer:
        """Start the data folder's server (or find it running) and wait until it answers.

        Raises:
            ConfigurationError: it did not answer in time; its log says why.
        """
        folder = cls.folder(home)
        folder.mkdir(parents=True, exist_ok=True)
        # Two commands started at once start one server: the second waits here, then finds it.
        with (folder / "server.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            running = cls.find(home)
            if running is not None:
                return running
            return cls._launch(folder, port, wait_seconds)

    @classmethod
    def _launch(cls, folder: Path, port: int | None, wait_seconds: float) -> LocalServer:
        port = port or _free_port(preferred=4200)
        log = folder / "server.log"
        env = {
            **os.environ,
            "PREFECT_HOME": str(folder),
            # The UI asks this for the API's address: without it, it calls port 4200.
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        env.pop("PREFECT_API_URL", None)
        # Prefect's own server, its SQLite write transactions begun IMMEDIATE (see the module).
        command = [sys.executable, "-m", "amends.prefect_server", "server", "start"]
        with log.open("ab") as output:
            process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
                start_new_session=True,  # outlives this command; Ctrl-C here does not stop it
            )
        server = cls(pid=process.pid, port=port)
        deadline = time.monotonic() + wait_seconds
        while not server.answers(timeout=1.0):
            if process.poll() is not None:
                raise ConfigurationError(
                    f"the data folder's Prefect server stopped as it started (exit code "
                    f"{process.returncode}); its log says why: {log}"
                )
            if time.monotonic() > deadline:
                server.stop()
                raise ConfigurationError(
                    f"the data folder's Prefect server did not start within {wait_seconds:.0f} "
                    f"s (a busy machine?); its log is {log}"
                )
            time.sleep(0.2)
        (folder / "server.json").write_text(json.dumps({"pid": server.pid, "port": port}))
        return server

    def stop(self) -> None:
        """Stop the server and everything it started."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.pid, signal.SIGKILL)


def use_local_server(home: Path) -> LocalServer:
    """Start the data folder's server, or find it running, and point this process's Prefect at
    it: for a command with no server configured, whose runs then stay in the server's UI."""
    from prefect.context import refresh_global_settings_context

    server = LocalServer.start(home)
    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()  # Prefect read its settings when it was imported
    return server


def stop_local_server(home: Path) -> LocalServer | None:
    """Stop the data folder's server, if one runs; returns the one stopped."""
    server = LocalServer.find(home)
    if server is not None:
        server.stop()
    (LocalServer.folder(home) / "server.json").unlink(missing_ok=True)
    return server


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api_url() -> str | None:
    """The Prefect server's API this process talks to: None when Prefect must start a
    temporary server of its own for each command."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def task_runtime() -> Runtime:
    """The runtime the tasks use: SMTP credentials from the Prefect block that
    ``AMENDS_SMTP_BLOCK`` names."""
    from amends.tasks._runtime import task_runtime as tasks_runtime

    with _temporary_server():  # a block is read from the API
        return tasks_runtime()


def _imports_done() -> None:
    """Keep what is imported by now (Prefect brings some 1,500 modules) out of the garbage
    collector's full rounds, during the run and at exit: without this, a one-incident command
    spends about a second of CPU walking objects that live until the process ends."""
    gc.freeze()


def run_incident(incident: Incident) -> CaseOutcome:
    """Run the recover-incident flow in this process and return the case's outcome."""
    from amends.flows.in_process import in_process_run
    from amends.flows.incident import recover_incident

    _imports_done()
    # Here, in the thread that runs the flow: a context variable. The run's tags are left to
    # take-in, never given as a tags() context: every task would inherit them, and a tagged
    # task run asks the server for a concurrency slot per tag as it starts (two more calls to
    # the API per task; on a server on SQLite, seconds of waiting).
    with _temporary_server(), in_process_run():
        return recover_incident(incident)


def set_aside(flow_run_id: str | None, ref: str) -> None:
    """Cancel a run paused in this process, which is about to end: the UI must not show it
    waiting for a Resume that nothing would carry out."""
    if not flow_run_id or not api_url():
        return  # a temporary server ends with the process, and its runs with it
    from uuid import UUID

    from prefect import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            UUID(flow_run_id),
            Cancelled(
                message=f"Waits for a manager's approval; `amends approve {ref} --by NAME`, "
                "then file the incident again to finish the case."
            ),
            force=True,
        )


def resume_waiting_run(request: ApprovalRequest) -> str | None:
    """Resume the suspended run waiting for this (answered) request through Prefect's API;
    its name, or None when no run waits suspended."""
    if not request.flow_run_id or not api_url():
        return None
    from amends.tasks.approval import resume_suspended_run

    return resume_suspended_run(request)


def file_incident(incident: Incident, *, by_event: bool) -> tuple[dict[str, str], str]:
    """Record the incident and hand its reference to the Prefect server: as a run of the
    recover-incident deployment, or as an event its trigger turns into one. Returns what was
    filed and a line saying where to watch it."""
    from prefect.utilities.urls import url_for

    from amends.runtime import runtime
    from amends.tasks.filing import file_by_deployment, file_by_event

    if by_event:
        event = file_by_event(runtime(), incident)
        report = {"event": event.event, "event_id": str(event.id)}
        line = f"Incident {incident.ref} filed as event {event.id}; "
        return report, line + "the deployment's trigger runs it."
    run = file_by_deployment(runtime(), incident)
    url = url_for(run) or ""
    report = {"flow_run_id": str(run.id), "flow_run_name": run.name, "url": url}
    return report, f"Flow run {run.name} ({run.id}) scheduled: {url}"


def forget_in_prefect(traces: Traces) -> PrefectErasure:
    """Remove what Prefect holds about a customer (see :mod:`amends.tasks.forgetting`)."""
    from amends.tasks.forgetting import forget_in_prefect as forget

    _imports_done()

    with _temporary_server():
        return forget(traces)


def run_report(since: date | None, until: date | None, output: Path | None) -> ReportRun:
    """Run the recovery-report flow in this process."""
    from amends.flows.report import ReportRequest, recovery_report

    _imports_done()

    with _temporary_server():
        return recovery_report(ReportRequest(since=since, until=until, output=output))


def run_monitor(
    sources: list[SourceSpec] | None, handles: list[str] | None, max_incidents: int | None
) -> MonitorReport:
    """Run the monitor-mentions flow in this process."""
    from amends.flows.monitor import MonitorRequest, monitor_mentions

    _imports_done()

    request = MonitorRequest(sources=sources, handles=handles, max_incidents=max_incidents)
    with _temporary_server():
        return monitor_mentions(request)


def run_nightly(now: datetime | None, watch: Callable[[str, int, int], None]) -> NightReport:
    """Run the nightly-reengagement flow in this process; ``watch`` hears each step's progress."""
    from amends.flows.in_process import in_process_run
    from amends.flows.nightly import nightly_reengagement
    from amends.tasks.nightly import watching

    _imports_done()
    with _temporary_server(), watching(watch), in_process_run():
        return nightly_reengagement(now=now)


def run_import(
    file: Path, map_file: Path, watch: Callable[[IncidentImport], None]
) -> IncidentImport:
    """Run the import-incidents flow in this process; ``watch`` hears after each batch."""
    from amends.flows.import_incidents import import_incidents
    from amends.flows.in_process import in_process_run
    from amends.tasks.importing import watching

    _imports_done()
    with _temporary_server(), watching(watch), in_process_run():
        return import_incidents(file=str(file.resolve()), map_file=str(map_file.resolve()))


def serve(settings: Settings) -> None:
    """Serve amends' deployments from this process until interrupted."""
    from amends.deployments.serving import serve_all

    serve_all(settings)


def deploy(settings: Settings, work_pool: str | None, prefect_file: Path | None) -> list[str]:
    """Create or update amends' deployments on the Prefect server for a work pool's workers;
    returns their full names."""
    from amends.deployments.serving import deploy_all

    return list(deploy_all(settings, work_pool=work_pool, prefect_file=prefect_file))


__all__: Iterable[str] = [
    "LocalServer",
    "api_url",
    "deploy",
    "file_incident",
    "forget_in_prefect",
    "prepare",
    "run_incident",
    "run_monitor",
    "run_nightly",
    "run_report",
    "serve",
    "stop_local_server",
    "task_runtime",
    "use_local_server",
]
