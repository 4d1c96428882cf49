"""Single-shot detectors (palm, face, pose): anchors, decoding, suppression, letterbox.

MediaPipe's palm, face and pose detectors share one design: the image is letterboxed
into a square tensor, the network scores a fixed grid of anchors and regresses a box
and a few keypoints relative to each, and overlapping hits are merged by weighted
non-max suppression. The numbers for each detector (anchor layout, scales,
thresholds, value range) are MediaPipe's, read from the graphs in
``mediapipe/modules/{palm,face,pose}_detection/*.pbtxt`` of google-ai-edge/mediapipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from sign2text_core.landmarks.runtime import run_batch


@dataclass(frozen=True)
class AnchorOptions:
    """How an SSD detector lays its anchors over the input tensor.

    Mirrors the options of MediaPipe's ``SsdAnchorsCalculator`` that its detectors use.
    Consecutive layers with the same stride share one grid, each adding its anchors
    to every cell.
    """

    input_width: int
    input_height: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class DetectorSpec:
    """Everything that distinguishes one SSD detector network from another."""

    name: str
    anchors: AnchorOptions
    num_keypoints: int
    min_score: float = 0.5
    score_clipping: float = 100.0
    nms_threshold: float = 0.3
    value_range: tuple[float, float] = (0.0, 1.0)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the input tensor."""
        return self.anchors.input_width, self.anchors.input_height


# From mediapipe/modules/palm_detection/palm_detection_cpu.pbtxt.
PALM_DETECTOR = DetectorSpec(
    name="palm",
    anchors=AnchorOptions(input_width=192, input_height=192, strides=(8, 16, 16, 16)),
    num_keypoints=7,
)

# From mediapipe/modules/face_detection/face_detection_short_range.pbtxt and
# face_detection.pbtxt (input scaled to [-1, 1]).
FACE_DETECTOR = DetectorSpec(
    name="face_short_range",
    anchors=AnchorOptions(input_width=128, input_height=128, strides=(8, 16, 16, 16)),
    num_keypoints=6,
    value_range=(-1.0, 1.0),
)

# From mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt (input in [-1, 1]).
POSE_DETECTOR = DetectorSpec(
    name="pose",
    anchors=AnchorOptions(
        input_width=224, input_height=224, strides=(8, 16, 32, 32, 32)
    ),
    num_keypoints=4,
    value_range=(-1.0, 1.0),
)


@dataclass(frozen=True)
class Letterbox:
    """Padding added on each side, as fractions of the padded square's side."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Detections:
    """Detections in normalised image coordinates, best score first after NMS.

    ``boxes`` [N, 4] as (xmin, ymin, xmax, ymax); ``keypoints`` [N, K, 2] as (x, y);
    ``scores`` [N] in [0, 1].
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, indices: np.ndarray | Sequence[int]) -> Detections:
        chosen = np.asarray(indices, dtype=np.int64)
        return Detections(
            self.boxes[chosen], self.keypoints[chosen], self.scores[chosen]
        )

    @staticmethod
    def empty(num_keypoints: int) -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros((0, num_keypoints, 2), np.float32),
            np.zeros((0,), np.float32),
        )


def _layer_scale(options: AnchorOptions, layer: int) -> float:
    count = len(options.strides)
    if count == 1:
        return (options.min_scale + options.max_scale) / 2
    span = options.max_scale - options.min_scale
    return options.min_scale + span * layer / (count - 1)


def _cell_anchor_sizes(
    options: AnchorOptions, first: int, last: int
) -> list[tuple[float, float]]:
    """(width, height) of the anchors each cell gets from layers first..last-1."""
    sizes: list[tuple[float, float]] = []
    for layer in range(first, last):
        scale = _layer_scale(options, layer)
        if layer == 0 and options.reduce_boxes_in_lowest_layer:
            pairs = [(1.0, 0.1), (2.0, scale), (0.5, scale)]
        else:
            pairs = [(ratio, scale) for ratio in options.aspect_ratios]
            if options.interpolated_scale_aspect_ratio > 0:
                is_last = layer == len(options.strides) - 1
                next_scale = 1.0 if is_last else _layer_scale(options, layer + 1)
                pairs.append(
                    (
                        options.interpolated_scale_aspect_ratio,
                        math.sqrt(scale * next_scale),
                    )
                )
        for ratio, size in pairs:
            root = math.sqrt(ratio)
            sizes.append((size * root, size / root))
    return sizes


