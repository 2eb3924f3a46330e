"""The complaint recogniser: is a public post a complaint, and why.

A logistic regression over the post's words and word pairs, its character n-grams (which
carry across spellings, hashtags and Spanish inflections), its VADER sentiment and the
policy's complaint cues. Each feature is hashed into one of ``BUCKETS`` weights, so the model
stays small however many n-grams the training posts hold; the post's own features name the
reasons. The weights ship with the package (``model/complaints.json``);
``amends/listening/training.py`` rebuilds them, byte for byte, from the hand-labelled posts in
``model/labelled_posts.csv``. Scoring a post is a hash and a lookup per feature: no download,
no numerical library, well under a millisecond.
"""

from __future__ import annotations

import heapq
import html
import json
import math
import re
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any

MODEL_FILE = "complaints.json"
MODEL_FORMAT = 2
BUCKETS = 1 << 18  # hashed feature slots: collisions are rare at this size and cost little

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<![\w@])@[\w.@-]+")
_DIGITS = re.compile(r"\d+")
# The folded handles and links, words (with an inner apostrophe), numbers, runs of ! and ?,
# and any other single symbol (an emoji is a word here).
_TOKEN = re.compile(r"_user_|_link_|[^\W\d_]+(?:['’][^\W\d_]+)?|0|[!?]+|[^\w\s]")
_CHAR_SIZES = (3, 4, 5)


def normalise(words: str) -> str:
    """A post as the recogniser reads it: entities decoded, lower case, links, handles and
    numbers folded into one token each (who and which order number say nothing)."""
    words = html.unescape(words).lower()
    words = _URL.sub(" _link_ ", words)
    words = _HANDLE.sub(" _user_ ", words)
    return _DIGITS.sub("0", words)


def features(
    words: str, sentiment: float, cues: int, owners: dict[str, str] | None = None
) -> dict[str, float]:
    """The post as the model sees it: ``w:`` words and word pairs, ``c:`` character n-grams
    inside words, scaled so a long post weighs no more than a short one, plus its sentiment
    (VADER's compound score) and how many complaint cues it carries.

    ``owners``, when given, is filled with what a reader would call each word feature: the word
    (or pair) of the post it comes from, quoted; an n-gram found in several words belongs to the
    first."""
    text = normalise(words)
    tokens = _TOKEN.findall(text)
    found: set[str] = {"w:" + t for t in tokens}
    pairs = {f"w:{a} {b}" for a, b in pairwise(tokens)}
    found |= pairs
    for token in text.split():
        padded = f" {token} "
        grams = {
            "c:" + padded[i : i + size]
            for size in _CHAR_SIZES
            for i in range(len(padded) - size + 1)
        }
        found |= grams
        if owners is not None:
            shown = _shown(token)
            for gram in grams:
                owners.setdefault(gram, shown)
    if owners is not None:
        for name in pairs:
            owners[name] = '"' + " ".join(_SHOWN.get(t, t) for t in name[2:].split(" ")) + '"'
        for t in tokens:
            owners.setdefault("w:" + t, _shown(t))
    scale = 1 / math.sqrt(len(found)) if found else 0.0
    vector = dict.fromkeys(found, scale)
    vector["sentiment:negative"] = max(0.0, -sentiment)
    vector["sentiment:positive"] = max(0.0, sentiment)
    vector["cues"] = min(cues, 3) / 3
    vector["bias"] = 1.0
    return vector


@lru_cache(maxsize=1 << 16)  # the same n-grams come back post after post
def bucket(feature: str) -> int:
    """The weight slot of a feature: CRC-32 of its name (stable across runs and machines,
    unlike ``hash``)."""
    return zlib.crc32(feature.encode("utf-8")) & (BUCKETS - 1)


_SHOWN = {"_user_": "@mention", "_link_": "a link"}
_EDGES = ".,;:!?¡¿\"'()[]…*"
_NAMED = {
    "sentiment:negative": "sentiment negative",
    "sentiment:positive": "sentiment positive",
    "cues": "complaint cues",
}


_LONGEST_SHOWN = 30  # a 10,000-character "word" is named by its start


def _shown(token: str) -> str:
    """A word of the post as a reason names it: quoted, without the punctuation around it."""
    word = _SHOWN.get(token) or token.strip(_EDGES) or token
    if len(word) > _LONGEST_SHOWN:
        word = word[: _LONGEST_SHOWN - 1] + "…"
    return '"' + word + '"'


@dataclass(frozen=True)
class ComplaintModel:
    """Weights by feature slot (see ``bucket``), and the probability at or above which a post
    is a complaint."""

    weights: dict[int, float]
    threshold: float

    def weigh(self, vector: dict[str, float]) -> tuple[float, list[tuple[float, str]]]:
        """The chance the post is a complaint (0 to 1), and what each known feature added."""
        weights = self.weights
        pushes = [
            (w * value, name) for name, value in vector.items() if (w := weights.get(bucket(name)))
        ]
        score = sum(push for push, _ in pushes)
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, score)))), pushes

    @staticmethod
    def strongest(
        pushes: list[tuple[float, str]], towards: bool, owners: dict[str, str], top: int = 3
    ) -> list[str]:
        """What pushed hardest towards the decision (complaint or not), as a reader would say
        it: the post's words (each with its character n-grams), its word pairs, its sentiment
        and its cues, named by ``owners`` (see ``features``): ``"refund" +0.41``."""
        gathered: dict[str, float] = {}
        for push, name in pushes:
            if said := owners.get(name) or _NAMED.get(name):
                gathered[said] = gathered.get(said, 0.0) + push
        sign = 1 if towards else -1
        found = heapq.nlargest(
            top,
            ((push, said) for said, push in gathered.items() if push * sign > 0),
            key=lambda p: (abs(p[0]), p[1]),
        )
        return [f"{said} {push:+.2f}" for push, said in found]

    def to_json(self) -> str:
        """The model as shipped: slots in order, rounded weights, so a rebuild is
        byte-identical. Slots whose weight rounds to zero are left out."""
        kept = {k: round(v, 5) for k, v in sorted(self.weights.items())}
        data: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "buckets": BUCKETS,
            "threshold": round(self.threshold, 4),
            "weights": {str(k): v for k, v in kept.items() if v},
        }
        return json.dumps(data, indent=0, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ComplaintModel:
        data = json.loads(text)
        if data.get("format") != MODEL_FORMAT or data.get("buckets") != BUCKETS:
            raise ValueError(
                f"complaint model format {data.get('format')} with {data.get('buckets')} slots: "
                f"this amends reads format {MODEL_FORMAT} with {BUCKETS}; rebuild it with "
                "python -m amends.listening.training"
            )
        weights = {int(k): float(v) for k, v in data["weights"].items()}
        return cls(weights=weights, threshold=float(data["threshold"]))


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
