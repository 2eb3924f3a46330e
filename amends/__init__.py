"""amends: customer recovery, stage by stage, as Prefect flows.

The core in this package (domain, policy, decisions, storage, rendering, delivery) never imports
Prefect; the flows in ``flows/`` and the tasks in ``tasks/`` do.
"""

__version__ = "0.1.0"
