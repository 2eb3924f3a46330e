"""Listening: where public mentions come from, and what a complaint among them opens.

Sources are plugins, like channels: amends has three kinds, and an installed package adds one
with an ``amends.sources`` entry point naming a factory from a :class:`SourceSpec` to a
:class:`MentionSource` (see :func:`source_kinds`).

- ``file``: a drop folder, file or glob of social-listening exports, CSV or JSON Lines (one post
  a row: an id, the author's handle, the text, the time; see :data:`COLUMNS`).
- ``feed``: an RSS or Atom feed (review sites and many platforms publish one), read with
  feedparser.
- ``mastodon``: a Mastodon server's public hashtag timeline, or its search.

A source reads what it can: a row it cannot use is refused with its place and the reason, and
a source that cannot be read at all raises :class:`SourceError`, which stops only itself.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import html
import io
import json
import re
import time
from calendar import timegm
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from amends.domain import CaseState, Incident, SocialPlatform, Stage, spoken
from amends.errors import ConfigurationError, ImportFileError, InvalidIncident, SourceError
from amends.listening.mentions import MAX_TEXT, PublicPost, Recorded, handle_key, same_handle
from amends.messages.rendering import plain_text
from amends.recovery.intake import describe
from amends.recovery.policy import ListeningFigures, load_yaml
from amends.settings import Settings
from amends.storage import models
from amends.storage.db import Database
from amends.storage.imports import read_text

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SourceSpec(BaseModel):
    """One place public mentions are read from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="A short name for reports, such as twitter-export.",
    )
    kind: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="file, feed, mastodon, or the kind a source plugin adds.",
    )
    location: str = Field(
        max_length=2000,
        description="file: a file, folder or glob; feed: the feed's URL; mastodon: the "
        "server's URL, such as https://mastodon.social.",
    )
    platform: SocialPlatform | None = Field(
        default=None,
        description="The network the posts are on; from the rows, or the kind, when empty.",
    )
    query: str | None = Field(
        default=None,
        max_length=200,
        description="mastodon: a hashtag (#acme) for its tag timeline, or words to search.",
    )
    pages: int = Field(default=1, ge=1, le=50, description="mastodon: pages of 40 to read.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Network timeout.")
    options: dict[str, str] = Field(default_factory=dict, description="For source plugins.")


@dataclass
class Fetched:
    """What a source read: the posts it could use, and each row it refused, with the reason."""

    posts: list[PublicPost] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def add(self, where: str, data: dict[str, Any]) -> None:
        """Validate one post; a bad one is refused by its place, with one line."""
        try:
            self.posts.append(PublicPost.model_validate(data))
        except ValidationError as error:
            self.refused.append(f"{where}: {describe(error)}")


class MentionSource(Protocol):
    """Reads public mentions from one place."""

    def fetch(self) -> Fetched: ...


SourceFactory = Callable[[SourceSpec], MentionSource]
ENTRY_POINT_GROUP = "amends.sources"


def clean_text(value: Any) -> str:
    """Text as a post keeps it: entities decoded, control characters blanked, and at most
    :data:`MAX_TEXT` characters (a huge post is cut, not refused)."""
    words = _CONTROL.sub(" ", html.unescape(str(value or "")))
    return words if len(words) <= MAX_TEXT else words[: MAX_TEXT - 1] + "…"


def _when(value: Any) -> datetime | str:
    """ISO 8601, Twitter's ``Wed Oct 04 13:59:33 +0000 2017`` or RFC 2822; as given otherwise,
    for validation to refuse with its reason."""
    raw = str(value or "").strip()
    for parse in (
        datetime.fromisoformat,
        lambda s: datetime.strptime(s, "%a %b %d %H:%M:%S %z %Y"),
        parsedate_to_datetime,
    ):
        try:
            return parse(raw.replace("Z", "+00:00") if parse is datetime.fromisoformat else raw)
        except (ValueError, TypeError, IndexError):
            continue
    return raw


