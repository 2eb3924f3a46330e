"""Monitor: public posts about the business (the monitor-mentions flow's tasks), and, in a
case's recovery, the customer's own public complaints, which deserve a public reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from amends.domain import Incident, Stage
from amends.errors import SourceError
from amends.listening.mentions import PublicPost, Recorded, record_posts
from amends.listening.sources import (
    MonitorReport,
    SourceReport,
    SourceSpec,
    answer_complaint,
    configured_sources,
    count_failed_answer,
    count_pending,
    fetch,
    pending_complaints,
)
from amends.listening.sources import link_mention as link_core
from amends.privacy import mask
from amends.recovery.stages import StageResult
from amends.tasks._runtime import task_runtime
from amends.tasks._stage import run_and_log


@task(name="monitor", cache_policy=NONE, task_run_name="monitor-case-{case_id}")
def monitor(case_id: int) -> StageResult:
    """Look for public complaints by this customer about this business."""
    return run_and_log(Stage.MONITOR, case_id)


@task(name="plan-listening", cache_policy=NONE)
def plan_listening(
    sources: list[SourceSpec] | None, handles: list[str] | None, cap: int | None
) -> tuple[list[SourceSpec], list[str], int]:
    """The run's sources, the business's handles and the cap: as given, else the settings'
    and the policy's."""
    rt = task_runtime()
    return (
        configured_sources(rt.settings) if sources is None else sources,
        rt.settings.social_handles if handles is None else handles,
        rt.policy.listening.max_incidents_per_run if cap is None else cap,
    )


@task(name="read-source", cache_policy=NONE, task_run_name="read-{spec.name}")
def read_source(spec: SourceSpec) -> tuple[SourceReport, list[PublicPost]]:
    """Read one source; one that cannot be read is reported, and the others go on."""
    logger = get_run_logger()
    report = SourceReport(spec.name, spec.kind)
    try:
        fetched = fetch(spec)
    except SourceError as error:
        report.error = str(error)
        logger.warning("source %s failed: %s", spec.name, mask(str(error)))
        return report, []
    report.posts, report.refused = len(fetched.posts), fetched.refused
    logger.info("%s: %d posts, %d rows refused", spec.name, report.posts, len(report.refused))
    for line in fetched.refused[:5]:
        logger.warning("refused %s", mask(line[:300]))
    return report, fetched.posts


@task(name="record-mentions", cache_policy=NONE, retries=1, retry_delay_seconds=2)
def record_mentions(posts: list[PublicPost], handles: list[str]) -> Recorded:
    """Keep the posts not seen before, each read for complaint and address."""
    rt = task_runtime()
    recorded = record_posts(rt.db, posts, rt.policy.listening, handles)
    get_run_logger().info(
        "kept %d new posts (%d seen before, %d duplicates): %d complaints, %d addressed to us",
        recorded.new,
        recorded.seen_before,
        recorded.duplicates,
        recorded.complaints,
        recorded.complaints_addressed,
    )
    return recorded


@task(name="answer-complaint", cache_policy=NONE, task_run_name="answer-mention-{mention_id}")
def prepare_answer(mention_id: int) -> Incident | int:
    """The incident a complaint post opens, or the open case of its author it joins."""
    rt = task_runtime()
    return answer_complaint(rt.db, mention_id, rt.policy.listening)


def _answer_window_start(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@task(name="complaints-to-answer", cache_policy=NONE)
def complaints_to_answer(cap: int) -> list[int]:
    """The oldest complaints no case answers yet, at most ``cap``, inside the policy's answer
    window (older ones are kept for the report, never answered)."""
    rt = task_runtime()
    since = _answer_window_start(rt.policy.listening.answer_within_days)
    return pending_complaints(rt.db, cap, since)


@task(name="complaints-waiting", cache_policy=NONE)
def complaints_waiting() -> int:
    """How many complaints are left for the next run."""
    rt = task_runtime()
    return count_pending(rt.db, _answer_window_start(rt.policy.listening.answer_within_days))


@task(name="note-unopened-complaint", cache_policy=NONE)
def note_unopened(mention_id: int) -> None:
    """Put a complaint that could not be opened behind the others for the next run."""
    count_failed_answer(task_runtime().db, mention_id)


@task(name="link-mention", cache_policy=NONE)
def link_mention(mention_id: int, case_id: int) -> None:
    """Record the case that answers a complaint post."""
    link_core(task_runtime().db, mention_id, case_id)


@task(name="publish-mentions", cache_policy=NONE)
def publish_mentions(report: MonitorReport) -> None:
    """Leave the run as a table artifact (the figures) and a markdown one (sources, refusals,
    incidents), masked: the UI is often shared."""
    create_table_artifact(
        key="monitor-mentions",
        table=report.counts()
        + [{"figure": f"Source {s['source']}", "count": s["posts"]} for s in report.by_source()],
        description="Public mentions: what was read, kept, recognised and opened.",
    )
    create_markdown_artifact(
        key="monitor-mentions-run",
        markdown=report.markdown(),
        description="Public mentions by source, with failing sources and refused rows.",
    )
