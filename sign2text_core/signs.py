"""From a clip to a sign: decode, find landmarks, build the model input, rank labels.

Two pipeline kinds share one :class:`Classifier`:

- ``landmarks``: per-frame MediaPipe-layout landmarks [T, 543, 3] are reduced to the
  points the model reads (lips, the dominant hand, a few pose points), fitted to the
  model's frame count and normalised as the model was trained;
- ``pixels``: RGB frames are resized, centre-cropped and normalised for a 3D-CNN.

The answer can be restricted to a vocabulary, a subset of the bundle's labels: only
those are ranked and their probabilities are renormalised to sum to one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sign2text_core.bundle import Bundle, LandmarkSettings, PixelSettings, load_bundle
from sign2text_core.errors import ConfigurationError, InvalidParameter, UnknownLabel
from sign2text_core.limits import Limits
from sign2text_core.prediction import Prediction, Vocabulary, rank
from sign2text_core.video import Clip, read_clip

logger = logging.getLogger(__name__)

LABELS_ENV = "SIGN2TEXT_LABELS"

# The GISLR layout of MediaPipe Holistic's output, one row per point of a frame.
LANDMARK_POINTS = 543
FACE_START = 0
LEFT_HAND_START = 468
POSE_START = 489
RIGHT_HAND_START = 522
HAND_POINTS = 21

Video = bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class ModelInput:
    """The classifier's input for one clip and what it was made from."""

    feeds: dict[str, np.ndarray]
    frames_used: int
    frames_with_hands: int | None


@dataclass(frozen=True)
class Inspection:
    """A prediction with what led to it: the decoded clip and its landmarks.

    ``landmarks`` is None for pipelines that do not use landmarks. When the bundle
    mirrors frames, ``clip.frames`` are the mirrored frames the landmarks refer to.
    """

    prediction: Prediction
    clip: Clip
    landmarks: np.ndarray | None

    def save_landmarks(self, path: Path) -> None:
        """Write the landmarks as ``.npz``: ``landmarks`` [T, 543, 3], ``frame_index``
        [T] (each frame's position in the clip), ``frame_count`` and ``fps``.

        Raises:
            InvalidParameter: there are no landmarks, or the file cannot be written.
        """
        if self.landmarks is None:
            raise InvalidParameter("This pipeline does not use landmarks.")
        try:
            with path.open("wb") as stream:
                np.savez_compressed(
                    stream,
                    landmarks=self.landmarks,
                    frame_index=np.asarray(self.clip.frame_index),
                    frame_count=np.int64(self.clip.info.frame_count),
                    fps=np.float32(self.clip.info.fps),
                )
        except OSError as error:
            raise InvalidParameter(f"Cannot write {path}: {error.strerror}") from error


def load_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """Landmarks, frame positions and frame count from a ``.npz`` file as
    :meth:`Inspection.save_landmarks` writes it (the last two may be missing)."""
    with np.load(path) as archive:
        landmarks = np.asarray(archive["landmarks"], dtype=np.float32)
        frame_index = archive.get("frame_index")
        frame_count = int(archive["frame_count"]) if "frame_count" in archive else None
    return landmarks, frame_index, frame_count


def parse_labels(text: str) -> list[str]:
    """Labels from a comma-separated string; blanks between commas are ignored."""
    return [part.strip() for part in text.split(",") if part.strip()]


def resolve_vocabulary(
    requested: Iterable[str] | None, known: Sequence[str]
) -> tuple[str, ...] | None:
    """The bundle's spelling of each requested label, duplicates removed, in order.

    Labels match ignoring case. None means the whole vocabulary.

    Raises:
        InvalidParameter: ``requested`` is empty (or a bare string).
        UnknownLabel: a label is not one of ``known``; ``details`` lists both.
    """
    if requested is None:
        return None
    if isinstance(requested, str):
        raise InvalidParameter("labels must be a list of labels, not one string")

    by_folded = {label.casefold(): label for label in known}
    resolved: dict[str, None] = {}
    unknown: list[str] = []
    for label in requested:
        canonical = by_folded.get(str(label).strip().casefold())
        if canonical is None:
            unknown.append(str(label))
        else:
            resolved[canonical] = None

    if unknown:
        raise UnknownLabel(
            f"Unknown label(s) {', '.join(repr(label) for label in unknown)}: "
            "the model does not know them.",
            unknown=unknown,
            known=list(known),
        )
    if not resolved:
        raise InvalidParameter("labels is empty: name at least one label, or omit it")
    return tuple(resolved)


