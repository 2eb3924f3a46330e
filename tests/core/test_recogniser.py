"""The complaint recogniser: its model ships with the package and is what the data gives, it
hears complaints worded flatly, as questions or in Spanish, says why, and `amends listening
evaluate` measures it on a business's own labelled posts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amends.cli import app
from amends.listening import training
from amends.listening.mentions import read_post
from amends.listening.recogniser import model_path
from amends.recovery.policy import load_policy

FIGURES = load_policy().listening


def test_the_shipped_model_is_what_the_training_posts_give() -> None:
    assert model_path().is_file()
    assert training.main(["--check"]) == 0


def test_training_never_reads_the_test_split() -> None:
    with training.LABELLED.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    splits = {row["split"] for row in rows}
    train = {row["tweet_id"] for row in rows if row["split"] == "train"}
    test = {row["tweet_id"] for row in rows if row["split"] == "test"}
    assert splits == {"train", "test"} and len(rows) == len(train) + len(test)
    assert len(training.labelled_posts()) == len(train) and len(test) == 300


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        ("@acme I am not able to log in to my account since the update", True),
        ("@acme how do I reach someone about my order? it never arrived", True),
        ("@acme mi pedido no ha llegado y nadie responde, pésimo servicio", True),
        ("@acme thank you so much, the new crew is lovely!", False),
        ("@acme what time do you open on Sunday?", False),
    ],
)
def test_complaints_are_heard_with_a_reason(words: str, complaint: bool) -> None:
    reading = read_post(words, FIGURES)
    assert reading.complaint is complaint
    assert reading.reasons and reading.why().startswith(
        "complaint (" if complaint else "not a complaint ("
    )


def test_the_policy_threshold_decides(tmp_path: Path) -> None:
    words = "@acme my parcel is late"
    probability = read_post(words, FIGURES).probability
    strict = FIGURES.model_copy(update={"complaint_threshold": min(1.0, probability + 0.01)})
    lenient = FIGURES.model_copy(update={"complaint_threshold": max(0.0, probability - 0.01)})
    assert not read_post(words, strict).complaint and read_post(words, lenient).complaint


def evaluate(path: Path, text: str) -> tuple[int, str]:
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["listening", "evaluate", str(path)])
    return result.exit_code, result.output


def test_evaluate_prints_the_confusion_and_the_scores_last(tmp_path: Path) -> None:
    code, output = evaluate(
        tmp_path / "posts.csv",
        "lang,text,label\n"
        'en,"@acme my order never arrived, still waiting for a refund",1\n'
        "en,@acme thank you so much for the lovely service,0\n"
        'es,"@acme mi pedido no ha llegado, pésimo servicio",1\n'
        "en,@acme what a great day with you all,1\n",
    )
    assert code == 0, output
    assert "true positives: 2  false positives: 0  false negatives: 1  true negatives: 1" in output
    assert output.strip().splitlines()[-1] == (
        "precision=1.000 recall=0.667 f1=0.800 accuracy=0.750"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"@acme late again",1\n', "header with the columns text and label (missing: label, text)"),
        ("text,lang\nhello,en\n", "(missing: label)"),
        ("text,label\nhello,yes\n", "line 2: label must be 1 (a complaint) or 0"),
        ("text,label\n", "has no labelled posts"),
    ],
)
def test_evaluate_refuses_bad_input_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    code, output = evaluate(tmp_path / "posts.csv", text)
    assert code == 1
    assert message in " ".join(output.split()) and len(output.strip().splitlines()) <= 2
