"""Assess and empower: one row per rule of the seeds, with the decision, its reason and the offer.

The default incident (tests/factories.py) is our fault, high severity, costs 450 money + 6 h x
40 + others affected 75 + angry 50 = 815 EUR, from a customer worth 12,000 a year (tier
"valued": frontline limit 600 x 1.5 = 900, manager limit 2,500 x 1.5 = 3,750).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from factories import make_incident

from amends.business import example_business
from amends.domain import Decision, EmotionalCost, Fault, OfferKind
from amends.recovery.assess import assess, price_costs
from amends.recovery.empower import choose_offer
from amends.recovery.policy import load_policy

POLICY = load_policy()
BUSINESS = example_business()


@dataclass(frozen=True)
class Rule:
    seed: str  # where the rule comes from
    changes: dict[str, Any]
    decision: Decision
    reason: str  # a phrase the decision's reasons must hold
    offer: tuple[float, bool] | None  # (value granted now, needs a manager's approval)
    forgiven_before: bool = False
    barred: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


RULES = [
    Rule("000 absorb the four costs", {}, Decision.RECOVER, "full recovery", (815, False)),
    Rule(
        "000 once they can forgive, but nothing more",
        {},
        Decision.LOST,
        "One-forgiveness rule",
        None,
        forgiven_before=True,
    ),
    Rule(
        "000 one forgiveness, shared fault",
        {"fault": "shared"},
        Decision.LOST,
        "One-forgiveness rule",
        None,
        forgiven_before=True,
    ),
    Rule(
        "001 your fault or out of your control, deliver on the promise",
        {"fault": "external"},
        Decision.RECOVER,
        "Out of our control, but our promise to keep",
        (407.5, False),
    ),
    Rule(
        "001 out of our control, forgiveness already spent: the money lost is still made good",
        {"fault": "external"},
        Decision.SMOOTH_OVER,
        "one forgiveness is spent",
        (225, False),
        forgiven_before=True,
    ),
    Rule(
        "003 shared fault: recovery absorbs a share",
        {"fault": "shared"},
        Decision.RECOVER,
        "recovery absorbs 50%",
        (407.5, False),
    ),
    Rule(
        "003 the customer is being unreasonable, but will talk",
        {"fault": "customer"},
        Decision.SMOOTH_OVER,
        "an angry customer talks",
        None,
    ),
    Rule(
        "003 unreasonable after a forgiveness is not a second failure",
        {"fault": "customer"},
        Decision.SMOOTH_OVER,
        "an angry customer talks",
        None,
        forgiven_before=True,
    ),
    Rule(
        "003 protect staff from an abusive customer",
        {"abusive": True},
        Decision.DO_NOT_PURSUE,
        "no win-back, ever",
        None,
    ),
    Rule(
        "002 better not to return such customers, next time too",
        {},
        Decision.DO_NOT_PURSUE,
        "abusive to staff in an earlier case",
        None,
        barred="abusive",
    ),
    Rule(
        "002 is the game worth the candle: no",
        {"customer": {"annual_value": 10}, "costs": {"economic": 5000}, "severity": "critical"},
        Decision.SMOOTH_OVER,
        "costs more than they are worth",
        (1000, True),  # not worth an incentive, but the 5,000 lost is made good
        extra={"worth_it": False},
    ),
    Rule(
        "003 cheaper to buy back than to acquire a new customer",
        {"customer": {"annual_value": 0}, "costs": {"economic": 0, "time_hours": 1}},
        Decision.RECOVER,
        "full recovery",
        (165, False),
        extra={"worth_it": True},
    ),
    Rule(
        "002 quality first, whatever the decision",
        {"fault": "customer", "category": "quality"},
        Decision.SMOOTH_OVER,
        "an improvement item goes to the team",
        None,
        extra={"quality_issue": True},
    ),
    Rule(
        "003 rough guidelines: above the frontline limit a manager decides",
        {"customer": {"annual_value": 1000}},
        Decision.RECOVER,
        "full recovery",
        (600, True),
    ),
    Rule(
        "003 a key customer's frontline limit is higher",
        {"customer": {"annual_value": 25_000}, "costs": {"economic": 800}},
        Decision.RECOVER,
        "full recovery",
        (1165, False),
    ),
    Rule(
        "000 the emotional cost, from the complaint's own words",
        {
            "details": "I am furious. This is the worst service I have ever had, absolutely "
            "disgusting and unacceptable!!",
            "costs": {"emotional": "upset"},
        },
        Decision.RECOVER,
        "full recovery",
        (815, False),
        extra={"emotional_level": EmotionalCost.ANGRY, "figure": "raised from upset to angry"},
    ),
    Rule(
        "002 the chance of return: a loyal customer returns more readily",
        {"customer": {"tenure_years": 10}},
        Decision.RECOVER,
        "full recovery",
        (815, False),
        extra={"return_chance": 0.70},
    ),
    Rule(
        "002 a customer is also a source of referrals",
        {"customer": {"referrals": 3}},
        Decision.RECOVER,
        "full recovery",
        (815, False),
        extra={"customer_value": 12000 * 3 + 3 * 500},
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[rule.seed for rule in RULES])
def test_rule(rule: Rule) -> None:
    incident = make_incident(**rule.changes)
    result = assess(
        incident, forgiven_before=rule.forgiven_before, policy=POLICY, barred=rule.barred
    )
    assert result.decision is rule.decision
    assert any(rule.reason in reason for reason in result.reasons), result.reasons
    offer = choose_offer(result, incident, POLICY, BUSINESS)
    if rule.offer is None:
        assert offer is None
    else:
        assert offer is not None
        assert (offer.value, offer.needs_approval) == rule.offer
    expected = rule.extra
    if "worth_it" in expected:
        assert result.worth.worth_it is expected["worth_it"]
    if "quality_issue" in expected:
        assert result.quality_issue is expected["quality_issue"]
    if "emotional_level" in expected:
        assert result.costs.emotional_level is expected["emotional_level"]
        assert any(expected["figure"] in figure for figure in result.figures)
    if "return_chance" in expected:
        assert result.worth.return_chance == pytest.approx(expected["return_chance"])
    if "customer_value" in expected:
        assert result.worth.customer_value == expected["customer_value"]


def test_the_four_costs_are_priced_from_the_policy() -> None:
    costs = price_costs(make_incident(), POLICY)
    assert (costs.economic, costs.time, costs.social, costs.emotional) == (450, 240, 75, 50)
    assert costs.total == 815


def test_the_figures_behind_the_decision_are_shown() -> None:
    result = assess(make_incident(), forgiven_before=False, policy=POLICY)
    assert result.fault is Fault.OURS
    assert result.explanation[:2] == [
        "Fault: ours.",
        "The customer's costs come to 815.00 EUR: economic 450.00, time 240.00, social 75.00, "
        "emotional 50.00.",
    ]
    assert "expected value 19800.00, against 815.00 to win them back" in result.explanation[2]


def test_wording_never_lowers_the_operator_rating() -> None:
    incident = make_incident(
        summary="Thank you, a small delay",
        details="Lovely team, great work, thanks!",
        costs={"emotional": "angry"},
    )
    assert price_costs(incident, POLICY).emotional_level is EmotionalCost.ANGRY


def test_an_offer_for_approval_says_what_a_manager_may_grant() -> None:
    incident = make_incident(customer={"annual_value": 3000}, costs={"economic": 3000})
    result = assess(incident, forgiven_before=False, policy=POLICY)
    offer = choose_offer(result, incident, POLICY, BUSINESS)
    assert offer.kind is OfferKind.FREE_TRIAL and offer.trial_days == 30
    assert (offer.tier, offer.frontline_limit, offer.manager_limit) == ("standard", 600, 2500)
    assert offer.wanted == 3365 and offer.approvable == 2500
    assert any("a manager approves up to 2500.00" in reason for reason in offer.reasons)
