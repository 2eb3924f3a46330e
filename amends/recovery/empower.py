"""Empower: what frontline staff may offer without asking (seed 003), sized to absorb the costs.

An offer makes a second chance easy (seed 004): the service again free for a trial period, a
contract with a guarantee clause, both (seed 000), a credit, a refund, a discount or a small gift.
Above the frontline limit a manager decides (see :mod:`amends.recovery.approvals`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from amends.domain import Decision, OfferKind, Severity, spoken
from amends.recovery.assess import Assessment
from amends.recovery.policy import Policy


class Offer(BaseModel):
    """What the business offers the customer, and who may grant how much of it."""

    model_config = ConfigDict(frozen=True)

    kind: OfferKind
    value: float  # what frontline staff grant now: the wanted value, capped at their limit
    wanted: float  # what absorbs the customer's costs (their share of them, by fault)
    currency: str
    trial_days: int | None
    tier: str
    frontline_limit: float
    manager_limit: float
    reasons: list[str]

    @property
    def needs_approval(self) -> bool:
        """Above the frontline limit: a manager approves, adjusts or declines the rest."""
        return self.wanted > self.frontline_limit

    @property
    def approvable(self) -> float:
        """The most a manager may grant: the wanted value, up to the manager's limit."""
        return min(self.wanted, self.manager_limit)


def choose_offer(
    assessment: Assessment, severity: Severity, annual_value: float, policy: Policy
) -> Offer | None:
    """Pick the offer for a case, or None when the decision grants no incentive.

    The value absorbs the customer's priced costs (all of them when it was our fault, a share
    when it was shared or external), up to what frontline staff may grant for this severity and
    customer tier; above that a manager decides.
    """
    if assessment.decision is not Decision.RECOVER:
        return None
    figures = policy.empower
    money = policy.currency
    kind = figures.offer_by_severity[severity]
    tier = figures.tier_of(annual_value)
    frontline = figures.limit("frontline", severity, tier)
    manager = figures.limit("manager", severity, tier)
    wanted = round(assessment.costs.total * assessment.absorb_share, 2)
    share = "" if assessment.absorb_share == 1 else f"{assessment.absorb_share:.0%} of "
    reasons = [f"A {severity.value}-severity failure calls for: {spoken(kind)}."]
    if wanted > frontline:
        reasons.append(
            f"Absorbing {share}the customer's costs takes {wanted:.2f} {money}, above the "
            f"frontline limit of {frontline:.2f} for a {tier} customer: a manager approves up to "
            f"{min(wanted, manager):.2f}, adjusts or declines; until then the offer stands at "
            f"{frontline:.2f}."
        )
    else:
        reasons.append(f"It absorbs {share}the customer's costs: {wanted:.2f} {money}.")
    uses_trial = kind in {OfferKind.FREE_TRIAL, OfferKind.FREE_TRIAL_AND_GUARANTEE}
    return Offer(
        kind=kind,
        value=min(wanted, frontline),
        wanted=wanted,
        currency=money,
        trial_days=figures.trial_days if uses_trial else None,
        tier=tier,
        frontline_limit=frontline,
        manager_limit=manager,
        reasons=reasons,
    )
