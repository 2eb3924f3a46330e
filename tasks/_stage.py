"""The one way a stage becomes a Prefect task."""

from __future__ import annotations

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery import StageResult, run_stage
from amends.runtime import runtime


def stage_task(stage: Stage, description: str) -> Task[[int], StageResult]:
    """A task that runs one stage of a case, or reports that a previous run already did."""

    def run(case_id: int) -> StageResult:
        result = run_stage(runtime(), case_id, stage)
        logger = get_run_logger()
        if result.resumed:
            logger.info("%s already done in an earlier run; not repeated", stage.value)
        else:
            logger.info("%s %s: %s", stage.value, result.status.value, result.summary)
        return result

    run.__name__ = stage.value
    run.__doc__ = description
    return task(
        run,
        name=stage.value.replace("_", "-"),
        description=description,
        cache_policy=NONE,
        task_run_name=f"{stage.value.replace('_', '-')}-case-{{case_id}}",
    )
