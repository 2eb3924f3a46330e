"""Rebuild the complaint recogniser's model from the labelled posts in the repository.

    python -m amends.listening.training           # writes amends/listening/model/complaints.json
    python -m amends.listening.training --check   # exit 1 unless a rebuild gives the same bytes
    python -m amends.listening.training --search  # the cross-validation that chose L2, THRESHOLD

Training reads ``model/labelled_posts.csv`` and nothing else: the posts the recogniser is
measured on (``tests/data/complaints_test_split.csv``, read by ``bench/complaints.py``) are in
another file that no step here opens. The fit is a plain logistic regression by stochastic
gradient descent (fixed seed, rows in file order, weights rounded), so the same data gives the
same file on any machine. The classes are weighted to balance, and the threshold and the L2
strength are the ones five-fold cross-validation on the training posts liked best
(``--search`` prints the table).
"""

from __future__ import annotations

import csv
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from amends.listening.mentions import post_features
from amends.listening.recogniser import ComplaintModel, Confusion, bucket, model_path
from amends.recovery.policy import ListeningFigures, load_policy

LABELLED = Path(__file__).resolve().parent / "model" / "labelled_posts.csv"
SEED = 19
EPOCHS = 12
RATE = 0.5
# Chosen by ``--search`` (five-fold cross-validation on the training posts only).
L2 = 3e-3
THRESHOLD = 0.4
MIN_POSTS = 2  # a feature slot seen in fewer training posts is left out: it cannot generalise
FOLDS = 5
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
TIE = 0.005  # F1 differences smaller than this are noise on a few thousand posts
THRESHOLD_GRID = tuple(round(0.30 + 0.025 * i, 3) for i in range(17))  # 0.30 .. 0.70

Example = tuple[list[tuple[int, float]], int]


def labelled_posts(path: Path = LABELLED) -> list[tuple[str, int]]:
    """``(text, label)`` of a labelled CSV (a header with ``text`` and ``label``), in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    bad = [i for i, row in enumerate(rows, start=2) if row.get("label") not in {"0", "1"}]
    if bad:
        raise ValueError(f"{path} line {bad[0]}: label must be 0 or 1")
    return [(row["text"], int(row["label"])) for row in rows]


def hashed(text: str, figures: ListeningFigures) -> list[tuple[int, float]]:
    """A post as the model's slots see it (features sharing a slot add up), slot order."""
    slots: dict[int, float] = {}
    for name, value in post_features(text, figures)[0].items():
        slot = bucket(name)
        slots[slot] = slots.get(slot, 0.0) + value
    return sorted(slots.items())


def fit(examples: Sequence[Example], l2: float = L2, seed: int = SEED) -> dict[int, float]:
    """Logistic regression weights by SGD, with L2 and balanced class weights. Slots seen in
    fewer than ``MIN_POSTS`` of these posts stay at zero."""
    seen = Counter(slot for items, _ in examples for slot, _ in items)
    kept = [
        ([(s, v) for s, v in items if seen[s] >= MIN_POSTS], label) for items, label in examples
    ]
    counts = Counter(label for _, label in kept)
    balance = {label: len(kept) / (2 * n) for label, n in counts.items()}
    weights = [0.0] * (max(seen, default=0) + 1)
    order = list(range(len(kept)))
    shuffler = random.Random(seed)
    for epoch in range(EPOCHS):
        shuffler.shuffle(order)
        rate = RATE / (1 + epoch)
        decay = 1 - rate * l2
        for index in order:
            items, label = kept[index]
            score = sum(weights[s] * v for s, v in items)
            predicted = 1 / (1 + math.exp(-max(-30.0, min(30.0, score))))
            step = rate * balance[label] * (predicted - label)
            for s, v in items:
                weights[s] = weights[s] * decay - step * v
    return {s: w for s, w in enumerate(weights) if w}


def build(path: Path = LABELLED, figures: ListeningFigures | None = None) -> ComplaintModel:
    """The model the training posts give."""
    figures = figures or load_policy().listening
    examples = [(hashed(text, figures), label) for text, label in labelled_posts(path)]
    return ComplaintModel(weights=fit(examples), threshold=THRESHOLD)


def _probability(weights: dict[int, float], items: list[tuple[int, float]]) -> float:
    score = sum(weights.get(s, 0.0) * v for s, v in items)
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, score))))


def search(path: Path = LABELLED, figures: ListeningFigures | None = None) -> list[str]:
    """Five-fold cross-validation over ``L2_GRID`` and ``THRESHOLD_GRID`` on the training posts:
    a line per pair (scores pooled over the held-out folds), the choice last: the best F1, and
    among pairs within ``TIE`` of it the most accurate, which leans less on how many
    complaints the training posts happen to hold."""
    figures = figures or load_policy().listening
    examples = [(hashed(text, figures), label) for text, label in labelled_posts(path)]
    order = list(range(len(examples)))
    random.Random(SEED).shuffle(order)
    fold_of = {index: k % FOLDS for k, index in enumerate(order)}
    lines: list[str] = []
    scored: list[tuple[Confusion, float, float]] = []
    for l2 in L2_GRID:
        held_out: list[tuple[float, int]] = []
        for fold in range(FOLDS):
            train = [e for i, e in enumerate(examples) if fold_of[i] != fold]
            weights = fit(train, l2=l2)
            held_out += [
                (_probability(weights, items), label)
                for i, (items, label) in enumerate(examples)
                if fold_of[i] == fold
            ]
        for threshold in THRESHOLD_GRID:
            confusion = Confusion()
            for probability, label in held_out:
                confusion = confusion.add(probability >= threshold, bool(label))
            scored.append((confusion, l2, threshold))
            lines.append(f"l2={l2:g} threshold={threshold:.3f} {confusion.scores()}")
    top = max(c.f1 for c, _, _ in scored)
    chosen, l2, threshold = max(
        (s for s in scored if s[0].f1 >= top - TIE), key=lambda s: (s[0].accuracy, s[0].f1)
    )
    lines.append(f"chosen: l2={l2:g} threshold={threshold:.3f} {chosen.scores()}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--search" in argv:
        for line in search():
            print(line, flush=True)
        return 0
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
