"""The runtime tasks use: the core's, with SMTP credentials from a Prefect block when
``AMENDS_SMTP_BLOCK`` names one (the core never imports Prefect, so the block is read here),
or with the blocks a flow or task was given (:func:`configured`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from threading import Lock

from prefect_email import EmailServerCredentials
from prefect_email.credentials import SMTPType

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.delivery.channels import load_channels
from amends.privacy import mask
from amends.runtime import Runtime, runtime, use_runtime
from amends.settings import Settings

_lock = Lock()
# The runtime of the flow or task that was given blocks; tasks called within it, in this thread
# or in a task runner's (which copies the context), use it instead of the process's.
_configured: ContextVar[Runtime | None] = ContextVar("amends_configured_runtime", default=None)


def smtp_settings(settings: Settings, block: EmailServerCredentials) -> Settings:
    """Settings whose SMTP part comes from an EmailServerCredentials block."""
    server = getattr(block.smtp_server, "value", block.smtp_server)
    smtp_type = (
        block.smtp_type if isinstance(block.smtp_type, SMTPType) else SMTPType[block.smtp_type]
    )
    password = block.password if block.password.get_secret_value() else None
    update = {
        "smtp_block": None,  # read once
        "smtp_host": server,
        "smtp_port": block.smtp_port or smtp_type.value,
        "smtp_ssl": smtp_type is SMTPType.SSL,
        "smtp_starttls": smtp_type is SMTPType.STARTTLS,
        "smtp_password": password,
    }
    if block.username:
        # yagmail logs in as the sender: the block's user is who the mail is from.
        update["smtp_user"] = block.username
    return settings.model_copy(update=update)


class MaskPersonalData(logging.Filter):
    """Email addresses and phone numbers never reach a run's logs (the UI is often shared): an
    SMTP refusal, for one, quotes the address it refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


_MASK = MaskPersonalData()


def _mask_run_logs() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)


def task_runtime() -> Runtime:
    """The runtime of the enclosing :func:`configured` block, else the process's: on first use,
    with the ``AMENDS_SMTP_BLOCK`` block applied (and the run logs masked)."""
    _mask_run_logs()
    rt = _configured.get()
    if rt is not None:
        return rt
    rt = runtime()
    if not rt.settings.smtp_block:
        return rt
    with _lock:
        rt = runtime()
        if rt.settings.smtp_block:
            block = EmailServerCredentials.load(rt.settings.smtp_block)
            settings = smtp_settings(rt.settings, block)
            rt = replace(rt, settings=settings, channels=load_channels(settings))
            use_runtime(rt)
    return rt


@contextmanager
def configured(
    email_server_credentials: EmailServerCredentials | None = None,
    database: AmendsDatabase | None = None,
    webhooks: AmendsWebhooks | None = None,
) -> Iterator[Runtime]:
    """Within the block, :func:`task_runtime` is the current one with the given blocks in place
    of the environment's settings; with none given, it is left as it is.

    Each block only fills in settings (the same the ``AMENDS_*`` variables fill in), from which
    the database and channel adapters are built as always. A database other than the current
    one is opened for the block and closed after it.

    Args:
        email_server_credentials: The mail server, instead of ``AMENDS_SMTP_*`` and
            ``AMENDS_SMTP_BLOCK``.
        database: amends' database, instead of ``AMENDS_DATABASE_URL``.
        webhooks: The webhook channels, instead of ``AMENDS_WEBHOOK_*``.

    Raises:
        DatabaseOutdated: the database needs ``amends db upgrade`` first.
    """
    current = task_runtime()
    if email_server_credentials is None and database is None and webhooks is None:
        yield current
        return
    settings = current.settings
    if database is not None:
        settings = database.apply(settings)
    if webhooks is not None:
        settings = webhooks.apply(settings)
    if email_server_credentials is not None:
        settings = smtp_settings(settings, email_server_credentials)
    # Channels are built again only when their settings changed (a test's recorder stays).
    rebuilt = email_server_credentials is not None or webhooks is not None
    channels = load_channels(settings) if rebuilt else current.channels
    opened = settings.sqlalchemy_url != current.settings.sqlalchemy_url
    if opened:
        rt = Runtime.from_settings(settings, channels=channels)
    else:
        rt = replace(current, settings=settings, channels=channels)
    token = _configured.set(rt)
    try:
        yield rt
    finally:
        _configured.reset(token)
        if opened:
            rt.db.dispose()
