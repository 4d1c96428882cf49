"""Body pose: pose detection, then 33 landmarks tracked from frame to frame.

The steps and numbers are MediaPipe's pose graphs (google-ai-edge/mediapipe,
``mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt`` and
``mediapipe/modules/pose_landmark/*.pbtxt``): the detector gives the hips' midpoint
and a point on the circle around the body; a square twice that radius, stood
upright along that vector and grown 1.25×, is what the 256×256 landmark network
reads. Its two extra landmarks (33, 34) are the same pair of points, so they frame
the next frame's region; a presence score under 0.5 drops the track. The landmark
positions are refined on the network's heatmaps as MediaPipe does; MediaPipe's
temporal smoothing of pose landmarks is not reproduced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sign2text_core.landmarks.detection import POSE_DETECTOR, Detector
from sign2text_core.landmarks.regions import (
    ImageSize,
    Region,
    crop,
    project_landmarks,
    rotation_to_vertical,
    transform_region,
)
from sign2text_core.landmarks.runtime import get_session

POSE_DETECTION_FILE = "pose_detection.onnx"
POSE_LANDMARK_FILE = "pose_landmark_full.onnx"

POSE_POINTS = 33
NETWORK_POINTS = 39  # 33 body points, 2 framing points, 4 unused
VALUES_PER_POINT = 5  # x, y, z, visibility, presence
LANDMARK_INPUT: ImageSize = (256, 256)
# tensors_to_pose_landmarks_and_segmentation.pbtxt: threshold on the pose flag.
MIN_POSE_PRESENCE = 0.5
# pose_detection_to_roi.pbtxt and pose_landmarks_to_roi.pbtxt.
REGION_SCALE = 1.25
# The detector's and the network's framing points: hips' midpoint, then a point
# on the circle that encloses the body.
DETECTION_CENTER, DETECTION_EDGE = 0, 1
FRAMING_CENTER, FRAMING_EDGE = 33, 34
# RefineLandmarksFromHeatmapCalculator options in the same graph / its defaults.
HEATMAP_KERNEL = 7
MIN_HEATMAP_CONFIDENCE = 0.5


def region_from_points(
    center: np.ndarray, edge: np.ndarray, image_size: ImageSize
) -> Region:
    """The landmark region for a body centred on ``center`` reaching ``edge``.

    As MediaPipe's AlignmentPointsRectsCalculator: a square of twice the distance
    (in pixels), turned so that centre → edge points up, then grown 1.25×.
    """
    width, height = image_size
    dx = (float(edge[0]) - float(center[0])) * width
    dy = (float(edge[1]) - float(center[1])) * height
    side = 2.0 * math.hypot(dx, dy)
    rotation = rotation_to_vertical(
        (float(center[0]), float(center[1])),
        (float(edge[0]), float(edge[1])),
        image_size,
        target_degrees=90.0,
    )
    body = Region(
        float(center[0]), float(center[1]), side / width, side / height, rotation
    )
    return transform_region(body, image_size, scale=REGION_SCALE)


def refine_on_heatmap(points: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Move each point to the confidence-weighted mean of its heatmap neighbourhood.

    ``points`` [N, ≥2] are in [0, 1] of the network input, ``heatmap`` [h, w, N]
    holds logits. Points whose neighbourhood is nowhere confident, or that lie
    outside the input, keep their place (MediaPipe's RefineLandmarksFromHeatmap).
    """
    rows, cols, _ = heatmap.shape
    refined = points.copy()
    half = (HEATMAP_KERNEL - 1) // 2
    for index in range(len(points)):
        col = int(points[index, 0] * cols)
        row = int(points[index, 1] * rows)
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        top, bottom = max(0, row - half), min(rows, row + half + 1)
        left, right = max(0, col - half), min(cols, col + half + 1)
        logits = heatmap[top:bottom, left:right, index].astype(np.float64)
        confidence = 1.0 / (1.0 + np.exp(-logits))
        total = confidence.sum()
        if confidence.max() < MIN_HEATMAP_CONFIDENCE or total <= 0:
            continue
        grid_rows, grid_cols = np.mgrid[top:bottom, left:right]
        refined[index, 0] = (grid_cols * confidence).sum() / cols / total
        refined[index, 1] = (grid_rows * confidence).sum() / rows / total
    return refined


