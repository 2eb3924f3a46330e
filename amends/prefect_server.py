"""The data folder's Prefect server process, as amends starts it: Prefect's own command line
(``python -m amends.prefect_server server start ...``), with the server's write transactions on
SQLite begun IMMEDIATE.

Prefect begins most of them DEFERRED: such a transaction reads first, and if another connection
commits before it writes (the server's own services record the last run's task runs and events
while the command line creates the next run), SQLite refuses the write at once
(SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out). The API answers 503 and the client
tries again two seconds later: most runs of a command line working through incidents one after
another lost two seconds this way. Begun IMMEDIATE, a write transaction waits its turn for the
lock instead, as Prefect's own migrations do (see PrefectHQ/prefect#18934). Reads are untouched.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def write_transactions_immediate() -> bool:
    """Begin the server's SQLite write transactions IMMEDIATE; False (and the server as Prefect
    made it) where this Prefect has no such hook."""
    try:
        from prefect.server.database.configurations import AioSqliteConfiguration
    except ImportError:
        return False
    begin = getattr(AioSqliteConfiguration, "begin_transaction", None)
    if begin is None:
        return False

    @asynccontextmanager
    async def begin_immediate(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        # Prefect's IMMEDIATE mode, meant for SELECT ... FOR UPDATE: the lock taken at BEGIN.
        async with begin(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]
    return True


def main() -> None:
    if not write_transactions_immediate():
        print(
            "amends: this Prefect's SQLite transactions could not be begun IMMEDIATE; runs may "
            "wait for a busy database",
            file=sys.stderr,
        )
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()


if __name__ == "__main__":
    main()
