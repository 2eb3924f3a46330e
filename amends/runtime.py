"""The process's one runtime: settings, database, policy, templates and channel adapters.

Built from the environment on first use; tests and the demo install their own with
:func:`use_runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amends.delivery.adapter import ChannelAdapter
from amends.delivery.channels import load_channels
from amends.domain import ReplyChannel
from amends.errors import DatabaseOutdated
from amends.messages.rendering import Templates
from amends.recovery.policy import Policy, load_policy
from amends.settings import Settings
from amends.storage.db import Database


@dataclass(frozen=True)
class Runtime:
    """What every stage needs, built once per process."""

    settings: Settings
    db: Database
    policy: Policy
    templates: Templates
    # Channels with an adapter are delivered automatically; the others wait for staff.
    channels: dict[ReplyChannel, ChannelAdapter] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, channels: dict[ReplyChannel, ChannelAdapter] | None = None
    ) -> Runtime:
        """Build a runtime; a SQLite database is brought up to date on the spot.

        Raises:
            DatabaseOutdated: another database needs ``amends db upgrade`` first, so that
                several workers never race to migrate it.
        """
        db = Database(settings.sqlalchemy_url)
        if not db.is_current():
            if db.engine.dialect.name != "sqlite":
                raise DatabaseOutdated(
                    f"the database at {db.engine.url.render_as_string(hide_password=True)} is "
                    f"at revision {db.revision() or 'none'}: run `amends db upgrade` first"
                )
            db.upgrade()
        return cls(
            settings=settings,
            db=db,
            # The policy's figures are in the business's own money.
            policy=load_policy(settings.policy_file).model_copy(
                update={"currency": settings.business.currency}
            ),
            templates=Templates(settings.templates_dir, timezone=settings.business_timezone),
            channels=channels if channels is not None else load_channels(settings),
        )


_current: Runtime | None = None


def runtime() -> Runtime:
    """The process's runtime, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Runtime.from_settings(Settings())
    return _current


def use_runtime(new: Runtime | None) -> None:
    """Install a runtime for this process (None: rebuild from the environment on next use)."""
    global _current
    if _current is not None and (new is None or _current.db is not new.db):
        _current.db.dispose()
    _current = new
