"""Recovering incidents from a terminal: one, saying when its run waits for a manager and
answering for the demo; and the demo's sample incidents, end to end, on this machine.

A local mail catcher stands in for the mail server in the demo, so nothing leaves the machine
and every email can be read under ``<home>/mail``. Running the demo again resumes the same
cases and sends nothing twice. Imported only by the commands that run: it imports the core.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from amends import runner
from amends.business import EXAMPLE_FILE
from amends.delivery.mailcatcher import MailCatcher
from amends.domain import Incident, spoken
from amends.listening.mentions import PublicPost, record_posts
from amends.recovery.approvals import PENDING, ApprovalRequest, decide, find_request
from amends.recovery.intake import validate_incident
from amends.reporting.casebook import CaseOutcome
from amends.runtime import Runtime, use_runtime
from amends.settings import Settings
from amends.storage import models

SAMPLES = files("amends") / "samples"


def sample_incidents() -> list:
    """The demo's incidents: email, voicemail, letter, social, web form, in person, and a customer
    let down a second time."""
    return [
        validate_incident(item) for item in json.loads((SAMPLES / "incidents.json").read_text())
    ]


def sample_posts() -> list[PublicPost]:
    return [
        PublicPost.model_validate(item)
        for item in json.loads((SAMPLES / "mentions.json").read_text())
    ]


DEMO_MANAGER = "Demo manager"


def run_demo(
    home: Path | None, *, out: Console, err: Console, wait_for_approval: bool = False
) -> list[CaseOutcome]:
    """Run every sample incident through the recover-incident flow and print a summary.

    One sample's offer is above the frontline limit, so its run pauses for a manager; the demo
    answers as "Demo manager" unless ``wait_for_approval``, when it waits for yours (the
    Prefect UI's Resume form, or ``amends approve`` in another terminal).
    """
    base = Settings() if home is None else Settings(home=home)
    started = time.perf_counter()
    with MailCatcher(base.mail_dir) as catcher:
        # The demo never sends real mail, whatever AMENDS_SMTP_* say.
        settings = base.model_copy(
            update={
                # The demo is the sample business, whatever profile `amends init` wrote.
                "business_file": EXAMPLE_FILE,
                "smtp_host": catcher.host,
                "smtp_port": catcher.port,
                "smtp_password": None,
                "smtp_ssl": False,
                "smtp_starttls": False,
            }
        )
        rt = Runtime.from_settings(settings)
        use_runtime(rt)
        record_posts(rt.db, sample_posts(), rt.policy.listening, rt.settings.social_handles)
        already = len(catcher.messages())
        incidents = sample_incidents()
        err.print(
            f"Data folder: {settings.home}\nMail catcher: SMTP on {catcher.host}:{catcher.port}, "
            f"saving to {settings.mail_dir}",
            highlight=False,
        )
        outcomes = []
        with err.status("Starting Prefect (a first run takes about 15 s)…") as status:
            for number, incident in enumerate(incidents, start=1):
                status.update(
                    f"[{number}/{len(incidents)}] {incident.ref}: {incident.channel.value} "
                    f"complaint from {incident.customer.name}…"
                )
                outcomes.append(
                    run_answering_approval(
                        rt, incident, runner.run_incident, err, wait_for_approval
                    )
                )
        sent = len(catcher.messages()) - already
    use_runtime(None)
    _print_summary(out, outcomes, settings, sent, time.perf_counter() - started)
    return outcomes


def run_answering_approval(
    rt: Runtime,
    incident: Incident,
    run_incident: Callable[[Incident], CaseOutcome],
    err: Console,
    wait: bool,
    leave: bool = False,
) -> CaseOutcome | ApprovalRequest:
    """Run one incident; if its run pauses for a manager, say so, and answer as the demo's
    manager unless ``wait`` (then the answer comes from the UI or ``amends approve``).

    With ``leave``, return the request at once instead: the run is cancelled (it lives in this
    process, which is about to end) and the case waits; once answered, filing the incident
    again finishes it."""
    result: dict[str, CaseOutcome | BaseException] = {}

    def run() -> None:
        try:
            result["outcome"] = run_incident(incident)
        except BaseException as error:  # re-raised in the demo's own thread
            result["error"] = error

    worker = threading.Thread(target=run, name=f"demo-{incident.ref}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        waiting = _paused_for_approval(rt, incident.ref)
        if waiting is None:
            continue
        if leave:
            runner.set_aside(waiting.flow_run_id, incident.ref)
            return waiting
        where = (
            "In the Prefect UI, open the run and press Resume; or from"
            if os.environ.get("PREFECT_API_URL")
            else "From"
        )
        err.print(
            f"\n[bold yellow]{incident.ref} is Paused[/], waiting for a manager: "
            f"{escape(waiting.question)}\n  {where} another terminal: "
            f"[bold]amends approve {incident.ref} --by NAME[/] (--amount N, --decline).",
            highlight=False,
        )
        if wait:
            err.print(f"  Waiting for the answer until {waiting.due_at:%H:%M} UTC…")
        else:
            decide(
                rt,
                waiting.case_id,
                approve=True,
                approver=DEMO_MANAGER,
                reason="The demo approves what absorbs the customer's costs.",
            )
            err.print(f"  The demo answers as {DEMO_MANAGER!r}: approved; the run resumes.")
        worker.join()
    if "error" in result:
        raise result["error"]
    return result["outcome"]


def _paused_for_approval(rt: Runtime, ref: str) -> ApprovalRequest | None:
    """The approval a run of this incident is paused for, once the run has paused."""
    with rt.db.session() as session:
        case_id = session.scalar(
            select(models.Approval.case_id)
            .join(models.Case, models.Case.id == models.Approval.case_id)
            .join(models.Incident, models.Incident.id == models.Case.incident_id)
            .where(
                models.Incident.ref == ref,
                models.Approval.status == PENDING,
                models.Approval.flow_run_id.is_not(None),
            )
        )
        return find_request(session, case_id) if case_id else None


def _print_summary(
    out: Console, outcomes: list[CaseOutcome], settings: Settings, sent: int, seconds: float
) -> None:
    table = Table(
        "customer",
        "complained by",
        "decision",
        "reply by",
        "sent / queued for staff",
        "check-ins",
        title=f"{len(outcomes)} incidents recovered in {seconds:.0f} s",
        title_justify="left",
    )
    for o in outcomes:
        done = [f"{spoken(m.kind)} by {m.channel}: {spoken(m.status)}" for m in o.messages] + [
            f"{a.role}: {spoken(a.kind)}" for a in o.staff_actions if a.role != "team"
        ]
        table.add_row(
            f"{o.customer_name} ({o.incident_ref})",
            spoken(o.complaint_channel),
            spoken(o.decision),
            o.reply_channel,
            "\n".join(done) or "-",
            str(len(o.checkins)) if o.checkins else "-",
        )
    out.print(table)
    out.print(
        "\n[bold]Where to look next[/]\n"
        f"  • The emails, as .eml files ({sent} sent in this run): {settings.mail_dir}\n"
        f"  • Letters to print: {settings.letters_dir}\n"
        "  • Every case: [bold]amends cases[/]; one case's timeline, call scripts and work "
        f"for staff: [bold]amends case {outcomes[0].incident_ref if outcomes else 'REF'}[/]\n"
        + (
            f"  • The runs in the Prefect UI: {api.removesuffix('/api')}"
            if (api := os.environ.get("PREFECT_API_URL"))
            else "  • The runs in the Prefect UI: [bold]amends server start[/], then the demo "
            "again: its runs show at the address it prints, and every command starts quicker"
        ),
        highlight=False,
    )
