"""amends' four deployments as Prefect objects, built from their one declaration: the
``prefect.yaml`` installed as ``amends.deployments`` (the repository's deployments/prefect.yaml).

``amends serve`` (:func:`serve_all`) serves them from one process, for a small business without
a work pool; :func:`deploy_all` registers them with a work pool, as ``prefect deploy --all``
does with the same file, for workers that need only ``pip install amends``. Either way the
entrypoints are module paths, the ``{{ $AMENDS_BUSINESS_TIMEZONE }}`` of the schedules is the
settings' business time zone, and the incident event's trigger comes along.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentTriggerTypes
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Schedule
from prefect.types.entrypoint import EntrypointType
from pydantic import TypeAdapter

from amends.deployments import PREFECT_FILE
from amends.settings import Settings

# The placeholder prefect.yaml puts where the business's time zone goes.
BUSINESS_TIMEZONE = re.compile(r"{{\s*\$AMENDS_BUSINESS_TIMEZONE\s*}}")
_TRIGGERS: TypeAdapter[DeploymentTriggerTypes] = TypeAdapter(DeploymentTriggerTypes)
# What a schedule of prefect.yaml may say (Prefect's own keys, as `prefect deploy` reads them).
_SCHEDULE_KEYS = {"cron", "rrule", "timezone", "day_or", "active", "parameters", "slug"}
# What a deployment of prefect.yaml may say here; anything else is refused, not dropped.
_DEPLOYMENT_KEYS = {
    "name", "description", "entrypoint", "tags", "work_pool", "triggers", "schedules",
    "concurrency_limit", "parameters", "version", "paused", "enforce_parameter_schema",
}  # fmt: skip


def declared(prefect_file: Path | None = None) -> list[dict[str, Any]]:
    """The deployments as declared in ``prefect_file`` (by default the installed prefect.yaml):
    one dict per deployment, in the file's order and with its keys."""
    text = (prefect_file or PREFECT_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)["deployments"]


def deployments(settings: Settings, prefect_file: Path | None = None) -> list[RunnerDeployment]:
    """The declared deployments, ready to serve or to apply: the incident deployment with its
    event trigger, the nightly and weekly ones on their crons in ``settings``' business time
    zone, and the mentions monitor every quarter hour, one run at a time.

    Example:
        ```python
        from pathlib import Path

        from amends.deployments.serving import deployments
        from amends.settings import Settings

        names = [d.name for d in deployments(Settings(business_file=Path("business.yaml")))]
        ```
    """
    return [_deployment(spec, settings) for spec in declared(prefect_file)]


def serve_all(settings: Settings, prefect_file: Path | None = None) -> None:
    """Serve every deployment (of ``prefect_file``, by default the installed prefect.yaml) from
    this process until interrupted (Ctrl+C)."""
    serve(*deployments(settings, prefect_file))


def deploy_all(
    settings: Settings, work_pool: str | None = None, prefect_file: Path | None = None
) -> dict[str, UUID]:
    """Create or update every deployment on the Prefect server (PREFECT_API_URL) for the work
    pool the declaration names, or ``work_pool``; returns their ids by full name
    (``flow/deployment``). Like ``prefect deploy --all`` on the same file, but with the
    business time zone of ``settings``. The work pool must exist (``prefect work-pool create
    amends --type process``).

    Example:
        ```python
        from amends.deployments.serving import deploy_all
        from amends.settings import Settings

        deploy_all(Settings(), work_pool="amends")  # with PREFECT_API_URL set
        ```
    """
    return {
        deployment.full_name: deployment.apply(
            work_pool_name=work_pool or (spec.get("work_pool") or {}).get("name")
        )
        for spec, deployment in zip(
            declared(prefect_file), deployments(settings, prefect_file), strict=True
        )
    }


def _deployment(spec: dict[str, Any], settings: Settings) -> RunnerDeployment:
    unknown = set(spec) - _DEPLOYMENT_KEYS
    if unknown:
        raise ValueError(f"prefect.yaml: {spec.get('name')}: unknown keys {sorted(unknown)}")
    pool = spec.get("work_pool") or {}
    flow = load_flow_from_entrypoint(spec["entrypoint"], use_placeholder_flow=False)
    limit = spec.get("concurrency_limit")
    if isinstance(limit, dict):
        limit = ConcurrencyLimitConfig(
            limit=limit["limit"],
            collision_strategy=ConcurrencyLimitStrategy(
                limit.get("collision_strategy", ConcurrencyLimitStrategy.ENQUEUE)
            ),
        )
    triggers = [
        _TRIGGERS.validate_python({"name": f"{spec['name']}__automation_{n}", **trigger})
        for n, trigger in enumerate(spec.get("triggers") or [], start=1)
    ]
    return flow.to_deployment(
        name=spec["name"],
        description=spec.get("description"),
        tags=spec.get("tags"),
        schedules=[_schedule(s, settings) for s in spec.get("schedules") or []],
        concurrency_limit=limit,
        parameters=spec.get("parameters"),
        triggers=triggers,
        version=spec.get("version"),
        paused=spec.get("paused"),
        enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
        work_queue_name=pool.get("work_queue_name"),
        job_variables=pool.get("job_variables"),
        # A worker or `amends serve` imports the flow from the installed package.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def _schedule(spec: dict[str, Any], settings: Settings) -> Schedule:
    unknown = set(spec) - _SCHEDULE_KEYS - {"interval", "anchor_date"}
    if unknown:
        raise ValueError(f"prefect.yaml: unknown schedule keys {sorted(unknown)}")
    values = {k: v for k, v in spec.items() if k in _SCHEDULE_KEYS}
    if isinstance(values.get("timezone"), str):
        values["timezone"] = BUSINESS_TIMEZONE.sub(settings.business_timezone, values["timezone"])
    if "interval" in spec:
        interval = spec["interval"]
        values["interval"] = (
            interval if isinstance(interval, timedelta) else timedelta(seconds=float(interval))
        )
    if "anchor_date" in spec:  # YAML reads an unquoted timestamp as a datetime already
        anchor = spec["anchor_date"]
        values["anchor_date"] = (
            anchor if isinstance(anchor, datetime) else datetime.fromisoformat(str(anchor))
        )
    return Schedule(**values)
