"""Assess: fault, the customer's four costs, worth of recovery, and a decision with reasons."""

from prefect import task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery.stages import StageResult
from amends.tasks._stage import run_and_log


@task(name="assess", cache_policy=NONE, task_run_name="assess-case-{case_id}")
def assess(case_id: int) -> StageResult:
    """Decide whose fault it was, what it cost the customer, and whether to win them back."""
    return run_and_log(Stage.ASSESS, case_id)
