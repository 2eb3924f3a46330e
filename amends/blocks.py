"""Prefect Blocks for what a user of amends configures: its database and its webhook channels.

Mail keeps the Prefect ecosystem's own block, prefect-email's ``EmailServerCredentials``. Each
block here is another way to fill in the same :class:`~amends.settings.Settings` the
``AMENDS_*`` environment variables fill in (:meth:`apply`), so amends builds its database and
channel adapters from a block exactly as from the environment.

Register them with the Prefect server, so the UI can create them::

    prefect block register -m amends.blocks

This module is also amends' ``prefect.collections`` entry point: Prefect imports it when it
looks up a block class, and a Prefect server started where amends is installed registers the
blocks by itself. The core (``amends`` and its subpackages) never imports this module, so it
stays free of Prefect.

Example:
    Save the blocks once, then pass them to amends' flows and tasks from your own flow::

        from prefect_email import EmailServerCredentials
        from amends.blocks import AmendsDatabase, AmendsWebhooks

        AmendsDatabase(url="postgresql://amends:...@db.example/amends").save("amends")
        AmendsWebhooks(sms_url="https://sms.example/hook", secret="...").save("amends")
        EmailServerCredentials(
            username="care@shop.example", password="...", smtp_server="smtp.shop.example",
            smtp_type="STARTTLS",
        ).save("amends")
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from amends.settings import Settings

__all__ = ["AmendsDatabase", "AmendsWebhooks"]

# The project's public home. amends has none yet: this is where its README and logo will be
# served from; change it here, in one place, when that moves.
_HOME = "https://github.com/amends/amends"
_LOGO_URL = f"{_HOME}/raw/main/docs/logo.png"


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class AmendsDatabase(Block):
    """The database amends keeps its customers, cases and outbox in: a SQLAlchemy URL, used
    instead of AMENDS_DATABASE_URL. Run `amends db upgrade` against it once before first use.

    Attributes:
        url: The SQLAlchemy URL, e.g. postgresql://amends:PASSWORD@db.example/amends. Kept as
            a secret, since URLs carry passwords.

    Example:
        Load a stored database block:
        ```python
        from amends.blocks import AmendsDatabase
        database_block = AmendsDatabase.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Amends Database"
    _logo_url = _LOGO_URL
    _documentation_url = f"{_HOME}#use-amends-from-your-own-flows"
    _code_example = """
        Load a stored database block and recover an incident with it:
        ```python
        from amends.blocks import AmendsDatabase
        from amends.flows import recover_incident

        database_block = AmendsDatabase.load("BLOCK_NAME")
        recover_incident(incident, database=database_block)
        ```
    """

    url: SecretStr = Field(
        description="SQLAlchemy URL of amends' database, e.g. "
        "postgresql://amends:PASSWORD@db.example/amends (a secret: URLs carry passwords).",
        title="Database URL",
    )

    def apply(self, settings: Settings) -> Settings:
        """The settings with this database in place of ``AMENDS_DATABASE_URL``."""
        return settings.model_copy(update={"database_url": self.url.get_secret_value()})


class AmendsWebhooks(Block):
    """amends' webhook channels: where SMS, chat and social replies are posted as signed JSON,
    used instead of the AMENDS_WEBHOOK_* variables. A URL turns its channel on; one secret signs
    every call (X-Amends-Signature, checked by amends.delivery.webhooks.verify).

    Attributes:
        sms_url: The SMS gateway's webhook.
        chat_url: The chat's webhook.
        social_url: The social network bridge's webhook.
        secret: Signs every call.

    Example:
        Load stored webhook channels:
        ```python
        from amends.blocks import AmendsWebhooks
        webhooks_block = AmendsWebhooks.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Amends Webhook Channels"
    _logo_url = _LOGO_URL
    _documentation_url = f"{_HOME}#use-amends-from-your-own-flows"
    _code_example = """
        Load stored webhook channels and recover an incident with them:
        ```python
        from amends.blocks import AmendsWebhooks
        from amends.flows import recover_incident

        webhooks_block = AmendsWebhooks.load("BLOCK_NAME")
        recover_incident(incident, webhooks=webhooks_block)
        ```
    """

    # URLs are secrets too: a webhook URL often carries its own access token.
    sms_url: SecretStr | None = Field(
        default=None,
        description="Webhook that sends SMS replies; no SMS replies when empty.",
        title="SMS webhook URL",
    )
    chat_url: SecretStr | None = Field(
        default=None,
        description="Webhook that sends chat replies; no chat replies when empty.",
        title="Chat webhook URL",
    )
    social_url: SecretStr | None = Field(
        default=None,
        description="Webhook that posts social replies; no social replies when empty.",
        title="Social webhook URL",
    )
    secret: SecretStr = Field(
        description="Shared secret that signs every call (HMAC-SHA256), for the receiver to check.",
        title="Signing secret",
    )

    def apply(self, settings: Settings) -> Settings:
        """The settings with these channels in place of the ``AMENDS_WEBHOOK_*`` variables."""
        return settings.model_copy(
            update={
                "webhook_sms_url": _secret(self.sms_url),
                "webhook_chat_url": _secret(self.chat_url),
                "webhook_social_url": _secret(self.social_url),
                "webhook_secret": self.secret,
            }
        )
