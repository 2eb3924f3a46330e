"""``amends server``: one Prefect server for the data folder, used by every command after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from factories import incident_data

from amends.delivery.mailcatcher import MailCatcher, free_port

pytestmark = pytest.mark.e2e


def test_commands_use_the_data_folders_server_until_it_stops(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENDS_", "PREFECT_"))}
    env |= {"AMENDS_HOME": str(tmp_path / "var"), "PREFECT_HOME": str(tmp_path / "prefect")}
    port = free_port()

    def amends(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "amends", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    try:
        started = amends("server", "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        assert f"the UI at http://127.0.0.1:{port}" in started.stdout
        assert amends("server", "status").returncode == 0

        with MailCatcher(tmp_path / "mail") as catcher:
            env |= {"AMENDS_SMTP_PORT": str(catcher.port)}
            incident = tmp_path / "incident.json"
            incident.write_text(json.dumps(incident_data()))
            filed = amends("incident", str(incident))
            assert filed.returncode == 0, filed.stderr
            assert "temporary server" not in filed.stderr  # it used the running one
            assert len(catcher.messages()) == 2  # the apology and the check-in invitation

        # The run is in the data folder's server, for the UI to show.
        runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}).json()
        assert {"recover-incident"} <= {
            httpx.get(f"http://127.0.0.1:{port}/api/flows/{run['flow_id']}").json()["name"]
            for run in runs
        }
        assert all(run["state_type"] == "COMPLETED" for run in runs)
    finally:
        stopped = amends("server", "stop")
    assert stopped.returncode == 0 and "Prefect server stopped." in stopped.stdout
    status = amends("server", "status")
    assert status.returncode == 1 and "no Prefect server runs" in status.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/health")
