"""Accuracy of a bundle over a folder of labelled clips laid out as ``<gloss>/<clip>``.

Top-1 and top-5 are counted over the clips whose gloss is in the vocabulary used (the
whole bundle, or the restricted vocabulary); clips of other glosses are counted apart,
as are clips where no hand was found and clips that could not be classified.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sign2text_core.errors import InvalidParameter, Sign2TextError
from sign2text_core.prediction import Prediction
from sign2text_core.signs import Classifier, load_landmarks, resolve_vocabulary

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg"}
)

Progress = Callable[[int, int, str], None]
"""Called before each clip with (clips done, clips in all, clip name)."""


@dataclass(frozen=True)
class LabelledClip:
    gloss: str
    path: Path

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


@dataclass(frozen=True)
class ClipResult:
    """One clip's outcome. ``rank`` is the gloss's 1-based place, None if unranked."""

    clip: LabelledClip
    known: bool
    prediction: Prediction | None = None
    rank: int | None = None
    error: Sign2TextError | None = None
    seconds: float = 0.0

    @property
    def top1(self) -> bool:
        return self.rank == 1

    @property
    def top5(self) -> bool:
        return self.rank is not None and self.rank <= 5

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "file": self.clip.name,
            "gloss": self.clip.gloss,
            "known": self.known,
            "rank": self.rank,
            "top1": self.top1,
            "top5": self.top5,
            "seconds": round(self.seconds, 3),
        }
        if self.prediction is not None:
            row["label"] = self.prediction.label
            row["score"] = round(self.prediction.score, 6)
            row["top_k"] = [entry.to_dict() for entry in self.prediction.top_k[:5]]
            row["no_hands"] = self.prediction.no_hands
            row["frames_used"] = self.prediction.frames_used
            row["frames_with_hands"] = self.prediction.frames_with_hands
            row["timings_ms"] = dict(self.prediction.timings_ms)
        if self.error is not None:
            row["error"] = {"code": self.error.code, "message": self.error.message}
        return row


@dataclass
class Report:
    """Accuracy over the known clips and counts of everything else."""

    folder: Path
    model: dict[str, str]
    vocabulary: tuple[str, ...] | None
    results: list[ClipResult] = field(default_factory=list)

    @property
    def known(self) -> int:
        return sum(result.known for result in self.results)

    @property
    def top1(self) -> float:
        return self._fraction(sum(r.known and r.top1 for r in self.results))

    @property
    def top5(self) -> float:
        return self._fraction(sum(r.known and r.top5 for r in self.results))

    @property
    def unknown_glosses(self) -> int:
        """Clips whose gloss is outside the vocabulary used."""
        return sum(not result.known for result in self.results)

    @property
    def no_hands(self) -> int:
        return sum(
            r.prediction is not None and r.prediction.no_hands for r in self.results
        )

    @property
    def errors(self) -> int:
        return sum(result.error is not None for result in self.results)

    def _fraction(self, count: int) -> float:
        return count / self.known if self.known else 0.0

    def to_dict(self) -> dict[str, Any]:
        vocabulary = list(self.vocabulary) if self.vocabulary is not None else None
        return {
            "folder": str(self.folder),
            "model": self.model,
            "vocabulary": vocabulary,
            "clips": len(self.results),
            "known": self.known,
            "top1": round(self.top1, 4),
            "top5": round(self.top5, 4),
            "top1_count": sum(r.known and r.top1 for r in self.results),
            "top5_count": sum(r.known and r.top5 for r in self.results),
            "unknown_glosses": self.unknown_glosses,
            "no_hands": self.no_hands,
            "errors": self.errors,
            "results": [result.to_dict() for result in self.results],
        }


def find_clips(folder: Path) -> list[LabelledClip]:
    """Every video file one level below ``folder``, its gloss the sub-folder's name.

    Raises:
        InvalidParameter: ``folder`` is not a folder or holds no clips.
    """
    if not folder.is_dir():
        raise InvalidParameter(f"{folder} is not a folder of <gloss>/<clip> videos.")
    clips = [
        LabelledClip(gloss=path.parent.name, path=path)
        for path in sorted(folder.glob("*/*"))
        if path.is_file()
        and path.suffix.lower() in VIDEO_SUFFIXES
        and not path.parent.name.startswith(".")
    ]
    if not clips:
        raise InvalidParameter(f"{folder} holds no <gloss>/<clip> videos.")
    return clips


def glosses_in(clips: Iterable[LabelledClip], known: Sequence[str]) -> list[str]:
    """The glosses of ``clips`` that the bundle knows, in the bundle's spelling."""
    by_folded = {label.casefold(): label for label in known}
    found = {
        by_folded[c.gloss.casefold()] for c in clips if c.gloss.casefold() in by_folded
    }
    return sorted(found)


