"""Public mentions of the business: what a post is, whether it is a complaint, whether it was
written to the business or only about it, and how posts are kept, once each.

Seed 003: "tune into the social sphere to find those customers who complain loudly about you,
but not to you". Every post read is kept (the reports count them); a complaint that is not a
duplicate is what the monitor-mentions flow answers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from amends.domain import PlausibleTime, SocialPlatform, line, text
from amends.errors import InvalidInput
from amends.listening.recogniser import ComplaintModel, Confusion, features, shipped_model
from amends.recovery.assess import wording_score
from amends.recovery.policy import ListeningFigures
from amends.storage import models
from amends.storage.db import Database

MAX_TEXT = 10_000
_CHUNK = 500  # keys looked up per query


class PublicPost(BaseModel):
    """A public post that mentions the business, as a source read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: SocialPlatform
    # None: a feed entry that names no author; kept for the report, never answered.
    handle: line(2, 100) | None = None
    url: line(8, 500)
    text: text(MAX_TEXT)
    posted_at: PlausibleTime
    source: line(1, 64) | None = None
    external_id: line(1, 200) | None = None
    in_reply_to: line(1, 200) | None = None
    # Who the post answers, when the source knows (the parent in the same export, Mastodon's
    # mentions), and whose post it shares, for a repost.
    in_reply_to_handle: line(2, 100) | None = None
    mentions: tuple[line(2, 100), ...] = ()
    reposted_from: line(2, 100) | None = None


# --- reading a post --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What the recogniser made of a post's words."""

    sentiment: float  # VADER's compound score, -1 (hostile) to +1 (warm)
    cues: tuple[str, ...]  # the complaint cues found
    complaint: bool
    probability: float = 0.0  # the model's chance that it is a complaint
    reasons: tuple[str, ...] = ()  # the features that weighed most towards the decision

    def why(self) -> str:
        """The decision in one line, for the monitor's artifact and `amends listening`."""
        verdict = "complaint" if self.complaint else "not a complaint"
        return f"{verdict} ({self.probability:.2f}): " + (", ".join(self.reasons) or "-")


@cache
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str] | None:
    if not cues:
        return None
    # Whole words: "late" is a cue, "chocolate" is not.
    return re.compile(r"(?<!\w)(?:" + "|".join(f"(?:{c})" for c in cues) + r")(?!\w)", re.I)


_LINK = re.compile(r"https?://\S+")


def post_features(
    words: str, figures: ListeningFigures, owners: dict[str, str] | None = None
) -> tuple[dict[str, float], float, tuple[str, ...]]:
    """The recogniser's view of a post: its feature vector, VADER sentiment and the policy's
    complaint cues it carries (the same for training, the monitor and evaluation); ``owners``
    as for ``features``."""
    bare = _LINK.sub(" ", words)
    sentiment = wording_score(bare)
    pattern = _cue_pattern(tuple(figures.complaint_cues))
    cues = tuple(m.group(0).lower() for m in pattern.finditer(bare)) if pattern else ()
    return features(words, sentiment, len(cues), owners), sentiment, cues


def read_post(
    words: str, figures: ListeningFigures, model: ComplaintModel | None = None
) -> Reading:
    """Is this a complaint? The shipped model's probability (words, character n-grams,
    sentiment and cues) at or above the policy's ``complaint_threshold`` (the model's own
    when the policy sets none), with the features that weighed most.

    Args:
        words: The post's text.
        figures: The policy's ``listening`` section: cues and threshold.
        model: Another model than the shipped one (tests).
    """
    model = model or shipped_model()
    owners: dict[str, str] = {}
    vector, sentiment, cues = post_features(words, figures, owners)
    probability, pushes = model.weigh(vector)
    threshold = figures.complaint_threshold
    complaint = probability >= (model.threshold if threshold is None else threshold)
    reasons = tuple(model.strongest(pushes, towards=complaint, owners=owners))
    return Reading(sentiment, cues, complaint, probability, reasons)


_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_][\w.-]*(?:@[\w-]+(?:\.[\w-]+)+)?)")
_REPOST = re.compile(r"^RT @([A-Za-z0-9_][\w.-]*(?:@[\w-]+(?:\.[\w-]+)+)?):?\s*", re.I)


def handle_key(handle: str) -> str:
    """A handle as compared: lower case, one leading ``@``."""
    return "@" + handle.strip().lstrip("@").lower()


