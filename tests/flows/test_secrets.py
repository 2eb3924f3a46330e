"""The SMTP password logs in, and appears nowhere else: not in the database, the Prefect logs,
the artifacts, the files amends writes, or the case's errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from factories import make_incident
from loopback import serving
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr
from sqlalchemy import select

from amends.delivery.mailcatcher import free_port
from amends.flows.incident import recover_incident
from amends.runtime import Runtime, use_runtime
from amends.storage import models

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    # A test server on loopback: AUTH without TLS is what we want here.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

PASSWORD = f"pw-{uuid.uuid4().hex}"


class Inbox:
    def __init__(self) -> None:
        self.logins: list[str] = []
        self.received = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password.decode() == PASSWORD
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received += 1
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=handler.authenticate,
        auth_required=True, auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield handler, port
    controller.stop()


def test_the_password_logs_in_and_is_found_nowhere_else(
    rt: Runtime, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    settings = rt.settings.model_copy(
        update={"smtp_port": port, "smtp_password": SecretStr(PASSWORD)}
    )
    current = Runtime.from_settings(settings)
    use_runtime(current)  # disposes the fixture's runtime: use this one's database from here
    state = recover_incident(make_incident(ref="INC-SECRET"), return_state=True)
    outcome = state.result()
    assert [m.status for m in outcome.messages] == ["sent", "sent"]
    assert set(handler.logins) == {settings.sender_email}  # one login per drain
    assert handler.received == 2

    # Not in any row of any table...
    with current.db.session() as session:
        for table in models.Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                assert PASSWORD not in repr(tuple(row)), table.name
    # ...nor in any file amends wrote...
    for path in Path(settings.home).rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert PASSWORD.encode() not in path.read_bytes(), path
    # ...nor in the run's logs and artifacts, which the Prefect UI shows.
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
    assert logs and all(PASSWORD not in log.message for log in logs)
    assert all(PASSWORD not in str(artifact.data) for artifact in artifacts)


WEBHOOK_SECRET = f"wh-{uuid.uuid4().hex}"
OPTOUT_SECRET = f"uo-{uuid.uuid4().hex}"


class Rejecting(BaseHTTPRequestHandler):
    """A gateway that refuses every call and echoes what it got, as a careless one might."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = f"refused {dict(self.headers)} {body!r}".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(echo)))
        self.end_headers()
        self.wfile.write(echo)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def rejecting_gateway() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Rejecting)) as url:
        yield f"{url}/hook"


def test_webhook_and_optout_secrets_are_found_nowhere(rt: Runtime, rejecting_gateway: str) -> None:
    settings = rt.settings.model_copy(
        update={
            "webhook_sms_url": rejecting_gateway,
            "webhook_secret": SecretStr(WEBHOOK_SECRET),
            "unsubscribe_url": "https://acme.example/unsubscribe",
            "unsubscribe_secret": SecretStr(OPTOUT_SECRET),
        }
    )
    current = Runtime.from_settings(settings)
    use_runtime(current)
    incident = make_incident(ref="INC-SMS-SECRET", channel="sms", complaint_message_id=None)
    state = recover_incident(incident, return_state=True)
    outcome = state.result()
    assert [m.status for m in outcome.messages if m.channel == "sms"] == ["failed"]

    secrets = (WEBHOOK_SECRET, OPTOUT_SECRET)
    with current.db.session() as session:
        for table in models.Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                assert not any(s in repr(tuple(row)) for s in secrets), table.name
    for path in Path(settings.home).rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert not any(s.encode() in path.read_bytes() for s in secrets), path
    assert not any(s in repr(settings) or s in str(settings) for s in secrets)
    APILogWorker.drain_all(timeout=10)
    run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=run, limit=200)
        artifacts = client.read_artifacts(limit=200)
    assert any("403" in log.message for log in logs)  # the refusal was logged...
    assert not any(s in log.message for log in logs for s in secrets)  # ...without a secret
    assert not any(s in str(artifact.data) for artifact in artifacts for s in secrets)
