"""A scratch database for a bench run: SQLite in its data folder, or a PostgreSQL schema."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sqlalchemy import create_engine, text

from amends.storage.db import normalise_url


@contextlib.contextmanager
def scratch_database(postgres: str | None, tag: str = "") -> Iterator[str | None]:
    """None (SQLite in the data folder), or a PostgreSQL URL on a schema dropped afterwards."""
    if postgres is None:
        yield None
        return
    schema = f"amends_bench_{os.getpid()}{tag}"
    admin = create_engine(normalise_url(postgres))
    with admin.begin() as connection:
        connection.execute(text(f"create schema {schema}"))
    try:
        yield f"{normalise_url(postgres)}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()
