"""Re-engage: make the offer and schedule check-in meetings."""

from amends.domain import Stage
from tasks._stage import stage_task

reengage = stage_task(Stage.REENGAGE, "Make the offer and schedule check-in meetings.")
