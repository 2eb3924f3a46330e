"""Public mentions: sources (a file drop, RSS and Atom feeds and a Mastodon server, each a
real HTTP server on loopback where it is one), the complaint recogniser, and keeping each post
once."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from factories import DATA, make_incident
from loopback import serving
from sqlalchemy import select

from amends.domain import Decision, Incident
from amends.errors import ConfigurationError, SourceError
from amends.listening.mentions import PublicPost, is_addressed, read_post, record_posts
from amends.listening.sources import (
    FileDrop,
    SourceSpec,
    answer_complaint,
    configured_sources,
    count_failed_answer,
    count_pending,
    fetch,
    link_mention,
    open_source,
    pending_complaints,
    social_ref,
    source_kinds,
)
from amends.recovery.assess import assess
from amends.recovery.intake import open_case
from amends.runtime import Runtime
from amends.settings import Settings
from amends.storage import models

SAMPLE = DATA / "twitter_support_sample_5000.csv"
WHEN = datetime(2026, 11, 20, 10, tzinfo=UTC)


def post(text: str, handle: str = "@ann", n: int = 1, **fields: object) -> PublicPost:
    return PublicPost(
        platform=fields.pop("platform", "twitter"),
        handle=handle,
        url=f"https://twitter.com/{handle.lstrip('@')}/status/{n}",
        external_id=str(n),
        text=text,
        posted_at=fields.pop("posted_at", WHEN),
        **fields,
    )


# --- recognising ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        ("@acme my order is three weeks late and nobody answers. Worst service ever", True),
        ("Four days without cleaners and not a word from @acme.", True),  # VADER says 0.0
        ("@acme thank you so much, the new crew is lovely!", False),
        ("@acme what time do you open on Sunday?", False),
    ],
)
def test_a_complaint_reads_negative_or_carries_a_cue(
    rt: Runtime, words: str, complaint: bool
) -> None:
    assert read_post(words, rt.policy.listening).complaint is complaint


def test_a_cue_is_a_whole_word(rt: Runtime) -> None:
    assert read_post("Chocolate cake at the launch", rt.policy.listening).cues == ()
    assert read_post("The van was late", rt.policy.listening).cues == ("late",)


@pytest.mark.parametrize(
    ("given", "addressed"),
    [
        (post("@Acme where is my parcel?"), True),  # any case
        (post("Parcel lost again.", in_reply_to="9", in_reply_to_handle="@acme"), True),
        (post("Acme lost my parcel again."), False),  # about us, not to us
        (post("@acmefans lost my parcel"), False),
        (post("lost it @acme@mastodon.social", platform="mastodon"), True),
        (post("lost it", platform="mastodon", mentions=("@acme",)), True),  # the server's list
        (post("lost it @acme@elsewhere.example", platform="mastodon"), False),
    ],
)
def test_addressed_means_named_or_answered(given: PublicPost, addressed: bool) -> None:
    assert is_addressed(given, ["@acme", "@acme@mastodon.social"]) is addressed


# --- keeping ---------------------------------------------------------------------------------


def test_each_post_is_kept_once_and_repeats_point_at_the_first(rt: Runtime) -> None:
    figures = rt.policy.listening
    posts = [
        post("@acme my parcel is lost and nobody answers", n=1),
        post("@acme my parcel is lost and nobody answers", n=1),  # read twice
        post("@acme  my parcel is LOST and nobody answers", n=2),  # the same words again
        post("RT @ann: @acme my parcel is lost and nobody answers", handle="@bob", n=3),
        post("We are sorry, please DM us", handle="@acme", n=4),  # our own
        post("@acme lovely crew today, thanks", handle="@cy", n=5),
    ]
    first = record_posts(rt.db, posts, figures, ["@acme"])
    assert (first.read, first.new, first.own, first.duplicates) == (6, 4, 1, 3)
    assert (first.complaints, first.complaints_addressed, first.addressed) == (1, 1, 4)
    with rt.db.session() as session:
        kept = {m.external_id: m for m in session.scalars(select(models.Mention))}
    assert kept["2"].duplicate_of == kept["3"].duplicate_of == kept["1"].id
    assert kept["3"].repost and not kept["5"].complaint
    assert pending_complaints(rt.db) == [kept["1"].id]  # repeats are never answered

    again = record_posts(rt.db, posts, figures, ["@acme"])
    assert (again.new, again.seen_before, again.duplicates) == (0, 4, 1)


def test_a_post_is_linked_to_the_customer_with_that_handle(rt: Runtime) -> None:
    open_case(rt, make_incident())  # C-42 is @rk on twitter
    recorded = record_posts(rt.db, [post("Still no cleaners", handle="@RK")], rt.policy.listening)
    assert recorded.linked == 1
    with rt.db.session() as session:
        mention = session.scalars(select(models.Mention)).one()
        assert mention.customer_id is not None


# --- answering -------------------------------------------------------------------------------


def test_an_unknown_author_becomes_a_customer_known_by_the_handle(rt: Runtime) -> None:
    record_posts(rt.db, [post("@acme my parcel is lost and nobody answers!!")], rt.policy.listening)
    (mention_id,) = pending_complaints(rt.db)
    incident = answer_complaint(rt.db, mention_id, rt.policy.listening)
    assert isinstance(incident, Incident)
    assert incident.ref == f"MEN-{mention_id}" and incident.channel == "social"
    assert incident.customer.ref == social_ref("twitter", "@ann") == social_ref("twitter", "ANN")
    assert incident.customer.ref.startswith("SOC-twitter-ann-")
    assert incident.customer.social.handle == "@ann"
    assert incident.summary == "@acme my parcel is lost and nobody answers!!"
    assert incident.fault == rt.policy.listening.fault


def test_a_known_customer_with_an_open_case_has_the_post_added_to_it(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    record_posts(
        rt.db, [post("Still no cleaners. Never again.", handle="@rk")], rt.policy.listening
    )
    (mention_id,) = pending_complaints(rt.db)
    assert answer_complaint(rt.db, mention_id, rt.policy.listening) == case_id
    assert pending_complaints(rt.db) == []


def test_a_post_its_author_s_case_already_answers_is_not_answered_again(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    record_posts(rt.db, [post("Lost parcel, nobody answers!", handle="@new")], rt.policy.listening)
    (mention_id,) = pending_complaints(rt.db)
    link_mention(rt.db, mention_id, case_id)  # as a case's monitor stage does, mid-run
    assert answer_complaint(rt.db, mention_id, rt.policy.listening) == case_id


def test_a_complaint_that_could_not_be_opened_waits_behind_the_others(rt: Runtime) -> None:
    posts = [post("My parcel is lost and nobody answers!", handle=f"@c{n}", n=n) for n in (1, 2, 3)]
    record_posts(rt.db, posts, rt.policy.listening)
    first, second, third = pending_complaints(rt.db)
    count_failed_answer(rt.db, first)
    # A run with room for two takes the complaints never tried; the refused one is not lost.
    assert pending_complaints(rt.db, 2) == [second, third]
    assert pending_complaints(rt.db) == [second, third, first]


# --- the file drop ---------------------------------------------------------------------------


def test_the_shared_twitter_sample_loads_whole() -> None:
    fetched = fetch(SourceSpec(name="sample", kind="file", location=str(SAMPLE)))
    assert (len(fetched.posts), fetched.refused) == (5000, [])
    by_id = {p.external_id: p for p in fetched.posts}
    first = by_id["192624"]  # "Wed Oct 04 13:59:33 +0000 2017", parent "192625.0"
    assert first.posted_at == datetime(2017, 10, 4, 13, 59, 33, tzinfo=UTC)
    assert first.in_reply_to == "192625" and first.handle == "@161253"
    assert first.url == "https://twitter.com/161253/status/192624"
    assert not any("&amp;" in p.text for p in fetched.posts)  # entities decoded
    # A reply whose parent is in the same export knows whom it answers.
    replies = [p for p in fetched.posts if p.in_reply_to in by_id]
    assert replies and all(p.in_reply_to_handle == by_id[p.in_reply_to].handle for p in replies)


def test_bad_rows_are_refused_by_line_and_the_rest_kept(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()

    def row(n: str, author: str, text: str, when: str, **extra: object) -> str:
        return json.dumps({"id": n, "author": author, "text": text, "created_at": when, **extra})

    lines = [
        row("1", "ann", "late again", "2026-11-20T10:00:00Z"),
        "not json",
        json.dumps([1, 2]),
        row("2", "bob", "x\x00y\x1b[31m", "2026-11-20T10:00:00+01:00"),
        row("3", "cy", "z" * 50_000, "yesterday"),
        json.dumps(
            {
                "id": "4",
                "user": {"screen_name": "dee"},  # the shape of Twitter's own API
                "text": "w" * 50_000,
                "created_at": "Wed Oct 04 13:59:33 +0000 2017",
            }
        ),
    ]
    (drop / "export.jsonl").write_text("\n".join(lines), encoding="utf-8")
    (drop / "notes.txt").write_text("not an export")
    fetched = fetch(SourceSpec(name="drop", kind="file", location=str(drop)))
    assert [p.external_id for p in fetched.posts] == ["1", "2", "4"]
    assert fetched.posts[1].text == "x y [31m"  # control characters blanked
    assert len(fetched.posts[2].text) == 10_000 and fetched.posts[2].handle == "@dee"
    assert [r.split(":")[0] for r in fetched.refused] == [
        "export.jsonl line 2",
        "export.jsonl line 3",
        "export.jsonl line 5",
    ]
    assert "posted_at" in fetched.refused[2]


def test_a_missing_file_fails_its_source_but_the_drop_folder_may_be_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        fetch(SourceSpec(name="gone", kind="file", location=str(tmp_path / "gone.csv")))
    (default,) = configured_sources(Settings(home=tmp_path))
    assert fetch(default).posts == []


def test_sources_come_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("- {name: reviews, kind: feed, location: 'https://reviews.example/acme.rss'}\n")
    (spec,) = configured_sources(Settings(home=tmp_path, listening_sources=path))
    assert (spec.kind, spec.location) == ("feed", "https://reviews.example/acme.rss")
    path.write_text("- {name: Bad Name, kind: feed, location: x}\n")
    with pytest.raises(ConfigurationError, match="source 1: name"):
        configured_sources(Settings(home=tmp_path, listening_sources=path))


# --- feeds and Mastodon, over HTTP -----------------------------------------------------------

RSS = textwrap.dedent(
    """\
    <?xml version="1.0" encoding="UTF-8"?>
    <rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
      <channel>
        <title>Reviews of Acme Cleaning</title>
        <link>https://reviews.example/acme</link>
        <item>
          <title>Never showed up</title>
          <link>https://reviews.example/acme/r/101</link>
          <guid isPermaLink="false">review-101</guid>
          <dc:creator>Ann L.</dc:creator>
          <pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate>
          <description>&lt;p&gt;The crew &lt;b&gt;never&lt;/b&gt; came &amp;amp; nobody
            called.&lt;/p&gt;</description>
        </item>
        <item>
          <title>No date on this one</title>
          <link>https://reviews.example/acme/r/102</link>
        </item>
        <item>
          <title>Late</title>
          <link>https://reviews.example/acme/r/103</link>
          <author>bob@example.com (Bob)</author>
          <pubDate>Fri, 20 Nov 2026 11:00:00 +0000</pubDate>
        </item>
        <item>
          <title>Late too</title>
          <link>https://reviews.example/acme/r/104</link>
          <author>cy@example.com</author>
          <pubDate>Fri, 20 Nov 2026 12:00:00 +0000</pubDate>
        </item>
      </channel>
    </rss>
    """
)
ATOM = textwrap.dedent(
    """\
    <?xml version="1.0" encoding="utf-8"?>
    <feed xmlns="http://www.w3.org/2005/Atom">
      <title>Acme on a forum</title>
      <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
      <updated>2026-11-21T09:00:00Z</updated>
      <entry>
        <title>Great crew this week</title>
        <link href="https://forum.example/t/7"/>
        <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
        <updated>2026-11-21T09:00:00Z</updated>
        <author><name>bob</name></author>
        <summary>Spotless, thank you.</summary>
      </entry>
    </feed>
    """
)


def status(n: int, text: str, acct: str = "ann", **extra: object) -> dict[str, object]:
    """A status as Mastodon's API answers one (trimmed to the fields amends reads)."""
    return {
        "id": str(109000 + n),
        "created_at": "2026-11-20T10:00:00.000Z",
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "visibility": "public",
        "uri": f"https://mastodon.example/users/{acct}/statuses/{109000 + n}",
        "url": f"https://mastodon.example/@{acct}/{109000 + n}",
        "content": f"<p>{text}</p>",
        "account": {"id": str(n), "username": acct, "acct": acct, "display_name": acct.title()},
        "mentions": [],
        "reblog": None,
        **extra,
    }