def _id(value: Any) -> str | None:
    # Pandas wrote the dataset's parent ids as floats: "1793930.0" is tweet 1793930.
    raw = str(value).strip() if value not in (None, "") else ""
    return (raw[:-2] if re.fullmatch(r"\d+\.0", raw) else raw) or None


def _handle(value: Any) -> str | None:
    raw = str(value).strip() if value not in (None, "") else ""
    return ("@" + raw.lstrip("@")) if raw else None


# --- file drop ---------------------------------------------------------------------------------

# The columns a social-listening export names its fields by, first match wins.
COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("id", "post_id", "tweet_id", "status_id", "external_id"),
    "handle": ("handle", "author", "author_handle", "screen_name", "username", "author_id"),
    "text": ("text", "content", "message", "body", "full_text"),
    "posted_at": ("posted_at", "created_at", "published", "date", "timestamp"),
    "url": ("url", "link", "permalink"),
    "in_reply_to": ("in_reply_to", "in_reply_to_id", "in_response_to_tweet_id", "parent_id"),
    "in_reply_to_handle": ("in_reply_to_handle", "in_reply_to_screen_name"),
    "platform": ("platform", "network"),
}
DROP_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def _pick(row: dict[str, Any], name: str) -> Any:
    for column in COLUMNS[name]:
        if row.get(column) not in (None, ""):
            return row[column]
    if name == "handle":  # the APIs' own shapes: Twitter's user, Mastodon's account
        for nested, key in (("user", "screen_name"), ("account", "acct")):
            if isinstance(row.get(nested), dict) and row[nested].get(key):
                return row[nested][key]
    return None


@dataclass
class FileDrop:
    """Social-listening exports: CSV (a header row) or JSON Lines, one post a row."""

    spec: SourceSpec
    required: bool = True  # the default drop folder may not exist yet

    def files(self) -> list[Path]:
        where = Path(self.spec.location).expanduser()
        if where.is_dir():
            return sorted(p for p in where.iterdir() if p.suffix.lower() in DROP_SUFFIXES)
        if where.is_file():
            return [where]
        found = sorted(Path(p) for p in glob.glob(str(where)) if Path(p).is_file())
        if not found and self.required:
            raise SourceError(f"{self.spec.name}: no such file or folder: {where}")
        return found

    def fetch(self) -> Fetched:
        fetched = Fetched()
        for path in self.files():
            rows = list(self._rows(path, fetched))
            # A reply names its parent's id; the parent's author is in the same export.
            authors = {_id(_pick(r, "external_id")): _pick(r, "handle") for _, r in rows}
            platform = self.spec.platform
            for where, row in rows:
                fetched.add(where, self._post(row, authors, platform))
        return fetched

    def _rows(self, path: Path, fetched: Fetched) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            source = read_text(path)
        except ImportFileError as error:  # this file: the others in the folder are read
            fetched.refused.append(str(error))
            return
        if path.suffix.lower() == ".csv":
            yield from self._csv_rows(path.name, source, fetched)
            return
        for number, text_line in enumerate(source.splitlines(), start=1):
            if not text_line.strip():
                continue
            try:
                row = json.loads(text_line)
            except (json.JSONDecodeError, RecursionError):
                fetched.refused.append(f"{path.name} line {number}: not a JSON object")
                continue
            if not isinstance(row, dict):
                fetched.refused.append(f"{path.name} line {number}: not a JSON object")
                continue
            yield f"{path.name} line {number}", row

    def _csv_rows(
        self, name: str, source: str, fetched: Fetched
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        reader = csv.DictReader(io.StringIO(source, newline=""))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                fetched.refused.append(f"{name} line {reader.line_num}: {error}")
                continue
            yield f"{name} line {reader.line_num}", row

    def _post(
        self, row: dict[str, Any], authors: dict[str | None, Any], platform: SocialPlatform | None
    ) -> dict[str, Any]:
        given = str(_pick(row, "platform") or "").strip().lower()
        if platform is None:
            platform = given or ("twitter" if "tweet_id" in row else "other")
        external_id = _id(_pick(row, "external_id"))
        handle = _handle(_pick(row, "handle"))
        parent = _id(_pick(row, "in_reply_to"))
        url = _pick(row, "url")
        if not url and external_id and handle:
            url = _permalink(str(platform), handle, external_id)
        return {
            "platform": platform,
            "handle": handle or "",  # a file's post needs its author: refused without one
            "url": url,
            "text": clean_text(_pick(row, "text")),
            "posted_at": _when(_pick(row, "posted_at")),
            "source": self.spec.name,
            "external_id": external_id,
            "in_reply_to": parent,
            "in_reply_to_handle": _handle(_pick(row, "in_reply_to_handle") or authors.get(parent)),
        }


def _permalink(platform: str, handle: str, external_id: str) -> str:
    if platform == "twitter":
        return f"https://twitter.com/{handle.lstrip('@')}/status/{external_id}"
    return f"urn:amends:{platform}:{external_id}"


# --- network sources -----------------------------------------------------------------------------


def _get(
    spec: SourceSpec, url: str, params: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, Any]]:
    """One GET: the body (at most :data:`MAX_RESPONSE_BYTES`) and the ``Link`` header's links;
    any failure is a SourceError."""
    shown = _shown(url)
    # A redirect could lead anywhere, loopback and cloud metadata included: it is refused.
    deadline = time.monotonic() + spec.timeout_seconds * 3
    try:
        with (
            httpx.Client(timeout=spec.timeout_seconds, follow_redirects=False) as client,
            client.stream("GET", url, params=params, headers={"Accept": "*/*"}) as response,
        ):
            if response.status_code != 200:
                raise SourceError(f"{spec.name}: {shown} answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise SourceError(
                        f"{spec.name}: {shown} sent more than {MAX_RESPONSE_BYTES:,} bytes"
                    )
                if time.monotonic() > deadline:  # a trickle must not hold up the other sources
                    raise SourceError(f"{spec.name}: {shown} is too slow; left for the next run")
            return bytes(body), response.links
    except httpx.HTTPError as error:
        raise SourceError(
            f"{spec.name}: cannot read {shown}: {error or type(error).__name__}"
        ) from None


