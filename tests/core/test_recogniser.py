"""The complaint recogniser: its model ships with the package and is what the data gives, it
hears complaints worded flatly, as questions or in Spanish, says why, and `amends listening
evaluate` measures it on a business's own labelled posts."""

from __future__ import annotations

import csv
import re
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amends.cli import app
from amends.listening import training
from amends.listening.mentions import read_post
from amends.listening.recogniser import ComplaintModel, model_path, shipped_model
from amends.recovery.policy import load_policy

FIGURES = load_policy().listening


TEST_SPLIT = Path(__file__).resolve().parent.parent / "data" / "complaints_test_split.csv"


def test_the_shipped_model_is_what_the_training_posts_give_and_never_the_test_split() -> None:
    opened: list[str] = []

    def watch(event: str, args: tuple) -> None:
        if event == "open" and recording and isinstance(args[0], str | Path):
            opened.append(str(Path(args[0]).resolve()))

    recording = True
    sys.addaudithook(watch)  # sees every file the rebuild opens, whoever opens it
    try:
        assert model_path().is_file()
        assert training.main(["--check"]) == 0
    finally:
        recording = False
    assert str(training.LABELLED) in opened
    assert str(TEST_SPLIT.resolve()) not in opened


def posts(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_test_split_shares_no_post_with_the_training_posts() -> None:
    def key(row: dict[str, str]) -> str:
        return " ".join(row["text"].split()).lower()

    train, test = posts(training.LABELLED), posts(TEST_SPLIT)
    assert not {key(r) for r in train} & {key(r) for r in test}
    sources = [r["source"] for r in train + test if r["source"] != "written"]
    assert len(sources) == len(set(sources))  # each real tweet is in one split, once
    assert {r["lang"] for r in test} >= {"en", "es"}
    assert all(r["label"] in {"0", "1"} for r in train + test)


def test_the_shipped_model_loads_and_decides_without_a_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the recogniser tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    shipped_model.cache_clear()
    try:
        assert read_post("@acme my refund never came", FIGURES).complaint
    finally:
        shipped_model.cache_clear()


def test_a_model_of_another_format_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="rebuild it with python -m amends.listening.training"):
        ComplaintModel.from_json('{"format": 1, "threshold": 0.5, "weights": {"w:late": 1.0}}')


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        ("@acme I am not able to log in to my account since the update", True),
        ("@acme how do I reach someone about my order? it never arrived", True),
        ("@acme charged twice for one ticket and nobody answers", True),
        ("@acme mi pedido no ha llegado y nadie responde, pésimo servicio", True),
        ("@acme ¿cómo hablo con alguien? me cobraron dos veces la factura", True),
        ("@acme thank you so much, the new crew is lovely!", False),
        ("@acme what time do you open on Sunday?", False),
        ("@acme muchas gracias por la ayuda, todo perfecto", False),
        ("@acme ¿a qué hora abre la tienda el domingo?", False),
    ],
)
def test_obvious_posts_are_decided_with_the_words_that_weighed(words: str, complaint: bool) -> None:
    reading = read_post(words, FIGURES)
    assert reading.complaint is complaint
    assert reading.why().startswith("complaint (" if complaint else "not a complaint (")
    # Each reason pushes towards the decision, and at least one is a word of the post.
    pushes = [float(reason.rsplit(" ", 1)[1]) for reason in reading.reasons]
    assert pushes and all((p > 0) is complaint for p in pushes)
    quoted = [m for reason in reading.reasons for m in re.findall(r'"([^"]+)"', reason)]
    assert quoted and all(
        all(w in words.lower() or w == "@mention" for w in q.split()) for q in quoted
    )


def test_a_huge_word_is_named_by_its_start() -> None:
    reading = read_post("@acme " + "awful" * 2_000 + " service", FIGURES)
    long_one = [r for r in reading.reasons if r.startswith('"awfulawful')]
    assert long_one and len(long_one[0]) < 45 and "…" in long_one[0]
    assert len(reading.why()) < 150


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


def test_evaluate_on_the_repository_s_test_split_ends_with_the_scores() -> None:
    result = CliRunner().invoke(app, ["listening", "evaluate", str(TEST_SPLIT)])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    found = re.fullmatch(
        r"precision=(\d\.\d{3}) recall=(\d\.\d{3}) f1=(\d\.\d{3}) accuracy=(\d\.\d{3})", last
    )
    assert found, last
    # The recogniser the package ships meets the floor on posts it never saw.
    assert float(found.group(3)) >= 0.80


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
