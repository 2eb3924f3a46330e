"""Prefect settings for running amends' flows in the calling process (``amends incident``,
``amends night``, the bench), rather than on a worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings

# The settings last derived, and those they came from: deriving them validates every setting
# again (about 0.1 s), and a process that runs many flows asks for the same ones each time.
_derived: tuple[Settings, Settings] | None = None


@contextmanager
def in_process_run() -> Iterator[None]:
    """Run flows here without the flow-run heartbeat.

    A synchronous flow joins its heartbeat thread on exit, and that thread sleeps in 1 s steps:
    up to a second per run, most of an incident's time. The heartbeat lets an automation spot a
    run whose worker died; a run in this process ends, or is marked crashed, with the process.
    Only ``None`` turns it off, and no environment variable can say ``None``, hence a context.
    The settings are a context variable: enter this in the thread that calls the flow.
    """
    global _derived
    context = get_settings_context()
    if context.settings.flows.heartbeat_frequency is None:
        yield
        return
    if _derived is None or _derived[0] is not context.settings:
        quiet = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _derived = (context.settings, quiet)
    with SettingsContext(profile=context.profile, settings=_derived[1]):
        yield
