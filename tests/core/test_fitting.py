"""Decisions that fit the case and the business (issue 18): offers from the business's own
remedies, netting what was already given, never less for a larger loss; anger read sentence by
sentence; check-ins by severity and value, on the business's open days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import make_incident, recover
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from amends.business import ONGOING_ONLY, TRIAL_KINDS, Business, example_business, load_business
from amends.domain import Category, Decision, EmotionalCost, Fault, Severity, SocialCost
from amends.recovery.assess import anger_score, assess, emotional_level, wording_score
from amends.recovery.checkins import checkin_times
from amends.recovery.empower import choose_offer
from amends.recovery.policy import load_policy
from amends.runtime import Runtime
from amends.storage import models

POLICY = load_policy()
BUSINESSES = Path(__file__).parents[1] / "fixtures" / "businesses"
CLEANER, RESTAURANT, PLUMBER = (
    load_business(BUSINESSES / f"{name}.yaml") for name in ("dry_cleaner", "restaurant", "plumber")
)
EVERY = {"example": example_business(), "cleaner": CLEANER, "restaurant": RESTAURANT}
EVERY["plumber"] = PLUMBER


def offer_for(business: Business, **changes):  # type: ignore[no-untyped-def]
    incident = make_incident(**changes)
    result = assess(incident, forgiven_before=False, policy=POLICY)
    return result, choose_offer(result, incident, POLICY, business)


@pytest.mark.parametrize("business", [RESTAURANT, PLUMBER], ids=["restaurant", "plumber"])
def test_a_restaurant_or_a_plumber_is_never_offered_a_trial_or_a_guarantee(
    business: Business,
) -> None:
    offered = set()
    for category in Category:
        for severity in Severity:
            _, offer = offer_for(business, category=category, severity=severity)
            if offer is not None:
                offered.add(offer.kind)
    assert offered and offered <= {remedy.kind for remedy in business.remedies}
    assert not offered & (ONGOING_ONLY | TRIAL_KINDS)


def test_a_one_off_service_gets_no_guarantee_clause() -> None:
    changes = {"category": "service_failure", "severity": "critical"}
    _, ongoing = offer_for(example_business(), **changes)
    _, wedding = offer_for(example_business(), **changes, one_off=True)
    assert ongoing.kind in ONGOING_ONLY  # the example business does offer one, to contracts
    assert wedding is not None and wedding.kind not in ONGOING_ONLY


# Complaints as consumers file them with a regulator about credit reports and debt collection
# (paraphrased): billing disputes, not a service to try again for free.
CREDIT_COMPLAINTS = [
    "There is an account on my credit report that is not mine and I have disputed it twice.",
    "A collector keeps calling me about a debt I already paid in full last year.",
    "The bureau has not corrected the late payment they agreed was reported in error.",
]


@pytest.mark.parametrize("details", CREDIT_COMPLAINTS)
@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("category", ["billing", "other"])
def test_credit_report_and_debt_collection_complaints_get_no_free_trial(
    details: str, severity: str, category: str
) -> None:
    _, offer = offer_for(example_business(), details=details, severity=severity, category=category)
    assert offer is None or offer.kind not in TRIAL_KINDS


def test_what_the_put_right_already_gave_is_not_paid_twice() -> None:
    changes = {"category": "quality", "severity": "medium", "customer": {"annual_value": 2000}}
    _, before = offer_for(RESTAURANT, **changes)
    _, after = offer_for(RESTAURANT, **changes, given={"kind": "refund", "value": 450})
    assert after.wanted == round(before.wanted - 450, 2)
    assert any("less the 450.00 already given (refund)" in r for r in after.reasons)
    _, covered = offer_for(RESTAURANT, **changes, given={"kind": "refund", "value": 10_000})
    assert covered is None


def test_a_customer_known_only_by_a_handle_gets_no_money_whatever_the_loss() -> None:
    for economic in (0.0, 50.0, 4100.0):
        result, offer = offer_for(
            example_business(), costs={"economic": economic}, customer={"identified": False}
        )
        assert offer is None and result.decision is Decision.SMOOTH_OVER


def test_a_disputed_charge_not_worth_winning_back_is_still_made_good() -> None:
    changes = {
        "category": "billing",
        "summary": "Charged 4,100 for a service I cancelled",
        "costs": {"economic": 4100.0, "time_hours": 3},
        "customer": {"annual_value": 300},
    }
    result, offer = offer_for(example_business(), **changes)
    assert result.decision is Decision.SMOOTH_OVER and not result.worth.worth_it
    assert offer.kind == "refund" and offer.wanted >= 4100 and offer.needs_approval
    assert any("without a win-back incentive" in reason for reason in offer.reasons)


def test_the_dry_cleaners_lost_wedding_suit_is_refunded_not_smoothed_away() -> None:
    result, offer = offer_for(
        CLEANER,
        category="quality",
        severity="critical",
        summary="Perdieron mi traje de boda",
        costs={"economic": 600.0, "time_hours": 4, "emotional": "furious"},
        customer={"annual_value": 90, "locale": "es"},
    )
    assert result.fault is Fault.OURS
    assert offer.kind == "refund" and offer.wanted >= 600


LEVELS = list(EmotionalCost)
SOCIAL = list(SocialCost)


@st.composite
def two_losses(draw: st.DrawFn) -> tuple[dict, dict]:
    """The same case twice, the second with every cost at least as large."""
    economic = draw(st.floats(0, 20_000, allow_nan=False))
    hours = draw(st.floats(0, 200, allow_nan=False))
    social, feeling = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    small = {
        "economic": economic,
        "time_hours": hours,
        "social": SOCIAL[social].value,
        "emotional": LEVELS[feeling].value,
    }
    large = {
        "economic": economic + draw(st.floats(0, 20_000, allow_nan=False)),
        "time_hours": hours + draw(st.floats(0, 200, allow_nan=False)),
        "social": SOCIAL[draw(st.integers(social, 2))].value,
        "emotional": LEVELS[draw(st.integers(feeling, 3))].value,
    }
    return small, large


@settings(max_examples=300, deadline=None)
@given(
    losses=two_losses(),
    business=st.sampled_from(sorted(EVERY)),
    category=st.sampled_from(list(Category)),
    severity=st.sampled_from(list(Severity)),
    fault=st.sampled_from(["ours", "shared", "external"]),
    annual_value=st.sampled_from([0, 90, 300, 1500, 6000, 25_000]),
    refunded=st.sampled_from([0, 60, 900]),
)
def test_a_larger_loss_never_gets_less(
    losses: tuple[dict, dict],
    business: str,
    category: Category,
    severity: Severity,
    fault: str,
    annual_value: int,
    refunded: int,
) -> None:
    case = {
        "category": category,
        "severity": severity,
        "fault": fault,
        "customer": {"annual_value": annual_value},
        "given": {"kind": "refund", "value": refunded} if refunded else None,
    }
    small, large = (offer_for(EVERY[business], costs=costs, **case)[1] for costs in losses)
    granted = [(o.wanted, o.value) if o else (0.0, 0.0) for o in (small, large)]
    assert granted[1] >= granted[0], (small, large)


# A complaint narrative as consumers write them to a regulator: plain, and long.
NARRATIVE = (
    "I contacted the company about the charge on my report. They said they would look into it "
    "but nothing happened. The account is not mine and I have disputed it several times. "
)


def test_the_anger_read_from_the_words_does_not_grow_with_their_length() -> None:
    short, long = NARRATIVE, NARRATIVE * 30
    # Read whole, the long narrative saturates: the same words read as hostile as can be.
    assert wording_score(long) < POLICY.assessment.angry_wording_score < wording_score(short)
    assert anger_score(long) == pytest.approx(anger_score(short))
    for details in (short, long):
        feeling, _ = emotional_level(
            make_incident(details=details, costs={"emotional": "upset"}), POLICY
        )
        assert feeling is EmotionalCost.UPSET


def test_furious_words_still_raise_the_rating() -> None:
    details = "I am furious. This is the worst service ever, disgusting and unacceptable!"
    feeling, reason = emotional_level(
        make_incident(details=details, costs={"emotional": "upset"}), POLICY
    )
    assert feeling is EmotionalCost.ANGRY and "a sentence" in reason


OPENED = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("severity", "annual_value", "count"),
    [
        ("low", 900, 0),
        ("low", 25_000, 0),  # a key customer's haircut still needs no meetings
        ("medium", 900, 2),
        ("high", 900, 4),
        ("high", 6000, 5),  # valued: one more
        ("critical", 900, 7),
        ("critical", 25_000, 7),  # never beyond the cadence
    ],
)
def test_checkins_by_severity_and_value(severity: str, annual_value: int, count: int) -> None:
    figures = POLICY.checkins
    tier = POLICY.empower.tier_of(annual_value)
    assert figures.count_for(Severity(severity), tier) == count


@pytest.mark.parametrize("name", sorted(EVERY))
def test_checkins_never_fall_on_a_closed_day_or_a_holiday(name: str) -> None:
    business = EVERY[name]
    for day in range(60):
        opened = OPENED + timedelta(days=day)
        times = checkin_times(opened, POLICY.checkins, business.timezone, business=business)
        assert len(times) == 7
        assert all(business.is_open(t.date()) for t in times), (opened, times)


def test_no_checkin_on_christmas_eve_or_new_years_eve() -> None:
    # Opened on a Thursday: a weekly cadence lands on 24 and 31 December, both holidays.
    opened = datetime(2026, 12, 17, 9, 0, tzinfo=UTC)
    business = example_business()
    times = checkin_times(opened, POLICY.checkins, "Europe/Madrid", count=4, business=business)
    # 24 Dec -> Monday 28; 31 Dec -> past 1 January and the weekend to Monday 4.
    assert [t.date().isoformat() for t in times] == [
        "2026-12-28",
        "2027-01-04",
        "2027-01-07",
        "2027-01-14",
    ]


def test_a_low_severity_recovery_schedules_no_checkins(rt: Runtime, recorder) -> None:  # type: ignore[no-untyped-def]
    case_id = recover(rt, severity="low", category="quality")
    with rt.db.session() as session:
        case = session.get(models.Case, case_id)
        assert case.decision is Decision.RECOVER
        assert (
            session.scalars(select(models.CheckIn).where(models.CheckIn.case_id == case_id)).all()
            == []
        )
    assert len(recorder.delivered) == 1 and not recorder.delivered[0].attachment


def test_a_remedy_too_small_for_the_loss_gives_way_to_one_that_carries_it() -> None:
    low = {"category": "wrong_item", "severity": "low", "customer": {"annual_value": 900}}
    costs = {"economic": 0, "social": "none", "emotional": "upset"}
    _, small = offer_for(example_business(), **low, costs={**costs, "time_hours": 0})
    _, larger = offer_for(example_business(), **low, costs={**costs, "time_hours": 2})
    assert small.kind == "small_gift" and small.wanted == 25  # the sample gift: at most 50
    assert larger.kind == "redo" and larger.wanted == 105  # 2 h x 40 + upset 25, whole
