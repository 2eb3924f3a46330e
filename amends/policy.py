"""The recovery policy: the figures and tables a business owner may change without a programmer.

The default ships as ``amends/policy.yaml``; ``AMENDS_POLICY_FILE`` replaces it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amends.domain import (
    Channel,
    EmotionalCost,
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
    years_retained: float = Field(gt=0)
    return_chance: dict[Severity, float]
    acquisition_cost: float = Field(ge=0)

    @model_validator(mode="after")
    def _complete(self) -> AssessmentFigures:
        _require_every(self.social_cost, SocialCost, "assessment.social_cost")
        _require_every(self.emotional_cost, EmotionalCost, "assessment.emotional_cost")
        _require_every(self.return_chance, Severity, "assessment.return_chance")
        if any(not 0 <= chance <= 1 for chance in self.return_chance.values()):
            raise ValueError("assessment.return_chance values must lie between 0 and 1")
        return self


class EmpowerFigures(_Section):
    frontline_limit: dict[Severity, float]
    offer_by_severity: dict[Severity, OfferKind]
    trial_days: int = Field(ge=1, le=365)

    @model_validator(mode="after")
    def _complete(self) -> EmpowerFigures:
        _require_every(self.frontline_limit, Severity, "empower.frontline_limit")
        _require_every(self.offer_by_severity, Severity, "empower.offer_by_severity")
        return self


class CheckinFigures(_Section):
    cadence_days: list[int] = Field(min_length=1, max_length=24)
    hour: int = Field(ge=0, le=23)
    duration_minutes: int = Field(ge=5, le=240)


class ServiceLevels(_Section):
    first_response_hours: float = Field(gt=0)


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

    @model_validator(mode="after")
    def _every_channel_mirrored(self) -> Policy:
        _require_every(self.mirror, Channel, "mirror")
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


def _require_every(table: dict, enum: type, where: str) -> None:
    missing = [member.value for member in enum if member not in table]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


def load_policy(path: Path | None = None) -> Policy:
    """Read a policy file, or the shipped default when ``path`` is None.

    Raises:
        PolicyError: the file is missing, is not YAML, or a figure is wrong; the message names it.
    """
    path = path or DEFAULT_POLICY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"cannot read policy file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path} is not valid YAML: {error}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'policy'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None
