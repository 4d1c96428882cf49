"""Rotated regions of a frame: from detections or landmarks, cropping, projecting back.

A landmark network sees one rotated square of the frame, warped to its input size
so that the body part stands upright. A :class:`Region` is that square in
normalised frame coordinates; :func:`crop` cuts it out with one affine warp and
:func:`project_landmarks` maps the network's answer back onto the frame.

Geometry follows MediaPipe's DetectionsToRects, RectTransformation,
HandLandmarksToRect, ImageToTensor and LandmarkProjection calculators
(google-ai-edge/mediapipe, ``mediapipe/calculators/util`` and ``tensor``); the
numbers for hands come from ``mediapipe/modules/hand_landmark/*.pbtxt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from sign2text_core.landmarks.detection import to_tensor

ImageSize = tuple[int, int]
"""(width, height) of a frame in pixels."""

# Landmarks MediaPipe's hand tracker frames the next region with: the wrist, the
# thumb's first three joints and the two lowest joints of each finger (the tips
# move too much to frame a hand by).
HAND_FRAMING_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13


@dataclass(frozen=True)
class Region:
    """A rotated rectangle in normalised frame coordinates.

    ``rotation`` is in radians, clockwise on screen (y points down); ``width`` is a
    fraction of the frame's width and ``height`` of its height, so a square in
    pixels has ``width * frame_width == height * frame_height``.
    """

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the rectangle before rotation."""
        half_w, half_h = self.width / 2, self.height / 2
        return (
            self.x_center - half_w,
            self.y_center - half_h,
            self.x_center + half_w,
            self.y_center + half_h,
        )


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into [-π, π)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_to_vertical(
    start: tuple[float, float],
    end: tuple[float, float],
    image_size: ImageSize,
    target_degrees: float = 90.0,
) -> float:
    """Rotation that turns the start→end vector (normalised points) to the target.

    The angle is measured in pixels, with y pointing up, so 90° means the vector
    points to the top of the frame once the region is rotated upright.
    """
    width, height = image_size
    dx = (end[0] - start[0]) * width
    dy = (end[1] - start[1]) * height
    return normalize_radians(math.radians(target_degrees) - math.atan2(-dy, dx))


def transform_region(
    region: Region,
    image_size: ImageSize,
    *,
    scale: float = 1.0,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    square_long: bool = True,
) -> Region:
    """Shift ``region`` along its own axes, square it on its long side, scale it.

    Shifts are fractions of the region's own width/height, applied in its rotated
    frame, as MediaPipe's RectTransformationCalculator does.
    """
    width, height = image_size
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    shift_px_x = region.width * width * shift_x
    shift_px_y = region.height * height * shift_y
    x_center = region.x_center + (shift_px_x * cos - shift_px_y * sin) / width
    y_center = region.y_center + (shift_px_x * sin + shift_px_y * cos) / height

    new_width, new_height = region.width, region.height
    if square_long:
        long_side = max(region.width * width, region.height * height)
        new_width, new_height = long_side / width, long_side / height
    return Region(
        x_center, y_center, new_width * scale, new_height * scale, region.rotation
    )


