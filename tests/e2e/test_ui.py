"""End to end, the way Prefect users run amends: a Prefect server on PostgreSQL, a process work
pool with one worker, the installed deployments (amends.deployments), an incident run triggered
through the API, and the Prefect UI in headless Chromium showing the run, its parameters and
its artifact.

Needs PostgreSQL at 127.0.0.1:5432 and Debian's chromium at /usr/bin/chromium (.ci/run installs
it). Takes about a minute. The screenshot of the run's page goes to test-output/ at the
repository root (its path is printed).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from e2e.prefect_server import REPOSITORY, PrefectServer, fresh_database, prefect_server
from factories import incident_data

from amends.delivery.mailcatcher import MailCatcher
from amends.reporting.casebook import case_outcome, list_cases
from amends.storage.db import Database

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
POOL = "amends"  # the work pool the installed prefect.yaml names
# A worker polls every ~15 s and a flow run's process imports Prefect first: give a slow CI
# machine room.
RUN_TIMEOUT = 300.0
OUTPUT = REPOSITORY / "test-output"
WORKER = "ui"
MANAGER = "manager@acme-cleaning.example"


@dataclass
class Stack:
    """A Prefect server with amends deployed and one worker, and where amends keeps its data."""

    server: PrefectServer
    amends_url: str
    mail: MailCatcher

    def worker_output(self) -> str:
        return self.server.worker_output(WORKER)


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str) -> Iterator[Stack]:
    """Everything started, in order, and stopped in reverse, whatever the test does.

    ``postgres_url`` (conftest) is only asked for so that a missing PostgreSQL skips or fails
    the way the other PostgreSQL tests do; a missing Chromium does the same.
    """
    if not CHROMIUM.exists():
        problem = f"no browser at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the end-to-end tests)")
        pytest.skip(problem)
    with (
        fresh_database("amends_e2e_data") as amends_url,
        prefect_server(tmp_path) as server,
        MailCatcher(tmp_path / "mail") as mail,
    ):
        env = {
            **server.env,
            "AMENDS_DATABASE_URL": amends_url,
            "AMENDS_HOME": str(tmp_path / "var"),
            "AMENDS_SMTP_PORT": str(mail.port),
            "AMENDS_MANAGER_EMAIL": MANAGER,
        }
        server.run("amends", "db", "upgrade", env=env)
        server.deploy(POOL)
        server.worker(WORKER, env, pool=POOL)
        yield Stack(server=server, amends_url=amends_url, mail=mail)


def run_incident_deployment(server: PrefectServer, parameters: dict) -> UUID:
    """Start a run of the recover-incident deployment through the API; return its id."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: server.api_url}),
        get_client(sync_client=True) as client,
    ):
        deployment = client.read_deployment_by_name("recover-incident/recover-incident")
        run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return run.id


def wait_for_final_state(stack: Stack, run_id: UUID) -> str:
    """Poll the run until it is final; return its state's name, or fail with the worker's
    output."""
    return wait_for_state(stack, run_id, lambda state: state.is_final(), "finished").name


