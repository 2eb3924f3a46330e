"""The ``monitor-mentions`` flow: public posts about the business, read from every source,
kept once each, and each complaint answered by a recovery in the same channel."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from amends.flows.incident import recover_incident
from amends.listening.sources import MonitorReport, SourceSpec
from amends.privacy import mask
from amends.tasks.monitor import (
    complaints_to_answer,
    complaints_waiting,
    link_mention,
    note_unopened,
    plan_listening,
    prepare_answer,
    publish_mentions,
    read_source,
    record_mentions,
)


class MonitorRequest(BaseModel):
    """Where to listen, who the business is there, and how much to open in one run. Every
    field may stay empty: the settings then say (a scheduled run needs no parameters)."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] | None = Field(
        default=None,
        description="The sources to read; those of AMENDS_LISTENING_SOURCES (or the drop "
        "folder AMENDS_HOME/listening) when empty.",
    )
    handles: list[str] | None = Field(
        default=None,
        description="The business's own handles (@acme): a post naming or answering one is "
        "addressed to it; AMENDS_SOCIAL_HANDLES when empty.",
    )
    max_incidents: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Complaints opened as incidents in this run, oldest first; the rest wait "
        "for the next run. The policy's listening.max_incidents_per_run when empty.",
    )


@flow(name="monitor-mentions", flow_run_name="monitor-mentions")
def monitor_mentions(request: MonitorRequest | None = None) -> MonitorReport:
    """Read public mentions from every source, keep each post once (complaint or not, for the
    reports), and answer complaints: each opens a social incident whose recover-incident
    subflow replies in the same channel, or joins its author's open case.

    A failing source is reported and the others go on. At most ``max_incidents`` are opened
    per run; the rest wait, oldest first, for the next. A second run over the same posts keeps
    and opens nothing new.

    Args:
        request: Sources, handles and the cap; the settings' when empty.
    """
    request = request or MonitorRequest()
    specs, handles, cap = plan_listening(request.sources, request.handles, request.max_incidents)

    sources, posts = [], []
    for spec in specs:
        report, read = read_source(spec)
        sources.append(report)
        posts.extend(read)
    run = MonitorReport(sources=sources, recorded=record_mentions(posts, handles))
    logger = get_run_logger()
    for mention_id in complaints_to_answer(cap):
        try:
            answer = prepare_answer(mention_id)
            if isinstance(answer, int):
                run.added_to_open_cases += 1
                continue
            outcome = recover_incident(answer)
        except Exception as error:
            # One complaint that cannot be filed (refused, or its recovery failed) stops neither
            # the run nor the others, and waits behind them for the next run.
            run.not_opened.append(f"{mention_id}: {error}")
            logger.warning("complaint %s not opened: %s", mention_id, mask(str(error)))
            note_unopened(mention_id)
            continue
        link_mention(mention_id, outcome.case_id)
        run.opened.append(answer.ref)
    run.pending = complaints_waiting()
    publish_mentions(run)
    return run
