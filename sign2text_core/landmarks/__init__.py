"""Landmarks per frame in the GISLR layout: face mesh, hands and pose.

:class:`LandmarkExtractor` runs ONNX ports of MediaPipe's hand, face-mesh and pose
pipelines over the frames of one clip and returns what MediaPipe Holistic would:
per frame 543 points (face 0–467, left hand 468–488, pose 489–521, right hand
522–542), each (x, y) in normalised frame coordinates and z relative, NaN where
nothing was found.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sign2text_core.errors import InvalidParameter
from sign2text_core.landmarks.face import FaceMesh, FaceTracker, pose_from_mesh
from sign2text_core.landmarks.hands import HandModels, HandTracker
from sign2text_core.landmarks.pose import PoseModel, PoseTracker

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
    in the process; one extractor may be used by several threads at once.

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
        self._hands: HandModels | None = None
        self._face_mesh: FaceMesh | None = None
        self._pose_model: PoseModel | None = None

    def extract(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Landmarks float32 [T, 543, 3] for consecutive RGB uint8 frames of one clip.

        Tracking runs across the frames in order, so pass them as they come.

        Raises:
            InvalidParameter: a frame is not an RGB uint8 image (H×W×3).
            ModelUnavailable: a network file is missing or cannot be loaded.
        """
        for frame in frames:
            _check_frame(frame)
        hand_models, face_mesh, pose_model = self._load()
        started = time.perf_counter()

        landmarks = np.full((len(frames), POINTS, 3), np.nan, np.float32)
        hands = HandTracker(hand_models)
        face = FaceTracker(face_mesh) if face_mesh is not None else None
        pose = PoseTracker(pose_model) if pose_model is not None else None
        for index, frame in enumerate(frames):
            found = hands.process(frame)
            if found.left is not None:
                landmarks[index, LEFT_HAND] = found.left.landmarks
            if found.right is not None:
                landmarks[index, RIGHT_HAND] = found.right.landmarks
            if face is not None:
                mesh = face.update(frame)
                if mesh is not None:
                    landmarks[index, FACE] = mesh
            if pose is not None:
                body = pose.update(frame)
                if body is not None:
                    landmarks[index, POSE] = body.landmarks

        if self.face and not self.pose:
            slots = [POSE.start + point for point in POSE_FROM_MESH]
            landmarks[:, slots] = pose_from_mesh(landmarks[:, FACE])

        logger.debug(
            "landmarks extracted",
            extra={
                "frames": len(frames),
                "landmark_ms": round((time.perf_counter() - started) * 1000, 1),
                "frames_with_face": int(np.sum(~np.isnan(landmarks[:, 0, 0]))),
                "palm_detections": hands.detections_run,
            },
        )
        return landmarks

    def _load(self) -> tuple[HandModels, FaceMesh | None, PoseModel | None]:
        """The networks this extractor needs, created once on first use."""
        with self._lock:
            if self._hands is None:
                self._hands = HandModels.load(
                    self.model_dir,
                    palm_variant=self.hand_variant,
                    landmark_variant=self.hand_variant,
                )
            if self.face and self._face_mesh is None:
                self._face_mesh = FaceMesh.from_dir(self.model_dir)
            if self.pose and self._pose_model is None:
                self._pose_model = PoseModel.from_dir(self.model_dir)
            return self._hands, self._face_mesh, self._pose_model


def _check_frame(frame: np.ndarray) -> None:
    shape = tuple(getattr(frame, "shape", ()))
    dtype = getattr(frame, "dtype", None)
    is_rgb = len(shape) == 3 and shape[-1] == 3 and 0 not in shape
    if not is_rgb or dtype != np.uint8:
        raise InvalidParameter(
            f"A frame must be an RGB uint8 image (H×W×3); got shape {shape}, "
            f"dtype {dtype}."
        )
