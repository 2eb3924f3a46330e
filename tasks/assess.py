"""Assess: fault, the customer's four costs, worth of recovery, and a decision with reasons."""

from amends.domain import Stage
from tasks._stage import stage_task

assess = stage_task(
    Stage.ASSESS,
    "Decide whose fault it was, what it cost the customer, and whether to win them back.",
)
