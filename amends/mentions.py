"""Public mentions of the business, as a listening source records them; the monitor stage reads
them to find customers complaining about us rather than to us (seed 003)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import select

from amends import models
from amends.db import Database
from amends.domain import SocialPlatform, line, text


class PublicPost(BaseModel):
    """A public post that mentions the business."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: SocialPlatform
    handle: line(2, 100)
    url: line(8, 500)
    text: text(10_000)
    posted_at: AwareDatetime


def record_posts(db: Database, posts: list[PublicPost]) -> int:
    """Keep posts not seen before (by platform and URL); returns how many were new."""
    added = 0
    with db.session() as session:
        for post in posts:
            seen = session.scalar(
                select(models.Mention.id).where(
                    models.Mention.platform == post.platform.value, models.Mention.url == post.url
                )
            )
            if seen is None:
                session.add(
                    models.Mention(
                        platform=post.platform.value,
                        handle=post.handle,
                        url=post.url,
                        text=post.text,
                        posted_at=post.posted_at,
                    )
                )
                added += 1
    return added
