"""Assess and empower: the seeds' rules as decisions with their reasons."""

from __future__ import annotations

import pytest
from factories import make_incident

from amends.assess import assess, price_costs
from amends.domain import Decision, Fault, OfferKind, Severity
from amends.empower import choose_offer
from amends.policy import load_policy

POLICY = load_policy()


def test_the_four_costs_are_priced_from_the_policy() -> None:
    costs = price_costs(make_incident(), POLICY)
    # 450 money + 6 h x 40 + others affected 75 + angry 50
    assert (costs.economic, costs.time, costs.social, costs.emotional) == (450, 240, 75, 50)
    assert costs.total == 815


def test_our_fault_and_worth_it_means_recover() -> None:
    result = assess(make_incident(), forgiven_before=False, policy=POLICY)
    assert result.fault is Fault.OURS
    assert result.decision is Decision.RECOVER
    assert result.worth.expected_value == 12000 * 3 * 0.55
    assert any("full recovery" in reason for reason in result.reasons)


def test_an_unreasonable_customer_is_smoothed_over() -> None:
    result = assess(make_incident(our_fault=False), forgiven_before=False, policy=POLICY)
    assert result.fault is Fault.CUSTOMER
    assert result.decision is Decision.SMOOTH_OVER
    assert any("angry customer talks" in reason for reason in result.reasons)


def test_an_abusive_customer_is_not_pursued() -> None:
    result = assess(make_incident(abusive=True), forgiven_before=False, policy=POLICY)
    assert result.decision is Decision.DO_NOT_PURSUE
    assert any("a manager takes the case" in reason for reason in result.reasons)


def test_one_forgiveness_rule() -> None:
    result = assess(make_incident(), forgiven_before=True, policy=POLICY)
    assert result.decision is Decision.LOST
    assert any("One-forgiveness rule" in reason for reason in result.reasons)


def test_not_worth_the_candle() -> None:
    # A customer worth little, whose costs exceed both their value and a new customer's price.
    incident = make_incident(
        customer={"annual_value": 10}, costs={"economic": 5000}, severity="critical"
    )
    result = assess(incident, forgiven_before=False, policy=POLICY)
    assert not result.worth.worth_it
    assert result.decision is Decision.SMOOTH_OVER


@pytest.mark.parametrize(("category", "flagged"), [("quality", True), ("billing", False)])
def test_quality_first(category: str, flagged: bool) -> None:
    result = assess(make_incident(category=category), forgiven_before=False, policy=POLICY)
    assert result.quality_issue is flagged


def test_the_offer_absorbs_costs_up_to_the_frontline_limit() -> None:
    incident = make_incident(severity="medium", costs={"economic": 10, "time_hours": 1})
    result = assess(incident, forgiven_before=False, policy=POLICY)
    offer = choose_offer(result, Severity.MEDIUM, POLICY)
    assert offer is not None
    assert offer.kind is OfferKind.SERVICE_CREDIT
    assert offer.value == result.costs.total == 10 + 40 + 75 + 50
    assert not offer.capped


def test_an_offer_above_the_limit_is_capped_for_a_manager() -> None:
    result = assess(make_incident(), forgiven_before=False, policy=POLICY)
    offer = choose_offer(result, Severity.HIGH, POLICY)
    assert offer is not None
    assert offer.kind is OfferKind.FREE_TRIAL and offer.trial_days == 30
    assert (offer.value, offer.capped) == (600, True)
    assert any("a manager may raise it" in reason for reason in offer.reasons)


@pytest.mark.parametrize("changes", [{"our_fault": False}, {"abusive": True}])
def test_no_incentive_without_recovery(changes: dict) -> None:
    result = assess(make_incident(**changes), forgiven_before=False, policy=POLICY)
    assert choose_offer(result, Severity.HIGH, POLICY) is None