def renormalise(
    probabilities: np.ndarray, all_labels: Sequence[str], vocabulary: Sequence[str]
) -> np.ndarray:
    """The probabilities of ``vocabulary`` only, rescaled to sum to one.

    When the model gives every label of the vocabulary zero probability, the labels
    are equally likely as far as it can tell.
    """
    index = {label: position for position, label in enumerate(all_labels)}
    subset = probabilities[[index[label] for label in vocabulary]].astype(np.float64)
    total = float(subset.sum())
    if total <= 0.0:
        return np.full(len(vocabulary), 1.0 / len(vocabulary))
    return subset / total


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(np.max(logits))
    exponentials = np.exp(shifted)
    result: np.ndarray = exponentials / exponentials.sum()
    return result


def model_frame_positions(frame_count: int, frames: int) -> np.ndarray:
    """The clip positions the model was trained to see for a clip of ``frame_count``.

    Every frame of a clip of at most ``frames``; of a longer one, ``frames`` evenly
    spaced positions, truncated (not rounded) as in training.
    """
    if frame_count <= frames:
        return np.arange(frame_count)
    positions: np.ndarray = np.linspace(0, frame_count - 1, frames).astype(int)
    return positions


def align_to_model_frames(
    landmarks: np.ndarray, frame_index: np.ndarray, frame_count: int, frames: int
) -> np.ndarray:
    """Landmarks at the model's frame positions, each from the nearest sampled frame.

    ``landmarks[i]`` belongs to clip frame ``frame_index[i]``. When every model
    position was sampled this returns exactly those frames; when fewer frames were
    sampled, neighbouring positions share a sample, so the clip keeps its length in
    time as the model knows it.
    """
    sampled = np.asarray(frame_index, dtype=np.int64)
    count = max(frame_count, int(sampled.max()) + 1)
    wanted = model_frame_positions(count, frames)
    nearest = np.abs(wanted[:, np.newaxis] - sampled[np.newaxis, :]).argmin(axis=1)
    aligned: np.ndarray = landmarks[nearest]
    return aligned


def frames_with_hands(landmarks: np.ndarray) -> np.ndarray:
    """Per frame: was any point of either hand found?"""
    left = landmarks[:, LEFT_HAND_START : LEFT_HAND_START + HAND_POINTS]
    right = landmarks[:, RIGHT_HAND_START : RIGHT_HAND_START + HAND_POINTS]
    found: np.ndarray = ~np.isnan(left).all(axis=(1, 2)) | ~np.isnan(right).all(
        axis=(1, 2)
    )
    return found


