"""The complaint recogniser: is a public post a complaint, and why.

A logistic regression over the post's words and word pairs, its character n-grams (which
carry across spellings, hashtags and Spanish inflections), its VADER sentiment and the
policy's complaint cues. The weights ship with the package (``model/complaints.json``);
``amends/listening/training.py`` rebuilds them, byte for byte, from the hand-labelled posts in
``model/labelled_posts.csv``. Scoring a post is a dictionary lookup per feature: no download,
no numerical library, well under a millisecond.
"""

from __future__ import annotations

import heapq
import html
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any

MODEL_FILE = "complaints.json"

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<![\w@])@[\w.@-]+")
_DIGITS = re.compile(r"\d+")
# Words (with an inner apostrophe), numbers, runs of ! and ?, and any other single symbol
# (an emoji is a word here).
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|0|[!?]+|[^\w\s]")
_CHAR_SIZES = (3, 4, 5)


def normalise(words: str) -> str:
    """A post as the recogniser reads it: entities decoded, lower case, links, handles and
    numbers folded into one token each (who and which order number say nothing)."""
    words = html.unescape(words).lower()
    words = _URL.sub(" _link_ ", words)
    words = _HANDLE.sub(" _user_ ", words)
    return _DIGITS.sub("0", words)


def features(words: str, sentiment: float, cues: int) -> dict[str, float]:
    """The post as the model sees it: ``w:`` words and word pairs, ``c:`` character n-grams
    inside words, scaled so a long post weighs no more than a short one, plus its sentiment
    (VADER's compound score) and how many complaint cues it carries."""
    text = normalise(words)
    tokens = _TOKEN.findall(text)
    found: set[str] = {"w:" + t for t in tokens}
    found.update(f"w:{a} {b}" for a, b in pairwise(tokens))
    for token in text.split():
        padded = f" {token} "
        for size in _CHAR_SIZES:
            found.update("c:" + padded[i : i + size] for i in range(len(padded) - size + 1))
    scale = 1 / math.sqrt(len(found)) if found else 0.0
    vector = dict.fromkeys(found, scale)
    vector["sentiment:negative"] = max(0.0, -sentiment)
    vector["sentiment:positive"] = max(0.0, sentiment)
    vector["cues"] = min(cues, 3) / 3
    vector["bias"] = 1.0
    return vector


def _readable(feature: str) -> str:
    kind, _, value = feature.partition(":")
    if kind == "w":
        return f'"{value}"'
    if kind == "c":
        return "…" + value.replace(" ", "_") + "…"  # "_": the word's edge
    return {"sentiment": "sentiment " + value, "cues": "complaint cues"}.get(kind, feature)


@dataclass(frozen=True)
class ComplaintModel:
    """Weights by feature, and the probability at or above which a post is a complaint."""

    weights: dict[str, float]
    threshold: float

    def weigh(self, vector: dict[str, float]) -> tuple[float, list[tuple[float, str]]]:
        """The chance the post is a complaint (0 to 1), and what each known feature added."""
        weights = self.weights
        pushes = [(w * value, name) for name, value in vector.items() if (w := weights.get(name))]
        score = sum(push for push, _ in pushes)
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, score)))), pushes

    @staticmethod
    def strongest(pushes: list[tuple[float, str]], towards: bool, top: int = 3) -> list[str]:
        """The features that pushed hardest towards the decision (complaint or not), as a
        reader would say them: ``"refund" +0.41``."""
        sign = 1 if towards else -1
        found = heapq.nlargest(
            top,
            (p for p in pushes if p[0] * sign > 0 and p[1] != "bias"),
            key=lambda p: (abs(p[0]), p[1]),
        )
        return [f"{_readable(name)} {push:+.2f}" for push, name in found]

    def to_json(self) -> str:
        """The model as shipped: sorted keys, rounded weights, so a rebuild is byte-identical."""
        data: dict[str, Any] = {
            "format": 1,
            "threshold": round(self.threshold, 4),
            "weights": {k: round(v, 6) for k, v in sorted(self.weights.items()) if round(v, 6)},
        }
        return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=0) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ComplaintModel:
        data = json.loads(text)
        return cls(weights=data["weights"], threshold=data["threshold"])


def model_path() -> Path:
    """Where the shipped model is (inside the installed package)."""
    return Path(str(files("amends.listening") / "model" / MODEL_FILE))


@cache
def shipped_model() -> ComplaintModel:
    """The model that ships with amends, read once per process."""
    return ComplaintModel.from_json(model_path().read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Confusion:
    """How a recogniser's decisions compare with people's labels (the complaint class)."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0

    @property
    def total(self) -> int:
        return (
            self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
        )

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def accuracy(self) -> float:
        return (self.true_positives + self.true_negatives) / self.total if self.total else 0.0

    def add(self, said: bool, wanted: bool) -> Confusion:
        """This confusion with one more decision counted."""
        return Confusion(
            self.true_positives + (said and wanted),
            self.false_positives + (said and not wanted),
            self.false_negatives + (wanted and not said),
            self.true_negatives + (not said and not wanted),
        )

    def scores(self) -> str:
        """``precision=0.812 recall=0.650 f1=0.722 accuracy=0.730``."""
        return (
            f"precision={self.precision:.3f} recall={self.recall:.3f} "
            f"f1={self.f1:.3f} accuracy={self.accuracy:.3f}"
        )