class Server(BaseHTTPRequestHandler):
    """Answers from a table of path -> (status, content type, body, headers)."""

    routes: ClassVar[dict[str, tuple[int, str, bytes, dict[str, str]]]] = {}

    def do_GET(self) -> None:
        code, kind, body, headers = self.routes.get(self.path, (404, "text/plain", b"no", {}))
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value.replace("BASE", self.headers["Host"]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    Server.routes = {}
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Server)) as url:
        yield url


def route(
    path: str, body: str, kind: str = "application/json", code: int = 200, **headers: str
) -> None:
    Server.routes[path] = (code, kind, body.encode(), headers)


def test_rss_and_atom_feeds_are_read(web: str) -> None:
    route("/acme.rss", RSS, "application/rss+xml")
    route("/forum.atom", ATOM, "application/atom+xml")
    rss = fetch(SourceSpec(name="reviews", kind="feed", location=f"{web}/acme.rss"))
    review, *others = rss.posts
    assert (review.handle, review.external_id) == ("@Ann L.", "review-101")
    # RSS puts an address in <author>: a handle goes out in a public reply, an address never;
    # an entry with no author has no handle (kept, never answered).
    assert [p.handle for p in others] == ["@Bob", None]
    assert review.text == "Never showed up The crew never came & nobody called."
    assert review.posted_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert rss.refused == ["reviews entry 2: posted_at: Input should be a valid datetime"]
    (entry,) = fetch(SourceSpec(name="forum", kind="feed", location=f"{web}/forum.atom")).posts
    assert (entry.handle, entry.url) == ("@bob", "https://forum.example/t/7")


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/down.rss", "", 503, "answered 503"),
        ("/page.rss", "<html><body>Hello</body></html>", 200, "not an RSS or Atom feed"),
    ],
)
def test_a_feed_that_cannot_be_read_fails_its_source(
    web: str, path: str, body: str, code: int, message: str
) -> None:
    route(path, body, "text/html", code)
    with pytest.raises(SourceError, match=message):
        fetch(SourceSpec(name="reviews", kind="feed", location=f"{web}{path}"))