def _shown(url: str) -> str:
    """A source's URL as logs and artifacts show it: no credentials, no query (a token may
    hide there)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an invalid URL)"
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


@dataclass
class Feed:
    """An RSS or Atom feed: each entry a post, its author the handle (none when the entry
    names no author: such a post is kept, never answered)."""

    spec: SourceSpec

    def fetch(self) -> Fetched:
        import feedparser

        body, _ = _get(self.spec, self.spec.location)
        parsed = feedparser.parse(body)
        if not parsed.entries and (parsed.bozo or not parsed.version):
            raise SourceError(f"{self.spec.name}: {self.spec.location} is not an RSS or Atom feed")
        fetched = Fetched()
        platform = self.spec.platform or SocialPlatform.OTHER
        for number, entry in enumerate(parsed.entries, start=1):
            # Read the keys themselves: feedparser maps a missing one to the other, with a
            # warning.
            stamp = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
            words = " ".join(
                part
                for part in (
                    str(entry.get("title") or ""),
                    plain_text(str(entry.get("summary") or "")).strip(),
                )
                if part
            )
            link = entry.get("link") or entry.get("id")
            fetched.add(
                f"{self.spec.name} entry {number}",
                {
                    "platform": platform,
                    # No author, no handle: kept for the report, never answered (the feed's
                    # title would make one "author" of every anonymous review).
                    "handle": _handle(_feed_author(entry)),
                    "url": link,
                    "text": clean_text(words),
                    "posted_at": datetime.fromtimestamp(timegm(stamp), UTC) if stamp else None,
                    "source": self.spec.name,
                    "external_id": str(entry.get("id") or link or "")[:200] or None,
                },
            )
        return fetched


def _feed_author(entry: Any) -> str | None:
    """The entry author's name; never the address RSS puts in ``<author>``: the handle goes
    out in a public reply."""
    name = (entry.get("author_detail") or {}).get("name") or entry.get("author")
    return None if not name or "@" in str(name) else str(name)


@dataclass
class Mastodon:
    """A Mastodon server's public API: the hashtag timeline (``/api/v1/timelines/tag/:tag``)
    for a query starting with ``#``, the search (``/api/v2/search``) otherwise."""

    spec: SourceSpec
    _accounts: dict[str, str | None] = field(default_factory=dict)

    def _account(self, account_id: Any) -> str | None:
        """The ``acct`` of an account by id (``/api/v1/accounts/:id``), once per fetch; None
        when the server will not say."""
        key = str(account_id)
        if key not in self._accounts:
            url = f"{self.spec.location.rstrip('/')}/api/v1/accounts/{quote(key, safe='')}"
            try:
                body, _ = _get(self.spec, url)
                acct = json.loads(body).get("acct")
            except (SourceError, ValueError, RecursionError, AttributeError):
                acct = None
            self._accounts[key] = acct if isinstance(acct, str) else None
        return self._accounts[key]

    def fetch(self) -> Fetched:
        spec = self.spec
        query = (spec.query or "").strip()
        if not query:
            raise SourceError(f"{spec.name}: a mastodon source needs a query (#hashtag or words)")
        base = spec.location.rstrip("/")
        if query.startswith("#"):
            url, params = f"{base}/api/v1/timelines/tag/{query[1:]}", {"limit": 40}
        else:
            url, params = f"{base}/api/v2/search", {"q": query, "type": "statuses", "limit": 40}
        fetched, page = Fetched(), 0
        while url and page < spec.pages:
            page += 1
            body, links = _get(spec, url, params)
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                raise SourceError(f"{spec.name}: {url} did not answer JSON") from None
            statuses = data.get("statuses") if isinstance(data, dict) else data
            if not isinstance(statuses, list):
                raise SourceError(f"{spec.name}: {url} did not answer a list of statuses")
            for number, status in enumerate(statuses, start=1):
                where = f"{spec.name} page {page} status {number}"
                if not isinstance(status, dict):
                    fetched.refused.append(f"{where}: not a status")
                    continue
                fetched.add(where, self._post(status))
            url, params = links.get("next", {}).get("url"), None
            if url and httpx.URL(url).host != httpx.URL(base).host:
                break  # pages come from the same server, never from wherever a header points
        return fetched

    def _post(self, status: dict[str, Any]) -> dict[str, Any]:
        shared = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
        original = shared or status
        account = status.get("account") if isinstance(status.get("account"), dict) else {}
        mentions = original.get("mentions") if isinstance(original.get("mentions"), list) else []
        parent = original.get("in_reply_to_account_id")
        named = [m.get("acct") for m in mentions if isinstance(m, dict) and m.get("acct")]
        replied = next(
            (m.get("acct") for m in mentions if isinstance(m, dict) and m.get("id") == parent),
            None,
        )
        if replied is None and parent is not None:
            # A reply need not mention whom it answers: ask the server whose account it is.
            replied = self._account(parent)
        author = (shared or {}).get("account") if shared else None
        return {
            "platform": SocialPlatform.MASTODON,
            "handle": _handle(account.get("acct")),
            "url": status.get("url") or status.get("uri"),
            "text": clean_text(plain_text(str(original.get("content") or ""))).strip(),
            "posted_at": _when(status.get("created_at")),
            "source": self.spec.name,
            "external_id": _id(status.get("id")),
            "in_reply_to": _id(original.get("in_reply_to_id")),
            "in_reply_to_handle": _handle(replied) if isinstance(replied, str) else None,
            "mentions": [_handle(m) for m in named if isinstance(m, str)],
            "reposted_from": _handle(author.get("acct")) if isinstance(author, dict) else None,
        }