def same_handle(column: Any, handle: str) -> Any:
    """A SQL condition: ``column`` holds ``handle``, in any case, with or without its ``@``
    (customers' handles come from the business's own records, posts' from the networks)."""
    key = handle_key(handle)
    return func.lower(column).in_([key, key[1:]])


def _local(handle: str) -> str:
    # "@acme@mastodon.social" is "@acme" on its own instance.
    return "@" + handle.lstrip("@").split("@", 1)[0]


def mentioned(post: PublicPost) -> set[str]:
    """The handles a post names: in its words, and as its source listed them."""
    found = {handle_key(m.rstrip(".")) for m in _MENTION.findall(post.text)}
    return found | {handle_key(m) for m in post.mentions}


def is_addressed(post: PublicPost, ours: Iterable[str]) -> bool:
    """Written to the business (one of its handles named, or a reply to it), rather than only
    about it."""
    ours = {handle_key(h) for h in ours}
    local = {_local(h) for h in ours}
    named = mentioned(post)
    if post.in_reply_to_handle and handle_key(post.in_reply_to_handle) in ours | local:
        return True
    return bool(named & ours) or bool({_local(h) for h in named if "@" not in h[1:]} & local)


def repost_of(post: PublicPost) -> tuple[str, str] | None:
    """``(handle, words)`` of the post this one shares, or None for a post of its own."""
    if post.reposted_from:
        return handle_key(post.reposted_from), post.text
    match = _REPOST.match(post.text)
    if match:
        return handle_key(match.group(1)), post.text[match.end() :]
    return None


def _same_words(words: str) -> str:
    return " ".join(words.lower().split())


# --- keeping posts ----------------------------------------------------------------------------


