"""What the service answers for one clip: the sign's label, its score and the facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LabelScore:
    """One label and the probability the model gives it."""

    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 6)}


@dataclass(frozen=True)
class Vocabulary:
    """The labels a prediction was chosen from.

    ``labels`` is None when the model's whole vocabulary was used; otherwise it lists
    the restricted vocabulary, in the order it was asked for.
    """

    size: int
    labels: tuple[str, ...] | None = None

    @property
    def restricted(self) -> bool:
        return self.labels is not None

    def to_dict(self) -> dict[str, Any]:
        listed = list(self.labels) if self.labels is not None else None
        return {"restricted": self.restricted, "size": self.size, "labels": listed}


@dataclass(frozen=True)
class Prediction:
    """The answer for one clip.

    ``top_k`` is best first and its first entry is ``label`` / ``score``. Scores are
    probabilities over the vocabulary used (renormalised when it was restricted).
    ``no_hands`` is True when the landmark stage found a hand in none of the frames:
    the ranking is then a guess and clients should say so. ``frames_with_hands`` is
    None for pipelines that do not look for hands.
    """

    top_k: tuple[LabelScore, ...]
    vocabulary: Vocabulary
    model: Mapping[str, str]
    frames_used: int
    frames_with_hands: int | None = None
    clip: Mapping[str, Any] = field(default_factory=dict)
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.top_k:
            raise ValueError("a prediction needs at least one ranked label")

    @property
    def label(self) -> str:
        return self.top_k[0].label

    @property
    def score(self) -> float:
        return self.top_k[0].score

    @property
    def no_hands(self) -> bool:
        return self.frames_with_hands == 0

    def to_dict(self) -> dict[str, Any]:
        """The prediction as a JSON-ready document (the service's response body)."""
        return {
            "label": self.label,
            "score": round(self.score, 6),
            "top_k": [entry.to_dict() for entry in self.top_k],
            "no_hands": self.no_hands,
            "frames_used": self.frames_used,
            "frames_with_hands": self.frames_with_hands,
            "clip": dict(self.clip),
            "model": dict(self.model),
            "vocabulary": self.vocabulary.to_dict(),
            "timings_ms": {
                stage: round(ms, 1) for stage, ms in self.timings_ms.items()
            },
        }


def rank(
    probabilities: Sequence[float],
    labels: Sequence[str],
    *,
    top_k: int,
) -> tuple[LabelScore, ...]:
    """The ``top_k`` best labels, best first; ties keep the vocabulary's order."""
    order = sorted(range(len(labels)), key=lambda index: -probabilities[index])
    return tuple(
        LabelScore(labels[index], float(probabilities[index]))
        for index in order[:top_k]
    )
