"""The recovery policy: the figures and tables a business owner may change without a programmer.

The default ships as ``amends/recovery/policy.yaml``; ``AMENDS_POLICY_FILE`` replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amends.domain import (
    Channel,
    EmotionalCost,
    Fault,
    OfferKind,
    ReplyChannel,
    Severity,
    SocialCost,
    SocialPlatform,
)
from amends.errors import PolicyError

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssessmentFigures(_Section):
    hourly_value_of_time: float = Field(ge=0)
    social_cost: dict[SocialCost, float]
    emotional_cost: dict[EmotionalCost, float]
    angry_wording_score: float = Field(ge=-1, le=0)
    absorb_share: dict[Fault, float]
    years_retained: float = Field(gt=0)
    referral_value: float = Field(ge=0)
    return_chance: dict[Severity, float]
    loyalty_per_year: float = Field(ge=0, le=1)
    loyalty_cap: float = Field(ge=0, le=1)
    acquisition_cost: float = Field(ge=0)

    @model_validator(mode="after")
    def _complete(self) -> AssessmentFigures:
        _require_every(self.social_cost, SocialCost, "assessment.social_cost")
        _require_every(self.emotional_cost, EmotionalCost, "assessment.emotional_cost")
        _require_every(self.return_chance, Severity, "assessment.return_chance")
        # The customer's own fault earns no incentive, so it has no share to absorb.
        _require_every(
            self.absorb_share,
            [f for f in Fault if f is not Fault.CUSTOMER],
            "assessment.absorb_share",
        )
        for where, table in (
            ("return_chance", self.return_chance),
            ("absorb_share", self.absorb_share),
        ):
            if any(not 0 <= value <= 1 for value in table.values()):
                raise ValueError(f"assessment.{where} values must lie between 0 and 1")
        return self


class RoleLimits(_Section):
    """What each role may offer without asking, by severity."""

    frontline: dict[Severity, Annotated[float, Field(ge=0)]]
    manager: dict[Severity, Annotated[float, Field(ge=0)]]

    @model_validator(mode="after")
    def _complete(self) -> RoleLimits:
        _require_every(self.frontline, Severity, "empower.limits.frontline")
        _require_every(self.manager, Severity, "empower.limits.manager")
        for severity in Severity:
            if self.manager[severity] < self.frontline[severity]:
                raise ValueError(
                    f"empower.limits.manager.{severity.value} is below the frontline limit"
                )
        return self


class EmpowerFigures(_Section):
    tiers: dict[str, Annotated[float, Field(ge=0)]] = Field(min_length=1)
    limits: RoleLimits
    tier_factor: dict[str, Annotated[float, Field(gt=0, le=100)]]
    offer_by_severity: dict[Severity, OfferKind]
    trial_days: int = Field(ge=1, le=365)
    approval_timeout_hours: float = Field(gt=0, le=24 * 14)

    @model_validator(mode="after")
    def _complete(self) -> EmpowerFigures:
        _require_every(self.offer_by_severity, Severity, "empower.offer_by_severity")
        _require_every(self.tier_factor, self.tiers, "empower.tier_factor")
        if 0 not in self.tiers.values():
            raise ValueError("empower.tiers needs a tier whose floor is 0, for every customer")
        if len(set(self.tiers.values())) < len(self.tiers):
            raise ValueError("empower.tiers: two tiers share a floor; give each its own")
        return self

    def tier_of(self, annual_value: float) -> str:
        """The highest tier whose floor the customer's annual value reaches."""
        reached = [(floor, name) for name, floor in self.tiers.items() if annual_value >= floor]
        return max(reached)[1]

    def limit(self, role: str, severity: Severity, tier: str) -> float:
        """What ``role`` may offer without asking for this severity and customer tier."""
        return round(getattr(self.limits, role)[severity] * self.tier_factor[tier], 2)


class CadenceStep(_Section):
    every_days: int = Field(ge=1, le=366)
    times: int = Field(ge=1, le=24)


class BusinessHours(_Section):
    start: int = Field(ge=0, le=23)
    end: int = Field(ge=1, le=24)


