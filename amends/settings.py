"""The one settings object: environment variables prefixed ``AMENDS_``, with working defaults.

Nothing needs setting for a first run: data lives in ``./var`` (``AMENDS_HOME``) with a SQLite
database, and mail goes to a catcher on 127.0.0.1:8025. Point ``AMENDS_DATABASE_URL`` at
PostgreSQL and the ``AMENDS_SMTP_*`` variables at a real mail server for production.
"""

from __future__ import annotations

import ipaddress
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from amends.business import Business, example_business, load_business
from amends.errors import ConfigurationError

# The shipped templates: package data, a folder on disk in a wheel and in an editable install.
SHIPPED_TEMPLATES = Path(str(files("amends.templates")))


class Settings(BaseSettings):
    """Where amends keeps its data and how it sends mail; who the business is comes from its
    profile (:attr:`business`)."""

    model_config = SettingsConfigDict(env_prefix="AMENDS_", frozen=True, extra="ignore")

    home: Path = Field(default=Path("var"), description="Data folder: database, mail, letters.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; a SQLite file in the data folder when empty."
    )
    templates_dir: Path = Field(default=SHIPPED_TEMPLATES, description="Message templates folder.")
    policy_file: Path | None = Field(
        default=None, description="Recovery policy (YAML); the shipped default when empty."
    )

    smtp_block: str | None = Field(
        default=None,
        description="Name of a Prefect EmailServerCredentials block; it replaces AMENDS_SMTP_*.",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    # yagmail logs in as the sender address; a password turns the login on.
    smtp_password: SecretStr | None = None
    smtp_ssl: bool = False
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    smtp_rate_limit: str = Field(
        default="amends-smtp",
        max_length=100,
        description="Prefect global concurrency limit (with slot decay) each email send takes a "
        "slot of, to keep to the mail provider's pace; none is taken while it does not exist. "
        "Empty: never look for one.",
    )
    # Webhook channels: a URL turns the channel on; one secret signs every call.
    webhook_sms_url: str | None = None
    webhook_chat_url: str | None = None
    webhook_social_url: str | None = None
    webhook_secret: SecretStr | None = None

    # A sender that claimed a message this long ago without recording a result has died; the
    # message is sent again. Keep it well above the SMTP timeout.
    claim_timeout_seconds: float = Field(default=600.0, ge=0)

    business_file: Path | None = Field(
        default=None,
        description="The business profile (`amends init` writes it); AMENDS_HOME/business.yaml "
        "when empty, else the demo's sample business.",
    )
    # The SMTP login, when it differs from the profile's sender (an EmailServerCredentials
    # block's user): yagmail sends as whom it logs in as.
    smtp_user: str | None = None
    manager_email: str | None = Field(
        default=None,
        description="Who is emailed when a run waits for a manager's approval (the Prefect "
        "event amends.approval.requested is emitted either way).",
    )
    unsubscribe_url: str | None = Field(
        default=None, description="https URL that records an opt-out (List-Unsubscribe)."
    )
    unsubscribe_secret: SecretStr | None = Field(
        default=None, description="Signs opt-out links, so one address cannot unsubscribe another."
    )
    optout_port: int = Field(
        default=8480,
        ge=1,
        le=65535,
        description="Where `amends serve` answers opt-out links, on 127.0.0.1 (put your https "
        "proxy in front, at AMENDS_UNSUBSCRIBE_URL).",
    )
    social_handles: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The business's own handles, comma-separated (@acme,@acme@mastodon.social):"
        " a post that mentions or replies to one is addressed to the business.",
    )
    listening_sources: Path | None = Field(
        default=None,
        description="A YAML file of mention sources; the drop folder AMENDS_HOME/listening when "
        "empty.",
    )
    prefect_server: Literal["local", "temporary"] = Field(
        default="local",
        description="With no PREFECT_API_URL, where commands run their flows: `local` starts "
        "the data folder's Prefect server once and reuses it (`amends server stop` stops it); "
        "`temporary` lets Prefect start a server for each command alone.",
    )
    tone: Literal["warm", "formal"] = Field(
        default="warm", description="How messages greet and sign off: warm or formal."
    )

    @field_validator("social_handles", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("home", "templates_dir", "policy_file", "listening_sources", "business_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def business(self) -> Business:
        """The business profile: the file `amends init` wrote, else the demo's sample business."""
        path = self.business_file or self.home / "business.yaml"
        if self.business_file is None and not path.is_file():
            return example_business()
        return load_business(path)

    # The profile's identity under the names the rest of amends reads.
    @property
    def business_name(self) -> str:
        return self.business.name

    @property
    def sender_email(self) -> str:
        return self.smtp_user or self.business.sender_email

    @property
    def sender_name(self) -> str:
        return self.business.sender_name

    @property
    def business_timezone(self) -> str:
        return self.business.timezone

    def check_identity(self) -> None:
        """Refuse to send real mail as the demo's sample business.

        Raises:
            ConfigurationError: the mail server is not on this machine and the profile is the
                example; one line says what to do.
        """
        if self.business.is_example and not _loopback(self.smtp_host):
            raise ConfigurationError(
                f"refusing to send through {self.smtp_host} as the sample business "
                f"{self.business.name!r}: run `amends init` to set up your own"
            )

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'amends.db'}"

    @property
    def listening_dir(self) -> Path:
        """The drop folder of social-listening exports (CSV, JSON Lines) read by default."""
        return self.home / "listening"

    @property
    def mail_dir(self) -> Path:
        """Where the local mail catcher saves what it receives."""
        return self.home / "mail"

    @property
    def letters_dir(self) -> Path:
        """Where printable letters and call scripts wait for staff."""
        return self.home / "letters"

    @property
    def imports_dir(self) -> Path:
        """Where an import writes the rows it refused, one CSV per imported file's name."""
        return self.home / "imports"

    @property
    def calendar_dir(self) -> Path:
        """Where check-in invitations (.ics) are written before they are attached."""
        return self.home / "calendar"


def _loopback(host: str) -> bool:
    """A mail server on this machine: a local catcher, never a customer's inbox."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
