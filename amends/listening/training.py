"""Rebuild the complaint recogniser's model from the labelled posts in the repository.

    python -m amends.listening.training          # writes amends/listening/model/complaints.json
    python -m amends.listening.training --check  # exit 1 unless a rebuild gives the same bytes

Only the rows of ``labelled_posts.csv`` whose split is ``train`` are read: the ``test`` rows
are what ``bench/complaints.py`` measures on, and no step here sees them. The fit is a plain
logistic regression by stochastic gradient descent (fixed seed, rows sorted by id, features
sorted, weights rounded), so the same data gives the same file on any machine. The classes
are weighted to balance, so the threshold of 0.5 does not depend on how many complaints the
training posts happened to hold.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from collections import Counter
from pathlib import Path

from amends.listening.mentions import post_features
from amends.listening.recogniser import ComplaintModel, model_path
from amends.recovery.policy import ListeningFigures, load_policy

LABELLED = Path(__file__).resolve().parent / "model" / "labelled_posts.csv"
SEED = 19
EPOCHS = 25
RATE = 0.5
L2 = 1e-4
MIN_POSTS = 2  # a feature seen in fewer training posts is left out: it cannot generalise


def labelled_posts(path: Path = LABELLED, split: str = "train") -> list[tuple[str, int]]:
    """``(text, label)`` of one split, sorted by post id."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    rows.sort(key=lambda row: int(row["tweet_id"]))
    return [(row["text"], int(row["label"])) for row in rows]


def fit(
    examples: list[tuple[dict[str, float], int]], seed: int = SEED, epochs: int = EPOCHS
) -> dict[str, float]:
    """Logistic regression weights, by SGD with L2 and balanced class weights."""
    counts = Counter(label for _, label in examples)
    balance = {label: len(examples) / (2 * n) for label, n in counts.items()}
    weights: dict[str, float] = {}
    order = list(range(len(examples)))
    shuffler = random.Random(seed)
    for epoch in range(epochs):
        shuffler.shuffle(order)
        rate = RATE / (1 + epoch)
        for index in order:
            vector, label = examples[index]
            score = sum(weights.get(name, 0.0) * value for name, value in vector.items())
            predicted = 1 / (1 + math.exp(-max(-30.0, min(30.0, score))))
            step = rate * balance[label] * (predicted - label)
            for name in sorted(vector):
                old = weights.get(name, 0.0)
                weights[name] = old - step * vector[name] - rate * L2 * old
    return weights


def build(path: Path = LABELLED, figures: ListeningFigures | None = None) -> ComplaintModel:
    """The model the training posts give."""
    figures = figures or load_policy().listening
    vectors = [(post_features(text, figures)[0], label) for text, label in labelled_posts(path)]
    seen = Counter(name for vector, _ in vectors for name in vector)
    kept = [
        ({k: v for k, v in vector.items() if seen[k] >= MIN_POSTS}, label)
        for vector, label in vectors
    ]
    return ComplaintModel(weights=fit(kept), threshold=0.5)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    built = build().to_json()
    target = model_path()
    if "--check" in argv:
        same = target.read_text(encoding="utf-8") == built
        print("the shipped model is what the data gives" if same else f"{target} differs")
        return 0 if same else 1
    target.write_text(built, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
