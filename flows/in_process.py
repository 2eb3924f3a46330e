"""Prefect settings for running amends' flows in the calling process (``amends incident``,
``amends night``, the bench), rather than on a worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def in_process_run() -> Iterator[None]:
    """Run flows here without the flow-run heartbeat.

    A synchronous flow joins its heartbeat thread on exit, and that thread sleeps in 1 s steps:
    up to a second per run, most of an incident's time. The heartbeat lets an automation spot a
    run whose worker died; a run in this process ends, or is marked crashed, with the process.
    Only ``None`` turns it off, and no environment variable can say ``None``, hence a context.
    The settings are a context variable: enter this in the thread that calls the flow.
    """
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
