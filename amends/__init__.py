"""amends: customer recovery, stage by stage, as Prefect flows.

The core in this package (domain, policy, decisions, storage, rendering, delivery) never imports
Prefect; the public Prefect API does: the flows in :mod:`amends.flows`, the tasks in
:mod:`amends.tasks` and the blocks in :mod:`amends.blocks` (see the README's "Use amends from
your own flows").
"""

__version__ = "0.1.0"