def test_a_feed_that_redirects_elsewhere_is_refused_and_its_token_never_shown(web: str) -> None:
    # A redirect could point at loopback services or cloud metadata: never followed.
    route("/feed.rss?token=s3cret", "", "text/html", 302, Location="http://169.254.169.254/x")
    with pytest.raises(SourceError) as refused:
        fetch(SourceSpec(name="reviews", kind="feed", location=f"{web}/feed.rss?token=s3cret"))
    assert "answered 302" in str(refused.value) and "s3cret" not in str(refused.value)


def test_a_mastodon_hashtag_timeline_is_read_page_by_page(web: str) -> None:
    reply = status(
        2,
        '<span class="h-card"><a href="https://mastodon.social/@acme">@<span>acme</span>'
        "</a></span> late again",
        in_reply_to_id="108999",
        in_reply_to_account_id="77",
        mentions=[{"id": "77", "username": "acme", "acct": "acme@mastodon.social"}],
    )
    boost = status(3, "", acct="bob", reblog=status(1, "Acme never came", acct="ann"))
    route(
        "/api/v1/timelines/tag/acme?limit=40",
        json.dumps([reply, boost]),
        Link='<http://BASE/api/v1/timelines/tag/acme?limit=40&max_id=109002>; rel="next"',
    )
    route("/api/v1/timelines/tag/acme?limit=40&max_id=109002", json.dumps([status(4, "fine")]))
    spec = SourceSpec(name="toots", kind="mastodon", location=web, query="#acme", pages=2)
    fetched = fetch(spec)
    assert fetched.refused == []
    first, shared, third = fetched.posts
    assert first.in_reply_to_handle == "@acme@mastodon.social" and first.in_reply_to == "108999"
    assert "@acme late again" in first.text
    assert is_addressed(first, ["@acme@mastodon.social"])
    assert (shared.handle, shared.reposted_from, shared.text) == ("@bob", "@ann", "Acme never came")
    assert third.external_id == "109004"


