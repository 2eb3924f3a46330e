"""Messages: preview and check the templates, send the outbox, opt-outs, a local mail catcher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from amends import runner
from amends.cli._app import (
    EXIT_QUEUED,
    app,
    err,
    fail,
    friendly,
    out,
    runtime,
    templates_app,
)

if TYPE_CHECKING:
    from amends.delivery.outbox import DrainReport

PANEL = "Messages"


@app.command(rich_help_panel=PANEL)
@friendly
def preview(
    kind: Annotated[str, typer.Argument(help="Message kind: apology, offer, thank_you, …")],
    channel: Annotated[
        str, typer.Option(help="email, letter, phone, sms, chat, visit, social.")
    ] = "email",
    locale: Annotated[
        str | None, typer.Option(help="en or es; the case customer's by default.")
    ] = None,
    case_ref: Annotated[
        str | None, typer.Option("--case", help="Use a real case's data instead of sample data.")
    ] = None,
) -> None:
    """Show a message as it would go out, before it does."""
    from amends.domain import MessageKind, ReplyChannel
    from amends.messages.catalogue import FORMS, case_context, render_message, sample_context
    from amends.reporting.casebook import find_case

    if kind not in set(MessageKind):
        raise fail(f"no message kind {kind!r}; the kinds: {', '.join(k.value for k in FORMS)}")
    message_kind = MessageKind(kind)
    ways = ", ".join(c.value for c in FORMS[message_kind])
    if channel not in set(ReplyChannel) or ReplyChannel(channel) not in FORMS[message_kind]:
        raise fail(f"{kind} is not written for {channel}; it goes by {ways}")
    reply_channel = ReplyChannel(channel)
    rt = runtime()
    if case_ref is None:
        language = locale or "en"
        context = sample_context(rt.settings, locale=language)
    else:
        with rt.db.session() as session:
            found = find_case(session, case_ref)
            context = case_context(session, found, rt.settings)
            language = locale or found.customer.locale
    rendered = render_message(rt.templates, message_kind, reply_channel, language, context)
    if rendered.subject:
        out.print(f"[bold]Subject:[/] {rendered.subject}", highlight=False)
    out.print(f"[dim]{kind}.{channel} in {rendered.locale}[/]\n", highlight=False)
    out.print(rendered.body, markup=False, highlight=False)


@templates_app.command("check")
@friendly
def templates_check() -> None:
    """Render every message kind, channel and locale with sample data; exit 1 on any problem,
    a missing translation included."""
    from amends.messages.catalogue import FORMS, LOCALES, check_templates

    rt = runtime()
    problems = check_templates(rt.templates, rt.settings)
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", highlight=False)
    total = sum(len(channels) for channels in FORMS.values()) * len(LOCALES)
    if problems:
        raise fail(f"{len(problems)} of {total} messages have problems")
    out.print(f"All {total} messages render in {', '.join(LOCALES)}.")


@app.command(rich_help_panel=PANEL)
@friendly
def send(
    now: Annotated[
        bool, typer.Option("--now", help="Also try messages still pausing after a failure.")
    ] = False,
) -> None:
    """Deliver the queued mail of every case.

    What failed for a while, or was left half-sent by a sender that stopped. Each message goes
    out once; run it from cron as often as you like (the nightly run does it too). Exits with 3
    when mail stays queued: to be retried, or still pausing after a failure.
    """
    from datetime import timedelta

    from amends.delivery.outbox import drain, queued_messages
    from amends.storage.models import utcnow

    rt = runtime()
    if rt.settings.smtp_block:  # credentials kept in Prefect: read them the tasks' way
        rt = runner.task_runtime()
    total = len(queued_messages(rt.db, due_by=None if now else utcnow()))
    with err.status(f"Sending {total} queued message(s)…") as status:
        done = 0

        def progress(_: object) -> None:
            nonlocal done
            done += 1
            status.update(f"Sending queued messages: {done} of {total}…")

        report = drain(
            rt.db,
            rt.channels,
            claim_timeout=timedelta(seconds=rt.settings.claim_timeout_seconds),
            due_only=not now,
            on_each=progress,
        )
    again = (
        f" {report.requeued} half-sent by a stopped sender went again." if report.requeued else ""
    )
    out.print(sending_line(report, now=now) + again, markup=False, highlight=False)
    if report.retrying or report.failed or report.waiting:
        raise typer.Exit(EXIT_QUEUED)


def sending_line(report: DrainReport, *, now: bool = False) -> str:
    """What a pass over the outbox did, every message counted once: sent, tried and to be
    retried, failed, handed to staff, and still waiting in the queue untried."""
    line = f"Sent {report.sent}; {report.retrying} failed for now and will be retried"
    if report.failed:
        line += f"; {report.failed} failed for good"
    if report.to_staff:
        line += f"; {report.to_staff} handed to staff (`amends actions`)"
    if report.withheld:
        line += f"; {report.withheld} withheld (no consent)"
    if report.waiting:
        later = "" if now else " (`amends send --now` tries them now)"
        line += (
            f"; {report.waiting} still queued, pausing after a failure or behind an earlier "
            f"message of their case{later}"
        )
    return line + "."


@app.command(rich_help_panel=PANEL)
@friendly
def unsubscribe(
    address: Annotated[str, typer.Argument(help="An email address or a phone number (+...).")],
    everything: Annotated[
        bool,
        typer.Option("--all", help="Nothing at all, not just win-back offers (e.g. a complaint)."),
    ] = False,
) -> None:
    """Stop win-back offers to an address (or, with --all, every nightly message)."""
    from amends.delivery.consent import suppress

    scope = "all" if everything else "marketing"
    new = suppress(runtime().db, address, scope=scope, reason="opt_out")
    what = "any nightly message" if everything else "win-back offers"
    state = "now gets no" if new else "already got no"
    out.print(f"{address.strip()} {state} {what}.", markup=False, highlight=False)


@app.command(rich_help_panel=PANEL)
@friendly
def mailcatcher(
    port: Annotated[int, typer.Option(help="Port to listen on, on 127.0.0.1.")] = 8025,
) -> None:
    """Run a local mail catcher on 127.0.0.1 until Ctrl-C.

    An SMTP server that keeps every message as an .eml file in the data folder's mail/ folder;
    amends sends to 127.0.0.1:8025 unless AMENDS_SMTP_HOST and AMENDS_SMTP_PORT say otherwise.
    """
    import time

    from amends.delivery.mailcatcher import MailCatcher
    from amends.settings import Settings

    settings = Settings()
    with MailCatcher(settings.mail_dir, port=port):
        err.print(f"Catching mail on 127.0.0.1:{port} into {settings.mail_dir}; Ctrl-C stops.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
