"""Importing a complaints export: a task per batch, filing its incidents and running their
stages set-based, and a progress report that reaches the terminal and the run's logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from amends.domain import Incident
from amends.recovery.batch import IncidentImport, Row, batches, import_batch, incidents_of
from amends.recovery.batch import read_rows as _read_rows
from amends.recovery.mapping import load_map
from amends.tasks._runtime import task_runtime

Watcher = Callable[[IncidentImport], None]
_watchers: list[Watcher] = []


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Call ``watcher(report)`` after each batch in this process (the CLI's progress line);
    the run's logs say the same for the Prefect UI."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


def read_batches(file: str, map_file: str, report: IncidentImport) -> Iterator[list[Row]]:
    """The file's valid rows a batch at a time, read as they are needed (memory stays flat);
    refused rows go to ``report``.

    Raises:
        MapError, ImportFileError: the map or the file cannot be used; nothing is filed.
    """
    return batches(_read_rows(Path(file), load_map(Path(map_file)), report))


@task(name="import-batch", cache_policy=NONE, task_run_name="batch-{number}")
def file_and_recover(rows: list[Row], number: int) -> tuple[IncidentImport, list[int]]:
    """File a batch's incidents and run the recovery stages over them, a stage at a time for
    the whole batch; return what was done and the cases waiting for a manager."""
    done, awaiting = import_batch(task_runtime(), rows, number)
    # Counts only: the rows' people stay out of Prefect.
    get_run_logger().info(
        "batch %d: %d filed (%d as history), %d filed before, %d refused, %d wait for approval",
        number,
        done.added,
        done.history,
        done.unchanged,
        len(done.refused),
        len(awaiting),
    )
    return done, awaiting


def progress(report: IncidentImport) -> None:
    """Tell the terminal and the run's logs how far the import is."""
    for watcher in _watchers:
        watcher(report)
    get_run_logger().info(
        "%d rows read: %d filed, %d filed before, %d refused",
        report.read,
        report.added,
        report.unchanged,
        len(report.refused),
    )


def waiting_incidents(case_ids: list[int]) -> list[Incident]:
    """The incidents whose runs wait for a manager, as filed."""
    return incidents_of(task_runtime(), case_ids)