@dataclass
class Recorded:
    """What recording a batch of posts did."""

    read: int = 0
    new: int = 0
    seen_before: int = 0  # kept by an earlier run
    own: int = 0  # the business's own posts: not mentions
    duplicates: int = 0  # the same post twice in this batch, a repost, or a repeat
    complaints: int = 0  # new, not duplicates
    complaints_addressed: int = 0
    addressed: int = 0  # new posts written to the business
    linked: int = 0  # new posts by a known customer
    # Why each new post was, or was not, read as a complaint: (url, the reading's reason).
    decisions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def complaints_about(self) -> int:
        """Complaints only about the business, not written to it: seed 003's loud ones."""
        return self.complaints - self.complaints_addressed


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _known(session: Session, column, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(pairs):
        found.update(
            session.execute(
                select(models.Mention.platform, column).where(
                    tuple_(models.Mention.platform, column).in_(chunk)
                )
            ).all()
        )
    return found


def _earlier_words(session: Session, handles: list[tuple[str, str]]) -> dict[tuple, int]:
    """``(platform, handle, words) -> id`` of the posts already kept under these handles."""
    found: dict[tuple, int] = {}
    for chunk in _chunks(handles):
        rows = session.execute(
            select(
                models.Mention.id,
                models.Mention.platform,
                func.lower(models.Mention.handle),
                models.Mention.text,
            )
            .where(tuple_(models.Mention.platform, func.lower(models.Mention.handle)).in_(chunk))
            .order_by(models.Mention.id)
        )
        for mention_id, platform, handle, words in rows:
            found.setdefault((platform, handle_key(handle), _same_words(words)), mention_id)
    return found


def _customers(session: Session, handles: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for chunk in _chunks(handles):
        rows = session.execute(
            select(
                models.Customer.id, models.Customer.social_platform, models.Customer.social_handle
            )
            .where(
                tuple_(
                    models.Customer.social_platform, func.lower(models.Customer.social_handle)
                ).in_(chunk)
            )
            .order_by(models.Customer.id)
        )
        for customer_id, platform, handle in rows:
            found.setdefault((platform, handle_key(handle)), customer_id)
    return found


def _lookup_keys(handles: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    # Stored handles keep the network's spelling; "@RK" and "@rk" are the same account.
    keys = set()
    for platform, key in handles:
        keys.add((platform, key))
        keys.add((platform, key[1:]))  # imported without the "@"
    return sorted(keys)


def record_posts(
    db: Database,
    posts: Iterable[PublicPost],
    figures: ListeningFigures,
    handles: Iterable[str] = (),
) -> Recorded:
    """Keep the posts not seen before, each read for complaint and address, in one
    transaction; a second run over the same posts keeps nothing new.

    A post seen before (the same platform and id, or URL) is skipped; a repost, or the same
    words by the same author again, is kept pointing at the post it repeats and is never
    answered; the business's own posts (``handles``) are no mentions and are left out.

    Args:
        db: The database.
        posts: The posts, as sources read them.
        figures: The policy's ``listening`` section.
        handles: The business's own handles.
    """
    ours = [handle_key(h) for h in handles]
    report = Recorded()
    fresh: list[PublicPost] = []
    keys: set[tuple[str, str]] = set()
    for post in posts:
        report.read += 1
        if post.handle and handle_key(post.handle) in ours:
            report.own += 1
            continue
        identity = [(post.platform.value, "url:" + post.url)]
        if post.external_id:
            identity.append((post.platform.value, "id:" + post.external_id))
        if keys.intersection(identity):
            report.duplicates += 1  # the same post twice in what was read
            continue
        keys.update(identity)
        fresh.append(post)
    with db.session() as session:
        seen_urls = _known(session, models.Mention.url, [(p.platform.value, p.url) for p in fresh])
        seen_ids = _known(
            session,
            models.Mention.external_id,
            [(p.platform.value, p.external_id) for p in fresh if p.external_id],
        )
        fresh = [
            p
            for p in fresh
            if (p.platform.value, p.url) not in seen_urls
            and (p.platform.value, p.external_id) not in seen_ids
        ]
        report.seen_before = report.read - report.own - report.duplicates - len(fresh)
        authors = {(p.platform.value, handle_key(p.handle)) for p in fresh if p.handle}
        shared = {(p.platform.value, r[0]) for p in fresh if (r := repost_of(p))}
        earlier = _earlier_words(session, _lookup_keys(authors | shared))
        customers = _customers(session, _lookup_keys(authors))
        kept: dict[tuple, models.Mention] = {}
        repeats: list[tuple[models.Mention, int | models.Mention]] = []
        for post in sorted(fresh, key=lambda p: (p.posted_at, p.url)):
            platform = post.platform.value
            author = handle_key(post.handle) if post.handle else None
            shares = repost_of(post)
            reading = read_post(shares[1] if shares else post.text, figures)
            mention = models.Mention(
                platform=platform,
                handle=post.handle or "",
                url=post.url,
                text=post.text,
                posted_at=post.posted_at,
                source=post.source,
                external_id=post.external_id,
                in_reply_to=post.in_reply_to,
                addressed=is_addressed(post, ours),
                complaint=reading.complaint,
                sentiment=reading.sentiment,
                repost=shares is not None,
                customer_id=customers.get((platform, author)),
            )
            session.add(mention)
            words = (platform, *(shares or (author, post.text)))
            words = (words[0], words[1], _same_words(words[2]))
            # Two anonymous entries with the same words are two people, not one repeating.
            same_author = author is not None or shares is not None
            original = (kept.get(words) or earlier.get(words)) if same_author else None
            if shares or original is not None:
                report.duplicates += 1
                if original is not None:
                    repeats.append((mention, original))
            else:
                if same_author:
                    kept[words] = mention
                report.complaints += mention.complaint
                report.complaints_addressed += mention.complaint and mention.addressed
            report.new += 1
            report.decisions.append((post.url, reading.why()))
            report.addressed += mention.addressed
            report.linked += mention.customer_id is not None
        session.flush()
        for mention, original in repeats:
            mention.duplicate_of = original if isinstance(original, int) else original.id
    return report


# --- measuring the recogniser -------------------------------------------------------------------


def evaluate_labelled(path: Path, figures: ListeningFigures) -> Confusion:
    """Read a CSV of labelled posts (a header row, ``text`` and ``label``: 1 a complaint, 0
    not; an optional ``lang``) and count how the monitor's recogniser decides them.

    Raises:
        InvalidInput: the file cannot be read, has no header with those columns, or a label
            is not 0 or 1; the message names the line.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            missing = sorted({"text", "label"} - columns)
            if missing:
                raise InvalidInput(
                    f"{path}: the first row must be a header with the columns text and label "
                    f"(missing: {', '.join(missing)})"
                )
            confusion = Confusion()
            for row in reader:
                label = (row.get("label") or "").strip()
                if label not in {"0", "1"}:
                    raise InvalidInput(
                        f"{path} line {reader.line_num}: label must be 1 (a complaint) or 0 "
                        f"(not one), not {label[:20]!r}"
                    )
                said = read_post(row.get("text") or "", figures).complaint
                confusion = confusion.add(said, label == "1")
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidInput(f"{path} is not a UTF-8 CSV file: {error}") from None
    if not confusion.total:
        raise InvalidInput(f"{path} has no labelled posts under its header")
    return confusion
