"""Prefect flows. They only orchestrate: every step is a task in :mod:`tasks`."""
