"""Hand tracking and its generic parts: sessions, SSD decoding, regions, real clips."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from sign2text_core.errors import ConfigurationError, ModelUnavailable
from sign2text_core.landmarks import runtime
from sign2text_core.landmarks.detection import (
    FACE_DETECTOR,
    PALM_DETECTOR,
    POSE_DETECTOR,
    Detections,
    letterbox,
    remove_letterbox,
    ssd_anchors,
    weighted_nms,
)
from sign2text_core.landmarks.hands import HandModels, HandTracker, track_hands
from sign2text_core.landmarks.regions import (
    Region,
    crop,
    hand_region_from_landmarks,
    project_landmarks,
    rotation_to_vertical,
)
from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ROOT / "models" / "asl-gislr250" / "mediapipe"
PALM_NETWORK = NETWORKS / "palm_detection_full.onnx"

ONE_HAND_CLIP = "hello/heard__hello"  # 12 frames, Holistic sees the right hand in all
TWO_HAND_CLIP = "book/signtific__book"  # Holistic sees both hands in every frame
MAX_SIDE = 640
CLOSE = 0.02  # normalised image units: the parity target for the median error


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a clip, RGB, long side at most MAX_SIDE."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        scale = MAX_SIDE / max(rgb.shape[:2])
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    capture.release()
    return frames


def shared_clip(
    shared: Path, name: str, count: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames of a shared clip and Holistic's landmarks for them."""
    frames = read_frames(shared / "clips" / f"{name}.mp4", count)
    reference = np.load(shared / "reference" / f"{name}.npz")["landmarks"]
    return frames, reference[: len(frames)]