def evaluate(
    classifier: Classifier,
    folder: Path,
    *,
    labels: Sequence[str] | None = None,
    labels_from_dir: bool = False,
    landmarks_from: Path | None = None,
    save_landmarks: Path | None = None,
    progress: Progress | None = None,
) -> Report:
    """Classify every clip under ``folder`` and score the answers against the glosses.

    Args:
        classifier: the bundle to evaluate.
        folder: ``<gloss>/<clip>`` videos.
        labels: restrict the answers to these labels.
        labels_from_dir: restrict the answers to the glosses in ``folder`` that the
            bundle knows (ignored when ``labels`` is given).
        landmarks_from: read each clip's landmarks from
            ``<landmarks_from>/<gloss>/<clip stem>.npz`` (array ``landmarks``, as the
            ``landmarks`` command writes) instead of extracting them.
        save_landmarks: write each clip's extracted landmarks there, in the same
            layout, so later evaluations can read them with ``landmarks_from``.
        progress: called before each clip.

    Raises:
        InvalidParameter, UnknownLabel: bad folder or labels.
    """
    clips = find_clips(folder)
    if labels is None and labels_from_dir:
        labels = glosses_in(clips, classifier.bundle.labels)
    vocabulary = resolve_vocabulary(labels, classifier.bundle.labels)
    if vocabulary is None:
        vocabulary = classifier.default_labels
    used = vocabulary if vocabulary is not None else classifier.bundle.labels
    report = Report(
        folder=folder, model=classifier.bundle.model_facts, vocabulary=vocabulary
    )

    for done, clip in enumerate(clips):
        if progress is not None:
            progress(done, len(clips), clip.name)
        sources = _Sources(landmarks_from, save_landmarks)
        result = _evaluate_clip(classifier, clip, used, vocabulary, sources)
        report.results.append(result)
        logger.debug("clip evaluated", extra=result.to_dict())

    if progress is not None:
        progress(len(clips), len(clips), "")
    return report


def _evaluate_clip(
    classifier: Classifier,
    clip: LabelledClip,
    used: Sequence[str],
    vocabulary: tuple[str, ...] | None,
    sources: _Sources,
) -> ClipResult:
    by_folded = {label.casefold(): label for label in used}
    gloss = by_folded.get(clip.gloss.casefold())
    started = time.perf_counter()
    try:
        prediction = _classify(classifier, clip, vocabulary, len(used), sources)
    except Sign2TextError as error:
        return ClipResult(clip=clip, known=gloss is not None, error=error)
    seconds = time.perf_counter() - started

    ranked = [entry.label for entry in prediction.top_k]
    rank = ranked.index(gloss) + 1 if gloss in ranked else None
    return ClipResult(
        clip=clip,
        known=gloss is not None,
        prediction=prediction,
        rank=rank,
        seconds=seconds,
    )


@dataclass(frozen=True)
class _Sources:
    """Where clip landmarks are read from or saved to (both optional)."""

    read_from: Path | None
    save_to: Path | None

    def path(self, folder: Path, clip: LabelledClip) -> Path:
        return folder / clip.path.parent.name / f"{clip.path.stem}.npz"


def _classify(
    classifier: Classifier,
    clip: LabelledClip,
    vocabulary: tuple[str, ...] | None,
    top_k: int,
    sources: _Sources,
) -> Prediction:
    if sources.read_from is None:
        inspection = classifier.inspect(clip.path, top_k=top_k, labels=vocabulary)
        if sources.save_to is not None:
            target = sources.path(sources.save_to, clip)
            target.parent.mkdir(parents=True, exist_ok=True)
            inspection.save_landmarks(target)
        return inspection.prediction

    stored = sources.path(sources.read_from, clip)
    if not stored.is_file():
        raise InvalidParameter(f"No stored landmarks for {clip.name} at {stored}.")
    landmarks, frame_index, frame_count = load_landmarks(stored)
    return classifier.classify_landmarks(
        landmarks,
        top_k=top_k,
        labels=vocabulary,
        frame_index=frame_index,
        frame_count=frame_count,
    )
