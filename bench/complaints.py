"""How well amends recognises a complaint: precision, recall and F1 (complaint class) of the
monitor's recogniser on the test split of the repository's labelled posts, and the time it
takes a post.

The posts (amends/listening/model/labelled_posts.csv, with their provenance in the README
there) are customers' tweets from the shared Twitter customer-support sample, each labelled by
a person reading it: 1 when the author reports something the business got wrong or that does
not work for them, or says they are unhappy with it (in any language); 0 for questions without
a problem, thanks, chat and praise. The model is trained on the ``train`` rows only; this
measures the ``test`` rows, which no training step reads.

Run: .venv/bin/python bench/complaints.py
"""

from __future__ import annotations

import sys
import time

from amends.listening.mentions import read_post
from amends.listening.recogniser import Confusion
from amends.listening.training import labelled_posts
from amends.recovery.policy import load_policy


def main() -> int:
    figures = load_policy().listening
    posts = labelled_posts(split="test")
    read_post("warm up: the model and VADER's lexicon load once", figures)
    confusion = Confusion()
    started = time.perf_counter()
    for text, label in posts:
        confusion = confusion.add(read_post(text, figures).complaint, bool(label))
    per_post = (time.perf_counter() - started) / len(posts) * 1000
    c = confusion
    print(f"test split: {c.total} posts, {c.true_positives + c.false_negatives} complaints")
    print(
        f"true positives {c.true_positives}, false positives {c.false_positives}, "
        f"false negatives {c.false_negatives}, true negatives {c.true_negatives}"
    )
    print(f"precision {c.precision:.2f}  recall {c.recall:.2f}  F1 {c.f1:.2f}")
    print(f"time per post {per_post:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
