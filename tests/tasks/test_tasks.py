"""The Prefect tasks: stage tasks resume, delivery retries, artifact keys are stable."""

from __future__ import annotations

import pytest
from factories import make_incident

from amends.recovery.intake import open_case
from amends.runtime import Runtime
from amends.tasks.assess import assess
from amends.tasks.delivery import DeliveryPending, deliver_messages
from amends.tasks.empower import empower
from amends.tasks.follow_up import follow_up
from amends.tasks.monitor import monitor
from amends.tasks.report import artifact_key, report

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_artifact_keys_are_stable_and_valid() -> None:
    assert artifact_key(12) == "case-12"


def test_a_stage_task_runs_once_then_reports_it_is_done(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    first = assess(case_id)
    again = assess(case_id)
    assert not first.resumed and again.resumed
    assert again.summary == first.summary


def test_delivery_raises_for_retry_while_mail_stays_queued(rt_without_smtp: Runtime) -> None:
    case_id = open_case(rt_without_smtp, make_incident())
    for stage_task in (assess, empower, monitor, report, follow_up):
        stage_task(case_id)
    once = deliver_messages.with_options(retries=0)
    with pytest.raises(DeliveryPending, match="1 message\\(s\\) stay queued: cannot reach"):
        once(case_id)
