"""What every stage task does: run the stage in the core, and say what happened."""

from __future__ import annotations

from prefect import get_run_logger

from amends.domain import Stage
from amends.privacy import case_details, redact
from amends.recovery.stages import StageResult, run_stage
from amends.tasks._runtime import task_runtime


def run_and_log(stage: Stage, case_id: int) -> StageResult:
    """Run one stage of a case, or report that an earlier run already did."""
    rt = task_runtime()
    result = run_stage(rt, case_id, stage)
    logger = get_run_logger()
    if result.resumed:
        logger.info("%s already done in an earlier run; not repeated", stage.value)
    else:
        # A summary may name the customer, their handle or their street: the UI is shared.
        summary = redact(result.summary, case_details(rt.db, case_id))
        logger.info("%s %s: %s", stage.value, result.status.value, summary)
    return result
