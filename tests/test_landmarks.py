"""LandmarkExtractor: layout, NaN where nothing is found, tracking, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from sign2text_core.errors import InvalidParameter
from sign2text_core.landmarks import (
    FACE,
    LEFT_HAND,
    POINTS,
    POSE,
    POSE_FROM_MESH,
    RIGHT_HAND,
    LandmarkExtractor,
)
from sign2text_core.landmarks.face import pose_from_mesh
from sign2text_core.landmarks.runtime import THREADS_ENV
from sign2text_core.video import read_clip
from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_NETWORKS = ROOT / "models" / "asl-gislr250" / "mediapipe"
FACE_CLIP = "happy/signtific__happy"  # one signer facing the camera, face always seen
TWO_HAND_CLIP = "book/signtific__book"  # Holistic sees both hands in every frame
LIPS = [61, 291, 0, 17, 13, 14, 78, 308]  # mouth corners and mid-lip points


def shared_frames(
    shared: Path, name: str, count: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``count`` frames of a shared clip and Holistic's landmarks for them."""
    capture = cv2.VideoCapture(str(shared / "clips" / f"{name}.mp4"))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        assert ok, f"{name} has fewer than {count} frames"
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    reference = np.load(shared / "reference" / f"{name}.npz")["landmarks"][:count]
    return frames, reference


@pytest.fixture(scope="module")
def extractor() -> LandmarkExtractor:
    return LandmarkExtractor(BUNDLED_NETWORKS, pose=False)


@pytest.fixture(scope="module")
def face_frames(shared_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    return shared_frames(shared_dir, FACE_CLIP, 12)


def test_test_pattern_has_no_face_or_hands_so_every_point_is_nan(
    extractor: LandmarkExtractor, small_clip: Path
) -> None:
    clip = read_clip(small_clip, max_frames=8)

    landmarks = extractor.extract(clip.frames)

    assert landmarks.shape == (len(clip.frames), POINTS, 3) == (8, 543, 3)
    assert landmarks.dtype == np.float32
    assert np.isnan(landmarks).all()


def test_no_frames_give_an_empty_array(extractor: LandmarkExtractor) -> None:
    landmarks = extractor.extract([])

    assert landmarks.shape == (0, 543, 3)
    assert landmarks.dtype == np.float32


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        np.zeros((0, 64, 3), np.uint8),
    ],
    ids=["grey", "rgba", "float", "empty"],
)
def test_a_frame_that_is_not_rgb_uint8_is_an_invalid_parameter(
    extractor: LandmarkExtractor, frame: np.ndarray
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        extractor.extract([frame])
    assert raised.value.code == "invalid_parameter"


def test_unknown_hand_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="heavy"):
        LandmarkExtractor(BUNDLED_NETWORKS, hand_variant="heavy")


@pytest.mark.shared
def test_face_is_found_on_a_real_clip_where_mediapipe_found_it(
    extractor: LandmarkExtractor, face_frames: tuple[list[np.ndarray], np.ndarray]
) -> None:
    frames, reference = face_frames

    landmarks = extractor.extract(frames)

    face = landmarks[:, FACE]
    assert not np.isnan(face).any()
    assert ((face[:, :, :2] > 0) & (face[:, :, :2] < 1)).all()
    gap = np.linalg.norm(face[:, LIPS, :2] - reference[:, FACE][:, LIPS, :2], axis=-1)
    assert np.median(gap) < 0.01


@pytest.mark.shared
def test_without_pose_networks_the_mesh_fills_the_five_model_pose_points(
    extractor: LandmarkExtractor, face_frames: tuple[list[np.ndarray], np.ndarray]
) -> None:
    frames, reference = face_frames

    landmarks = extractor.extract(frames)

    filled = [POSE.start + point for point in POSE_FROM_MESH]
    others = [i for i in range(POSE.start, POSE.stop) if i not in filled]
    assert np.isnan(landmarks[:, others]).all()
    np.testing.assert_allclose(
        landmarks[:, filled], pose_from_mesh(landmarks[:, FACE]), atol=1e-6
    )
    # x, y within a few hundredths of where Holistic's pose network put them.
    gap = np.linalg.norm(landmarks[:, filled, :2] - reference[:, filled, :2], axis=-1)
    assert np.median(gap) < 0.03