class CheckinFigures(_Section):
    cadence: list[CadenceStep] = Field(min_length=1, max_length=12)
    # How many of the cadence's meetings a recovered case gets, by severity, and how many more
    # for a customer in a higher tier (never for a severity that gets none).
    # Empty (a policy copied before it existed): the whole cadence for every severity.
    count_by_severity: dict[Severity, Annotated[int, Field(ge=0, le=288)]] = Field(
        default_factory=dict
    )
    extra_by_tier: dict[str, Annotated[int, Field(ge=0, le=288)]] = Field(default_factory=dict)
    business_hours: BusinessHours
    hour: int = Field(ge=0, le=23)
    duration_minutes: int = Field(ge=5, le=240)
    reschedule_after_days: int = Field(ge=1, le=60)
    misses_before_call: int = Field(ge=1, le=10)

    @model_validator(mode="after")
    def _inside_business_hours(self) -> CheckinFigures:
        hours = self.business_hours
        ends = self.hour * 60 + self.duration_minutes
        if not (hours.start <= self.hour and ends <= hours.end * 60):
            raise ValueError(
                f"checkins.hour {self.hour} and {self.duration_minutes} minutes fall outside "
                f"business hours {hours.start}-{hours.end}"
            )
        return self

    @model_validator(mode="after")
    def _counts_within_cadence(self) -> CheckinFigures:
        if self.count_by_severity:
            _require_every(self.count_by_severity, Severity, "checkins.count_by_severity")
        most = len(self.offsets)
        too_many = [s.value for s, n in self.count_by_severity.items() if n > most]
        if too_many:
            raise ValueError(
                f"checkins.count_by_severity: {', '.join(too_many)} asks for more check-ins "
                f"than the cadence's {most}"
            )
        return self

    def count_for(self, severity: Severity, tier: str) -> int:
        """How many check-ins a recovered case of this severity and customer tier gets."""
        base = self.count_by_severity.get(severity, len(self.offsets))
        if base == 0:
            return 0
        return min(base + self.extra_by_tier.get(tier, 0), len(self.offsets))

    @property
    def offsets(self) -> list[int]:
        """Days after the case opened, one per check-in."""
        days, offsets = 0, []
        for step in self.cadence:
            for _ in range(step.times):
                days += step.every_days
                offsets.append(days)
        return offsets


class ServiceLevels(_Section):
    first_response_hours: float = Field(gt=0)
    resolution_days: float = Field(gt=0)


class WinbackOffer(_Section):
    kind: OfferKind
    share_of_annual_value: float = Field(ge=0, le=1)
    minimum: float = Field(ge=0)
    maximum: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> WinbackOffer:
        if self.maximum < self.minimum:
            raise ValueError("nightly.winback_offer.maximum is below its minimum")
        return self

    def value_for(self, annual_value: float) -> float:
        """The offer for a customer worth ``annual_value`` a year."""
        return round(
            min(max(annual_value * self.share_of_annual_value, self.minimum), self.maximum), 2
        )


class FrequencyCap(_Section):
    messages: int = Field(ge=1, le=50)
    days: int = Field(ge=1, le=365)


class NightlyFigures(_Section):
    lapsed_after_days: int = Field(ge=1, le=3650)
    unanswered_calls: int = Field(ge=1, le=100)
    winback_every_days: int = Field(ge=1, le=3650)
    winback_offer: WinbackOffer
    reminder_hours_before: float = Field(gt=0, le=24 * 14)
    progress_every_days: int = Field(ge=1, le=365)
    thank_you_within_days: int = Field(ge=1, le=365)
    frequency_cap: FrequencyCap


class ListeningFigures(_Section):
    """How the monitor-mentions flow tells a complaint, and what it opens for one."""

    complaint_cues: list[str] = Field(max_length=500)
    complaint_threshold: float | None = Field(default=None, ge=0, le=1)
    answer_within_days: float = Field(default=7, gt=0, le=3650)
    max_incidents_per_run: int = Field(ge=0, le=10_000)
    fault: Fault
    high_severity_score: float = Field(ge=-1, le=0)
    days_before_incident: float = Field(ge=0, le=365)

    @model_validator(mode="before")
    @classmethod
    def _no_retired_figures(cls, data: Any) -> Any:
        # A policy copied before the trained recogniser: say what replaced these figures.
        retired = isinstance(data, dict) and sorted(
            {"negative_score", "cue_unless_above"} & set(data)
        )
        if retired:
            raise ValueError(
                f"{' and '.join(retired)} no longer apply: a trained recogniser tells complaints "
                "now; remove them, and tune it with complaint_threshold (0 to 1) if you must"
            )
        return data

    @model_validator(mode="after")
    def _cues_compile(self) -> ListeningFigures:
        for cue in self.complaint_cues:
            try:
                re.compile(cue)
            except re.error as error:
                raise ValueError(
                    f"listening.complaint_cues: {cue!r} is not a pattern ({error})"
                ) from None
        return self


