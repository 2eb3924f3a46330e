"""Follow up: answer on the channel the complaint came in on, with an honest apology."""

from prefect import task
from prefect.cache_policies import NONE

from amends.domain import Stage
from amends.recovery.stages import StageResult
from amends.tasks._stage import run_and_log


@task(name="follow-up", cache_policy=NONE, task_run_name="follow-up-case-{case_id}")
def follow_up(case_id: int) -> StageResult:
    """Queue the apology on the complaint's own channel, and a public reply to public posts."""
    return run_and_log(Stage.FOLLOW_UP, case_id)