def palm_region(
    box: np.ndarray, keypoints: np.ndarray, image_size: ImageSize
) -> Region:
    """The hand region for a palm detection (box xmin, ymin, xmax, ymax; 7 keypoints).

    Rotated so the wrist (keypoint 0) → middle-finger knuckle (keypoint 2) vector
    points up, then grown 2.6× and shifted half a palm towards the fingers so the
    whole hand fits (mediapipe/modules/hand_landmark/palm_detection_detection_to_roi).
    """
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    rotation = rotation_to_vertical(
        (float(keypoints[0, 0]), float(keypoints[0, 1])),
        (float(keypoints[2, 0]), float(keypoints[2, 1])),
        image_size,
    )
    palm = Region(
        (xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin, rotation
    )
    return transform_region(palm, image_size, scale=2.6, shift_y=-0.5)


def hand_rotation(landmarks: np.ndarray, image_size: ImageSize) -> float:
    """Rotation that stands a hand upright: wrist → middle of the three knuckles."""
    knuckles = (landmarks[INDEX_MCP, :2] + landmarks[RING_MCP, :2]) / 2
    target = (knuckles + landmarks[MIDDLE_MCP, :2]) / 2
    wrist = landmarks[WRIST, :2]
    return rotation_to_vertical(
        (float(wrist[0]), float(wrist[1])),
        (float(target[0]), float(target[1])),
        image_size,
    )


def landmarks_region(
    points: np.ndarray, rotation: float, image_size: ImageSize
) -> Region:
    """The tightest rectangle with ``rotation`` around normalised ``points`` [N, ≥2]."""
    width, height = image_size
    pixels = points[:, :2].astype(np.float64) * (width, height)
    mid = (pixels.min(axis=0) + pixels.max(axis=0)) / 2

    cos, sin = math.cos(rotation), math.sin(rotation)
    # Coordinates along the region's own axes (rotate by -rotation).
    local = (pixels - mid) @ np.array([[cos, -sin], [sin, cos]])
    low, high = local.min(axis=0), local.max(axis=0)
    local_mid = (low + high) / 2
    center = mid + np.array([[cos, -sin], [sin, cos]]) @ local_mid

    return Region(
        float(center[0] / width),
        float(center[1] / height),
        float((high[0] - low[0]) / width),
        float((high[1] - low[1]) / height),
        rotation,
    )


def hand_region_from_landmarks(landmarks: np.ndarray, image_size: ImageSize) -> Region:
    """Next frame's hand region from this frame's 21 normalised hand landmarks.

    Framed on the palm and lower finger joints, then doubled and shifted a little
    towards the fingers (mediapipe/modules/hand_landmark/
    hand_landmark_landmarks_to_roi.pbtxt: scale 2.0, shift_y -0.1, square).
    """
    rotation = hand_rotation(landmarks, image_size)
    framing = landmarks[list(HAND_FRAMING_LANDMARKS)]
    tight = landmarks_region(framing, rotation, image_size)
    return transform_region(tight, image_size, scale=2.0, shift_y=-0.1)


def crop_matrix(
    region: Region, image_size: ImageSize, out_size: ImageSize
) -> np.ndarray:
    """The 2×3 affine map from tensor pixels to frame pixels for ``region``.

    The region's corners land on the tensor's corners, as MediaPipe's ImageToTensor
    does; pass it to ``cv2.warpAffine`` with ``WARP_INVERSE_MAP``.
    """
    width, height = image_size
    out_width, out_height = out_size
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    region_w = region.width * width
    region_h = region.height * height

    axis_u = np.array([cos, sin]) * region_w / out_width
    axis_v = np.array([-sin, cos]) * region_h / out_height
    center = np.array([region.x_center * width, region.y_center * height])
    origin = center - axis_u * out_width / 2 - axis_v * out_height / 2
    return np.column_stack([axis_u, axis_v, origin])


def crop(
    image: np.ndarray,
    region: Region,
    out_size: ImageSize,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """``region`` of ``image`` (RGB uint8) as a float32 [h, w, 3] network input.

    One bilinear warp; pixels beyond the frame repeat its edge, as MediaPipe's
    landmark graphs do by default.
    """
    height, width = image.shape[:2]
    matrix = crop_matrix(region, (width, height), out_size)
    warped = cv2.warpAffine(
        image,
        matrix,
        out_size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return to_tensor(warped, value_range)


def project_landmarks(
    points: np.ndarray,
    region: Region,
    image_size: ImageSize,
    out_size: ImageSize,
    z_scale: float = 1.0,
) -> np.ndarray:
    """Network landmarks [N, 3] in tensor pixels → normalised frame coordinates.

    x and y go through the crop's affine map. z comes out in tensor pixels too; it
    is divided by the tensor width and ``z_scale`` (MediaPipe's ``normalize_z``) and
    multiplied by the region's width, so it shares x's scale as MediaPipe's z does.
    """
    width, height = image_size
    matrix = crop_matrix(region, image_size, out_size)
    pixels = points[:, :2].astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]

    projected = np.empty((len(points), 3), np.float32)
    projected[:, 0] = pixels[:, 0] / width
    projected[:, 1] = pixels[:, 1] / height
    projected[:, 2] = points[:, 2] / out_size[0] / z_scale * region.width
    return projected


def region_iou(first: Region, second: Region) -> float:
    """Overlap of two regions' unrotated rectangles, as intersection over union."""
    a = first.bounds()
    b = second.bounds()
    overlap_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    overlap_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = overlap_w * overlap_h
    union = first.width * first.height + second.width * second.height - intersection
    return intersection / union if union > 0 else 0.0


def scaled(region: Region, factor: float) -> Region:
    """``region`` grown (or shrunk) by ``factor`` about its centre."""
    return replace(region, width=region.width * factor, height=region.height * factor)