def ssd_anchors(options: AnchorOptions) -> np.ndarray:
    """Anchors [N, 4] as (x_center, y_center, width, height), normalised.

    The order matches the network's output rows: grid by grid, row-major cells,
    the anchors of one cell together.
    """
    grids: list[np.ndarray] = []
    layer = 0
    while layer < len(options.strides):
        stride = options.strides[layer]
        last = layer
        while last < len(options.strides) and options.strides[last] == stride:
            last += 1

        sizes = _cell_anchor_sizes(options, layer, last)
        rows = math.ceil(options.input_height / stride)
        cols = math.ceil(options.input_width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centers_x = (xs.ravel() + options.anchor_offset_x) / cols
        centers_y = (ys.ravel() + options.anchor_offset_y) / rows

        grid = np.zeros((rows * cols, len(sizes), 4), np.float32)
        grid[:, :, 0] = centers_x[:, None]
        grid[:, :, 1] = centers_y[:, None]
        if options.fixed_anchor_size:
            grid[:, :, 2:] = 1.0
        else:
            grid[:, :, 2:] = np.asarray(sizes, np.float32)[None, :, :]
        grids.append(grid.reshape(-1, 4))
        layer = last
    return np.concatenate(grids, axis=0)


def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    spec: DetectorSpec,
) -> Detections:
    """Turn one image's raw network rows into scored detections above ``min_score``.

    ``raw_boxes`` [N, 4 + 2K] hold (x, y, w, h) then K (x, y) keypoints, in input
    pixels relative to each anchor; ``raw_scores`` [N] or [N, 1] are logits.
    """
    # float64: exp of a clipped logit (up to 100) overflows float32.
    logits = raw_scores.reshape(-1).astype(np.float64)
    logits = np.clip(logits, -spec.score_clipping, spec.score_clipping)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= spec.min_score)
    if keep.size == 0:
        return Detections.empty(spec.num_keypoints)

    width, height = spec.input_size
    pixels = np.array([width, height], np.float32)
    rows = raw_boxes.reshape(len(anchors), -1)[keep]
    kept_anchors = anchors[keep]
    anchor_centers = kept_anchors[:, None, :2]
    anchor_sizes = kept_anchors[:, None, 2:]

    centers = rows[:, None, 0:2] / pixels * anchor_sizes + anchor_centers
    sizes = rows[:, None, 2:4] / pixels * anchor_sizes
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=2)[:, 0]

    offsets = rows[:, 4 : 4 + 2 * spec.num_keypoints].reshape(-1, spec.num_keypoints, 2)
    keypoints = offsets / pixels * anchor_sizes + anchor_centers
    return Detections(
        boxes.astype(np.float32),
        keypoints.astype(np.float32),
        scores[keep].astype(np.float32),
    )


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (xmin, ymin, xmax, ymax) box with each row of ``others``."""
    low = np.maximum(box[:2], others[:, :2])
    high = np.minimum(box[2:], others[:, 2:])
    overlap = np.clip(high - low, 0.0, None)
    intersection = overlap[:, 0] * overlap[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + other_areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def weighted_nms(detections: Detections, threshold: float) -> Detections:
    """Merge overlapping detections, best first, into score-weighted averages.

    Every detection overlapping the best remaining one by more than ``threshold`` IoU
    is folded into it: box corners and keypoints become the score-weighted mean,
    the score stays the best one's (as MediaPipe's WEIGHTED algorithm does).
    """
    order = np.argsort(-detections.scores, kind="stable")
    boxes, keypoints, scores = [], [], []
    while order.size:
        best = order[0]
        overlaps = box_iou(detections.boxes[best], detections.boxes[order])
        merged = order[overlaps > threshold]
        if merged.size == 0:  # a degenerate box overlaps nothing, not even itself
            merged = order[:1]
        weights = detections.scores[merged][:, None]
        total = float(weights.sum())
        boxes.append((detections.boxes[merged] * weights).sum(axis=0) / total)
        keypoints.append(
            (detections.keypoints[merged] * weights[:, :, None]).sum(axis=0) / total
        )
        scores.append(detections.scores[best])
        order = order[~np.isin(order, merged)]

    if not scores:
        return Detections.empty(detections.keypoints.shape[1])
    return Detections(
        np.asarray(boxes, np.float32),
        np.asarray(keypoints, np.float32),
        np.asarray(scores, np.float32),
    )


def letterbox_matrix(
    image_width: int, image_height: int, size: tuple[int, int]
) -> tuple[np.ndarray, Letterbox]:
    """The affine map from image pixels into a size[0]×size[1] tensor, aspect kept.

    The image's long side spans the tensor; the short side is centred with equal
    padding on both sides.
    """
    out_width, out_height = size
    scale = min(out_width / image_width, out_height / image_height)
    pad_x = (out_width - image_width * scale) / 2
    pad_y = (out_height - image_height * scale) / 2
    matrix = np.array([[scale, 0.0, pad_x], [0.0, scale, pad_y]], np.float64)
    padding = Letterbox(
        left=pad_x / out_width,
        top=pad_y / out_height,
        right=pad_x / out_width,
        bottom=pad_y / out_height,
    )
    return matrix, padding


def to_tensor(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 RGB pixels → float32 scaled linearly from [0, 255] to ``value_range``."""
    low, high = value_range
    scale = (high - low) / 255.0
    tensor = pixels.astype(np.float32)
    tensor *= scale
    if low:
        tensor += low
    return tensor


