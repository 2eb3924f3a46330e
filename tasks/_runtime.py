"""The runtime tasks use: the core's, with SMTP credentials from a Prefect block when
``AMENDS_SMTP_BLOCK`` names one (the core never imports Prefect, so the block is read here)."""

from __future__ import annotations

import logging
from dataclasses import replace
from threading import Lock

from prefect_email import EmailServerCredentials
from prefect_email.credentials import SMTPType

from amends.delivery.channels import load_channels
from amends.privacy import mask
from amends.runtime import Runtime, runtime, use_runtime
from amends.settings import Settings

_lock = Lock()


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
        update["sender_email"] = block.username
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
    """The process's runtime; on first use, with the SMTP block applied (and the run logs
    masked)."""
    _mask_run_logs()
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
