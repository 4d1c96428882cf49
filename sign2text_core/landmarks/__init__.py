"""Landmarks per frame in the GISLR layout: face mesh, hands and pose.

:class:`LandmarkExtractor` runs ONNX ports of MediaPipe's hand, face-mesh and pose
pipelines over the frames of one clip and returns what MediaPipe Holistic would:
per frame 543 points (face 0–467, left hand 468–488, pose 489–521, right hand
522–542), each (x, y) in normalised frame coordinates and z relative, NaN where
nothing was found.

Threads: ``SIGN2TEXT_ORT_THREADS`` (default: the CPUs, at most 4) is what one
:meth:`LandmarkExtractor.extract` call may use. With two or more, the clip's face
chain and hand chain run side by side in two threads (the caller's and one worker),
each network call on half of them; with one, everything runs in the caller's thread.
Either way the landmarks are the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sign2text_core.errors import InvalidParameter
from sign2text_core.landmarks.face import FaceMesh, FaceTracker, pose_from_mesh
from sign2text_core.landmarks.hands import HandModels, track_hands
from sign2text_core.landmarks.lanes import Lanes
from sign2text_core.landmarks.pose import PoseModel, PoseTracker
from sign2text_core.landmarks.runtime import ort_threads

logger = logging.getLogger(__name__)

FACE_POINTS = 468
HAND_POINTS = 21
POSE_POINTS = 33
POINTS = FACE_POINTS + 2 * HAND_POINTS + POSE_POINTS

FACE = slice(0, 468)
LEFT_HAND = slice(468, 489)
POSE = slice(489, 522)
RIGHT_HAND = slice(522, 543)

# Pose points the face mesh stands in for when the pose networks are not run: the
# ones the 250-sign model reads (nose, left eye inner and outer, right eye inner,
# right eye). See face.MESH_FOR_POSE for the mesh points used.
POSE_FROM_MESH = (0, 1, 3, 4, 5)

__all__ = [
    "FACE",
    "LEFT_HAND",
    "POINTS",
    "POSE",
    "POSE_FROM_MESH",
    "RIGHT_HAND",
    "LandmarkExtractor",
]


class LandmarkExtractor:
    """Face, hand and pose landmarks for the frames of one clip at a time.

    Args:
        model_dir: folder holding MediaPipe's networks as ONNX files
            (``palm_detection_*``, ``hand_landmark_*``, ``face_detection_short_range``,
            ``face_landmark``, ``pose_detection``, ``pose_landmark_full``).
        face: run the face mesh (NaN face points when False).
        pose: run the pose networks. When False and ``face`` is True, pose points
            0, 1, 3, 4 and 5 are filled from the face mesh (see
            ``face.MESH_FOR_POSE``) and the other pose points stay NaN.
        hand_variant: ``"full"`` or ``"lite"`` palm detector and hand network.

    Sessions are created on the first :meth:`extract` and shared by every extractor
    in the process; one extractor may be used by several threads at once, each call
    using up to ``SIGN2TEXT_ORT_THREADS`` threads (see the module's docstring).

    Raises:
        ValueError: ``hand_variant`` is not ``full`` or ``lite``.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        face: bool = True,
        pose: bool = True,
        hand_variant: str = "full",
    ) -> None:
        if hand_variant not in ("full", "lite"):
            raise ValueError(f"hand_variant {hand_variant!r} is not 'full' or 'lite'")
        self.model_dir = Path(model_dir)
        self.face = face
        self.pose = pose
        self.hand_variant = hand_variant
        self._lock = threading.Lock()
        self._networks: _Networks | None = None

    def extract(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Landmarks float32 [T, 543, 3] for consecutive RGB uint8 frames of one clip.

        Tracking runs across the frames in order, so pass them as they come.

        Raises:
            InvalidParameter: a frame is not an RGB uint8 image (H×W×3).
            ModelUnavailable: a network file is missing or cannot be loaded.
            ConfigurationError: ``SIGN2TEXT_ORT_THREADS`` is invalid.
        """
        for frame in frames:
            _check_frame(frame)
        networks = self._load()
        started = time.perf_counter()

        with Lanes(parallel=networks.parallel) as lanes:
            # The face (and pose) chain goes to the worker as one piece of work; the
            # hand chain, the longer one, stays here and offers the worker its
            # independent calls once the face is done.
            face_and_pose = lanes.offer(lambda: self._face_and_pose(networks, frames))
            left, right = track_hands(
                frames, networks.hands, lanes=lanes, solo_models=networks.solo_hands
            )
            face, pose = face_and_pose.result()

        landmarks = np.empty((len(frames), POINTS, 3), np.float32)
        landmarks[:, FACE] = face
        landmarks[:, LEFT_HAND] = left
        landmarks[:, POSE] = pose
        landmarks[:, RIGHT_HAND] = right

        if self.face and not self.pose:
            slots = [POSE.start + point for point in POSE_FROM_MESH]
            landmarks[:, slots] = pose_from_mesh(landmarks[:, FACE])

        logger.debug(
            "landmarks extracted",
            extra={
                "frames": len(frames),
                "landmark_ms": round((time.perf_counter() - started) * 1000, 1),
                "frames_with_face": int(np.sum(~np.isnan(landmarks[:, 0, 0]))),
            },
        )
        return landmarks

    @staticmethod
    def _face_and_pose(
        networks: _Networks, frames: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Face mesh [T, 468, 3] and pose [T, 33, 3] of the frames, NaN if not run."""
        face = np.full((len(frames), FACE_POINTS, 3), np.nan, np.float32)
        pose = np.full((len(frames), POSE_POINTS, 3), np.nan, np.float32)
        face_tracker = FaceTracker(networks.face) if networks.face is not None else None
        pose_tracker = PoseTracker(networks.pose) if networks.pose is not None else None
        for index, frame in enumerate(frames):
            if face_tracker is not None:
                mesh = face_tracker.update(frame)
                if mesh is not None:
                    face[index] = mesh
            if pose_tracker is not None:
                body = pose_tracker.update(frame)
                if body is not None:
                    pose[index] = body.landmarks
        return face, pose

    def _load(self) -> _Networks:
        """The networks this extractor needs, created once on first use."""
        with self._lock:
            if self._networks is None:
                self._networks = _Networks.load(self)
            return self._networks


@dataclass(frozen=True)
class _Networks:
    """One extractor's sessions and how its calls share the thread budget."""

    hands: HandModels
    solo_hands: HandModels | None
    face: FaceMesh | None
    pose: PoseModel | None
    parallel: bool

    @classmethod
    def load(cls, extractor: LandmarkExtractor) -> _Networks:
        budget = ort_threads()
        # Two lanes, each network call on half the budget; hand calls made while
        # the other lane idles get the whole budget (the hand network is the one
        # that gains from more threads). One lane when the budget is one thread.
        parallel = budget >= 2
        threads = max(1, budget // 2)
        folder = extractor.model_dir

        def hand_models(hand_threads: int) -> HandModels:
            return HandModels.load(
                folder,
                palm_variant=extractor.hand_variant,
                landmark_variant=extractor.hand_variant,
                threads=hand_threads,
            )

        hands = hand_models(threads)
        solo_hands = hand_models(budget) if parallel else None
        face = FaceMesh.from_dir(folder, threads) if extractor.face else None
        pose = PoseModel.from_dir(folder, threads) if extractor.pose else None
        return cls(hands, solo_hands, face, pose, parallel)


def _check_frame(frame: np.ndarray) -> None:
    shape = tuple(getattr(frame, "shape", ()))
    dtype = getattr(frame, "dtype", None)
    is_rgb = len(shape) == 3 and shape[-1] == 3 and 0 not in shape
    if not is_rgb or dtype != np.uint8:
        raise InvalidParameter(
            f"A frame must be an RGB uint8 image (H×W×3); got shape {shape}, "
            f"dtype {dtype}."
        )