BUILT_IN: dict[str, SourceFactory] = {"file": FileDrop, "feed": Feed, "mastodon": Mastodon}


def source_kinds() -> dict[str, SourceFactory]:
    """amends' own kinds of source, then every installed plugin's: the ``amends.sources``
    entry points, each named after its kind and naming a factory from a SourceSpec.

    Raises:
        ConfigurationError: two plugins, or a plugin and amends, claim the same kind.
    """
    kinds = dict(BUILT_IN)
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in kinds:
            raise ConfigurationError(
                f"the source plugin {entry_point.name!r} would replace a source of that kind; "
                "uninstall one of them"
            )
        kinds[entry_point.name] = entry_point.load()
    return kinds


def open_source(spec: SourceSpec) -> MentionSource:
    """The source a spec describes.

    Raises:
        SourceError: no source of that kind is installed.
    """
    factory = source_kinds().get(spec.kind)
    if factory is None:
        raise SourceError(
            f"{spec.name}: no source of kind {spec.kind!r} (installed: "
            f"{', '.join(sorted(source_kinds()))})"
        )
    return factory(spec)


def fetch(spec: SourceSpec) -> Fetched:
    """Read one source; the default drop folder may be missing (nothing dropped yet).

    Raises:
        SourceError: the source cannot be read at all.
    """
    if spec.kind == "file" and spec.name == DROP_FOLDER:
        return FileDrop(spec, required=False).fetch()
    return open_source(spec).fetch()


