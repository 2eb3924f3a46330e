"""Shared fixtures: real parts wherever a user would meet them.

- Prefect: one ``prefect_test_harness`` per session, with PREFECT_HOME and result storage in a
  temporary folder, so nothing leaks between sessions (see ../shared/NOTES.md).
- Mail: a real SMTP server on loopback (aiosmtpd) per test.
- Databases: a SQLite file, and PostgreSQL at AMENDS_TEST_POSTGRES_URL (a fresh schema per
  test). Without PostgreSQL the PostgreSQL cases skip with the reason, except under CI, where
  they fail.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

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

from sqlalchemy import create_engine, text  # noqa: E402

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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if _PG_PROBLEM:
        if os.environ.get("CI"):
            pytest.fail(f"{_PG_PROBLEM} (CI must run the PostgreSQL tests)")
        pytest.skip(_PG_PROBLEM)
    schema = f"amends_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'create schema "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'amends.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on a migrated database, as after `amends db upgrade`."""
    database = Database(database_url)
    database.upgrade()
    database.dispose()
    return Settings(home=tmp_path / "var", database_url=database_url)


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
