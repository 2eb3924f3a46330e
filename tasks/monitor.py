"""Monitor: public posts by this customer about us, which deserve a public reply."""

from amends.domain import Stage
from tasks._stage import stage_task

monitor = stage_task(Stage.MONITOR, "Look for public complaints by this customer.")
