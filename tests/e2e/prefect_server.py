"""A real Prefect deployment on loopback, for the end-to-end tests and bench/incident.py.

The parts, each a context manager that cleans up after itself, even when the body fails:

- :func:`fresh_postgres_database`: a database of its own on the PostgreSQL at 127.0.0.1:5432,
  dropped afterwards;
- :func:`prefect_server`: ``prefect server start`` on that database, on a free port, with its own
  ``PREFECT_HOME``; yields a :class:`PrefectServer` once ``/api/health`` answers;
- :func:`prefect_worker`: ``prefect worker start`` on a process work pool.

Every process starts in a session (process group) of its own and is stopped by group, so the
children it spawns (the server's uvicorn, a worker's flow runs) go with it. Their output goes to
a log file, which :meth:`ProcessLog.tail` reads for failure messages.

The subprocesses get an explicit environment (:meth:`PrefectServer.env`): the tests' conftest
points this process's ``PREFECT_HOME`` at the in-process harness, and the children must not
inherit that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from amends.mailcatcher import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get(
    "AMENDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# A cold server runs its migrations first: ~11 s here, much more on a busy CI machine.
SERVER_START_TIMEOUT = 180.0

# Quiet and offline: no telemetry calls from a machine without internet, only warnings on the
# terminal (the runs' logs still reach the API and the UI, as for a user).
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


@dataclass
class ProcessLog:
    """A started process group and the file its output goes to."""

    process: subprocess.Popen[bytes]
    path: Path

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the process's output, for a failure message."""
        try:
            text_ = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text_.splitlines()[-lines:]) or "(no output)"


@contextlib.contextmanager
def process_group(
    args: list[str], log: Path, env: Mapping[str, str], cwd: Path = REPO
) -> Iterator[ProcessLog]:
    """Run ``args`` in a new session; on exit stop its whole group: SIGTERM, then SIGKILL."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield ProcessLog(process, log)
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Children that outlived their parent (a flow run a worker started) share its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create the database ``<prefix>_<hex>`` on the test PostgreSQL server; yield its name.

    Dropped afterwards with ``FORCE``, so connections a killed process left behind do not keep
    it alive.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # CREATE/DROP DATABASE cannot run inside a transaction.
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'create database "{name}"'))
        try:
            yield name
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'drop database if exists "{name}" with (force)'))
    finally:
        admin.dispose()


def postgres_database_url(database: str, driver: str) -> str:
    """The test PostgreSQL server's URL for ``database`` with ``driver`` (psycopg, asyncpg)."""
    url = make_url(POSTGRES_ADMIN_URL).set(drivername=f"postgresql+{driver}", database=database)
    return url.render_as_string(hide_password=False)


@dataclass
class PrefectServer:
    """A running ``prefect server start``: where it answers and how to talk to it."""

    port: int
    home: Path
    log: ProcessLog
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The UI's root."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self, home: Path | None = None, **changes: str) -> dict[str, str]:
        """An environment for a client process of this server: the ``prefect`` CLI, a worker.

        Args:
            home: Its own PREFECT_HOME (the server's when None).
            **changes: More variables, e.g. ``AMENDS_DATABASE_URL``.
        """
        env = client_env(self.api_url, home or self.home)
        env.update(self.extra_env)
        env.update(changes)
        return env


def client_env(api_url: str, home: Path) -> dict[str, str]:
    """This process's environment, without Prefect's or amends' settings, pointed at
    ``api_url`` with ``PREFECT_HOME`` at ``home``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "AMENDS_"))
    }
    env.update(QUIET)
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home),
        # The venv's `prefect` first, whichever way the tests were started.
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@contextlib.contextmanager
def prefect_server(folder: Path, database: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on the PostgreSQL ``database``, with its home in ``folder``.

    Yields once ``/api/health`` answers; raises with the server's output if it never does.
    """
    port = free_port()
    home = folder / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = client_env(f"http://127.0.0.1:{port}/api", home)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres_database_url(database, "asyncpg")
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with process_group(args, folder / "prefect-server.log", env) as log:
        server = PrefectServer(port=port, home=home, log=log)
        wait_until_healthy(server)
        yield server


def wait_until_healthy(server: PrefectServer, timeout: float = SERVER_START_TIMEOUT) -> None:
    """Poll ``/api/health`` until it answers 200; fail with the server's output otherwise."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.log.process.poll() is not None:
                raise RuntimeError(
                    f"the Prefect server exited with {server.log.process.returncode}:\n"
                    f"{server.log.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{server.api_url}/health").status_code == 200:
                    return
            time.sleep(0.5)
    raise RuntimeError(
        f"the Prefect server at {server.url} was not healthy after {timeout:.0f} s:\n"
        f"{server.log.tail()}"
    )


def prefect_cli(server: PrefectServer, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``prefect ARGS`` against ``server`` from the repository root; return its output.

    Raises:
        RuntimeError: The command failed; the message carries its output.
    """
    done = subprocess.run(
        [str(BIN / "prefect"), *args],
        cwd=REPO,
        env=dict(env or server.env()),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`prefect {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


@contextlib.contextmanager
def prefect_worker(
    server: PrefectServer, pool: str, log: Path, env: Mapping[str, str]
) -> Iterator[ProcessLog]:
    """``prefect worker start --pool POOL`` (the pool must exist) from the repository root.

    Args:
        server: The server it polls.
        pool: A process work pool.
        log: Where its output (and its flow runs') goes.
        env: Its environment (e.g. ``server.env(AMENDS_DATABASE_URL=...)``); flow runs inherit it.
    """
    args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
    with process_group(args, log, env) as worker:
        yield worker
