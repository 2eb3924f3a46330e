"""The README's example runs: an order system's late delivery, recovered by amends as a
subflow of the user's own flow, with the mail server passed in as a block."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import ModuleType

import pytest
from prefect_email import EmailServerCredentials

from amends.delivery.channels import RecordingAdapter
from amends.delivery.mailcatcher import MailCatcher
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime

pytestmark = pytest.mark.usefixtures("prefect_harness")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "order_system.py"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("order_system", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the event's annotations through it
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_a_late_delivery_is_recovered_and_the_apology_sent(
    example: ModuleType, rt: Runtime, recorder: RecordingAdapter, mail_catcher: MailCatcher
) -> None:
    event = example.LateDelivery(
        order_id="ORD-2291",
        customer_id="C-7",
        customer_name="Ana P.",
        customer_email="ana@example.com",
        promised_on=datetime(2026, 11, 18, 12, tzinfo=UTC),
        delivered_on=datetime(2026, 11, 20, 9, tzinfo=UTC),
        yearly_spend=900.0,
    )
    credentials = EmailServerCredentials(
        smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=mail_catcher.port
    )
    outcome = example.handle_late_delivery(event, email_server_credentials=credentials)

    # The case is on file, as the operator's commands show it.
    assert outcome.incident_ref == "LATE-ORD-2291" and outcome.decision == "recover"
    assert case_outcome(rt.db, outcome.case_id).severity == "medium"  # two days late
    assert {(m.kind, m.status) for m in outcome.messages} == {
        ("apology", "sent"), ("checkin_invitation", "sent")
    }  # fmt: skip
    # Sent over SMTP through the block, not the runtime's own adapter.
    assert recorder.delivered == []
    apology = message_from_bytes(mail_catcher.messages()[0].read_bytes(), policy=policy.default)
    assert apology["To"] == "ana@example.com"
    text = apology.get_body(("plain",)).get_content()
    assert "We refund the delivery charge of this order." in text

    # The order system sends the event again: the same case, nothing sent twice.
    again = example.handle_late_delivery(event, email_server_credentials=credentials)
    assert again.case_id == outcome.case_id
    assert len(mail_catcher.messages()) == len(outcome.messages)
