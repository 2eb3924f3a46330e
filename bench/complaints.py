"""How well amends recognises a complaint: precision and recall of the monitor's recogniser
(VADER sentiment plus the policy's complaint cues) against 100 hand-labelled customer tweets
from the shared Twitter customer-support sample.

The labels (tests/fixtures/complaint_labels.csv) were made by one person reading each tweet
once, before looking at what the recogniser said: "yes" when the author reports something the
business got wrong or that does not work for them, or says they are unhappy with it (in any
language); "no" for questions without a problem, thanks, chat and praise. The 100 tweets are
``random.Random(7).sample`` of the sample's inbound tweets.

Run: .venv/bin/python bench/complaints.py
"""

from __future__ import annotations

import csv
import html
import sys
from pathlib import Path

from amends.listening.mentions import read_post
from amends.recovery.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "fixtures" / "complaint_labels.csv"
SAMPLE = ROOT.parent / "shared" / "data" / "twitter_support_sample_5000.csv"


def scores(sample: Path = SAMPLE, labels: Path = LABELS) -> dict[str, float]:
    """Counts of the confusion matrix, precision, recall and F1."""
    figures = load_policy().listening
    with labels.open(encoding="utf-8", newline="") as handle:
        wanted = {row["tweet_id"]: row["complaint"] == "yes" for row in csv.DictReader(handle)}
    with sample.open(encoding="utf-8", newline="") as handle:
        texts = {r["tweet_id"]: html.unescape(r["text"]) for r in csv.DictReader(handle)}
    tp = fp = fn = tn = 0
    for tweet_id, complaint in wanted.items():
        said = read_post(texts[tweet_id], figures).complaint
        tp += said and complaint
        fp += said and not complaint
        fn += complaint and not said
        tn += not said and not complaint
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def main() -> int:
    s = scores()
    print(
        f"labelled tweets: {s['tp'] + s['fp'] + s['fn'] + s['tn']}, complaints: {s['tp'] + s['fn']}"
    )
    print(
        f"true positives {s['tp']}, false positives {s['fp']}, "
        f"false negatives {s['fn']}, true negatives {s['tn']}"
    )
    print(f"precision {s['precision']:.2f}  recall {s['recall']:.2f}  F1 {s['f1']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
