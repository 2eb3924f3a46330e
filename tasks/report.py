"""Report: track the case until it is closed, and summarise it in the run's artifact."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from amends.casebook import CaseOutcome, case_markdown, case_outcome
from amends.domain import Stage
from amends.runtime import runtime
from tasks._stage import stage_task

report = stage_task(Stage.REPORT, "Record the case, its owner and its service level.")


def artifact_key(incident_ref: str) -> str:
    """A stable artifact key per case, so the UI shows its versions across runs."""
    return "case-" + re.sub(r"[^a-z0-9]+", "-", incident_ref.lower()).strip("-")


@task(name="publish-case-summary", cache_policy=NONE)
def publish_case_summary(case_id: int) -> CaseOutcome:
    """Leave the case's summary as a markdown artifact and return the case's outcome."""
    outcome = case_outcome(runtime().db, case_id)
    create_markdown_artifact(
        key=artifact_key(outcome.incident_ref),
        markdown=case_markdown(outcome),
        description=f"Recovery of incident {outcome.incident_ref}: decision, offer, messages",
    )
    return outcome