def test_mastodon_search_and_its_failures(web: str) -> None:
    found = json.dumps({"statuses": [status(5, "meh"), "junk"]})
    elsewhere = '<http://10.0.0.1/api/v2/search?page=2>; rel="next"'  # never followed
    route("/api/v2/search?q=acme+cleaning&type=statuses&limit=40", found, Link=elsewhere)
    spec = SourceSpec(name="s", kind="mastodon", location=web, query="acme cleaning", pages=5)
    fetched = fetch(spec)
    assert len(fetched.posts) == 1 and fetched.refused == ["s page 1 status 2: not a status"]
    route("/api/v1/timelines/tag/broken?limit=40", "{not json", "application/json")
    with pytest.raises(SourceError, match="did not answer JSON"):
        fetch(SourceSpec(name="s", kind="mastodon", location=web, query="#broken"))
    with pytest.raises(SourceError, match="cannot read"):
        fetch(SourceSpec(name="s", kind="mastodon", location="http://127.0.0.1:9", query="#x"))


# --- plugins ---------------------------------------------------------------------------------


def test_a_source_plugin_registers_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_listening.py").write_text(
        "from amends.listening.sources import Fetched\n"
        "class Reviews:\n"
        "    def __init__(self, spec):\n"
        "        self.spec = spec\n"
        "    def fetch(self):\n"
        "        return Fetched(refused=['plugin says hello'])\n"
    )
    info = tmp_path / "acme_listening-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-listening\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[amends.sources]\nreviews = acme_listening:Reviews\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"file", "feed", "mastodon", "reviews"} <= set(source_kinds())
    spec = SourceSpec(name="r", kind="reviews", location="anywhere")
    assert fetch(spec).refused == ["plugin says hello"]
    (info / "entry_points.txt").write_text("[amends.sources]\nfile = acme_listening:Reviews\n")
    with pytest.raises(ConfigurationError, match="would replace"):
        source_kinds()