@pytest.mark.shared
def test_face_disabled_leaves_face_and_pose_nan(
    face_frames: tuple[list[np.ndarray], np.ndarray],
) -> None:
    frames, _ = face_frames
    no_face = LandmarkExtractor(BUNDLED_NETWORKS, face=False, pose=False)

    landmarks = no_face.extract(frames[:3])

    assert np.isnan(landmarks[:, FACE]).all()
    assert np.isnan(landmarks[:, POSE]).all()
    assert not np.isnan(landmarks[:, LEFT_HAND.start : RIGHT_HAND.stop]).all()


@pytest.mark.shared
def test_pose_networks_find_all_33_pose_points(
    shared_dir: Path, face_frames: tuple[list[np.ndarray], np.ndarray]
) -> None:
    frames, reference = face_frames
    with_pose = LandmarkExtractor(shared_dir / "models" / "mediapipe", pose=True)

    landmarks = with_pose.extract(frames[:4])

    assert not np.isnan(landmarks[:, POSE]).any()
    nose = POSE.start
    gap = np.linalg.norm(landmarks[:, nose, :2] - reference[:4, nose, :2], axis=-1)
    assert (gap < 0.03).all()


@pytest.mark.shared
def test_a_rotated_frame_gives_the_same_face_rotated(
    extractor: LandmarkExtractor, face_frames: tuple[list[np.ndarray], np.ndarray]
) -> None:
    frames, _ = face_frames
    upright = extractor.extract(frames[:1])[0, FACE]
    turned_frame = cv2.rotate(frames[0], cv2.ROTATE_90_CLOCKWISE)

    turned = extractor.extract([turned_frame])[0, FACE]

    assert not np.isnan(turned).any()
    # Turning the frame 90° clockwise maps (x, y) to (1 - y, x).
    back = np.stack([turned[:, 1], 1 - turned[:, 0]], axis=-1)
    gap = np.linalg.norm(back - upright[:, :2], axis=-1)
    assert np.median(gap) < 0.01


@pytest.mark.shared
def test_two_threads_at_once_get_what_one_thread_gets(
    extractor: LandmarkExtractor, face_frames: tuple[list[np.ndarray], np.ndarray]
) -> None:
    frames, _ = face_frames
    alone = extractor.extract(frames)
    results: dict[int, np.ndarray] = {}
    failures: list[BaseException] = []

    def run(slot: int, clip_frames: list[np.ndarray]) -> None:
        try:
            results[slot] = extractor.extract(clip_frames)
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    reversed_frames = frames[::-1]
    threads = [
        threading.Thread(target=run, args=(0, frames)),
        threading.Thread(target=run, args=(1, reversed_frames)),
        threading.Thread(target=run, args=(2, frames)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    np.testing.assert_array_equal(results[0], alone)
    np.testing.assert_array_equal(results[2], alone)
    np.testing.assert_array_equal(results[1], extractor.extract(reversed_frames))


@pytest.mark.shared
def test_one_thread_and_two_lanes_give_the_same_landmarks(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both hands and the face in every frame: the hand look-ups, the palm detector
    # and the face chain all get the chance to run side by side.
    frames, _ = shared_frames(shared_dir, TWO_HAND_CLIP, 10)
    networks = shared_dir / "models" / "mediapipe"
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv(THREADS_ENV, threads)
        results.append(LandmarkExtractor(networks, pose=False).extract(frames))

    one_thread, two_lanes = results
    assert not np.isnan(one_thread[:, LEFT_HAND]).all()
    assert not np.isnan(one_thread[:, RIGHT_HAND]).all()
    np.testing.assert_array_equal(two_lanes, one_thread)


def test_a_test_pattern_clip_made_here_decodes_and_extracts(
    extractor: LandmarkExtractor, tmp_path: Path
) -> None:
    path = make_clip(tmp_path / "portrait.mp4", size=(240, 320), seconds=0.3)
    clip = read_clip(path, max_frames=4)

    landmarks = extractor.extract(clip.frames)

    assert landmarks.shape == (len(clip.frames), 543, 3)
    assert np.isnan(landmarks).all()
