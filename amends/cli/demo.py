"""``amends demo``: sample incidents on every complaint channel, end to end, on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amends.cli._app import VerboseFlag, app, err, friendly, out, start_prefect

PANEL = "Try it"


@app.command(rich_help_panel=PANEL)
@friendly
def demo(
    home: Annotated[
        Path | None,
        typer.Option(help="Data folder for the demo (default: AMENDS_HOME, else ./var)."),
    ] = None,
    wait_for_approval: Annotated[
        bool,
        typer.Option(
            "--wait-for-approval",
            help="Leave the offer that needs a manager to you (the Prefect UI's Resume form, or "
            "`amends approve` in another terminal) instead of approving it as the demo.",
        ),
    ] = False,
    verbose: VerboseFlag = False,
) -> None:
    """Run sample incidents end to end, with a local mail catcher; asks nothing, sends nothing out.

    Mail goes to a real SMTP server on 127.0.0.1 that saves each message under the data
    folder's mail/ folder. One run pauses for a manager's approval of a large offer.
    """
    from amends.cli._recover import run_demo

    start_prefect(verbose, home)
    run_demo(home, out=out, err=err, wait_for_approval=wait_for_approval)
