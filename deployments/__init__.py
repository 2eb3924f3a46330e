"""amends' deployments, declared once in ``prefect.yaml`` and installed with the package.

``prefect deploy`` reads the file as it is (module-path entrypoints: a worker needs only
``pip install amends``, no clone), and ``amends serve`` builds the same deployments from it
(amends/deployments/serving.py). This package imports nothing but the standard library.
"""

from __future__ import annotations

from pathlib import Path

#: The installed prefect.yaml: ``prefect deploy --all --prefect-file "$(python -c 'import
#: amends.deployments as d; print(d.PREFECT_FILE)')"`` deploys all four from any folder.
PREFECT_FILE: Path = Path(__file__).with_name("prefect.yaml")
