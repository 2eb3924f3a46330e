"""Empower: the offer frontline staff may make without asking."""

from amends.domain import Stage
from tasks._stage import stage_task

empower = stage_task(
    Stage.EMPOWER, "Pick an offer that absorbs the customer's costs, within the frontline limit."
)
