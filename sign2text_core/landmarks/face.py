"""Face mesh: face detection, then 468 landmarks tracked from frame to frame.

The steps and numbers are MediaPipe's face-mesh graphs (google-ai-edge/mediapipe,
``mediapipe/modules/face_detection/face_detection_short_range.pbtxt`` and
``mediapipe/modules/face_landmark/*.pbtxt``): the short-range detector finds the
face, its box turned level along the eyes and grown 1.5× (square) is the region the
192×192 mesh network reads, and once a face is found the next frame's region comes
from this frame's mesh instead of the detector. A face-presence score under 0.5
drops the track and the detector runs again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sign2text_core.landmarks.detection import FACE_DETECTOR, Detections, Detector
from sign2text_core.landmarks.regions import (
    ImageSize,
    Region,
    crop,
    project_landmarks,
    rotation_to_vertical,
    transform_region,
)
from sign2text_core.landmarks.runtime import get_session

FACE_DETECTION_FILE = "face_detection_short_range.onnx"
FACE_MESH_FILE = "face_landmark.onnx"

MESH_POINTS = 468
MESH_INPUT: ImageSize = (192, 192)
# face_landmark_cpu.pbtxt: sigmoid of the face flag, thresholded at 0.5.
MIN_FACE_PRESENCE = 0.5
# face_detection_front_detection_to_roi.pbtxt / face_landmark_landmarks_to_roi.pbtxt.
REGION_SCALE = 1.5

# Detector keypoints (face_detection_short_range.tflite): the subject's right eye,
# then the left eye; the mesh's outer eye corners, same order.
DETECTION_RIGHT_EYE, DETECTION_LEFT_EYE = 0, 1
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263

# Pose point -> face-mesh points whose mean stands in for it, chosen by anatomy
# (MediaPipe's canonical face-mesh numbering): nose tip; the subject's left eye
# inner / outer corner; the right eye inner corner; the right eye's centre as the
# mean of its two corners.
MESH_FOR_POSE: dict[int, tuple[int, ...]] = {
    0: (1,),
    1: (362,),
    3: (263,),
    4: (133,),
    5: (33, 133),
}

# Pose z is depth from the hips' midpoint, face-mesh z depth from the face's centre.
# Over MediaPipe Holistic's landmarks of the evaluation clips the pose z of these
# five points was a median -9.2 times the distance between the outer eye corners
# (10th-90th percentile of clips -11.3 to -7.0); benchmarks/pose_from_mesh.py.
POSE_DEPTH_PER_EYE_SPAN = -9.0


def pose_from_mesh(mesh: np.ndarray, *, with_depth: bool = True) -> np.ndarray:
    """[..., 468, 3] face mesh -> [..., 5, 3] stand-ins for pose points 0, 1, 3, 4, 5.

    With ``with_depth`` the z values are moved from the mesh's depth scale to an
    estimate of the pose network's (see ``POSE_DEPTH_PER_EYE_SPAN``).
    """
    points = [mesh[..., list(ids), :].mean(axis=-2) for ids in MESH_FOR_POSE.values()]
    stand_ins = np.stack(points, axis=-2)
    if with_depth:
        eyes = mesh[..., LEFT_EYE_OUTER, :2] - mesh[..., RIGHT_EYE_OUTER, :2]
        span = np.linalg.norm(eyes, axis=-1)
        stand_ins[..., 2] += POSE_DEPTH_PER_EYE_SPAN * span[..., None]
    return stand_ins


def _level_with_eyes(
    right_eye: np.ndarray, left_eye: np.ndarray, image_size: ImageSize
) -> float:
    return rotation_to_vertical(
        (float(right_eye[0]), float(right_eye[1])),
        (float(left_eye[0]), float(left_eye[1])),
        image_size,
        target_degrees=0.0,
    )


def region_from_detection(
    box: np.ndarray, keypoints: np.ndarray, image_size: ImageSize
) -> Region:
    """The mesh region for one face detection (box xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    rotation = _level_with_eyes(
        keypoints[DETECTION_RIGHT_EYE], keypoints[DETECTION_LEFT_EYE], image_size
    )
    face = Region(
        (xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin, rotation
    )
    return transform_region(face, image_size, scale=REGION_SCALE)


def region_from_mesh(mesh: np.ndarray, image_size: ImageSize) -> Region:
    """Next frame's mesh region from this frame's 468 normalised landmarks.

    MediaPipe frames the mesh by its axis-aligned bounds, turned level along the outer
    eye corners (not the tightest rotated box), then grows it 1.5× and squares it.
    """
    low = mesh[:, :2].min(axis=0)
    high = mesh[:, :2].max(axis=0)
    rotation = _level_with_eyes(mesh[RIGHT_EYE_OUTER], mesh[LEFT_EYE_OUTER], image_size)
    face = Region(
        float(low[0] + high[0]) / 2,
        float(low[1] + high[1]) / 2,
        float(high[0] - low[0]),
        float(high[1] - low[1]),
        rotation,
    )
    return transform_region(face, image_size, scale=REGION_SCALE)


Window = tuple[int, int, int, int]
"""(left, top, width, height) of part of a frame, in pixels."""


def search_windows(width: int, height: int) -> list[Window]:
    """Where to look for a face: the whole frame, then overlapping squares.

    The squares have the frame's short side and step along its long side so that
    neighbours overlap by at least a third; a square frame has no squares to add.
    """
    windows: list[Window] = [(0, 0, width, height)]
    side = min(width, height)
    long_side = max(width, height)
    if long_side - side < side // 8:
        return windows
    count = math.ceil((long_side - side) / (side * 2 / 3)) + 1
    starts = np.linspace(0, long_side - side, count).round().astype(int)
    for start in starts:
        left, top = (int(start), 0) if width > height else (0, int(start))
        windows.append((left, top, side, side))
    return windows


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


class FaceMesh:
    """The face detector and mesh networks; stateless, safe to share between threads."""

    def __init__(self, detector: Detector, mesh: ort.InferenceSession) -> None:
        self.detector = detector
        self.mesh = mesh
        self._mesh_input = mesh.get_inputs()[0].name

    @classmethod
    def from_dir(cls, model_dir: Path, threads: int | None = None) -> FaceMesh:
        """Networks from ``model_dir`` via the process-wide session cache.

        ``threads`` is each session's intra-op threads (None: ``ort_threads()``).

        Raises:
            ModelUnavailable: a network file is missing or cannot be loaded.
        """
        detector_session = get_session(model_dir / FACE_DETECTION_FILE, threads=threads)
        detector = Detector(detector_session, FACE_DETECTOR)
        return cls(detector, get_session(model_dir / FACE_MESH_FILE, threads=threads))

    def detect(self, frame: np.ndarray) -> Region | None:
        """The mesh region of the most confident face in ``frame``, or None.

        The whole frame is searched first; when that finds nothing, squares of the
        frame's short side along its long side, where a face twice as small still
        fills enough of the detector's 128 pixels (the short-range detector misses
        faces under about a tenth of its input).
        """
        height, width = frame.shape[:2]
        for window in search_windows(width, height):
            found = self._detect_in(frame, window)
            if len(found):
                return region_from_detection(
                    found.boxes[0], found.keypoints[0], (width, height)
                )
        return None

    def _detect_in(self, frame: np.ndarray, window: Window) -> Detections:
        """Detections in one window of ``frame``, in normalised frame coordinates."""
        left, top, side_w, side_h = window
        found = self.detector.detect(frame[top : top + side_h, left : left + side_w])
        if len(found) == 0 or window == (0, 0, *frame.shape[1::-1]):
            return found
        height, width = frame.shape[:2]
        scale = np.array([side_w / width, side_h / height], np.float32)
        offset = np.array([left / width, top / height], np.float32)
        boxes = found.boxes.reshape(-1, 2, 2) * scale + offset
        keypoints = found.keypoints * scale + offset
        return Detections(boxes.reshape(-1, 4), keypoints, found.scores)

    def landmarks(self, frame: np.ndarray, region: Region) -> np.ndarray | None:
        """468 normalised (x, y, z) landmarks of the face in ``region``, or None."""
        height, width = frame.shape[:2]
        tensor = crop(frame, region, MESH_INPUT)
        raw_points, raw_presence = self.mesh.run(None, {self._mesh_input: tensor[None]})
        if _sigmoid(float(raw_presence.reshape(-1)[0])) < MIN_FACE_PRESENCE:
            return None
        points = raw_points.reshape(MESH_POINTS, 3)
        return project_landmarks(points, region, (width, height), MESH_INPUT)


@dataclass
class FaceTracker:
    """One clip's face track: use once per clip, from one thread."""

    mesh: FaceMesh
    region: Region | None = None
    tracking: bool = True

    def update(self, frame: np.ndarray) -> np.ndarray | None:
        """The face's 468 landmarks in this frame (normalised x, y, z), or None.

        A tracked region that no longer holds a face is dropped and the detector
        looks at the same frame again, so a lost face costs no extra frame. Without
        ``tracking`` the detector runs on every frame (slower; for comparison).
        """
        size = (frame.shape[1], frame.shape[0])
        if self.region is not None and self.tracking:
            points = self.mesh.landmarks(frame, self.region)
            if points is not None:
                self.region = region_from_mesh(points, size)
                return points

        self.region = self.mesh.detect(frame)
        if self.region is None:
            return None
        first = self.mesh.landmarks(frame, self.region)
        if first is None:
            self.region = None
            return None
        # The detector's box frames a face more loosely than a mesh does; one more
        # pass in the mesh's own region gives what tracking gives on later frames
        # (MediaPipe Holistic, too, reads the face in a region framed by a mesh).
        self.region = region_from_mesh(first, size)
        second = self.mesh.landmarks(frame, self.region)
        points = first if second is None else second
        self.region = region_from_mesh(points, size)
        return points
