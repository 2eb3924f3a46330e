"""Prefect tasks, one module per recovery stage plus intake and delivery.

A task adds what Prefect is for (logging, retries, artifacts, run labels); the decision itself
lives in the core, in :mod:`amends`, and the task calls it. Idempotency lives in the database,
not in Prefect's result cache, so every task here runs with ``cache_policy=NONE``.
"""
