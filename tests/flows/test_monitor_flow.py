"""The monitor-mentions flow over the vendored Twitter customer-support data (real tweets), under
the Prefect test harness: counts that an independent pass over the files agrees with, and a
second run that keeps and opens nothing twice."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from factories import DATA
from loopback import SECRET, Receiver, serving
from prefect import get_client
from pydantic import SecretStr
from sqlalchemy import func, select

from amends.delivery.channels import RecordingAdapter, webhook_channels
from amends.domain import ReplyChannel
from amends.flows.monitor import MonitorRequest, monitor_mentions
from amends.listening.sources import SourceSpec, social_ref
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime, use_runtime
from amends.settings import Settings
from amends.storage import models
from amends.storage.imports import import_customers

pytestmark = pytest.mark.usefixtures("prefect_harness")

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
    assert (recorded.complaints, recorded.complaints_addressed) == (1938, 1410)
    assert recorded.complaints_about == 528
    assert [s.refused for s in first.sources] == [[], []]
    # Tweets of 2017, far outside the policy's answer window: kept for the report, never
    # answered (the first run over this export once answered them, with staff work due then).
    assert (first.opened, first.pending, count(rt, models.Case)) == ([], 0, 0)

    # A business that does want to answer them widens its window.
    policy = rt.policy.model_copy(
        update={"listening": rt.policy.listening.model_copy(update={"answer_within_days": 3650})}
    )
    use_runtime(dataclasses.replace(rt, policy=policy))
    again = monitor_mentions(request)
    assert again.recorded.new == 0
    assert again.recorded.seen_before == len(inbound)
    assert count(rt, models.Mention) == len(inbound)
    # Each case's monitor stage also answers its author's other complaint posts.
    with rt.db.session() as session:
        answered = session.scalar(
            select(func.count())
            .select_from(models.Mention)
            .where(models.Mention.case_id.is_not(None))
        )
    # One complaint, of 2016, is older than even ten years: still never answered.
    assert len(again.opened) == 3 and again.pending == 1938 - answered - 1
    # The cap leaves the rest for later: the next three, never the first three again.
    third = monitor_mentions(request)
    assert len(third.opened) == 3 and not set(third.opened) & set(again.opened)
    assert count(rt, models.Case) == 6


@pytest.fixture
def social_rt(settings: Settings, recorder: RecordingAdapter) -> Iterator[Runtime]:
    """A runtime whose social replies go to a signed-webhook gateway on loopback."""
    Receiver.received, Receiver.answer = [], 200
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Receiver)) as url:
        social = settings.model_copy(
            update={"webhook_social_url": f"{url}/hook", "webhook_secret": SecretStr(SECRET)}
        )
        channels = {ReplyChannel.EMAIL: recorder, **webhook_channels(social)}
        runtime = Runtime.from_settings(social, channels=channels)
        use_runtime(runtime)
        yield runtime
        use_runtime(None)


ANN = "@acme the crew never came, third time this month!! Useless."
CY = "@acme spotless today, thank you"


def export(path: Path) -> Path:
    def tweet(n: int, author: str, text: str, **extra: object) -> str:
        # Hours ago: inside the policy's answer window whenever the test runs.
        when = (datetime.now(UTC) - timedelta(hours=10 - n)).isoformat()
        return json.dumps(
            {"id": str(n), "author": author, "text": text, "created_at": when, **extra}
        )

    lines = [
        tweet(1, "ann", ANN),
        tweet(2, "dee", "Acme left my office filthy again. Never again."),  # about us
        tweet(3, "bob", "RT @ann: @acme the crew never came, third time this month!! Useless."),
        tweet(4, "cy", CY),
        tweet(5, "acme", "@ann We are sorry, please DM us", in_reply_to="1"),  # our own
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_complaints_are_answered_in_the_same_channel_once(
    social_rt: Runtime, tmp_path: Path
) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "ref,name,email,social_platform,social_handle,annual_value\n"
        "D-1,Dee Ross,dee@example.com,twitter,@dee,9000\n"
    )
    import_customers(social_rt.db, customers)
    request = MonitorRequest(
        sources=[
            SourceSpec(
                name="export",
                kind="file",
                location=str(export(tmp_path / "e.jsonl")),
                platform="twitter",
            ),
            SourceSpec(name="reviews", kind="feed", location="http://127.0.0.1:9/feed.rss"),
        ],
        handles=["@acme"],
    )
    first = monitor_mentions(request)
    assert [(s.name, s.posts, bool(s.error)) for s in first.sources] == [
        ("export", 5, False),
        ("reviews", 0, True),  # reported; the export was still read
    ]
    r = first.recorded
    assert (r.new, r.own, r.duplicates, r.complaints, r.complaints_addressed) == (4, 1, 1, 2, 1)
    assert len(first.opened) == 2 and first.pending == 0
    cases = {
        o.customer_ref: o for o in map(lambda ref: case_outcome(social_rt.db, ref), first.opened)
    }
    assert set(cases) == {"D-1", social_ref("twitter", "@ann")}  # the known customer by handle
    # The public reply answers the post itself, on the network it was made on.
    public = [m for m in Receiver.received if m["public"]]
    assert {(m["recipient"], m["in_reply_to"]) for m in public} == {
        ("twitter:@ann", "https://twitter.com/ann/status/1"),
        ("twitter:@dee", "https://twitter.com/dee/status/2"),
    }
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_latest_artifacts(limit=50)}
    run = artifacts["monitor-mentions-run"].data
    assert "reviews" in run and "cannot read" in run
    # Each post's decision is in the artifact with the words of the post that weighed most.
    plain = re.sub(r"\\(.)", r"\1", run)  # the artifact escapes markdown
    rows = {line.split(" | ")[0].strip("| "): line for line in plain.splitlines() if " | " in line}
    for n, words, verdict in [(1, ANN, "complaint ("), (4, CY, "not a complaint (")]:
        author = "ann" if n == 1 else "cy"
        why = rows[f"https://twitter.com/{author}/status/{n}"].split(" | ")[1]
        assert why.startswith(verdict)
        quoted = re.findall(r'"([^"]+)"', why)
        assert quoted and all(q in words.lower() or q == "@mention" for q in quoted)
    assert "dee@example.com" not in run + str(artifacts["monitor-mentions"].data)

    sent = len(Receiver.received)
    again = monitor_mentions(request)
    assert (again.recorded.new, again.recorded.seen_before, again.opened) == (0, 4, [])
    assert count(social_rt, models.Case) == 2 and len(Receiver.received) == sent