def letterbox(
    image: np.ndarray, size: tuple[int, int], value_range: tuple[float, float]
) -> tuple[np.ndarray, Letterbox]:
    """``image`` (RGB uint8, HxWx3) letterboxed into a float32 [h, w, 3] tensor.

    One bilinear affine warp, zero (black) padding — what MediaPipe's detectors see.
    """
    height, width = image.shape[:2]
    matrix, padding = letterbox_matrix(width, height, size)
    warped = cv2.warpAffine(
        image,
        matrix,
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return to_tensor(warped, value_range), padding


def remove_letterbox(detections: Detections, padding: Letterbox) -> Detections:
    """Detections in letterboxed-tensor coordinates → original image coordinates."""
    if len(detections) == 0:
        return detections
    offset = np.array([padding.left, padding.top], np.float32)
    span = np.array(
        [1.0 - padding.left - padding.right, 1.0 - padding.top - padding.bottom],
        np.float32,
    )
    boxes = detections.boxes.copy()
    boxes[:, :2] = (boxes[:, :2] - offset) / span
    boxes[:, 2:] = (boxes[:, 2:] - offset) / span
    keypoints = (detections.keypoints - offset) / span
    return Detections(boxes, keypoints.astype(np.float32), detections.scores)


class Detector:
    """One SSD detector network with its anchors; ``detect`` is thread-safe."""

    def __init__(self, session: ort.InferenceSession, spec: DetectorSpec) -> None:
        self.session = session
        self.spec = spec
        self.anchors = ssd_anchors(spec.anchors)
        expected = session.get_outputs()[0].shape[1]
        if isinstance(expected, int) and expected != len(self.anchors):
            raise ValueError(
                f"{spec.name} detector: network has {expected} anchors, "
                f"the layout gives {len(self.anchors)}"
            )

    def detect(self, image: np.ndarray) -> Detections:
        """Detections in ``image`` (RGB uint8), normalised, best first."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections for each image, one network call per image or per batch."""
        prepared = [
            letterbox(image, self.spec.input_size, self.spec.value_range)
            for image in images
        ]
        batch = np.stack([tensor for tensor, _ in prepared])
        raw_boxes, raw_scores = self._raw_outputs(batch)

        results = []
        for index, (_, padding) in enumerate(prepared):
            decoded = decode_detections(
                raw_boxes[index], raw_scores[index], self.anchors, self.spec
            )
            merged = weighted_nms(decoded, self.spec.nms_threshold)
            results.append(remove_letterbox(merged, padding))
        return results

    def _raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = run_batch(self.session, batch)
        # The regressors are the output with 4 + 2K values per anchor.
        boxes = next(
            o for o in outputs if o.shape[-1] == 4 + 2 * self.spec.num_keypoints
        )
        scores = next(o for o in outputs if o.shape[-1] == 1)
        return boxes, scores