def test_an_unknown_kind_of_source_is_named() -> None:
    with pytest.raises(SourceError, match="no source of kind 'tiktok'"):
        open_source(SourceSpec(name="t", kind="tiktok", location="x"))
    assert isinstance(open_source(SourceSpec(name="f", kind="file", location="x")), FileDrop)


def test_a_mastodon_reply_to_the_business_is_addressed_without_naming_it(web: str) -> None:
    # Replying to one of @acme's posts, with the mention removed: the server says whose
    # account the reply answers.
    reply = status(7, "still no cleaner today", in_reply_to_id="1", in_reply_to_account_id="42")
    route("/api/v1/timelines/tag/acme?limit=40", json.dumps([reply]))
    route("/api/v1/accounts/42", json.dumps({"id": "42", "acct": "acme"}))
    (toot,) = fetch(SourceSpec(name="t", kind="mastodon", location=web, query="#acme")).posts
    assert toot.in_reply_to_handle == "@acme"
    assert is_addressed(toot, ["@acme@mastodon.example"])


def test_feed_entries_without_an_author_are_kept_never_answered_nor_merged(rt: Runtime) -> None:
    words = "Terrible service, the cleaner never came and nobody called back."
    anonymous = [
        PublicPost(
            platform="other",
            url=f"https://reviews.example/{n}",
            external_id=f"r-{n}",
            text=words,
            posted_at=datetime.now(UTC),
        )
        for n in (1, 2)
    ]
    recorded = record_posts(rt.db, anonymous, rt.policy.listening)
    assert (recorded.new, recorded.duplicates, recorded.complaints) == (2, 0, 2)
    assert pending_complaints(rt.db) == [] and count_pending(rt.db) == 0


def test_posts_older_than_the_answer_window_are_kept_never_answered(rt: Runtime) -> None:
    now = datetime.now(UTC)
    words = "@acme my order never arrived and nobody answers my emails"
    old = post(words, handle="@old", n=1, posted_at=datetime(2011, 5, 1, tzinfo=UTC))
    recent = post(words, handle="@new", n=2, posted_at=now)
    assert record_posts(rt.db, [old, recent], rt.policy.listening).complaints == 2
    since = now - timedelta(days=rt.policy.listening.answer_within_days)
    with rt.db.session() as session:
        ids = dict(session.execute(select(models.Mention.handle, models.Mention.id)).all())
    assert pending_complaints(rt.db, since=since) == [ids["@new"]]
    assert count_pending(rt.db, since=since) == 1


def test_an_author_the_business_does_not_know_gets_no_money(rt: Runtime) -> None:
    words = "@acme four days late and my order never arrived, worst service ever!!"
    record_posts(
        rt.db, [post(words, handle="@stranger", posted_at=datetime.now(UTC))], rt.policy.listening
    )
    (mention_id,) = pending_complaints(rt.db)
    incident = answer_complaint(rt.db, mention_id, rt.policy.listening)
    assert incident.customer.identified is False
    assessment = assess(incident, forgiven_before=False, policy=rt.policy)
    assert assessment.decision is Decision.SMOOTH_OVER
    assert "no incentive until we know who" in " ".join(assessment.reasons)
    # The same incident from a customer the business knows would be recovered with money.
    known = incident.model_copy(
        update={"customer": incident.customer.model_copy(update={"identified": True})}
    )
    assert assess(known, forgiven_before=False, policy=rt.policy).decision is Decision.RECOVER