DROP_FOLDER = "drop-folder"


def configured_sources(settings: Settings) -> list[SourceSpec]:
    """The sources in ``AMENDS_LISTENING_SOURCES`` (a YAML list of sources), or the drop folder
    ``AMENDS_HOME/listening`` when it is not set.

    Raises:
        ConfigurationError: the file is missing, not YAML, or a source in it is wrong.
    """
    path = settings.listening_sources
    if path is None:
        return [SourceSpec(name=DROP_FOLDER, kind="file", location=str(settings.listening_dir))]
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"cannot read sources file {path}: {error.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{path} is not a YAML list of sources: {error}") from None
    if not isinstance(data, list):
        raise ConfigurationError(f"{path} must be a YAML list of sources")
    specs = []
    for number, item in enumerate(data, start=1):
        try:
            specs.append(SourceSpec.model_validate(item))
        except ValidationError as error:
            raise ConfigurationError(f"{path}: source {number}: {describe(error)}") from None
    return specs


# --- complaints into incidents ---------------------------------------------------------------


def _unanswered(since: datetime | None = None) -> Any:
    # A post older than the answer window, or with no author to answer, is kept for the
    # report and never answered.
    recent = () if since is None else (models.Mention.posted_at >= since,)
    return (
        *recent,
        models.Mention.handle != "",
        models.Mention.complaint.is_(True),
        models.Mention.case_id.is_(None),
        models.Mention.duplicate_of.is_(None),
        models.Mention.repost.is_(False),
    )


def pending_complaints(
    db: Database, limit: int | None = None, since: datetime | None = None
) -> list[int]:
    """Complaints no case answers yet, oldest first, and those an earlier run could not open
    after the rest: what a run opens incidents for. Only posts from ``since`` on (the policy's
    answer window) and with an author are answered."""
    with db.session() as session:
        query = (
            select(models.Mention.id)
            .where(*_unanswered(since))
            .order_by(models.Mention.answer_attempts, models.Mention.posted_at, models.Mention.id)
        )
        return list(session.scalars(query.limit(limit) if limit is not None else query))


def count_pending(db: Database, since: datetime | None = None) -> int:
    """How many complaints wait for an incident (from ``since`` on)."""
    with db.session() as session:
        return session.scalar(
            select(func.count()).select_from(models.Mention).where(*_unanswered(since))
        )


def social_ref(platform: str, handle: str) -> str:
    """The customer ref for an author amends only knows by handle: readable, and the same on
    every run (``SOC-twitter-rk-1a2b3c``)."""
    digest = hashlib.sha256(f"{platform}:{handle_key(handle)}".encode()).hexdigest()[:6]
    readable = re.sub(r"[^a-z0-9._-]+", "-", handle_key(handle)[1:]).strip("-._")[:40]
    return f"SOC-{platform}-{readable}-{digest}" if readable else f"SOC-{platform}-{digest}"


