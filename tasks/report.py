"""Report: track the case until it is closed, and summarise it in the run's artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from amends.casebook import CaseOutcome, case_markdown, case_outcome
from amends.domain import Stage
from amends.recovery import StageResult
from tasks._runtime import task_runtime
from tasks._stage import run_and_log


@task(name="report", cache_policy=NONE, task_run_name="report-case-{case_id}")
def report(case_id: int) -> StageResult:
    """Record the case, its owner and its first-response deadline."""
    return run_and_log(Stage.REPORT, case_id)


def artifact_key(case_id: int) -> str:
    """The case's artifact key: the same on every run, so the UI shows its versions; by case
    number, so refs that differ only in case or punctuation never share one."""
    return f"case-{case_id}"


@task(name="publish-case-summary", cache_policy=NONE)
def publish_case_summary(case_id: int) -> CaseOutcome:
    """Leave the case's summary as a markdown artifact and return the case's outcome."""
    outcome = case_outcome(task_runtime().db, case_id)
    create_markdown_artifact(
        key=artifact_key(outcome.case_id),
        markdown=case_markdown(outcome),
        description=f"Recovery of incident {outcome.incident_ref}: decision, offer, messages",
    )
    return outcome
