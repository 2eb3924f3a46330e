"""Personal data stays out of what the Prefect UI shows: run logs and artifacts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from factories import make_incident
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker

from amends.delivery.channels import EmailAdapter
from amends.delivery.mailcatcher import free_port
from amends.domain import ReplyChannel
from amends.flows.incident import recover_incident
from amends.runtime import Runtime, use_runtime

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Refusing:
    """A mail server that refuses every recipient, quoting the address, as real ones do."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return f"550 5.1.1 <{address}>: recipient address rejected"


@pytest.fixture
def refusing_port() -> Iterator[int]:
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_an_smtp_refusal_reaches_the_logs_without_the_address(
    rt: Runtime, refusing_port: int
) -> None:
    settings = rt.settings.model_copy(update={"smtp_port": refusing_port})
    current = Runtime.from_settings(settings, channels={ReplyChannel.EMAIL: EmailAdapter(settings)})
    use_runtime(current)
    state = recover_incident(make_incident(ref="INC-PRIVATE"), return_state=True)
    outcome = state.result()
    # The apology bounced; the invitation to the same address is then withheld.
    assert [m.status for m in outcome.messages] == ["failed", "suppressed"]

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        logs = [log.message for log in client.read_logs(log_filter=run, limit=200)]
        artifacts = client.read_artifacts(limit=200)
    refusals = [line for line in logs if "recipient address rejected" in line]
    assert refusals and all("<r***@***>" in line for line in refusals)
    assert not any("rk@example.com" in line or "612 345 678" in line for line in logs)
    # In any spelling: markdown escapes the dots (rk@example\.com).
    assert not any("rk@example" in str(artifact.data) for artifact in artifacts)
