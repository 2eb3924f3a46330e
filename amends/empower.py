"""Empower: what frontline staff may offer without asking (seed 003), sized to absorb the costs.

An offer makes a second chance easy (seed 004): the service again free for a trial period, a
contract with a guarantee clause, both (seed 000), a credit, a refund, a discount or a small gift.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from amends.assess import Assessment
from amends.domain import Decision, OfferKind, Severity, spoken
from amends.policy import Policy


class Offer(BaseModel):
    """What the business offers the customer, within the frontline limit."""

    model_config = ConfigDict(frozen=True)

    kind: OfferKind
    value: float
    currency: str
    trial_days: int | None
    capped: bool
    reasons: list[str]


def choose_offer(assessment: Assessment, severity: Severity, policy: Policy) -> Offer | None:
    """Pick the offer for a case, or None when the decision grants no incentive.

    The value absorbs the customer's priced costs, up to what frontline staff may grant for this
    severity; above that a manager may raise it.
    """
    if assessment.decision is not Decision.RECOVER:
        return None
    figures = policy.empower
    kind = figures.offer_by_severity[severity]
    limit = figures.frontline_limit[severity]
    wanted = round(assessment.costs.total, 2)
    value = min(wanted, limit)
    reasons = [f"A {severity.value}-severity failure calls for: {spoken(kind)}."]
    if wanted > limit:
        reasons.append(
            f"The customer's costs ({wanted:.2f} {policy.currency}) exceed the frontline limit "
            f"of {limit:.2f}; the offer is capped there and a manager may raise it."
        )
    else:
        reasons.append(f"It absorbs the customer's costs of {wanted:.2f} {policy.currency}.")
    uses_trial = kind in {OfferKind.FREE_TRIAL, OfferKind.FREE_TRIAL_AND_GUARANTEE}
    return Offer(
        kind=kind,
        value=value,
        currency=policy.currency,
        trial_days=figures.trial_days if uses_trial else None,
        capped=wanted > limit,
        reasons=reasons,
    )
