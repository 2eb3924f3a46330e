"""Empower: what frontline staff may offer without asking (seed 003), sized to absorb the costs.

An offer makes a second chance easy (seed 004), from the remedies the business really offers
(its profile's catalogue, by category and severity): the service again free for a trial period,
a contract with a guarantee clause, both (seed 000), a credit, a refund, a redo, a free visit, a
discount or a small gift. Above the frontline limit a manager decides (see
:mod:`amends.recovery.approvals`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from amends.business import TRIAL_KINDS, Business, Remedy
from amends.domain import Decision, Fault, GivenKind, Incident, OfferKind, spoken
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


def owed(assessment: Assessment, incident: Incident) -> tuple[float, str]:
    """What the case calls for, before limits, and why; never less for a larger loss.

    Recovery absorbs the customer's share of the four costs (seed 000). When winning them back
    is not worth that, it is capped at what winning them back is worth, but never below the
    money they lost through us: a larger loss never gets less. What putting it right already
    gave (a refund, a redo) is netted out, so nothing is paid twice.
    """
    share = assessment.absorb_share
    full = round(assessment.costs.total * share, 2)
    make_good = round(assessment.costs.economic * share, 2)
    if assessment.decision is Decision.RECOVER:
        wanted, why = full, "absorbs " + ("" if share == 1 else f"{share:.0%} of ") + "their costs"
    elif assessment.worth.worth_it:
        # Worth it, but their one forgiveness is spent: no incentive, only the money made good.
        wanted, why = make_good, "makes good what they lost, without a win-back incentive"
    else:
        # Not worth full recovery: what winning them back is worth, never below the money
        # lost, so that crossing the line of worth never lowers the offer.
        wanted = max(make_good, min(full, assessment.worth.worth_spending))
        why = "makes good what they lost, without a win-back incentive"
    given = incident.given.value if incident.given else 0.0
    if given:
        wanted = max(0.0, wanted - given)
        why += f", less the {given:.2f} already given ({spoken(incident.given.kind)})"
    return round(wanted, 2), why


def fitting_remedy(
    incident: Incident, business: Business, preferred: OfferKind, wanted: float
) -> Remedy | None:
    """The catalogue's remedy for the case: of those that fit it and can carry ``wanted``, the
    preferred kind, else the first (the catalogue's order is the business's preference); if
    none can carry it, the one that carries the most. So a larger loss never moves to a
    remedy that gives less."""
    fits = business.remedies_for(incident.category, incident.severity, one_off=incident.one_off)
    if incident.given and incident.given.kind is GivenKind.REFUND:
        # The money paid is back already: what is left to make up comes another way.
        fits = [r for r in fits if r.kind is not OfferKind.REFUND] or fits
    if not fits:
        return None
    carry = [r for r in fits if r.max_value is None or r.max_value >= wanted]
    if not carry:
        return max(fits, key=lambda r: r.max_value or 0)
    return next((r for r in carry if r.kind is preferred), carry[0])


def choose_offer(
    assessment: Assessment, incident: Incident, policy: Policy, business: Business
) -> Offer | None:
    """Pick the offer for a case, or None when the case grants none.

    None for an abusive customer, a lost one (one-forgiveness rule), an unreasonable one, one
    known only by a public handle (never money until identified), when nothing is owed after
    what was already given, or when the business's catalogue has no remedy for the case.
    """
    decision = assessment.decision
    if (
        decision in {Decision.DO_NOT_PURSUE, Decision.LOST}
        or assessment.fault is Fault.CUSTOMER
        or not incident.customer.identified
    ):
        return None
    wanted, why = owed(assessment, incident)
    if wanted <= 0:
        return None
    severity = incident.severity
    preferred = policy.empower.offer_by_severity[severity]
    remedy = fitting_remedy(incident, business, preferred, wanted)
    if remedy is None:
        return None
    if remedy.max_value is not None:
        wanted = min(wanted, remedy.max_value)
    figures = policy.empower
    money = policy.currency
    tier = figures.tier_of(incident.customer.annual_value)
    frontline = figures.limit("frontline", severity, tier)
    manager = figures.limit("manager", severity, tier)
    trial = remedy.kind in TRIAL_KINDS
    trial_days = (remedy.trial_days or figures.trial_days) if trial else None
    reasons = [
        f"A {severity.value}-severity {spoken(incident.category)} failure calls for "
        f"{spoken(remedy.kind)}, from {business.name}'s remedies."
    ]
    if wanted > frontline:
        reasons.append(
            f"It {why}: {wanted:.2f} {money}, above the frontline limit of {frontline:.2f} for "
            f"a {tier} customer: a manager approves up to {min(wanted, manager):.2f}, adjusts "
            f"or declines; until then the offer stands at {frontline:.2f}."
        )
    else:
        reasons.append(f"It {why}: {wanted:.2f} {money}.")
    return Offer(
        kind=remedy.kind,
        value=min(wanted, frontline),
        wanted=wanted,
        currency=money,
        trial_days=trial_days,
        tier=tier,
        frontline_limit=frontline,
        manager_limit=manager,
        reasons=reasons,
    )
