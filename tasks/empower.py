"""Empower: the offer frontline staff may make without asking."""

from prefect import task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery.stages import StageResult
from amends.tasks._stage import run_and_log


@task(name="empower", cache_policy=NONE, task_run_name="empower-case-{case_id}")
def empower(case_id: int) -> StageResult:
    """Pick an offer that absorbs the customer's costs; above the frontline limit, ask a manager."""
    return run_and_log(Stage.EMPOWER, case_id)
