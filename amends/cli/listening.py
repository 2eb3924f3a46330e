"""``amends listening``: measure the complaint recogniser on your own labelled posts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amends.cli._app import app, friendly, out

listening_app = typer.Typer(
    help="The complaint recogniser the monitor uses: measure it on your own posts.",
    no_args_is_help=True,
)
app.add_typer(listening_app, name="listening", rich_help_panel="Scheduled work")


@listening_app.command()
@friendly
def evaluate(
    file: Annotated[
        Path,
        typer.Argument(
            help="A CSV with a header row and the columns text and label (1 a complaint, 0 "
            "not; an optional lang)."
        ),
    ],
) -> None:
    """Run the monitor's recogniser (your policy's cues and threshold) over labelled posts
    and print how often it agrees: the confusion counts, then precision, recall, F1 (of the
    complaint class) and accuracy."""
    from amends.listening.mentions import evaluate_labelled
    from amends.recovery.policy import load_policy
    from amends.settings import Settings

    figures = load_policy(Settings().policy_file).listening
    c = evaluate_labelled(file, figures)
    out.print(f"posts: {c.total}, complaints: {c.true_positives + c.false_negatives}")
    out.print(
        f"true positives: {c.true_positives}  false positives: {c.false_positives}  "
        f"false negatives: {c.false_negatives}  true negatives: {c.true_negatives}",
        highlight=False,
    )
    out.print(c.scores(), highlight=False)