def landmark_input(
    landmarks: np.ndarray, settings: LandmarkSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's ``frames`` [1, F, P, 3] and ``frame_idxs`` [1, F] for a clip.

    The steps follow the model's training: take the hand with more detected values
    over the clip (left on a tie), negate x when it is the right hand so both look
    alike, keep lips + hand + pose points, fit the clip to F frames (evenly spaced
    frames when longer, zero padding when shorter), replace missing values by 0,
    subtract each frame's mean of its found pose points, and divide by the largest
    absolute value. ``frame_idxs`` counts the non-empty frames from 1; padding is 0.
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (LANDMARK_POINTS, 3):
        raise ValueError(
            f"landmarks must be [T, {LANDMARK_POINTS}, 3], not {landmarks.shape}"
        )

    use_right = _right_hand_dominates(landmarks)
    points = _select_points(landmarks, settings, use_right)
    if use_right and settings.negate_x_for_right_hand:
        points[:, :, 0] = -points[:, :, 0]

    fitted = _fit_frames(points, settings.frames)
    fitted = np.nan_to_num(fitted, nan=0.0)
    normalised = _normalise(fitted, pose_start=len(settings.lip_indices) + HAND_POINTS)

    non_empty = np.abs(normalised).sum(axis=(1, 2)) > 0
    frame_idxs = np.zeros(settings.frames, dtype=np.int32)
    frame_idxs[non_empty] = np.arange(1, int(non_empty.sum()) + 1)
    return normalised[np.newaxis].astype(np.float32), frame_idxs[np.newaxis]


def _right_hand_dominates(landmarks: np.ndarray) -> bool:
    left = landmarks[:, LEFT_HAND_START : LEFT_HAND_START + HAND_POINTS]
    right = landmarks[:, RIGHT_HAND_START : RIGHT_HAND_START + HAND_POINTS]
    return int(np.count_nonzero(~np.isnan(right))) > int(
        np.count_nonzero(~np.isnan(left))
    )


def _select_points(
    landmarks: np.ndarray, settings: LandmarkSettings, use_right: bool
) -> np.ndarray:
    hand_start = RIGHT_HAND_START if use_right else LEFT_HAND_START
    rows = [
        *(FACE_START + index for index in settings.lip_indices),
        *range(hand_start, hand_start + HAND_POINTS),
        *(POSE_START + index for index in settings.pose_indices),
    ]
    selected: np.ndarray = landmarks[:, rows, :].astype(np.float32)
    return selected


def _fit_frames(points: np.ndarray, frames: int) -> np.ndarray:
    count = len(points)
    if count > frames:
        # Truncating (not rounding) the evenly spaced positions, as in training.
        chosen = np.linspace(0, count - 1, frames).astype(int)
        sampled: np.ndarray = points[chosen]
        return sampled
    padded = np.zeros((frames, *points.shape[1:]), dtype=np.float32)
    padded[:count] = points
    return padded


def _normalise(points: np.ndarray, *, pose_start: int) -> np.ndarray:
    pose = points[:, pose_start:, :]
    found = np.broadcast_to(np.any(pose != 0, axis=-1, keepdims=True), pose.shape)
    counts = found.sum(axis=1, keepdims=True)
    sums = np.where(found, pose, 0.0).sum(axis=1, keepdims=True)
    centres = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    centred: np.ndarray = points - centres

    largest = float(np.abs(centred).max(initial=0.0))
    if largest > 0:
        centred = centred / largest
    return centred


def fit_frame_indices(count: int, frames: int) -> np.ndarray:
    """``frames`` evenly spaced indices into ``count`` frames, repeating when fewer."""
    indices: np.ndarray = np.linspace(0, count - 1, frames).round().astype(int)
    return indices


def pixel_input(frames: Sequence[np.ndarray], settings: PixelSettings) -> np.ndarray:
    """The 3D-CNN input [1, F, 3, S, S] from RGB frames.

    Each frame's short side is resized to S and its centre S x S kept; values are
    scaled to [0, 1] and normalised with the bundle's mean and std per channel. A clip
    with more or fewer frames than F is sampled evenly (repeating frames when fewer).
    """
    chosen = fit_frame_indices(len(frames), settings.frames)
    mean = np.asarray(settings.mean, dtype=np.float32)
    std = np.asarray(settings.std, dtype=np.float32)

    batch = np.empty(
        (settings.frames, 3, settings.size, settings.size), dtype=np.float32
    )
    for slot, index in enumerate(chosen):
        square = _centre_square(frames[index], settings.size)
        scaled = square.astype(np.float32) / 255.0
        batch[slot] = ((scaled - mean) / std).transpose(2, 0, 1)
    return batch[np.newaxis]


def _centre_square(frame: np.ndarray, size: int) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = size / min(height, width)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (new_width, new_height), interpolation=interpolation)

    top = (new_height - size) // 2
    left = (new_width - size) // 2
    square: np.ndarray = resized[top : top + size, left : left + size]
    return square


