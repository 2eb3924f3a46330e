"""Assess: whose fault, what it cost the customer, whether winning them back is worth it.

Pure decisions over an incident and the customer's history; the reasons are plain words that
staff read on the case, in ``amends case`` and in the run's artifact.
"""

from __future__ import annotations

import re
from functools import cache

from pydantic import BaseModel, ConfigDict
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from amends.domain import Category, Decision, EmotionalCost, Fault, Incident
from amends.recovery.policy import Policy


class CostBreakdown(BaseModel):
    """The four costs of seed 000, priced so that recovery can absorb them."""

    model_config = ConfigDict(frozen=True)

    economic: float
    time: float
    social: float
    emotional: float
    # The emotional cost as rated, after the complaint's wording had its say.
    emotional_level: EmotionalCost = EmotionalCost.UPSET

    @property
    def total(self) -> float:
        return self.economic + self.time + self.social + self.emotional


class Worth(BaseModel):
    """Is the game worth the candle (seed 002)? The figures behind the answer."""

    model_config = ConfigDict(frozen=True)

    annual_value: float
    customer_value: float  # annual value x years retained + referrals x referral value
    return_chance: float
    expected_value: float
    recovery_cost: float
    acquisition_cost: float
    worth_it: bool

    @property
    def worth_spending(self) -> float:
        """The most winning this customer back is worth: what they are expected to bring, or
        what a new customer costs, whichever is more (``worth_it`` is recovery_cost <= this)."""
        return max(self.expected_value, self.acquisition_cost)


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
    absorb_share: float  # of the customer's costs that recovery absorbs, by fault

    @property
    def explanation(self) -> list[str]:
        """Everything staff read: the figures, then the reasons."""
        return [*self.figures, *self.reasons]


@cache
def _sentiment() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def wording_score(text: str) -> float:
    """How hostile the words read: VADER's compound score, -1 (hostile) to +1."""
    return _sentiment().polarity_scores(text)["compound"] if text.strip() else 0.0


# Sentence ends: VADER scores a sentence; a whole narrative's score only sinks as it grows.
_SENTENCE_END = re.compile(r"(?<=[.!?¡¿])\s+|\n+")


def anger_score(text: str) -> float:
    """How hostile a complaint reads, whatever its length: the mean of its sentences' scores.

    VADER sums a text's words before squashing the sum, so a long, calm narrative of many
    mildly negative sentences reads as furious; the mean over sentences does not grow with
    the number of them.
    """
    scores = [wording_score(part) for part in _SENTENCE_END.split(text) if part.strip()]
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def emotional_level(incident: Incident, policy: Policy) -> tuple[EmotionalCost, str | None]:
    """The customer's anger: the operator's rating, raised one step when the complaint's own
    words read angrier (never lowered: the operator heard the customer's voice)."""
    rated = incident.costs.emotional
    levels = list(EmotionalCost)
    score = anger_score(f"{incident.summary}.\n{incident.details}")
    if score > policy.assessment.angry_wording_score or rated is levels[-1]:
        return rated, None
    raised = levels[levels.index(rated) + 1]
    return raised, (
        f"The complaint's wording reads angrier than rated (sentiment {score:+.2f} a "
        f"sentence): emotional cost raised from {rated.value} to {raised.value}."
    )


def price_costs(
    incident: Incident, policy: Policy, feeling: EmotionalCost | None = None
) -> CostBreakdown:
    """Price the customer's four costs: money, time, standing and feelings (seed 000).

    ``feeling`` is the emotional level when the caller has read it already
    (:func:`emotional_level`); otherwise it is read here.
    """
    figures = policy.assessment
    if feeling is None:
        feeling, _ = emotional_level(incident, policy)
    return CostBreakdown(
        economic=incident.costs.economic,
        time=round(incident.costs.time_hours * figures.hourly_value_of_time, 2),
        social=figures.social_cost[incident.costs.social],
        emotional=figures.emotional_cost[feeling],
        emotional_level=feeling,
    )