def _summary(words: str) -> str:
    first = " ".join(words.split())
    first = first if len(first) <= 200 else first[:199] + "…"
    return first if len(first) >= 3 else "A public post"


def _customer_for(session: Any, mention: models.Mention) -> models.Customer | None:
    if mention.customer_id is not None:
        return session.get(models.Customer, mention.customer_id)
    return session.scalar(
        select(models.Customer)
        .where(
            models.Customer.social_platform == mention.platform,
            same_handle(models.Customer.social_handle, mention.handle),
        )
        .order_by(models.Customer.id)
        .limit(1)
    )


def incident_ref(mention_id: int) -> str:
    """The incident a complaint post opens: one per post, the same on every run."""
    return f"MEN-{mention_id}"


def answer_complaint(db: Database, mention_id: int, figures: ListeningFigures) -> Incident | int:
    """What answers a complaint post: the customer's open case, if they have one (the post is
    added to it, returned as the case id), or a new social incident to run the recovery on.

    The author is the customer with that handle on that network, where the business knows one
    (imported or from an earlier incident); otherwise a customer known only by the handle, so
    the public reply can go out in the same channel.
    """
    with db.session() as session:
        mention = session.get(models.Mention, mention_id)
        if mention.case_id is not None:
            # Answered since the run listed it: its author's case linked it in its monitor stage.
            return mention.case_id
        filed = session.scalar(
            select(models.Incident.payload).where(models.Incident.ref == incident_ref(mention_id))
        )
        if filed is not None:  # an earlier run stopped before the case answered: resume it
            return Incident.model_validate(filed)
        customer = _customer_for(session, mention)
        if customer is not None:
            mention.customer_id = customer.id
            open_case = session.scalar(
                select(models.Case)
                .where(
                    models.Case.customer_id == customer.id,
                    models.Case.state != CaseState.CLOSED,
                )
                .order_by(models.Case.id.desc())
                .limit(1)
            )
            if open_case is not None:
                mention.case_id = open_case.id
                session.add(
                    models.CaseEvent(
                        case_id=open_case.id,
                        stage=Stage.MONITOR,
                        kind="public_post",
                        text=f"Another public post on {mention.platform} ({mention.url}): "
                        "added to this case.",
                    )
                )
                return open_case.id
        high = mention.sentiment <= figures.high_severity_score
        known = (
            {
                "ref": customer.ref,
                "name": customer.name,
                "email": customer.email,
                "phone": customer.phone,
                "postal_address": customer.postal_address,
                "locale": customer.locale,
                "timezone": customer.timezone,
                "annual_value": customer.annual_value,
            }
            if customer is not None
            else {
                "ref": social_ref(mention.platform, mention.handle),
                "name": mention.handle,
                # Known only by a handle: a public reply and an invitation to talk, no money,
                # until the business knows who it is.
                "identified": False,
            }
        )
        data = {
            "ref": incident_ref(mention_id),
            "channel": "social",
            "received_at": min(mention.posted_at, models.utcnow()).isoformat(),
            "summary": _summary(mention.text),
            "details": f"{spoken(mention.platform).capitalize()} post {mention.url}:\n"
            + mention.text[: 10_000 - 600],
            "category": "other",
            "severity": "high" if high else "medium",
            "fault": figures.fault.value,
            "costs": {"social": "public", "emotional": "angry" if high else "upset"},
            "customer": {
                **{k: v for k, v in known.items() if v is not None},
                "social": {"platform": mention.platform, "handle": mention.handle},
            },
        }
        try:
            return Incident.model_validate(data)
        except ValidationError as error:  # a customer record the intake would refuse
            raise InvalidIncident(f"{incident_ref(mention_id)}: {describe(error)}") from None


def count_failed_answer(db: Database, mention_id: int) -> None:
    """Note a run that could not open an incident for a complaint: it is tried again, behind
    complaints never tried, so it cannot hold up the others."""
    with db.session() as session:
        session.get(models.Mention, mention_id).answer_attempts += 1


