"""Monitor: public posts by this customer about us, which deserve a public reply."""

from prefect import task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery import StageResult
from tasks._stage import run_and_log


@task(name="monitor", cache_policy=NONE, task_run_name="monitor-case-{case_id}")
def monitor(case_id: int) -> StageResult:
    """Look for public complaints by this customer about this business."""
    return run_and_log(Stage.MONITOR, case_id)