class Classifier:
    """Classifies clips with one model bundle.

    The bundle is read and validated on creation; ONNX sessions are created on the
    first clip and shared by every thread. ``SIGN2TEXT_LABELS`` (comma-separated) is
    the vocabulary used when a call passes ``labels=None``.
    """

    def __init__(self, bundle_dir: str | os.PathLike[str] | None = None) -> None:
        """Raises ConfigurationError for a bad bundle or ``SIGN2TEXT_LABELS``."""
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.default_labels = _default_vocabulary(self.bundle)
        self._extractor: Any = None
        self._extractor_lock = threading.Lock()

    def classify(
        self,
        video: Video,
        *,
        top_k: int = 5,
        labels: Iterable[str] | None = None,
        limits: Limits | None = None,
    ) -> Prediction:
        """Classify one clip (its bytes or a path).

        Raises:
            InvalidParameter: ``top_k`` is below 1 or ``labels`` is empty.
            UnknownLabel: a label is not in the bundle.
            Sign2TextError: the video is not decodable or breaks a limit.
        """
        return self.inspect(video, top_k=top_k, labels=labels, limits=limits).prediction

    def inspect(
        self,
        video: Video,
        *,
        top_k: int = 5,
        labels: Iterable[str] | None = None,
        limits: Limits | None = None,
    ) -> Inspection:
        """Like :meth:`classify`, and also return the decoded clip and its landmarks."""
        vocabulary = self._vocabulary(labels)
        wanted = _check_top_k(top_k)
        timings: dict[str, float] = {}

        started = time.perf_counter()
        clip = read_clip(
            video,
            max_frames=self.frames_needed,
            max_side=self.bundle.frame_max_side,
            limits=limits,
        )
        timings["decode"] = _elapsed_ms(started)

        landmarks = None
        if self.bundle.landmarks is not None:
            clip = _mirrored(clip) if self.bundle.landmarks.mirror_frames else clip
            started = time.perf_counter()
            landmarks = self.extract_landmarks(clip.frames)
            timings["landmarks"] = _elapsed_ms(started)
            model_input = self._landmark_model_input(
                landmarks, clip.frame_index, clip.info.frame_count
            )
        else:
            started = time.perf_counter()
            model_input = self._pixel_model_input(clip.frames)
            timings["preprocess"] = _elapsed_ms(started)

        prediction = self._predict(
            model_input, vocabulary, wanted, timings, clip.info.to_dict()
        )
        logger.debug(
            "clip classified",
            extra={
                "label": prediction.label,
                "score": prediction.score,
                "timings_ms": timings,
            },
        )
        return Inspection(prediction=prediction, clip=clip, landmarks=landmarks)

    def classify_landmarks(
        self,
        landmarks: np.ndarray,
        *,
        top_k: int = 5,
        labels: Iterable[str] | None = None,
        frame_index: np.ndarray | None = None,
        frame_count: int | None = None,
    ) -> Prediction:
        """Classify landmarks already extracted ([T, 543, 3], GISLR layout).

        ``landmarks`` are of every frame of a clip, or, with ``frame_index``, of those
        frames of a clip of ``frame_count`` frames (as :meth:`inspect` samples them).

        Raises:
            InvalidParameter: the bundle classifies pixels, or as :meth:`classify`.
            UnknownLabel: a label is not in the bundle.
        """
        if self.bundle.landmarks is None:
            raise InvalidParameter(
                f"Bundle {self.bundle.name} classifies pixels, not landmarks."
            )
        vocabulary = self._vocabulary(labels)
        wanted = _check_top_k(top_k)
        points = np.asarray(landmarks, dtype=np.float32)
        if (
            points.ndim != 3
            or points.shape[1:] != (LANDMARK_POINTS, 3)
            or not len(points)
        ):
            raise InvalidParameter(
                f"landmarks must be [T, {LANDMARK_POINTS}, 3] with T >= 1, "
                f"not {list(points.shape)}"
            )
        if frame_index is None:
            frame_index = np.arange(len(points))
        count = len(points) if frame_count is None else frame_count
        model_input = self._landmark_model_input(points, frame_index, count)
        return self._predict(model_input, vocabulary, wanted, {}, {})

    def extract_landmarks(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Landmarks [T, 543, 3] of consecutive RGB frames of one clip."""
        return np.asarray(self._landmark_extractor().extract(frames), dtype=np.float32)

    @property
    def frames_needed(self) -> int:
        """How many frames of a clip the pipeline reads at most."""
        if self.bundle.landmarks is not None:
            return self.bundle.landmarks.landmark_frames
        assert self.bundle.pixels is not None
        return self.bundle.pixels.frames

    def _vocabulary(self, labels: Iterable[str] | None) -> tuple[str, ...] | None:
        if labels is None:
            return self.default_labels
        return resolve_vocabulary(labels, self.bundle.labels)

    def _landmark_model_input(
        self, landmarks: np.ndarray, frame_index: np.ndarray, frame_count: int
    ) -> ModelInput:
        settings = self.bundle.landmarks
        assert settings is not None
        aligned = align_to_model_frames(
            landmarks, frame_index, frame_count, settings.frames
        )
        frames, frame_idxs = landmark_input(aligned, settings)
        feeds = {
            self.bundle.inputs["frames"].name: frames,
            self.bundle.inputs["frame_idxs"].name: frame_idxs,
        }
        with_hands = int(frames_with_hands(landmarks).sum())
        return ModelInput(
            feeds=feeds, frames_used=len(landmarks), frames_with_hands=with_hands
        )

    def _pixel_model_input(self, frames: Sequence[np.ndarray]) -> ModelInput:
        settings = self.bundle.pixels
        assert settings is not None
        feeds = {self.bundle.inputs["video"].name: pixel_input(frames, settings)}
        return ModelInput(feeds=feeds, frames_used=len(frames), frames_with_hands=None)

    def _predict(
        self,
        model_input: ModelInput,
        vocabulary: tuple[str, ...] | None,
        top_k: int,
        timings: dict[str, float],
        clip_facts: dict[str, Any],
    ) -> Prediction:
        started = time.perf_counter()
        session = self.bundle.classifier_session()
        (scores,) = session.run([self.bundle.output_name], model_input.feeds)
        timings["classify"] = _elapsed_ms(started)

        probabilities = np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.bundle.output_kind == "logits":
            probabilities = softmax(probabilities)

        all_labels = self.bundle.labels
        if vocabulary is None:
            used_labels: Sequence[str] = all_labels
        else:
            probabilities = renormalise(probabilities, all_labels, vocabulary)
            used_labels = vocabulary

        return Prediction(
            top_k=rank(probabilities.tolist(), used_labels, top_k=top_k),
            vocabulary=Vocabulary(size=len(used_labels), labels=vocabulary),
            model=self.bundle.model_facts,
            frames_used=model_input.frames_used,
            frames_with_hands=model_input.frames_with_hands,
            clip=clip_facts,
            timings_ms=dict(timings),
        )

    def _landmark_extractor(self) -> Any:
        if self._extractor is None:
            with self._extractor_lock:
                if self._extractor is None:
                    self._extractor = _make_extractor(self.bundle)
        return self._extractor


def _make_extractor(bundle: Bundle) -> Any:
    # Imported here so a pixels bundle never loads the landmark package.
    from sign2text_core.landmarks import LandmarkExtractor

    settings = bundle.landmarks
    assert settings is not None
    return LandmarkExtractor(
        settings.networks_dir,
        face=settings.face,
        pose=settings.pose,
        hand_variant=settings.hand_variant,
    )


def _mirrored(clip: Clip) -> Clip:
    frames = [np.ascontiguousarray(frame[:, ::-1]) for frame in clip.frames]
    return Clip(info=clip.info, frames=frames, frame_index=clip.frame_index)


def _default_vocabulary(bundle: Bundle) -> tuple[str, ...] | None:
    raw = os.environ.get(LABELS_ENV, "")
    if not raw.strip():
        return None
    try:
        return resolve_vocabulary(parse_labels(raw), bundle.labels)
    except (UnknownLabel, InvalidParameter) as error:
        raise ConfigurationError(
            f"{LABELS_ENV}={raw!r} is not valid for bundle {bundle.name}: "
            f"{error.message}"
        ) from error


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidParameter(
            f"top_k must be a whole number of at least 1, not {top_k!r}"
        )
    return top_k


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """The process-wide classifier for the default bundle, created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Classifier()
    return _default


def classify(
    video: Video,
    *,
    top_k: int = 5,
    labels: Iterable[str] | None = None,
    limits: Limits | None = None,
) -> Prediction:
    """Classify one clip with the default bundle; see :meth:`Classifier.classify`."""
    return default_classifier().classify(
        video, top_k=top_k, labels=labels, limits=limits
    )
