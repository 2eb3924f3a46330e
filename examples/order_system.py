"""Use amends from your own flow: an order system's late delivery, put right.

The order system reports each late delivery as an event. This flow turns the event into an
amends :class:`~amends.domain.Incident` and runs ``recover-incident`` as a subflow: amends
assesses what the delay cost the customer, decides on an offer, apologises by email (saying
what will be put right) and books the check-ins. Running it again for the same order resumes
the same case and sends nothing twice.

Run it (mail goes to ``amends mailcatcher`` on 127.0.0.1:8025 unless AMENDS_SMTP_* say
otherwise)::

    python examples/order_system.py

or pass the mail server as a block, as a deployment of this flow would::

    from prefect_email import EmailServerCredentials
    handle_late_delivery(event, EmailServerCredentials.load("amends"))
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, task
from prefect_email import EmailServerCredentials
from pydantic import BaseModel, Field

from amends.flows import Incident, recover_incident
from amends.reporting.casebook import CaseOutcome


class LateDelivery(BaseModel):
    """The order system's event: an order delivered later than promised."""

    order_id: str = Field(description="The order system's reference, such as ORD-2291.")
    customer_id: str = Field(description="The order system's customer reference.")
    customer_name: str = Field(description="How to address the customer.")
    customer_email: str = Field(description="Where the order confirmation went.")
    promised_on: datetime = Field(description="The delivery time promised, with its offset.")
    delivered_on: datetime = Field(description="When the parcel arrived, with its offset.")
    yearly_spend: float = Field(ge=0, description="What the customer spends with us a year.")


@task
def incident_for(event: LateDelivery) -> Incident:
    """The late delivery as amends' incident: the later, the more severe."""
    days_late = (event.delivered_on - event.promised_on) / timedelta(days=1)
    severity = "low" if days_late < 1 else "medium" if days_late < 3 else "high"
    return Incident.model_validate(
        {
            # One order, one incident: the same event filed twice resumes the same case.
            "ref": f"LATE-{event.order_id}",
            "channel": "email",  # we write to the customer where the order confirmation went
            "received_at": event.delivered_on,
            "summary": f"Order {event.order_id} arrived {days_late:.0f} day(s) late",
            "category": "late_delivery",
            "severity": severity,
            "fault": "ours",
            "costs": {"economic": 0.0, "time_hours": 1.0, "emotional": "upset"},
            "put_right": "We refund the delivery charge of this order.",
            "what_changed": "Orders now leave the warehouse the day they are placed.",
            "customer": {
                "ref": event.customer_id,
                "name": event.customer_name,
                "email": event.customer_email,
                "annual_value": event.yearly_spend,
            },
        }
    )


@flow(name="late-delivery")
def handle_late_delivery(
    event: LateDelivery, email_server_credentials: EmailServerCredentials | None = None
) -> CaseOutcome:
    """Put a late delivery right: amends' recover-incident flow, as a subflow.

    Args:
        event: The order system's late-delivery event.
        email_server_credentials: The mail server; amends' AMENDS_SMTP_* settings when empty.
    """
    incident = incident_for(event)
    return recover_incident(incident, email_server_credentials=email_server_credentials)


if __name__ == "__main__":
    now = datetime.now(UTC)
    outcome = handle_late_delivery(
        LateDelivery(
            order_id="ORD-2291",
            customer_id="C-7",
            customer_name="Ana P.",
            customer_email="ana@example.com",
            promised_on=now - timedelta(days=3),
            delivered_on=now - timedelta(hours=1),
            yearly_spend=900.0,
        )
    )
    print(f"case {outcome.case_id}: {outcome.decision}; {len(outcome.messages)} message(s)")
