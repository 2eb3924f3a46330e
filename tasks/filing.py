"""Filing an incident from anywhere: to the recover-incident deployment, which a worker on any
machine picks up, or as an event that the deployment's trigger turns into a run (see
``deployments/prefect.yaml``).

The incident is recorded in amends' database first (which the workers share), and Prefect is
handed only its reference: no run parameter or event payload holds the customer's details.
"""

from __future__ import annotations

import logging

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events import Event, emit_event
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from amends.domain import Incident
from amends.errors import ConfigurationError
from amends.recovery.intake import open_case
from amends.runtime import Runtime

DEPLOYMENT = "recover-incident/recover-incident"
INCIDENT_FILED = "amends.incident.filed"


def prefect_server() -> str:
    """The configured Prefect server's API URL, once it answers.

    Raises:
        ConfigurationError: no server is configured, or it does not answer.
    """
    from prefect.client.orchestration import get_client

    url = get_current_settings().api.url
    if not url:
        raise ConfigurationError(
            "no Prefect server configured: set PREFECT_API_URL, e.g. "
            "http://127.0.0.1:4200/api, here and where the server starts "
            "(`prefect server start --port 4200` runs one; its UI calls that address)"
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ConfigurationError(f"the Prefect server at {url} does not answer: {problem}")
    return url


def file_by_deployment(rt: Runtime, incident: Incident) -> FlowRun:
    """Record the incident and hand its reference to the recover-incident deployment; return
    its flow run at once (scheduled; a worker runs it).

    Raises:
        ConfigurationError: no Prefect server, or no such deployment on it.
    """
    url = prefect_server()
    _deployment(url)
    open_case(rt, incident)
    try:
        return run_deployment(
            DEPLOYMENT,
            parameters={"incident_ref": incident.ref},
            flow_run_name=incident.ref,
            timeout=0,
            as_subflow=False,
        )
    except ObjectNotFound:
        raise _no_deployment(url) from None


def _no_deployment(url: str) -> ConfigurationError:
    return ConfigurationError(
        f"no deployment {DEPLOYMENT} on the Prefect server at {url}: run "
        "`amends deploy` (once the work pool exists: "
        "`prefect work-pool create amends --type process`)"
    )


def _deployment(url: str) -> None:
    """Refuse to file when the server has no recover-incident deployment: nothing would run."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            raise _no_deployment(url) from None


def file_by_event(rt: Runtime, incident: Incident) -> Event:
    """Record the incident and emit the ``amends.incident.filed`` event with its reference as
    the payload; the recover-incident deployment's trigger starts a run for it.

    Raises:
        ConfigurationError: no Prefect server, or no such deployment on it.
    """
    from prefect.events.worker import EventsWorker

    # Without the deployment (and its trigger) the event would start nothing, silently.
    _deployment(prefect_server())
    open_case(rt, incident)
    event = emit_event(
        INCIDENT_FILED,
        resource={"prefect.resource.id": f"amends.incident.{incident.ref}"},
        payload={"incident_ref": incident.ref},
    )
    # Events go out from a background thread: send it before the command exits, without the
    # thread's "still processing" warning (that it is sending) on the terminal.
    quiet = logging.getLogger(EventsWorker.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        EventsWorker.drain_all(timeout=10)
    finally:
        quiet.setLevel(level)
    if event is None:
        raise ConfigurationError("the Prefect events client is not configured to send events")
    return event
