"""Email at the mail provider's pace: each send takes a slot of a Prefect global concurrency
limit with slot decay (``AMENDS_SMTP_RATE_LIMIT``), shared by every worker on the server."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from amends.domain import ReplyChannel
from amends.errors import ConfigurationError
from amends.settings import Settings

# How long a lookup holds in this process: a worker runs many incidents, each of which asks,
# and a limit created or changed meanwhile is taken up within this time.
LOOKUP_SECONDS = 60.0
# (API, name): (when, slot decay)
_looked_up: dict[tuple[str | None, str], tuple[float, float | None]] = {}


def _slot_decay(name: str) -> float | None:
    """The limit's slot decay per second (0 when it has none), or None when there is no such
    limit; looked up at most once a :data:`LOOKUP_SECONDS`."""
    key = (get_current_settings().api.url, name)
    when, decay = _looked_up.get(key, (float("-inf"), None))
    if time.monotonic() - when > LOOKUP_SECONDS:
        decay = _look_up(name)
        _looked_up[key] = (time.monotonic(), decay)
    return decay


def _look_up(name: str) -> float | None:
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            get_run_logger().info(
                "no global concurrency limit %r: email is not paced (`prefect gcl create %s "
                "--limit 1 --slot-decay-per-second 2` sends at most two a second)",
                name,
                name,
            )
            return None
    return limit.slot_decay_per_second or 0.0


def email_pace(settings: Settings) -> Callable[[ReplyChannel], None] | None:
    """The outbox's ``before_send`` hook: wait for a slot of the rate limit before each email.

    Looked up once a minute: while the limit does not exist, email goes out unpaced and the
    run's log says so (Prefect's own ``strict=False`` would warn at every send).

    Raises:
        ConfigurationError: the limit has no slot decay, so it cannot pace anything.
    """
    name = settings.smtp_rate_limit
    if not name:
        return None
    decay = _slot_decay(name)
    if decay is None:
        return None
    if not decay:
        raise ConfigurationError(
            f"the global concurrency limit {name!r} has no slot decay, so it cannot pace "
            "email: give it one (`prefect gcl update "
            f"{name} --slot-decay-per-second 2`) or set AMENDS_SMTP_RATE_LIMIT to another"
        )

    def pace(channel: ReplyChannel) -> None:
        if channel is ReplyChannel.EMAIL:
            # strict: the limit was there a moment ago; if it is gone, say so, not skip it.
            rate_limit(name, strict=True)

    return pace
