"""Re-engage: make the offer and schedule check-in meetings."""

from prefect import task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery.stages import StageResult
from amends.tasks._stage import run_and_log


@task(name="reengage", cache_policy=NONE, task_run_name="reengage-case-{case_id}")
def reengage(case_id: int) -> StageResult:
    """Make the offer and schedule check-in meetings, with an invitation."""
    return run_and_log(Stage.REENGAGE, case_id)
