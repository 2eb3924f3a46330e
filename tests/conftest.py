"""Shared fixtures: real parts wherever a user would meet them.

- Prefect: one ``prefect_test_harness`` per session, with PREFECT_HOME and result storage in a
  temporary folder, so nothing leaks between sessions (see ../shared/NOTES.md).
- Mail: a real SMTP server on loopback (aiosmtpd) per test.
- Databases: a SQLite file, and PostgreSQL at AMENDS_TEST_POSTGRES_URL. ``database_url`` is
  empty (a fresh file, a fresh schema), for the migration tests; ``settings`` and everything
  on it get a database at the migrations' head, migrated once per session (per xdist worker)
  and copied for each test: the SQLite file with ``shutil.copy``; on PostgreSQL the
  migration's SQL, recorded once, replayed into a fresh schema (see ``_MigrationScript``).
  Without PostgreSQL the PostgreSQL cases skip with the reason, except under CI, where they
  fail.
- Parallel runs (pytest-xdist): each worker is its own process, so it has its own
  PREFECT_HOME, Prefect harness, temporary folders and SQLite template; PostgreSQL schema
  names carry a random part.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports Prefect: keep its state out of the user's ~/.prefect and quiet.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="amends-tests-prefect-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_PREFECT_HOME / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"  # tasks run alone in tests
os.environ.pop("PREFECT_API_URL", None)
for _name in [name for name in os.environ if name.startswith("AMENDS_")]:
    if _name != "AMENDS_TEST_POSTGRES_URL":
        del os.environ[_name]
# A command with no server configured starts none that outlives the test: the tests that run
# the data folder's server (tests/e2e/test_local_server.py) ask for it and stop it.
os.environ["AMENDS_PREFECT_SERVER"] = "temporary"

from sqlalchemy import create_engine, event, text  # noqa: E402

from amends.delivery.channels import EmailAdapter, RecordingAdapter  # noqa: E402
from amends.delivery.mailcatcher import MailCatcher, free_port  # noqa: E402
from amends.domain import ReplyChannel  # noqa: E402
from amends.runtime import Runtime, use_runtime  # noqa: E402
from amends.settings import Settings  # noqa: E402
from amends.storage.db import Database  # noqa: E402

POSTGRES_URL = os.environ.get(
    "AMENDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as error:  # any failure to connect means: not here
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(error).__name__}"
    return None


_PG_PROBLEM = _postgres_unavailable()


def _require_postgres() -> None:
    if _PG_PROBLEM:
        if os.environ.get("CI"):
            pytest.fail(f"{_PG_PROBLEM} (CI must run the PostgreSQL tests)")
        pytest.skip(_PG_PROBLEM)


def _unique(prefix: str) -> str:
    """A PostgreSQL name no other test, worker or session uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema, dropped afterwards."""
    _require_postgres()
    schema = _unique("amends_test")
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'create schema "{schema}"'))
    yield _in_schema(schema)
    with admin.begin() as connection:
        connection.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database. Each test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'amends.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (per worker), to copy for each test."""
    path = tmp_path_factory.mktemp("template") / "amends.storage.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists(), "template's WAL not checkpointed"
    return path


class _MigrationScript:
    """The SQL that migrating an empty PostgreSQL schema to head sends, recorded once per
    session (per xdist worker) and replayed into a fresh schema for each test.

    The same statements in the same order as ``Database.upgrade()`` on an empty schema, in one
    transaction, without Alembic's start-up on every test or the copy of a whole database that
    ``CREATE DATABASE ... TEMPLATE`` makes. Measured at load 3-4 on 2 cores, 71 tests, half on
    PostgreSQL: migrating per test 32-53 s, a TEMPLATE copy per test 24-48 s, this 31-42 s;
    a per-test migration costs ~0.3 s quiet and over 1 s under load.
    """

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.admin = create_engine(POSTGRES_URL)
        schema = _unique("amends_template")
        with self.admin.begin() as connection:
            connection.execute(text(f'create schema "{schema}"'))
        try:
            database = Database(_in_schema(schema))
            event.listen(database.engine, "before_cursor_execute", self._record)
            database.upgrade()
            database.dispose()
            migrated = Database(_in_schema(schema))
            self.revision = migrated.revision()
            migrated.dispose()
            self.tables = self._tables(schema)
        finally:
            self.drop(schema)
        # The replay must give what migrating gives: the same tables, at the same revision.
        check = _unique("amends_check")
        self.replay(check)
        try:
            replayed = Database(_in_schema(check))
            assert (self._tables(check), replayed.revision()) == (self.tables, self.revision)
            replayed.dispose()
        finally:
            self.drop(check)

    def _record(self, _conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        self.statements.append((statement, parameters))

    def _tables(self, schema: str) -> list[str]:
        with self.admin.connect() as connection:
            return list(
                connection.scalars(
                    text("select tablename from pg_tables where schemaname = :s order by 1"),
                    {"s": schema},
                )
            )

    def replay(self, schema: str) -> None:
        with self.admin.begin() as connection:
            connection.exec_driver_sql(f'create schema "{schema}"')
            connection.exec_driver_sql(f'set local search_path to "{schema}"')
            for statement, parameters in self.statements:
                connection.exec_driver_sql(statement, parameters)

    def drop(self, schema: str) -> None:
        with self.admin.begin() as connection:
            connection.exec_driver_sql(f'drop schema "{schema}" cascade')


def _in_schema(schema: str) -> str:
    """POSTGRES_URL with its search_path set to ``schema``."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def _migration_script() -> Iterator[_MigrationScript]:
    script = _MigrationScript()
    yield script
    script.admin.dispose()


@pytest.fixture
def migrated_postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema at the migrations' head, dropped
    afterwards."""
    _require_postgres()
    script: _MigrationScript = request.getfixturevalue("_migration_script")
    schema = _unique("amends_test")
    script.replay(schema)
    try:
        yield _in_schema(schema)
    finally:
        script.drop(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the migrations' head, as after `amends db upgrade`, on SQLite and on
    PostgreSQL: a copy of the session's migrated template."""
    if request.param == "sqlite":
        path = tmp_path / "amends.storage.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("migrated_postgres_url")


@pytest.fixture
def settings(tmp_path: Path, migrated_database_url: str) -> Settings:
    """Settings on a migrated database, as after `amends db upgrade`."""
    return Settings(home=tmp_path / "var", database_url=migrated_database_url)


@pytest.fixture
def recorder() -> RecordingAdapter:
    return RecordingAdapter()


@pytest.fixture
def rt(settings: Settings, recorder: RecordingAdapter) -> Iterator[Runtime]:
    """A runtime whose email goes to an in-memory recorder."""
    runtime = Runtime.from_settings(settings, channels={ReplyChannel.EMAIL: recorder})
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


@pytest.fixture
def mail_catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    with MailCatcher(tmp_path / "caught") as catcher:
        yield catcher


@pytest.fixture
def smtp_rt(settings: Settings, mail_catcher: MailCatcher) -> Iterator[Runtime]:
    """A runtime whose email goes over SMTP to a real server on loopback."""
    smtp_settings = settings.model_copy(update={"smtp_port": mail_catcher.port})
    runtime = Runtime.from_settings(
        smtp_settings, channels={ReplyChannel.EMAIL: EmailAdapter(smtp_settings)}
    )
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


@pytest.fixture
def rt_without_smtp(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose SMTP server is down: nothing listens on its port."""
    down = settings.model_copy(update={"smtp_port": free_port()})
    runtime = Runtime.from_settings(down, channels={ReplyChannel.EMAIL: EmailAdapter(down)})
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