@dataclass(frozen=True)
class PoseResult:
    """One frame's pose: 33 normalised (x, y, z), their visibility, and framing."""

    landmarks: np.ndarray
    visibility: np.ndarray
    next_region: Region


class PoseModel:
    """The pose detector and landmark networks; stateless, safe to share."""

    def __init__(self, detector: Detector, landmark: ort.InferenceSession) -> None:
        self.detector = detector
        self.landmark = landmark
        self._input = landmark.get_inputs()[0].name

    @classmethod
    def from_dir(cls, model_dir: Path, threads: int | None = None) -> PoseModel:
        """Networks from ``model_dir`` via the process-wide session cache.

        ``threads`` is each session's intra-op threads (None: ``ort_threads()``).

        Raises:
            ModelUnavailable: a network file is missing or cannot be loaded.
        """
        detector_session = get_session(model_dir / POSE_DETECTION_FILE, threads=threads)
        detector = Detector(detector_session, POSE_DETECTOR)
        return cls(
            detector, get_session(model_dir / POSE_LANDMARK_FILE, threads=threads)
        )

    def detect(self, frame: np.ndarray) -> Region | None:
        """The landmark region of the most confident body in ``frame``, or None."""
        found = self.detector.detect(frame)
        if len(found) == 0:
            return None
        height, width = frame.shape[:2]
        keypoints = found.keypoints[0]
        return region_from_points(
            keypoints[DETECTION_CENTER], keypoints[DETECTION_EDGE], (width, height)
        )

    def landmarks(self, frame: np.ndarray, region: Region) -> PoseResult | None:
        """The body's landmarks in ``region`` of ``frame``, or None if none is there."""
        height, width = frame.shape[:2]
        tensor = crop(frame, region, LANDMARK_INPUT)
        outputs = self.landmark.run(None, {self._input: tensor[None]})
        raw_points, presence, heatmap = outputs[0], outputs[1], outputs[3]
        if float(presence.reshape(-1)[0]) < MIN_POSE_PRESENCE:
            return None

        values = raw_points.reshape(NETWORK_POINTS, VALUES_PER_POINT)
        unit = values[:, :3] / np.array([*LANDMARK_INPUT, 1.0], np.float32)
        unit[:, :2] = refine_on_heatmap(unit[:, :2], heatmap[0])
        in_pixels = unit * np.array([*LANDMARK_INPUT, 1.0], np.float32)
        projected = project_landmarks(
            in_pixels, region, (width, height), LANDMARK_INPUT
        )

        visibility = 1.0 / (1.0 + np.exp(-values[:POSE_POINTS, 3]))
        next_region = region_from_points(
            projected[FRAMING_CENTER], projected[FRAMING_EDGE], (width, height)
        )
        return PoseResult(projected[:POSE_POINTS], visibility, next_region)


@dataclass
class PoseTracker:
    """One clip's pose track: use once per clip, from one thread."""

    model: PoseModel
    region: Region | None = None

    def update(self, frame: np.ndarray) -> PoseResult | None:
        """The body's pose in this frame, or None.

        A tracked region that no longer holds a body is dropped and the detector
        looks at the same frame again.
        """
        if self.region is not None:
            result = self.model.landmarks(frame, self.region)
            if result is not None:
                self.region = result.next_region
                return result

        self.region = self.model.detect(frame)
        if self.region is None:
            return None
        result = self.model.landmarks(frame, self.region)
        self.region = None if result is None else result.next_region
        return result
