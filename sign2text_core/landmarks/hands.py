"""Hand landmarks over the frames of a clip: palm detection, then tracking.

Per frame, each hand followed from the previous frame is looked for again in a
region framed on its last landmarks; the palm detector (the costly network) runs
only when no hand is followed, when a followed hand was just lost, or every
``redetect_interval`` frames while fewer than two hands are followed, in case a new
one has come into view. Each found hand is named left or right as MediaPipe
Holistic names them: by the signer's own hands, so the signer's left hand is
``left`` whether or not the video is mirrored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sign2text_core.landmarks.detection import PALM_DETECTOR, Detections, Detector
from sign2text_core.landmarks.lanes import SEQUENTIAL, Lanes, Pending
from sign2text_core.landmarks.regions import (
    ImageSize,
    Region,
    crop,
    hand_region_from_landmarks,
    palm_region,
    project_landmarks,
    region_iou,
)
from sign2text_core.landmarks.runtime import get_session

logger = logging.getLogger(__name__)

HAND_POINTS = 21
VARIANTS = ("full", "lite")

# From mediapipe/modules/hand_landmark/hand_landmark_cpu.pbtxt.
LANDMARK_INPUT = (224, 224)
LANDMARK_Z_SCALE = 0.4


@dataclass(frozen=True)
class HandOptions:
    """Thresholds and budget of the hand tracker.

    ``min_detection_score``, ``min_presence`` and ``same_hand_iou`` are MediaPipe's
    defaults. The others are this tracker's own, chosen by measuring against
    MediaPipe Holistic on real clips:

    - ``same_hand_distance``: two sightings are one hand when their wrist and
      knuckles lie closer than this many palm lengths. Comparing points rather
      than regions keeps two hands that touch or overlap (the signs for book and
      help) apart; their regions overlap as much as one hand's two sightings do.
    - ``refine_presence``: a hand seen with a presence between this and
      ``min_presence`` is looked for once more, in a region framed on the uncertain
      landmarks (a palm box often frames overlapping or fast hands badly).
    - ``lost_memory``: frames a lost hand's last region is still tried in.
    - ``redetect_interval``: while fewer than ``max_hands`` hands are followed, the
      palm detector runs every this many frames to catch a hand coming into view.
    """

    max_hands: int = 2
    min_detection_score: float = 0.5
    min_presence: float = 0.5
    same_hand_iou: float = 0.5
    same_hand_distance: float = 0.5
    refine_presence: float = 0.1
    lost_memory: int = 2
    redetect_interval: int = 4


@dataclass(frozen=True)
class HandModels:
    """The palm detector and hand landmark network, sessions shared per process."""

    detector: Detector
    landmarker: ort.InferenceSession

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        palm_variant: str = "full",
        landmark_variant: str = "full",
        min_detection_score: float = 0.5,
        threads: int | None = None,
    ) -> HandModels:
        """Load the palm detector and hand landmark network from ``model_dir``.

        ``threads`` is each session's intra-op threads (None: ``ort_threads()``).

        Raises:
            ValueError: a variant is not ``full`` or ``lite``.
            ModelUnavailable: a network file is missing or cannot be loaded.
        """
        for variant in (palm_variant, landmark_variant):
            if variant not in VARIANTS:
                raise ValueError(f"hand variant {variant!r} is not one of {VARIANTS}")
        folder = Path(model_dir)
        palm_session = get_session(
            folder / f"palm_detection_{palm_variant}.onnx", threads=threads
        )
        landmark_session = get_session(
            folder / f"hand_landmark_{landmark_variant}.onnx", threads=threads
        )
        spec = replace(PALM_DETECTOR, min_score=min_detection_score)
        return cls(Detector(palm_session, spec), landmark_session)


@dataclass(frozen=True)
class Hand:
    """One hand found in one frame.

    ``landmarks`` [21, 3] in normalised frame coordinates (z relative, on x's scale);
    ``right_score`` is the network's belief that this is the signer's right hand.
    """

    landmarks: np.ndarray
    presence: float
    right_score: float
    region: Region


@dataclass(frozen=True)
class FrameHands:
    """The signer's left and right hand in one frame, or None where not found."""

    left: Hand | None
    right: Hand | None


# Wrist and the five knuckles: the points two sightings of one hand share most.
PALM_POINTS = [0, 1, 5, 9, 13, 17]
WRIST, MIDDLE_KNUCKLE = 0, 9
# Palm detector keypoints for the wrist and the middle finger's knuckle
# (mediapipe/modules/hand_landmark/palm_detection_detection_to_roi.pbtxt).
PALM_WRIST, PALM_MIDDLE_KNUCKLE = 0, 2


def palm_length(landmarks: np.ndarray, size: ImageSize) -> float:
    """Wrist to middle knuckle in pixels (at least one pixel)."""
    span = (landmarks[MIDDLE_KNUCKLE, :2] - landmarks[WRIST, :2]) * size
    return max(float(np.hypot(*span)), 1.0)


def same_hand(
    first: np.ndarray, second: np.ndarray, size: ImageSize, tolerance: float
) -> bool:
    """True when two landmark sets [21, ≥2] are one hand seen twice."""
    gaps = (first[PALM_POINTS, :2] - second[PALM_POINTS, :2]) * size
    distance = float(np.median(np.hypot(gaps[:, 0], gaps[:, 1])))
    return distance < tolerance * palm_length(second, size)


def palm_is_hand(
    keypoints: np.ndarray, landmarks: np.ndarray, size: ImageSize, tolerance: float
) -> bool:
    """True when a palm detection's keypoints [7, 2] lie on the hand ``landmarks``."""
    palm = keypoints[[PALM_WRIST, PALM_MIDDLE_KNUCKLE]]
    hand = landmarks[[WRIST, MIDDLE_KNUCKLE], :2]
    gaps = (palm - hand) * size
    distance = float(np.mean(np.hypot(gaps[:, 0], gaps[:, 1])))
    return distance < tolerance * palm_length(landmarks, size)


@dataclass
class _Track:
    """A hand followed from frame to frame; ``missed`` counts frames since last seen."""

    region: Region
    right_votes: list[float] = field(default_factory=list)
    missed: int = 0

    @property
    def right_score(self) -> float:
        return float(np.mean(self.right_votes)) if self.right_votes else 0.5


def look_for_hand(models: HandModels, frame: np.ndarray, region: Region) -> Hand:
    """What the landmark network sees in ``region`` of ``frame``, however unsure."""
    height, width = frame.shape[:2]
    tensor = crop(frame, region, LANDMARK_INPUT)
    input_name = models.landmarker.get_inputs()[0].name
    points, presence, handedness, _world = models.landmarker.run(
        None, {input_name: tensor[None]}
    )

    landmarks = project_landmarks(
        points.reshape(HAND_POINTS, 3),
        region,
        (width, height),
        LANDMARK_INPUT,
        LANDMARK_Z_SCALE,
    )
    # The network's handedness output, on unmirrored frames, is the probability of
    # the signer's right hand (checked against Holistic's naming on real clips).
    right_score = float(handedness.reshape(-1)[0])
    return Hand(landmarks, float(presence.reshape(-1)[0]), right_score, region)


def find_hand(
    models: HandModels, frame: np.ndarray, region: Region, options: HandOptions
) -> Hand | None:
    """The hand in ``region`` of ``frame``, or None when the network sees none there.

    An unsure sighting is given one more look, in a region framed on its landmarks.
    """
    hand = look_for_hand(models, frame, region)
    if options.refine_presence <= hand.presence < options.min_presence:
        height, width = frame.shape[:2]
        refined = hand_region_from_landmarks(hand.landmarks, (width, height))
        hand = look_for_hand(models, frame, refined)
    return hand if hand.presence >= options.min_presence else None


class HandTracker:
    """Follows up to ``max_hands`` hands across consecutive frames of one clip.

    One tracker per clip: it keeps the previous frame's hands. Not thread-safe; the
    models it uses are, so run one tracker per concurrent clip.

    With ``lanes`` that have a worker, independent network calls of a frame (two
    hands' look-ups, a look-up and the palm detector) run side by side on ``models``,
    and calls made while the worker is idle run on ``solo_models`` (sessions with
    more intra-op threads) when given. The answers are the same either way.
    """

    def __init__(
        self,
        models: HandModels,
        options: HandOptions | None = None,
        lanes: Lanes = SEQUENTIAL,
        solo_models: HandModels | None = None,
    ) -> None:
        self.models = models
        self.options = options or HandOptions()
        self.detections_run = 0
        self._lanes = lanes
        self._solo_models = solo_models
        self._tracks: list[_Track] = []
        self._frames_since_detection = 0

    def process(self, frame: np.ndarray) -> FrameHands:
        """The hands in ``frame`` (RGB uint8 HxWx3), the next frame of the clip."""
        height, width = frame.shape[:2]
        size = (width, height)

        # When detection will run whatever the look-ups find, it starts beside them.
        due = self._detection_due()
        palms = self._offer_palms(frame) if due else None
        found, missing = self._follow(frame)
        if due or self._room_for_a_hand(len(found), bool(missing)):
            if palms is None:
                palms = self._offer_palms(frame)
            detections = palms.result()
            found += self._detect_new(frame, detections, [hand for _, hand in found])
            self.detections_run += 1
            self._frames_since_detection = 0
        else:
            self._frames_since_detection += 1

        seen = [self._advance(track, hand, size) for track, hand in found]
        remembered = self._remember(missing, seen)
        self._tracks = seen + remembered
        return self._name_sides(
            list(zip(seen, [hand for _, hand in found], strict=True))
        )

    def _follow(
        self, frame: np.ndarray
    ) -> tuple[list[tuple[_Track, Hand]], list[_Track]]:
        """Look for each followed hand again: (found, missing)."""
        looked = self._lanes.map(
            lambda track: find_hand(self._now(), frame, track.region, self.options),
            self._tracks,
        )
        found: list[tuple[_Track, Hand]] = []
        missing: list[_Track] = []
        for track, hand in zip(self._tracks, looked, strict=True):
            if hand is None or self._is_known(hand, [h for _, h in found], frame):
                missing.append(track)
                continue
            found.append((track, hand))
        return found, missing

    def _detection_due(self) -> bool:
        """True when the palm detector runs on this frame whatever is followed."""
        if len(self._tracks) >= self.options.max_hands:
            return False
        if not self._tracks:
            return True
        return self._frames_since_detection + 1 >= self.options.redetect_interval

    def _room_for_a_hand(self, followed: int, missing: bool) -> bool:
        """True when a followed hand was just lost, or none is followed."""
        return followed < self.options.max_hands and (followed == 0 or missing)

    def _offer_palms(self, frame: np.ndarray) -> Pending[Detections]:
        return self._lanes.offer(lambda: self._now().detector.detect(frame))

    def _now(self) -> HandModels:
        """The sessions for a call starting now: the wider ones if the worker idles."""
        if self._solo_models is None or self._lanes.worker_busy():
            return self.models
        return self._solo_models

    def _detect_new(
        self, frame: np.ndarray, detections: Detections, known: list[Hand]
    ) -> list[tuple[_Track, Hand]]:
        """Hands for the palm ``detections`` that are not among ``known``."""
        height, width = frame.shape[:2]
        size = (width, height)
        tolerance = self.options.same_hand_distance
        hands = list(known)
        found: list[tuple[_Track, Hand]] = []
        for index in range(len(detections)):
            if len(hands) >= self.options.max_hands:
                break
            keypoints = detections.keypoints[index]
            if any(
                palm_is_hand(keypoints, h.landmarks, size, tolerance) for h in hands
            ):
                continue
            region = palm_region(detections.boxes[index], keypoints, size)
            hand = find_hand(self._now(), frame, region, self.options)
            if hand is None or self._is_known(hand, hands, frame):
                continue
            hands.append(hand)
            found.append((_Track(region), hand))
        return found

    def _is_known(self, hand: Hand, others: Sequence[Hand], frame: np.ndarray) -> bool:
        """True when ``hand`` is one of ``others`` seen again."""
        height, width = frame.shape[:2]
        return any(
            same_hand(
                hand.landmarks,
                other.landmarks,
                (width, height),
                self.options.same_hand_distance,
            )
            for other in others
        )

    def _remember(self, missing: list[_Track], seen: list[_Track]) -> list[_Track]:
        """Lost hands still worth looking for where they were last seen."""
        room = self.options.max_hands - len(seen)
        kept: list[_Track] = []
        for track in missing:
            if track.missed >= self.options.lost_memory or len(kept) >= room:
                continue
            overlaps = (region_iou(track.region, other.region) for other in seen)
            if any(overlap > self.options.same_hand_iou for overlap in overlaps):
                continue
            kept.append(_Track(track.region, track.right_votes, track.missed + 1))
        return kept

    @staticmethod
    def _advance(track: _Track, hand: Hand, size: ImageSize) -> _Track:
        votes = [*track.right_votes, hand.right_score]
        return _Track(hand_region_from_landmarks(hand.landmarks, size), votes)

    def _name_sides(self, found: list[tuple[_Track, Hand]]) -> FrameHands:
        """Name each hand left or right by its track's handedness votes.

        Two hands always get different names: the one more likely right is right.
        """
        if not found:
            return FrameHands(None, None)
        if len(found) == 1:
            track, hand = found[0]
            if track.right_score >= 0.5:
                return FrameHands(None, hand)
            return FrameHands(hand, None)
        ranked = sorted(found[:2], key=lambda pair: pair[0].right_score)
        return FrameHands(left=ranked[0][1], right=ranked[1][1])


def track_hands(
    frames: Sequence[np.ndarray],
    models: HandModels,
    options: HandOptions | None = None,
    *,
    lanes: Lanes = SEQUENTIAL,
    solo_models: HandModels | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right hand landmarks of the signer over a clip's frames.

    Returns two float32 arrays [T, 21, 3] in normalised frame coordinates, NaN on
    frames where that hand was not found. ``lanes`` and ``solo_models`` are
    :class:`HandTracker`'s.
    """
    tracker = HandTracker(models, options, lanes, solo_models)
    left = np.full((len(frames), HAND_POINTS, 3), np.nan, np.float32)
    right = np.full((len(frames), HAND_POINTS, 3), np.nan, np.float32)
    for index, frame in enumerate(frames):
        hands = tracker.process(frame)
        if hands.left is not None:
            left[index] = hands.left.landmarks
        if hands.right is not None:
            right[index] = hands.right.landmarks
    logger.debug(
        "hands tracked",
        extra={"frames": len(frames), "palm_detections": tracker.detections_run},
    )
    return left, right