class Policy(_Section):
    """A business's recovery policy."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    mirror: dict[Channel, ReplyChannel]
    fallback: dict[ReplyChannel, ReplyChannel] = Field(default_factory=dict)
    # Networks that let a business write privately to a customer, after its public reply.
    private_messages_on: list[SocialPlatform] = Field(default_factory=list)
    assessment: AssessmentFigures
    empower: EmpowerFigures
    checkins: CheckinFigures
    service_levels: ServiceLevels
    nightly: NightlyFigures
    listening: ListeningFigures

    @model_validator(mode="after")
    def _every_channel_mirrored(self) -> Policy:
        _require_every(self.mirror, Channel, "mirror")
        return self

    @model_validator(mode="after")
    def _winback_cheaper_than_acquisition(self) -> Policy:
        if self.nightly.winback_offer.maximum > self.assessment.acquisition_cost:
            raise ValueError(
                "nightly.winback_offer.maximum is above assessment.acquisition_cost: winning a "
                "customer back must cost less than finding a new one"
            )
        return self

    def mirror_channel(
        self, complaint: Channel, automatic: Collection[ReplyChannel] = ()
    ) -> ReplyChannel:
        """Channel mirroring (seed 003): answer the way the customer complained.

        Args:
            complaint: The channel the complaint came in on.
            automatic: The reply channels with an adapter here; a mirrored channel without one
                gives way to its ``fallback``, if the policy names one.
        """
        reply = self.mirror[complaint]
        if reply not in automatic and reply in self.fallback:
            return self.fallback[reply]
        return reply


def _require_every(table: dict, members: Iterable, where: str) -> None:
    missing = [getattr(member, "value", member) for member in members if member not in table]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


# libyaml's parser when PyYAML has it (its wheels do): ten times faster than the pure-Python
# one, and the policy is read by every command.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(source: str) -> Any:
    """YAML text's data, read safely (no Python objects).

    Raises:
        yaml.YAMLError: it is not YAML.
    """
    return yaml.load(source, Loader=_SAFE_LOADER)


def read_yaml(path: Path, error: type[Exception], what: str) -> tuple[Any, yaml.Node | None]:
    """A YAML file's data, and its node tree (to name the line of a wrong value).

    Raises:
        error: unreadable, not UTF-8, or not YAML; the message names the file.
    """
    try:
        source = path.read_text(encoding="utf-8")
        return load_yaml(source), yaml.compose(source, Loader=_SAFE_LOADER)
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as problem:
        raise error(f"{path} is not valid YAML: {problem}") from None


def load_policy(path: Path | None = None) -> Policy:
    """Read a policy file, or the shipped default when ``path`` is None.

    Raises:
        PolicyError: the file is missing, is not YAML, or a figure is wrong; the message names it.
    """
    path = path or DEFAULT_POLICY_FILE
    data, tree = read_yaml(path, PolicyError, "policy file")
    if isinstance(data, dict) and "frontline_limit" in (data.get("empower") or {}):
        raise PolicyError(
            f"{path}: line {_line_of(tree, ('empower', 'frontline_limit'))}: "
            "empower.frontline_limit is now empower.limits.frontline, beside "
            "empower.limits.manager; see the shipped amends/recovery/policy.yaml"
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"line {_line_of(tree, problem['loc'])}: "
            f"{'.'.join(str(part) for part in problem['loc']) or 'policy'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None


def _line_of(tree: yaml.Node | None, loc: tuple) -> int:
    """The line (1-based) of the deepest key on ``loc`` that the file has."""
    node, line = tree, 1 if tree is None else tree.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
