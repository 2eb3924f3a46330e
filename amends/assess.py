"""Assess: whose fault, what it cost the customer, whether winning them back is worth it.

Pure decisions over an incident and the customer's history; the reasons are plain words that
staff read on the case, in ``amends case`` and in the run's artifact.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from amends.domain import Category, Decision, Fault, Incident
from amends.policy import Policy


class CostBreakdown(BaseModel):
    """The four costs of seed 000, priced so that recovery can absorb them."""

    model_config = ConfigDict(frozen=True)

    economic: float
    time: float
    social: float
    emotional: float

    @property
    def total(self) -> float:
        return self.economic + self.time + self.social + self.emotional


class Worth(BaseModel):
    """Is the game worth the candle (seed 002)? The figures behind the answer."""

    model_config = ConfigDict(frozen=True)

    annual_value: float
    return_chance: float
    expected_value: float
    recovery_cost: float
    acquisition_cost: float
    worth_it: bool


class Assessment(BaseModel):
    """The outcome of the assess stage."""

    model_config = ConfigDict(frozen=True)

    fault: Fault
    costs: CostBreakdown
    worth: Worth
    decision: Decision
    figures: list[str]  # the costs and the sums behind the decision
    reasons: list[str]  # why this decision, in plain words
    quality_issue: bool

    @property
    def explanation(self) -> list[str]:
        """Everything staff read: the figures, then the reasons."""
        return [*self.figures, *self.reasons]


def fault_of(incident: Incident) -> Fault:
    """Was it our fault, or is the customer being unreasonable (seed 003)?"""
    return Fault.OURS if incident.our_fault else Fault.CUSTOMER


def price_costs(incident: Incident, policy: Policy) -> CostBreakdown:
    """Price the customer's four costs: money, time, standing and feelings (seed 000)."""
    figures = policy.assessment
    return CostBreakdown(
        economic=incident.costs.economic,
        time=round(incident.costs.time_hours * figures.hourly_value_of_time, 2),
        social=figures.social_cost[incident.costs.social],
        emotional=figures.emotional_cost[incident.costs.emotional],
    )


def weigh_worth(incident: Incident, costs: CostBreakdown, policy: Policy) -> Worth:
    """The three questions of seed 002, as figures.

    The expected value of the customer (annual value x years retained x chance of return) is set
    against the price of winning them back; buying back a customer for less than acquiring a new
    one is worth it too (seed 003).
    """
    figures = policy.assessment
    chance = figures.return_chance[incident.severity]
    expected = round(incident.customer.annual_value * figures.years_retained * chance, 2)
    recovery_cost = round(costs.total, 2)
    worth_it = expected >= recovery_cost or recovery_cost <= figures.acquisition_cost
    return Worth(
        annual_value=incident.customer.annual_value,
        return_chance=chance,
        expected_value=expected,
        recovery_cost=recovery_cost,
        acquisition_cost=figures.acquisition_cost,
        worth_it=worth_it,
    )


def assess(incident: Incident, *, forgiven_before: bool, policy: Policy) -> Assessment:
    """Decide what the business does about the customer, with its reasons.

    Args:
        incident: The incident as filed.
        forgiven_before: The customer was already won back once after an earlier failure.
        policy: The business's recovery policy.

    Example:
        >>> assessment = assess(incident, forgiven_before=False, policy=load_policy())
        >>> assessment.decision
        <Decision.RECOVER: 'recover'>
    """
    fault = fault_of(incident)
    costs = price_costs(incident, policy)
    worth = weigh_worth(incident, costs, policy)
    money = policy.currency
    figures = [
        f"Fault: {fault.value}.",
        f"The customer's costs come to {costs.total:.2f} {money}: economic {costs.economic:.2f}, "
        f"time {costs.time:.2f}, social {costs.social:.2f}, emotional {costs.emotional:.2f}.",
        f"Expected value {worth.expected_value:.2f} {money} ({worth.annual_value:.2f} a year, "
        f"{worth.return_chance:.0%} chance of return) against {worth.recovery_cost:.2f} to win "
        f"them back and {worth.acquisition_cost:.2f} to acquire a new customer.",
    ]
    reasons = []

    if incident.abusive:
        decision = Decision.DO_NOT_PURSUE
        reasons.append(
            "The customer was abusive to staff: no incentive and no win-back; frontline contact "
            "is blocked and a manager takes the case."
        )
    elif forgiven_before and fault is not Fault.CUSTOMER:
        decision = Decision.LOST
        reasons.append(
            "One-forgiveness rule: this customer was already won back once and we failed them "
            "again; apologise, but run no win-back campaign."
        )
    elif fault is Fault.CUSTOMER:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "The customer was unreasonable, but an angry customer talks: apologise and close "
            "politely, without an incentive."
        )
    elif not worth.worth_it:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "Winning this customer back costs more than they are worth and more than a new "
            "customer: apologise and put it right, without an incentive."
        )
    else:
        decision = Decision.RECOVER
        reasons.append("Our fault and worth winning back: full recovery.")

    quality_issue = incident.category in {Category.QUALITY, Category.SERVICE_FAILURE}
    if quality_issue:
        reasons.append(
            "The reason is the quality of the service: an improvement item goes to the team "
            "whatever the decision."
        )
    return Assessment(
        fault=fault,
        costs=costs,
        worth=worth,
        decision=decision,
        figures=figures,
        reasons=reasons,
        quality_issue=quality_issue,
    )
