"""The ``amends`` command line, one module per group of commands.

The commands call :mod:`amends.runner` for anything Prefect does and import the rest lazily, so
``amends --help`` and the read-only commands answer at once.
"""

# isort: off
# Importing a group registers its commands; the order here is the order of --help's panels.
from amends.cli import demo, profile, cases, staff, messages, scheduled, listening, data, server  # noqa: F401
from amends.cli._app import app

# isort: on

__all__ = ["app"]
