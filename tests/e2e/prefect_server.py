"""A real Prefect server on PostgreSQL (or SQLite), with process workers, for the end-to-end
tests and bench/incident.py.

amends is deployed and run as a user without a clone would: ``prefect deploy`` of the installed
prefect.yaml (amends.deployments.PREFECT_FILE) and workers started in folders of their own, so
the runs import the installed package.

Every process runs in its own session (process group) and is killed with its children when the
``with`` block ends, even on failure; every database is created fresh on the test PostgreSQL
(127.0.0.1:5432 unless AMENDS_TEST_POSTGRES_URL says otherwise) and dropped afterwards. The
processes get an environment of their own: the test session's (tests/conftest.py) has no
PREFECT_API_URL and points PREFECT_HOME at the test harness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from amends.delivery.mailcatcher import free_port
from amends.deployments import PREFECT_FILE

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get(
    "AMENDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# No telemetry (there is no network here), and only warnings on the terminal: the runs' logs
# still reach the API and the UI, as for a user.
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# What the server logs when its scheduler fails (with SQLAlchemy 2.1 on PostgreSQL, every loop).
SCHEDULER_ERRORS = ("Traceback", "InvalidRequestError", "Can't evaluate bulk DML")


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL (psycopg) and drops it after.

    Skips when PostgreSQL is not reachable, except under CI, where it fails.
    """
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'create database "{name}"'))
    except Exception as error:  # any failure to connect means: not here
        admin.dispose()
        problem = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(error).__name__}"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the end-to-end tests)")
        pytest.skip(problem)
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any Prefect or amends setting, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "AMENDS_")) or k == "AMENDS_TEST_POSTGRES_URL"
    }
    env.update(QUIET, **values)
    return env


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path = REPOSITORY) -> Any:
    """Start a process in its own session, its output in ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started by :func:`start`, and whatever it started in its group."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace)


@dataclass
class PrefectServer:
    """A running server: its API URL, and the environment its clients and workers use."""

    api_url: str
    home: Path
    env: dict[str, str]
    logs: Path
    # The server's PostgreSQL database (a SQLAlchemy URL), or None on SQLite (home/prefect.db).
    database_url: str | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        """The UI's root."""
        return self.api_url.removesuffix("/api")

    def run(self, *args: str, env: dict[str, str] | None = None, cwd: Path = REPOSITORY) -> str:
        """Run a command (``prefect``, ``amends``, ``python``: from this virtual environment)
        against the server, from ``cwd``; returns its output, fails the test on an error."""
        command = [str(BIN / args[0]), *args[1:]]
        done = subprocess.run(
            command, env=env or self.env, cwd=cwd, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def folder(self, name: str) -> Path:
        """An empty folder outside the repository, to run a command or a worker from."""
        folder = self.home.parent / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def deploy(
        self,
        pool: str = "amends",
        prefect_file: Path | None = None,
        timezone: str = "Europe/Madrid",
        with_prefect: bool = False,
    ) -> str:
        """Create the process work pool and deploy every deployment of the installed
        prefect.yaml (or an edited copy) as the README says, from a folder that is no clone,
        with the business time zone in the environment: ``amends deploy``,
        or ``prefect deploy --all`` on the same file (``with_prefect``). Returns the output."""
        self.run("prefect", "work-pool", "create", pool, "--type", "process")
        env = {**self.env, "AMENDS_BUSINESS_TIMEZONE": timezone}
        if with_prefect:
            command = ["prefect", "deploy", "--all", "--prefect-file"]
            command.append(str(prefect_file or PREFECT_FILE))
        else:
            command = ["amends", "deploy", "--pool", pool]
            command += ["--prefect-file", str(prefect_file)] if prefect_file else []
        return self.run(*command, env=env, cwd=self.folder("deploy"))

    def worker(self, name: str, env: dict[str, str], pool: str = "amends", limit: int = 2) -> Any:
        """Start ``prefect worker start`` in a process and a folder of its own (no clone: its
        runs import the installed amends); stopped with the server. The worker polls every
        second, and runs at most ``limit`` flow runs at once."""
        worker_env = {
            **self.env,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            # Its log names the runs it submits.
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
            **env,
        }
        command = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--name", name]
        process = start(
            [*command, "--limit", str(limit)], worker_env, self.worker_log(name),
            cwd=self.folder(f"worker-{name}"),
        )  # fmt: skip
        self._stack.callback(stop, process)
        return process

    def serve(self, env: dict[str, str], prefect_file: Path | None = None) -> Any:
        """Start ``python -m amends.deployments.serve`` (what ``amends serve`` runs) in a
        process and a folder of its own; stopped with the server. Output: worker_log("serve")."""
        command = [str(BIN / "python"), "-m", "amends.deployments.serve"]
        command += ["--prefect-file", str(prefect_file)] if prefect_file else []
        process = start(
            command, {**self.env, **env}, self.worker_log("serve"), cwd=self.folder("serve")
        )
        self._stack.callback(stop, process)
        return process

    def worker_log(self, name: str) -> Path:
        return self.logs / f"worker-{name}.log"

    def worker_output(self, name: str, lines: int = 60) -> str:
        """The end of a worker's output, for a failure message."""
        log = self.worker_log(name)
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def server_log(self) -> str:
        return (self.logs / "server.log").read_text(errors="replace")

    def scheduler_errors(self) -> list[str]:
        """The lines of the server's log that say its scheduler (or anything) failed."""
        return [
            line
            for line in self.server_log().splitlines()
            if any(error in line for error in SCHEDULER_ERRORS) or " | ERROR " in line
        ]

    def kill_unfinished_runs(self) -> None:
        """Kill the process of every flow run not finished (after a failure)."""
        for run in self.flow_runs():
            pid = (run.get("infrastructure_pid") or "").rpartition(":")[2]
            if run["state_type"] not in TERMINAL and pid.isdigit():
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)

    def api(self, method: str, path: str, **json: Any) -> Any:
        """Call the server's REST API; returns the decoded answer."""
        answer = httpx.request(method, f"{self.api_url}{path}", json=json or None, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def flow_runs(self, flow_name: str | None = None) -> list[dict[str, Any]]:
        """Every flow run (of one flow), with its state, soonest first."""
        query: dict[str, Any] = {"limit": 200, "sort": "EXPECTED_START_TIME_ASC"}
        if flow_name:
            query["flows"] = {"name": {"any_": [flow_name]}}
        return self.api("POST", "/flow_runs/filter", **query)

    def events(self, name: str) -> int:
        """How many events of that name the server has recorded."""
        query = {"filter": {"event": {"name": [name]}}, "limit": 1}
        return self.api("POST", "/events/filter", **query)["total"]

    def wait_for_runs(self, flow_name: str, count: int, timeout: float = 600) -> list[dict]:
        """Wait until ``count`` runs of the flow are finished; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.flow_runs(flow_name)
            finished = [r for r in runs if r["state_type"] in TERMINAL]
            if len(finished) >= count:
                return finished
            if time.monotonic() > deadline:
                states = sorted(f"{r['name']}: {r['state_type']}" for r in runs)
                raise AssertionError(f"{flow_name}: {len(finished)} of {count} done: {states}")
            time.sleep(1)


@contextmanager
def prefect_server(
    tmp_path: Path,
    startup_timeout: float = 180,
    database: str = "postgresql",
    scheduler_loop_seconds: float | None = None,
) -> Iterator[PrefectServer]:
    """``prefect server start`` on a fresh PostgreSQL database (``database="sqlite"``: Prefect's
    default SQLite file), PREFECT_HOME in ``tmp_path``, on a free port; yields once
    /api/health answers. ``scheduler_loop_seconds`` shortens the scheduler's loop (60 s).
    Stops the server, its workers and drops its database."""
    logs = tmp_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        home = tmp_path / "prefect-home"
        # The UI asks the API where the server says it is (its default is port 4200).
        settings = {"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url}
        database_url = None
        if database == "postgresql":
            database_url = stack.enter_context(fresh_database("prefect_e2e"))
            settings["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = (
                make_url(database_url)
                .set(drivername="postgresql+asyncpg")
                .render_as_string(hide_password=False)
            )
        elif database != "sqlite":
            raise ValueError(f"no such database for the Prefect server: {database}")
        if scheduler_loop_seconds is not None:
            settings["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = str(scheduler_loop_seconds)
        server_env = clean_env(**settings)
        command = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        process = start([str(BIN / command[0]), *command[1:]], server_env, logs / "server.log")
        stack.callback(stop, process)
        _wait_healthy(api_url, process, logs / "server.log", startup_timeout)
        server = PrefectServer(
            api_url=api_url,
            home=home,
            env=clean_env(PREFECT_HOME=str(home), PREFECT_API_URL=api_url),
            logs=logs,
            database_url=database_url,
        )
        # Workers stop before the server (an ExitStack unwinds last-in first-out), and the
        # runs still going before them: a worker may start a run in a session of its own.
        stack.enter_context(server._stack)
        stack.callback(server.kill_unfinished_runs)
        yield server


def _wait_healthy(api_url: str, process: Any, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the Prefect server was not healthy in {timeout} s:\n{log.read_text()}")
