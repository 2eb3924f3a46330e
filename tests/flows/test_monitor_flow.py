"""The monitor-mentions flow over the shared Twitter customer-support data (real tweets), under
the Prefect test harness: counts that an independent pass over the files agrees with, and a
second run that keeps and opens nothing twice."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from amends import models
from amends.listening import SourceSpec
from amends.runtime import Runtime
from flows.monitor import MonitorRequest, monitor_mentions

pytestmark = pytest.mark.usefixtures("prefect_harness")

DATA = Path("/work/shared/data")
SAMPLE = DATA / "twitter_support_sample_5000.csv"
THREADS = DATA / "twitter_support_threads_93.csv"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def brands(*paths: Path) -> list[str]:
    """The support accounts that answer in the data: the business, for these tests."""
    return sorted({"@" + r["author_id"] for p in paths for r in rows(p) if r["inbound"] == "False"})


def sources(*paths: Path) -> list[SourceSpec]:
    return [SourceSpec(name=p.stem.replace("_", "-"), kind="file", location=str(p)) for p in paths]


def count(rt: Runtime, model: type) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_the_shared_twitter_data_once_and_again(rt: Runtime) -> None:
    handles = brands(SAMPLE, THREADS)
    request = MonitorRequest(sources=sources(SAMPLE, THREADS), handles=handles, max_incidents=3)
    first = monitor_mentions(request)

    # Independently of the loader: customers' tweets are the inbound rows, once each by id.
    inbound = {r["tweet_id"] for p in (SAMPLE, THREADS) for r in rows(p) if r["inbound"] == "True"}
    total = len(rows(SAMPLE)) + len(rows(THREADS))
    recorded = first.recorded
    assert recorded.read == total == 5093
    assert recorded.own == total - len(inbound) - recorded.duplicates
    assert recorded.new == len(inbound) == 2767
    assert recorded.duplicates == 0  # no tweet repeated, no retweets, no same-author repeats
    assert (recorded.complaints, recorded.complaints_addressed) == (1277, 919)
    assert recorded.complaints_about == 358
    assert [s.refused for s in first.sources] == [[], []]
    assert len(first.opened) == 3
    assert first.pending == 1277 - 3
    assert count(rt, models.Case) == 3

    again = monitor_mentions(request)
    assert again.recorded.new == 0
    assert again.recorded.seen_before == len(inbound)
    assert count(rt, models.Mention) == len(inbound)
    # The cap leaves the rest for later: the next three, never the first three again.
    assert len(again.opened) == 3 and not set(again.opened) & set(first.opened)
    assert count(rt, models.Case) == 6
