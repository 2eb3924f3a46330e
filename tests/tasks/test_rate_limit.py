"""Email at the provider's pace: every send takes a slot of the Prefect rate limit named by
AMENDS_SMTP_RATE_LIMIT; without that limit, mail still goes out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from factories import make_incident
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from amends.delivery.channels import EmailAdapter
from amends.delivery.mailcatcher import MailCatcher
from amends.delivery.outbox import queued_messages
from amends.domain import MessageStatus, ReplyChannel
from amends.errors import ConfigurationError
from amends.flows.incident import recover_incident
from amends.runtime import Runtime, use_runtime
from amends.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def limit_name() -> str:
    return f"amends-smtp-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def paced_rt(settings: Settings, mail_catcher: MailCatcher, limit_name: str) -> Iterator[Runtime]:
    """A runtime sending over SMTP to the catcher, paced by the rate limit ``limit_name``."""
    paced = settings.model_copy(
        update={"smtp_port": mail_catcher.port, "smtp_rate_limit": limit_name}
    )
    runtime = Runtime.from_settings(paced, channels={ReplyChannel.EMAIL: EmailAdapter(paced)})
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


def _create_limit(name: str, *, decay: float) -> None:
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=100, slot_decay_per_second=decay)
        )


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_each_email_takes_a_slot_of_the_rate_limit(
    paced_rt: Runtime, mail_catcher: MailCatcher, limit_name: str
) -> None:
    # A decay so slow that no slot is given back during the test: the slots count the sends.
    _create_limit(limit_name, decay=0.0001)
    recover_incident(make_incident())
    sent = len(mail_catcher.messages())
    assert sent == 2  # the apology and the check-in invitation
    assert _active_slots(limit_name) == sent


def test_without_the_limit_mail_goes_out_unpaced(
    paced_rt: Runtime, mail_catcher: MailCatcher, limit_name: str
) -> None:
    outcome = recover_incident(make_incident())
    assert [m.status for m in outcome.messages] == [MessageStatus.SENT] * 2
    assert len(mail_catcher.messages()) == 2


def test_a_limit_without_decay_is_refused_and_mail_stays_queued(
    paced_rt: Runtime, mail_catcher: MailCatcher, limit_name: str
) -> None:
    _create_limit(limit_name, decay=0.0)
    with pytest.raises(ConfigurationError, match=f"{limit_name}' has no slot decay"):
        recover_incident(make_incident())
    assert mail_catcher.messages() == []
    assert len(queued_messages(paced_rt.db)) == 2  # the apology and the check-in invitation