def median_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Median x, y distance over the landmarks both found."""
    both = ~np.isnan(ours[..., 0]) & ~np.isnan(theirs[..., 0])
    distances = np.linalg.norm(ours[both][:, :2] - theirs[both][:, :2], axis=-1)
    return float(np.median(distances))


@pytest.fixture(scope="module")
def models() -> HandModels:
    return HandModels.load(NETWORKS)


# Sessions


def test_one_session_per_network_even_when_threads_race() -> None:
    runtime.clear_sessions()
    sessions: list[object] = []

    def load() -> None:
        sessions.append(runtime.get_session(PALM_NETWORK, threads=1))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(sessions) == 4
    assert all(session is sessions[0] for session in sessions)


def test_missing_network_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        runtime.get_session(tmp_path / "palm_detection_full.onnx")


def test_corrupt_network_is_model_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelUnavailable):
        runtime.get_session(broken)


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_thread_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(runtime.THREADS_ENV, value)
    with pytest.raises(ConfigurationError, match=runtime.THREADS_ENV):
        runtime.ort_threads()


def test_thread_setting_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    session = runtime.get_session(PALM_NETWORK)
    assert runtime.ort_threads() == 1
    assert session is runtime.get_session(PALM_NETWORK, threads=1)


def test_batch_of_two_through_a_fixed_batch_graph_matches_single_calls() -> None:
    session = runtime.get_session(PALM_NETWORK, threads=1)
    batch = np.random.default_rng(0).random((2, 192, 192, 3), dtype=np.float32)
    boxes, scores = runtime.run_batch(session, batch)
    single_boxes, single_scores = runtime.run_batch(session, batch[1:])

    assert boxes.shape == (2, 2016, 18)
    np.testing.assert_allclose(boxes[1], single_boxes[0], atol=1e-5)
    np.testing.assert_allclose(scores[1], single_scores[0], atol=1e-5)


# Detection


def test_anchor_layouts_match_each_networks_outputs() -> None:
    # Output rows of the palm, face and pose detectors (models/README).
    assert len(ssd_anchors(PALM_DETECTOR.anchors)) == 2016
    assert len(ssd_anchors(FACE_DETECTOR.anchors)) == 896
    assert len(ssd_anchors(POSE_DETECTOR.anchors)) == 2254


def test_anchors_cover_the_input_cell_by_cell() -> None:
    anchors = ssd_anchors(PALM_DETECTOR.anchors)
    # First grid: 24×24 cells of 8 pixels, two anchors per cell.
    np.testing.assert_allclose(anchors[0, :2], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(anchors[1, :2], anchors[0, :2])
    np.testing.assert_allclose(anchors[2, :2], [1.5 / 24, 0.5 / 24])
    # Last anchor: bottom-right cell of the 12×12 grid.
    np.testing.assert_allclose(anchors[-1, :2], [11.5 / 12, 11.5 / 12])


def test_weighted_nms_merges_overlapping_boxes_and_keeps_separate_ones() -> None:
    boxes = np.array(
        [[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]],
        np.float32,
    )
    keypoints = np.zeros((3, 1, 2), np.float32)
    keypoints[:, 0, 0] = [0.2, 0.23, 0.7]
    scores = np.array([0.9, 0.6, 0.8], np.float32)

    merged = weighted_nms(Detections(boxes, keypoints, scores), threshold=0.3)

    assert len(merged) == 2
    np.testing.assert_allclose(merged.scores, [0.9, 0.8])
    # Weighted by score: 0.1 * 0.9 + 0.12 * 0.6 over 1.5.
    assert merged.boxes[0, 0] == pytest.approx(0.108, abs=1e-6)
    assert merged.keypoints[0, 0, 0] == pytest.approx(0.212, abs=1e-6)
    np.testing.assert_allclose(merged.boxes[1], boxes[2])


def test_letterbox_keeps_aspect_and_removing_it_restores_coordinates() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 150:170] = 255  # a white square at x 0.75–0.85, y 0.4–0.6
    tensor, padding = letterbox(image, (192, 192), (0.0, 1.0))

    assert tensor.shape == (192, 192, 3)
    assert padding.top == pytest.approx(0.25)
    assert padding.left == 0
    rows = np.flatnonzero(tensor[:, :, 0].max(axis=1) > 0.5)
    assert rows.min() / 192 == pytest.approx(0.25 + 0.4 / 2, abs=0.01)

    found = Detections(
        np.array([[0.75, 0.45, 0.85, 0.55]], np.float32),
        np.array([[[0.8, 0.5]]], np.float32),
        np.array([0.9], np.float32),
    )
    restored = remove_letterbox(found, padding)
    np.testing.assert_allclose(restored.boxes[0], [0.75, 0.4, 0.85, 0.6], atol=1e-6)
    np.testing.assert_allclose(restored.keypoints[0, 0], [0.8, 0.5], atol=1e-6)


# Regions


def test_crop_then_project_returns_the_region_corners() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    region = Region(0.5, 0.5, 0.3, 0.4, rotation=math.radians(30))
    corners = np.array([[0, 0, 0], [224, 0, 0], [224, 224, 0], [0, 224, 0]], float)

    projected = project_landmarks(corners, region, (400, 300), (224, 224))

    cx, cy = 200.0, 150.0
    half_w, half_h = 0.3 * 400 / 2, 0.4 * 300 / 2
    cos, sin = math.cos(math.radians(30)), math.sin(math.radians(30))
    for (u, v), point in zip(
        [(-1, -1), (1, -1), (1, 1), (-1, 1)], projected, strict=True
    ):
        x = cx + u * half_w * cos - v * half_h * sin
        y = cy + u * half_w * sin + v * half_h * cos
        assert point[0] * 400 == pytest.approx(x, abs=1e-3)
        assert point[1] * 300 == pytest.approx(y, abs=1e-3)
    assert crop(image, region, (224, 224)).shape == (224, 224, 3)


def test_crop_turns_the_region_upright() -> None:
    # A bright bar pointing from the centre to the right must point up in the crop.
    image = np.zeros((200, 200, 3), np.uint8)
    image[95:105, 100:160] = 255
    rotation = rotation_to_vertical((0.5, 0.5), (0.8, 0.5), (200, 200))
    region = Region(0.5, 0.5, 0.8, 0.8, rotation)
    tensor = crop(image, region, (100, 100))

    assert rotation == pytest.approx(math.pi / 2)

    bright = np.argwhere(tensor[:, :, 0] > 0.5)
    assert np.ptp(bright[:, 0]) > 3 * np.ptp(bright[:, 1])  # tall, not wide
    assert bright[:, 0].mean() < 50  # above the centre


def test_hand_region_is_square_in_pixels_and_contains_the_hand() -> None:
    rng = np.random.default_rng(1)
    landmarks = np.column_stack(
        [0.4 + 0.1 * rng.random(21), 0.3 + 0.2 * rng.random(21)]
    )
    landmarks = np.column_stack([landmarks, np.zeros(21)])
    region = hand_region_from_landmarks(landmarks, (640, 360))

    assert region.width * 640 == pytest.approx(region.height * 360)
    assert abs(region.x_center - 0.45) < 0.1
    assert region.width * 640 > 0.1 * 640


# Hand tracking on frames the tests make


def test_frames_without_hands_give_no_hands(models: HandModels, tmp_path: Path) -> None:
    pattern = read_frames(make_clip(tmp_path / "pattern.mp4", seconds=0.3), 8)
    blank = [np.full((240, 320, 3), level, np.uint8) for level in (0, 128, 255)]

    left, right = track_hands(pattern + blank, models)

    assert left.shape == right.shape == (len(pattern) + 3, 21, 3)
    assert np.isnan(left).all()
    assert np.isnan(right).all()


# Hand tracking on real clips


def test_one_hand_is_found_on_every_frame_and_named_right(
    models: HandModels, shared_dir: Path
) -> None:
    frames, reference = shared_clip(shared_dir, ONE_HAND_CLIP, 12)
    left, right = track_hands(frames, models)

    assert np.isnan(left).all()
    assert not np.isnan(right).any()
    assert median_error(right, reference[:, 522:543]) < CLOSE


def test_two_hands_are_found_and_told_apart(
    models: HandModels, shared_dir: Path
) -> None:
    frames, reference = shared_clip(shared_dir, TWO_HAND_CLIP, 16)
    left, right = track_hands(frames, models)

    assert (~np.isnan(left[:, 0, 0])).mean() >= 0.9
    assert (~np.isnan(right[:, 0, 0])).mean() >= 0.9
    assert median_error(left, reference[:, 468:489]) < CLOSE
    assert median_error(right, reference[:, 522:543]) < CLOSE


def test_tracking_spares_the_palm_detector(
    models: HandModels, shared_dir: Path
) -> None:
    frames, _ = shared_clip(shared_dir, TWO_HAND_CLIP, 16)
    tracker = HandTracker(models)
    for frame in frames:
        tracker.process(frame)

    # Both hands are followed from the first frame on, so one detection suffices.
    assert 1 <= tracker.detections_run <= 3


def test_hand_entering_mid_clip_is_found_from_its_first_frame(
    models: HandModels, shared_dir: Path
) -> None:
    frames, reference = shared_clip(shared_dir, ONE_HAND_CLIP, 12)
    empty = [np.zeros_like(frames[0]) for _ in range(5)]

    _, right = track_hands(empty + frames, models)

    assert np.isnan(right[:5]).all()
    assert not np.isnan(right[5:]).any()
    assert median_error(right[5:], reference[:, 522:543]) < CLOSE


def test_rotated_frame_gives_rotated_landmarks(
    models: HandModels, shared_dir: Path
) -> None:
    frames, _ = shared_clip(shared_dir, ONE_HAND_CLIP, 1)
    upright = track_hands(frames, models)[1][0]
    turned = cv2.rotate(frames[0], cv2.ROTATE_90_CLOCKWISE)
    left, right = track_hands([turned], models)
    found = right[0] if not np.isnan(right[0, 0, 0]) else left[0]

    # Turning a frame a quarter clockwise sends (x, y) to (1 - y, x).
    expected = np.column_stack([1 - upright[:, 1], upright[:, 0]])
    assert not np.isnan(found).any()
    assert np.median(np.linalg.norm(found[:, :2] - expected, axis=1)) < CLOSE