def test_an_incident_run_through_the_deployment_shows_in_the_ui(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    incident = incident_data()
    run_id = run_incident_deployment(stack.server, {"incident": incident})
    state = wait_for_final_state(stack, run_id)
    assert state == "Completed", f"flow run {run_id} ended {state}:\n{stack.worker_output()}"

    # The case, as the worker's run left it in amends' database, and its mail.
    database = Database(stack.amends_url)
    try:
        (line,) = list_cases(database)
        outcome = case_outcome(database, line.case_id)
    finally:
        database.dispose()
    assert (outcome.incident_ref, outcome.customer_ref) == ("INC-1001", "C-42")
    assert [stage.name for stage in outcome.stages][-1] == "reengage"
    sent = [m for m in outcome.messages if m.status == "sent"]
    assert sent, outcome.messages
    caught = [
        message_from_bytes(path.read_bytes(), policy=email_policy.default)
        for path in stack.mail.messages()
    ]
    assert len(caught) == len(sent)
    assert {message["To"].addresses[0].addr_spec for message in caught} == {"rk@example.com"}

    OUTPUT.mkdir(exist_ok=True)
    screenshot = OUTPUT / f"e2e-flow-run-{run_id}.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            # The UI a browser lands on (3.8.8 redirects / to its V2 UI), at the run's page.
            page.goto(f"{stack.server.url}/v2/runs/flow-run/{run_id}")
            # The run, by its name (the incident's ref), finished.
            expect(page.get_by_text("INC-1001", exact=True).first).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Completed", exact=True).first).to_be_visible()

            # Nothing personal left in the parameters: the incident's reference only.
            page.get_by_role("tab", name="Parameters").click()
            parameters = page.get_by_role("tabpanel")
            expect(parameters.get_by_text("INC-1001").first).to_be_visible()
            expect(parameters.get_by_text(incident["customer"]["email"])).to_have_count(0)
            expect(parameters.get_by_text(incident["summary"])).to_have_count(0)

            page.get_by_role("tab", name="Artifacts").click()
            artifact = page.get_by_role("tabpanel").get_by_text(
                f"case-{outcome.case_id}", exact=True
            )
            expect(artifact).to_be_visible()
        finally:
            # Also when a check fails: the picture shows what the UI showed instead.
            print(f"page: {page.url}")
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 0


def wait_for_log(stack: Stack, run_id: UUID, text: str) -> None:
    """Poll the server until the run's logs hold ``text``: a run posts its last logs as its
    process ends, which may be after its state changed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = stack.server.api(
            "POST", "/logs/filter", logs={"flow_run_id": {"any_": [str(run_id)]}}, limit=200
        )
        if any(text in log["message"] for log in logs):
            return
        time.sleep(0.5)
    pytest.fail(f"no log of flow run {run_id} says {text!r} after 60 s")


def wait_for_state(stack: Stack, run_id: UUID, done: Callable[[Any], bool], what: str) -> Any:
    """Poll the run until ``done(state)``; return the state, or fail with the worker's output."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline, state = time.monotonic() + RUN_TIMEOUT, None
    with (
        temporary_settings({PREFECT_API_URL: stack.server.api_url}),
        get_client(sync_client=True) as client,
    ):
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            if state is not None and done(state):
                return state
            time.sleep(0.5)
    pytest.fail(
        f"flow run {run_id} was not {what} after {RUN_TIMEOUT:.0f} s (state "
        f"{state.name if state else 'unknown'}).\nWorker output:\n{stack.worker_output()}"
    )


def run_named(stack: Stack, name: str) -> UUID:
    """The id of the flow run named ``name``, once the form has created it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = [r for r in stack.server.flow_runs("recover-incident") if r["name"] == name]
        if runs:
            return UUID(runs[0]["id"])
        time.sleep(0.2)
    pytest.fail(f"no flow run named {name} after submitting the form")


# Each view, and what it shows once the case is through: its ref, or the figures' chart.
shown = {
    "open-cases": "INC-5001",
    "staff-todos": re.compile(r"INC-5001|Nothing for staff\."),
    "approvals-waiting": "No approval waiting.",
    "messages-sent": "INC-5001",
    "recovery-figures": "Complaints by category",
}
VIEWS = tuple(shown)


def test_an_operator_files_in_the_custom_run_form_resumes_with_an_answer_and_reads_the_views(
    stack: Stack,
) -> None:
    """The README's walk-through, as an operator does it in the UI: the incident typed into the
    deployment's Custom run form, the run suspended for a manager (who is emailed), the answer
    typed into the Resume form, the run completed, and the views opened."""
    from playwright.sync_api import expect, sync_playwright

    # A standard customer (4,000 a year) in a critical failure: 1,765 is above the frontline
    # limit of 1,000, so a manager decides.
    incident = incident_data(
        ref="INC-5001",
        severity="critical",
        costs={"economic": 1400},
        customer={"ref": "C-5001", "annual_value": 4000},
    )
    deployment = stack.server.api("GET", "/deployments/name/recover-incident/recover-incident")
    ui = stack.server.url
    OUTPUT.mkdir(exist_ok=True)
    shots: list[tuple[Path, str]] = []

    def shot(page: Any, name: str, what: str) -> None:
        path = OUTPUT / f"ui-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append((path, what))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            # Deployments > recover-incident > Run > Custom run.
            page.goto(f"{ui}/v2/deployments/deployment/{deployment['id']}/run")
            page.get_by_text("Parameters", exact=True).wait_for(timeout=30_000)
            # The incident field opens on None (a run may give incident_ref instead): switch it
            # to an Incident, and type the incident into its fields as an operator would.
            page.get_by_text("Incident", exact=True).first.click()

            def type_in(field: Any, text: str) -> None:
                field.click()
                page.keyboard.press("Control+A")
                field.press_sequentially(text)

            def choose(name: str, value: str) -> None:
                page.get_by_label(f"Select {name}").click()
                page.get_by_role("option", name=value, exact=True).click()

            customer = incident["customer"]
            type_in(page.get_by_label("Ref", exact=True).nth(0), incident["ref"])
            choose("SocialCost", incident["costs"]["social"])
            type_in(page.get_by_label("Economic (Optional)"), "1400")
            choose("EmotionalCost", incident["costs"]["emotional"])
            costs = incident["costs"]
            type_in(page.get_by_label("Time Hours (Optional)"), str(costs["time_hours"]))
            choose("Fault", incident["fault"])
            choose("Channel", incident["channel"])
            type_in(page.get_by_label("Summary", exact=True), incident["summary"])
            choose("Category", incident["category"])
            type_in(page.get_by_label("Ref", exact=True).nth(1), customer["ref"])
            type_in(page.get_by_label("Name", exact=True), customer["name"])
            page.get_by_text("str", exact=True).first.click()  # Email: from None to text
            email = page.locator("label", has_text="Email (Optional)")
            type_in(email.locator("xpath=following::textarea[1]"), customer["email"])
            type_in(page.get_by_label("Annual Value (Optional)"), str(customer["annual_value"]))
            choose("Severity", incident["severity"])
            # Received At left empty: the complaint arrived now.
            shot(page, "1-custom-run-form", "the Custom run form with the incident typed in")
            page.get_by_role("button", name="Submit").click()
            submitted = time.monotonic()

            run_id = run_named(stack, "INC-5001")
            state = wait_for_state(stack, run_id, lambda s: s.is_paused(), "waiting")
            assert state.name == "Suspended"  # no worker held while it waits
            wait_for_log(stack, run_id, "Waiting for a manager's approval")
            page.goto(f"{ui}/v2/runs/flow-run/{run_id}")
            expect(page.get_by_text("Suspended", exact=True).first).to_be_visible(timeout=30_000)
            expect(
                page.get_by_text("Waiting for a manager's approval", exact=False).first
            ).to_be_visible()
            shot(page, "2-run-suspended", "the run Suspended, the question in its log")

            # ⋮ > Resume: the question on top, the answer typed in.
            page.get_by_role("button", name="Open menu").first.click()
            page.get_by_role("menuitem", name="Resume").click()
            dialog = page.get_by_role("dialog")
            expect(
                dialog.get_by_text("Case INC-5001: absorbing the customer's costs")
            ).to_be_visible()
            dialog.get_by_label("Approver").fill("")
            dialog.get_by_label("Approver").type("Maria Lopez")
            shot(page, "3-resume-form", "the Resume form: the question, the answer typed in")
            dialog.get_by_role("button", name="Resume").click()

            state = wait_for_state(stack, run_id, lambda s: s.is_final(), "finished")
            elapsed = time.monotonic() - submitted
            assert state.name == "Completed", stack.worker_output()
            print(
                f"form submitted to run completed (approval answered in between): {elapsed:.1f} s"
            )

            # Artifacts > a view's key > its latest version (the first in the list).
            for key in VIEWS:
                page.goto(f"{ui}/v2/artifacts/key/{key}")
                page.locator("a[href*='/artifacts/artifact/']").first.click()
                expect(page.get_by_text(shown[key]).first).to_be_visible(timeout=30_000)
                shot(page, f"4-{key}", f"the {key} view")
                if key == "messages-sent":
                    expect(page.get_by_text("r***@***").first).to_be_visible()  # masked
                    expect(page.get_by_text("rk@example.com")).to_have_count(0)
        finally:
            print(f"page: {page.url}")
            shot(page, "last", "the page when the test ended")
            browser.close()
    for path, what in shots:
        print(f"screenshot: {path} ({what})")

    database = Database(stack.amends_url)
    try:
        outcome = case_outcome(database, "INC-5001")
    finally:
        database.dispose()
    assert (outcome.approval.status, outcome.approval.approver) == ("approved", "Maria Lopez")
    assert outcome.offer.value == 1765
    caught = [
        message_from_bytes(path.read_bytes(), policy=email_policy.default)
        for path in stack.mail.messages()
    ]
    (notice,) = [m for m in caught if m["To"] == MANAGER]
    assert notice["Subject"] == "Approval needed: case INC-5001"
    assert f"/runs/flow-run/{run_id}" in notice.get_body(("plain",)).get_content()