def weigh_worth(incident: Incident, costs: CostBreakdown, policy: Policy) -> Worth:
    """The three questions of seed 002, as figures.

    The customer's value (what they spend over the years they stay, and what their referrals
    bring) times the chance they return (lower after a worse failure, higher for a loyal
    customer) is set against the price of winning them back; buying back a customer for less
    than acquiring a new one is worth it too (seed 003).
    """
    figures = policy.assessment
    customer = incident.customer
    loyalty = min(customer.tenure_years * figures.loyalty_per_year, figures.loyalty_cap)
    chance = round(min(figures.return_chance[incident.severity] + loyalty, 0.95), 4)
    value = round(
        customer.annual_value * figures.years_retained
        + customer.referrals * figures.referral_value,
        2,
    )
    expected = round(value * chance, 2)
    share = figures.absorb_share.get(incident.fault, 0.0)
    recovery_cost = round(costs.total * share, 2)
    worth_it = expected >= recovery_cost or recovery_cost <= figures.acquisition_cost
    return Worth(
        annual_value=customer.annual_value,
        customer_value=value,
        return_chance=chance,
        expected_value=expected,
        recovery_cost=recovery_cost,
        acquisition_cost=figures.acquisition_cost,
        worth_it=worth_it,
    )


def assess(
    incident: Incident, *, forgiven_before: bool, policy: Policy, barred: str | None = None
) -> Assessment:
    """Decide what the business does about the customer, with its reasons.

    Args:
        incident: The incident as filed.
        forgiven_before: The customer was already won back once after an earlier failure.
        policy: The business's recovery policy.
        barred: Why an earlier case barred this customer from win-backs ("abusive"), if it did.

    Example:
        >>> assessment = assess(incident, forgiven_before=False, policy=load_policy())
        >>> assessment.decision
        <Decision.RECOVER: 'recover'>
    """
    # Whose fault is the operator's call (seed 003: "was it your fault or is the customer
    # being unreasonable?").
    fault = incident.fault
    feeling, wording = emotional_level(incident, policy)
    costs = price_costs(incident, policy, feeling)
    worth = weigh_worth(incident, costs, policy)
    share = policy.assessment.absorb_share.get(fault, 0.0)
    money = policy.currency
    customer = incident.customer
    figures = [
        f"Fault: {FAULT_WORDS[fault]}.",
        f"The customer's costs come to {costs.total:.2f} {money}: economic {costs.economic:.2f}, "
        f"time {costs.time:.2f}, social {costs.social:.2f}, emotional {costs.emotional:.2f}.",
        f"Customer value {worth.customer_value:.2f} {money} ({customer.annual_value:.2f} a year "
        f"for {policy.assessment.years_retained:g} years, {customer.referrals} referrals); "
        f"{worth.return_chance:.0%} chance of return (severity {incident.severity.value}, "
        f"{customer.tenure_years:g} years a customer): expected value "
        f"{worth.expected_value:.2f}, against {worth.recovery_cost:.2f} to win them back and "
        f"{worth.acquisition_cost:.2f} to acquire a new customer.",
    ]
    if wording:
        figures.append(wording)
    reasons = []

    if incident.abusive or barred == "abusive":
        decision = Decision.DO_NOT_PURSUE
        reasons.append(
            (
                "The customer was abusive to staff"
                if incident.abusive
                else "The customer was abusive to staff in an earlier case"
            )
            + ": no incentive and no win-back, ever; frontline contact is blocked and a "
            "manager takes the case."
        )
    elif fault is Fault.CUSTOMER:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "The customer was unreasonable, but an angry customer talks: apologise and close "
            "politely, without an incentive."
        )
    elif forgiven_before and fault in {Fault.OURS, Fault.SHARED}:
        decision = Decision.LOST
        reasons.append(
            "One-forgiveness rule: this customer was already won back once and we failed them "
            "again; apologise, but run no win-back campaign."
        )
    elif forgiven_before:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "Out of our control, but this customer's one forgiveness is spent: apologise, put "
            "it right and make good what they lost, without a win-back incentive."
        )
    elif not customer.identified:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "Known only by a public post's handle: a public reply and an invitation to talk, "
            "no incentive until we know who the customer is."
        )
    elif not worth.worth_it:
        decision = Decision.SMOOTH_OVER
        reasons.append(
            "Winning this customer back costs more than they are worth and more than a new "
            "customer: apologise, put it right and make good what they lost, without a "
            "win-back incentive."
        )
    else:
        decision = Decision.RECOVER
        reasons.append(
            {
                Fault.OURS: "Our fault and worth winning back: full recovery.",
                Fault.SHARED: f"Partly our fault and worth winning back: recovery absorbs "
                f"{share:.0%} of the customer's costs.",
                Fault.EXTERNAL: f"Out of our control, but our promise to keep, and worth "
                f"winning back: recovery absorbs {share:.0%} of the customer's costs.",
            }[fault]
        )

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
        absorb_share=share,
    )


FAULT_WORDS = {
    Fault.OURS: "ours",
    Fault.SHARED: "shared between us and the customer",
    Fault.CUSTOMER: "the customer's (being unreasonable)",
    Fault.EXTERNAL: "external, out of our control",
}
