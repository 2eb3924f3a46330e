"""Follow up: answer on the channel the complaint came in on, with an honest apology."""

from amends.domain import Stage
from tasks._stage import stage_task

follow_up = stage_task(
    Stage.FOLLOW_UP, "Queue the apology on the complaint's own channel (and a public reply)."
)