def link_mention(db: Database, mention_id: int, case_id: int) -> None:
    """Record the case that answers a complaint post (the case's monitor stage links it too)."""
    with db.session() as session:
        mention = session.get(models.Mention, mention_id)
        mention.case_id = mention.case_id or case_id
        case = session.get(models.Case, case_id)
        mention.customer_id = mention.customer_id or case.customer_id


# --- a run's report ----------------------------------------------------------------------------


DECISIONS_SHOWN = 200  # rows of the artifact's "why" table: a large export stays readable


@dataclass
class SourceReport:
    """What one source gave a run: posts, refused rows, or the error that stopped it."""

    name: str
    kind: str
    posts: int = 0
    refused: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class MonitorReport:
    """A monitor-mentions run: per source, what was kept, and what the complaints opened."""

    sources: list[SourceReport]
    recorded: Recorded
    opened: list[str] = field(default_factory=list)  # incident refs
    added_to_open_cases: int = 0
    not_opened: list[str] = field(default_factory=list)  # "MEN-12: reason"
    pending: int = 0  # complaints left for the next run

    @property
    def failing(self) -> list[SourceReport]:
        return [s for s in self.sources if s.error]

    def counts(self) -> list[dict[str, object]]:
        """The run's figures, one row each (the table artifact, the CLI's table)."""
        r = self.recorded
        rows = [
            ("Posts read", r.read),
            ("New posts kept", r.new),
            ("Seen in an earlier run", r.seen_before),
            ("The business's own posts", r.own),
            ("Duplicates and reposts", r.duplicates),
            ("Addressed to the business", r.addressed),
            ("Complaints", r.complaints),
            ("Complaints addressed to the business", r.complaints_addressed),
            ("Complaints only about the business", r.complaints_about),
            ("Posts by known customers", r.linked),
            ("Incidents opened", len(self.opened)),
            ("Added to an open case", self.added_to_open_cases),
            ("Could not be opened", len(self.not_opened)),
            ("Complaints left for the next run", self.pending),
            ("Failing sources", len(self.failing)),
        ]
        return [{"figure": name, "count": count} for name, count in rows]

    def by_source(self) -> list[dict[str, object]]:
        return [
            {
                "source": s.name,
                "kind": s.kind,
                "posts": s.posts,
                "refused": len(s.refused),
                "error": s.error or "",
            }
            for s in self.sources
        ]

    def markdown(self) -> str:
        """The run as markdown, masked: source errors and refusals may quote what they read."""
        from amends.reporting.casebook import plain_markdown as md

        lines = ["# Public mentions", "", "| figure | count |", "|---|---:|"]
        lines += [f"| {md(row['figure'])} | {row['count']} |" for row in self.counts()]
        lines += ["", "## Sources", "", "| source | kind | posts | refused | error |"]
        lines += ["|---|---|---:|---:|---|"]
        lines += [
            f"| {md(s.name)} | {md(s.kind)} | {s.posts} | {len(s.refused)} | {md(s.error or '')} |"
            for s in self.sources
        ]
        refused = [line for s in self.sources for line in s.refused][:20]
        if refused:
            lines += ["", "## Rows refused (the first 20)", ""]
            lines += [f"- {md(line[:300])}" for line in refused]
        if self.recorded.decisions:
            shown = self.recorded.decisions[:DECISIONS_SHOWN]
            lines += ["", f"## Why each post was read so (the first {len(shown)})", ""]
            lines += ["| post | decision, its probability and strongest features |", "|---|---|"]
            lines += [f"| {md(url)} | {md(why)} |" for url, why in shown]
        if self.opened:
            lines += ["", "## Incidents opened", "", ", ".join(md(ref) for ref in self.opened)]
        if self.not_opened:
            lines += ["", "## Not opened", ""] + [f"- {md(line)}" for line in self.not_opened]
        return "\n".join(lines) + "\n"
