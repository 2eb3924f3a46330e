"""The one database session factory, and migrations.

SQLite (the default) gets WAL and a busy timeout so a flow's tasks and the CLI can share the
file; PostgreSQL works through psycopg 3 (``postgresql+psycopg://...``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def head_revision() -> str:
    """The newest migration's revision: each script is named after its revision (``0009_...``),
    so every command can check the database without loading Alembic and its scripts."""
    return max(path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9]" * 4 + "_*.py"))


def normalise_url(url: str) -> str:
    """Let ``postgresql://`` mean psycopg 3, the driver amends installs."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """An engine, a session factory and the migrations for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def _alembic(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def upgrade(self) -> list[str]:
        """Apply every pending migration; returns the revisions applied."""
        from alembic import command
        from alembic.script import ScriptDirectory

        config = self._alembic()
        before = self.revision()
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as connection:
            if sqlite:
                # Alembic rebuilds a table to alter it on SQLite; the rows that point at it must
                # not stop that. Outside a transaction, or SQLite ignores the pragma.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
        script = ScriptDirectory.from_config(config)
        return [rev.revision for rev in script.iterate_revisions("head", before)][::-1]

    def revision(self) -> str | None:
        """The revision the database is at, or None for an empty database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.scalar(text("SELECT version_num FROM alembic_version"))

    def is_current(self) -> bool:
        return self.revision() == head_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def analyze(connection: Connection, tables: Iterable[str]) -> None:
    """Have PostgreSQL's planner look at these tables again, after writing many rows to them.

    A table that grew faster than autovacuum analyses it (or inside one transaction, where it
    never does) is planned as it was: small, where reading all of it was cheapest. Each query
    then reads the whole table, and the work slows as the table grows. SQLite's planner needs
    no statistics to use an index."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {', '.join(tables)}")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # With WAL, NORMAL survives a crashed process (the kill test); only a power cut may lose
    # the last commits. It saves an fsync per commit, which the outbox makes two of a message.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
