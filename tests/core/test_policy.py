"""The shipped policy, channel mirroring, and errors for a bad policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from amends.domain import Channel, ReplyChannel
from amends.errors import PolicyError
from amends.recovery.policy import DEFAULT_POLICY_FILE, load_policy

MIRROR = {
    Channel.EMAIL: ReplyChannel.EMAIL,
    Channel.WEB_FORM: ReplyChannel.EMAIL,
    Channel.CHAT: ReplyChannel.EMAIL,
    Channel.PHONE: ReplyChannel.PHONE,
    Channel.VOICEMAIL: ReplyChannel.PHONE,
    Channel.SMS: ReplyChannel.SMS,
    Channel.LETTER: ReplyChannel.LETTER,
    Channel.FAX: ReplyChannel.LETTER,
    Channel.SOCIAL: ReplyChannel.SOCIAL,
    Channel.IN_PERSON: ReplyChannel.VISIT,
}


@pytest.mark.parametrize(("complaint", "reply"), MIRROR.items())
def test_the_reply_mirrors_the_complaint(complaint: Channel, reply: ReplyChannel) -> None:
    assert load_policy().mirror_channel(complaint) is reply


@pytest.mark.parametrize("complaint", [Channel.WEB_FORM, Channel.CHAT])
def test_chat_is_answered_by_chat_where_a_chat_adapter_exists(complaint: Channel) -> None:
    policy = load_policy()
    assert policy.mirror_channel(complaint, {ReplyChannel.CHAT}) is ReplyChannel.CHAT
    assert policy.mirror_channel(complaint, {ReplyChannel.EMAIL}) is ReplyChannel.EMAIL


def test_other_channels_never_fall_back() -> None:
    # A call-back without a phone adapter is a call by staff, not an email.
    assert (
        load_policy().mirror_channel(Channel.VOICEMAIL, {ReplyChannel.EMAIL}) is ReplyChannel.PHONE
    )


def test_every_channel_has_a_row() -> None:
    assert set(load_policy().mirror) == set(Channel)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_wrong_figure_is_named(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace("acquisition_cost: 600", "acquisition_cost: -1")
    with pytest.raises(PolicyError, match="assessment.acquisition_cost: Input should be greater"):
        load_policy(_write(tmp_path, text))


def test_a_policy_copied_before_the_recogniser_says_what_replaced_its_figures(
    tmp_path: Path,
) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace(
        "listening:\n", "listening:\n  negative_score: -0.3\n  cue_unless_above: 0.2\n", 1
    )
    with pytest.raises(PolicyError, match="cue_unless_above and negative_score no longer apply"):
        load_policy(_write(tmp_path, text))


def test_a_missing_mirror_row_is_named(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace("  fax: letter\n", "")
    with pytest.raises(PolicyError, match="mirror lacks fax"):
        load_policy(_write(tmp_path, text))


def test_yaml_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is not valid YAML"):
        load_policy(_write(tmp_path, "mirror: [unclosed"))


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_an_error_names_the_line_and_the_field(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text()
    line = text[: text.index("  trial_days: 30")].count("\n") + 1
    text = text.replace("  trial_days: 30", "  trial_days: many")
    with pytest.raises(PolicyError, match=rf"line {line}: empower\.trial_days: Input should be"):
        load_policy(_write(tmp_path, text))


def test_a_manager_limit_below_the_frontline_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace("manager: {low: 600,", "manager: {low: 100,")
    with pytest.raises(PolicyError, match="limits.manager.low is below the frontline limit"):
        load_policy(_write(tmp_path, text))


def test_tier_factors_must_cover_every_tier(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace(", key: 2.0}", "}")
    with pytest.raises(PolicyError, match="empower.tier_factor lacks key"):
        load_policy(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("annual_value", "tier"), [(0, "standard"), (4999, "standard"), (5000, "valued"), (1e6, "key")]
)
def test_a_customer_s_tier_comes_from_their_annual_value(annual_value: float, tier: str) -> None:
    assert load_policy().empower.tier_of(annual_value) == tier


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("valued: 5000,", "valued: 0,", "two tiers share a floor"),
        ("valued: 1.5,", "valued: -1,", r"tier_factor\.valued: Input should be greater than 0"),
        ("frontline: {low: 150,", "frontline: {low: -5,", "frontline.low: Input should be"),
    ],
)
def test_nonsense_figures_are_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = DEFAULT_POLICY_FILE.read_text()
    assert old in text
    with pytest.raises(PolicyError, match=message):
        load_policy(_write(tmp_path, text.replace(old, new)))


def test_an_old_policy_layout_gets_a_hint(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace(
        "  limits:\n", "  frontline_limit: {low: 1}\n  limits:\n"
    )
    with pytest.raises(PolicyError, match="empower.frontline_limit is now empower.limits"):
        load_policy(_write(tmp_path, text))
