"""How well amends recognises a complaint: precision, recall and F1 (complaint class) of the
monitor's recogniser on the repository's test split, overall and per language, and the mean
time it takes a post.

The test split (tests/data/complaints_test_split.csv; how it was made is in
amends/listening/model/README.md) holds 297 customers' tweets from the Twitter customer-support
sample and 90 Spanish posts written for the project, each labelled by a person. No training
step reads that file: the model learns from amends/listening/model/labelled_posts.csv only.

Run: .venv/bin/python bench/complaints.py
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from amends.listening.mentions import read_post
from amends.listening.recogniser import Confusion
from amends.recovery.policy import load_policy

TEST_SPLIT = Path(__file__).resolve().parent.parent / "tests" / "data" / "complaints_test_split.csv"
ROUNDS = 5  # the timing reads the split this many times, for a steadier mean


def main() -> int:
    figures = load_policy().listening
    with TEST_SPLIT.open(encoding="utf-8", newline="") as handle:
        posts = [(row["text"], row["label"] == "1", row["lang"]) for row in csv.DictReader(handle)]
    read_post("warm up: the model and VADER's lexicon load once", figures)
    by_lang: dict[str, Confusion] = {}
    overall = Confusion()
    for text, wanted, lang in posts:
        said = read_post(text, figures).complaint
        overall = overall.add(said, wanted)
        by_lang[lang] = by_lang.get(lang, Confusion()).add(said, wanted)
    readings = ROUNDS * len(posts)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(ROUNDS):
        for text, _, _ in posts:
            read_post(text, figures)
    per_post = (time.perf_counter() - started) / readings * 1000
    cpu_per_post = (time.process_time() - cpu) / readings * 1000
    print(f"test split: {TEST_SPLIT.name}")
    for name, c in [("all", overall), *sorted(by_lang.items())]:
        print(
            f"{name:>5}: {c.total:3d} posts, {c.true_positives + c.false_negatives:3d} complaints  "
            f"precision {c.precision:.3f}  recall {c.recall:.3f}  F1 {c.f1:.3f}  "
            f"accuracy {c.accuracy:.3f}"
        )
    # Wall time is what a run waits; CPU time is the recogniser's own cost, the steadier figure
    # on a machine other work shares (compare the load average).
    print(
        f"mean time per post {per_post:.3f} ms wall, {cpu_per_post:.3f} ms CPU "
        f"({readings} readings; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
