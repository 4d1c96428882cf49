"""Signs: landmarks to model input, vocabulary restriction, both pipeline kinds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sign2text_core
from sign2text_core.bundle import load_bundle
from sign2text_core.errors import (
    ConfigurationError,
    InvalidParameter,
    NotAVideo,
    UnknownLabel,
)
from sign2text_core.signs import (
    LABELS_ENV,
    Classifier,
    align_to_model_frames,
    frames_with_hands,
    landmark_input,
    model_frame_positions,
    parse_labels,
    pixel_input,
    resolve_vocabulary,
)
from tests.media import make_clip, run_ffmpeg


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.4-second 320x240 test pattern: 12 frames, quick to classify."""
    return make_clip(tmp_path_factory.mktemp("short") / "short.mp4", seconds=0.4)


def synthetic_landmarks(
    frames: int, *, left: bool, right: bool, seed: int = 0
) -> np.ndarray:
    """Landmarks [T, 543, 3] with a face, pose and the chosen hands, NaN elsewhere."""
    rng = np.random.default_rng(seed)
    landmarks = rng.uniform(0.2, 0.8, size=(frames, 543, 3)).astype(np.float32)
    if not left:
        landmarks[:, 468:489] = np.nan
    if not right:
        landmarks[:, 522:543] = np.nan
    return landmarks


def test_model_input_has_the_models_shapes_and_scale() -> None:
    settings = load_bundle().landmarks
    assert settings is not None
    landmarks = synthetic_landmarks(100, left=True, right=False)

    frames, frame_idxs = landmark_input(landmarks, settings)

    assert frames.shape == (1, 64, 66, 3) and frames.dtype == np.float32
    assert frame_idxs.shape == (1, 64) and frame_idxs.dtype == np.int32
    assert np.abs(frames).max() == pytest.approx(1.0)
    assert frame_idxs[0].tolist() == list(range(1, 65))


def test_each_frame_is_centred_on_its_pose_points() -> None:
    settings = load_bundle().landmarks
    assert settings is not None
    landmarks = synthetic_landmarks(10, left=True, right=False)

    frames, _ = landmark_input(landmarks, settings)

    pose = frames[0, :10, 61:66]
    np.testing.assert_allclose(pose.mean(axis=1), 0.0, atol=1e-6)


def test_short_clip_is_zero_padded_and_padding_has_index_zero() -> None:
    settings = load_bundle().landmarks
    assert settings is not None
    landmarks = synthetic_landmarks(20, left=True, right=False)

    frames, frame_idxs = landmark_input(landmarks, settings)

    assert frame_idxs[0, :20].tolist() == list(range(1, 21))
    assert not frame_idxs[0, 20:].any()
    assert not frames[0, 20:].any()


def test_right_hand_clip_uses_the_right_hand_with_x_negated() -> None:
    settings = load_bundle().landmarks
    assert settings is not None
    right = synthetic_landmarks(64, left=False, right=True)
    as_left = right.copy()
    as_left[:, 468:489] = right[:, 522:543]
    as_left[:, 522:543] = np.nan
    as_left[..., 0] = -as_left[..., 0]

    frames_right, _ = landmark_input(right, settings)
    frames_left, _ = landmark_input(as_left, settings)

    np.testing.assert_allclose(frames_right, frames_left, atol=1e-6)


def test_missing_points_become_zero_and_frames_without_anything_are_padding() -> None:
    settings = load_bundle().landmarks
    assert settings is not None
    landmarks = synthetic_landmarks(30, left=True, right=False)
    landmarks[5] = np.nan

    frames, frame_idxs = landmark_input(landmarks, settings)

    assert not np.isnan(frames).any()
    assert not frames[0, 5].any()
    assert frame_idxs[0, 5] == 0
    assert frame_idxs[0, 6] == 6


def test_model_positions_follow_training_for_short_and_long_clips() -> None:
    assert model_frame_positions(10, 64).tolist() == list(range(10))
    positions = model_frame_positions(200, 64)
    assert len(positions) == 64 and positions[0] == 0 and positions[-1] == 199
    assert positions[1] == 3  # 199 / 63 = 3.16, truncated as in training


def test_alignment_is_identity_when_every_model_frame_was_sampled() -> None:
    landmarks = synthetic_landmarks(40, left=True, right=False)

    aligned = align_to_model_frames(landmarks, np.arange(40), 40, 64)

    np.testing.assert_array_equal(aligned, landmarks)


def test_alignment_repeats_the_nearest_sample_when_fewer_were_sampled() -> None:
    sampled = np.array([0, 50, 99])
    landmarks = np.stack([np.full((543, 3), value, np.float32) for value in (1, 2, 3)])

    aligned = align_to_model_frames(landmarks, sampled, 100, 64)

    assert len(aligned) == 64
    values = aligned[:, 0, 0].tolist()
    assert values[0] == 1 and values[32] == 2 and values[-1] == 3
    assert values == sorted(values)


def test_frames_with_hands_counts_either_hand() -> None:
    landmarks = synthetic_landmarks(4, left=True, right=True)
    landmarks[1, 468:489] = np.nan
    landmarks[2, 468:489] = np.nan
    landmarks[2, 522:543] = np.nan

    assert frames_with_hands(landmarks).tolist() == [True, True, False, True]


@pytest.mark.shared
def test_reference_landmarks_give_the_references_answers(
    shared_dir: Path, classifier: Classifier
) -> None:
    """The preprocessing reproduces what the reference measured, clip for clip."""
    rows = [
        row
        for row in csv.DictReader((shared_dir / "reference" / "results.csv").open())
        if row["model"] == "gislr66" and row["variant"] == "orig"
    ]
    assert len(rows) == 68

    for row in rows:
        stored = shared_dir / "reference" / Path(row["file"]).with_suffix(".npz")
        with np.load(stored) as archive:
            prediction = classifier.classify_landmarks(archive["landmarks"])
        assert [entry.label for entry in prediction.top_k] == row["top5"].split(";")
        assert prediction.score == pytest.approx(float(row["top1_p"]), abs=1e-3)


def test_labels_parse_from_commas_ignoring_blanks() -> None:
    assert parse_labels(" water, hello,,thankyou ,") == ["water", "hello", "thankyou"]
    assert parse_labels("") == []


def test_unknown_label_is_an_error_listing_the_known_labels() -> None:
    known = load_bundle().labels

    with pytest.raises(UnknownLabel) as raised:
        resolve_vocabulary(["water", "teapot"], known)

    assert raised.value.details["unknown"] == ["teapot"]
    assert raised.value.details["known"] == list(known)
    assert "teapot" in raised.value.message


def test_empty_label_list_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameter):
        resolve_vocabulary([], load_bundle().labels)


def test_duplicate_labels_count_once_and_match_ignoring_case() -> None:
    known = load_bundle().labels

    assert resolve_vocabulary(["water", "Water", "tv", "water"], known) == (
        "water",
        "TV",
    )


def test_restricted_scores_are_the_full_scores_renormalised(
    classifier: Classifier,
) -> None:
    landmarks = synthetic_landmarks(40, left=False, right=True, seed=3)
    full = classifier.classify_landmarks(landmarks, top_k=250)
    full_scores = {entry.label: entry.score for entry in full.top_k}
    chosen = ["water", "hello", "drink", "yes"]

    restricted = classifier.classify_landmarks(landmarks, top_k=10, labels=chosen)

    assert len(restricted.top_k) == 4
    assert {entry.label for entry in restricted.top_k} == set(chosen)
    assert sum(entry.score for entry in restricted.top_k) == pytest.approx(1.0)
    total = sum(full_scores[label] for label in chosen)
    for entry in restricted.top_k:
        assert entry.score == pytest.approx(full_scores[entry.label] / total, rel=1e-5)
    assert restricted.vocabulary.labels == tuple(chosen)
    assert restricted.to_dict()["vocabulary"] == {
        "restricted": True,
        "size": 4,
        "labels": chosen,
    }


def test_single_label_vocabulary_answers_it_with_certainty(
    classifier: Classifier,
) -> None:
    landmarks = synthetic_landmarks(40, left=True, right=False)

    prediction = classifier.classify_landmarks(landmarks, labels=["book"])

    assert prediction.label == "book"
    assert prediction.score == pytest.approx(1.0)
    assert len(prediction.top_k) == 1


def test_vocabulary_default_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LABELS_ENV, "hello, water ,hello")
    from_env = Classifier()
    landmarks = synthetic_landmarks(40, left=True, right=False)

    defaulted = from_env.classify_landmarks(landmarks)
    explicit = from_env.classify_landmarks(landmarks, labels=["yes", "no"])

    assert defaulted.vocabulary.labels == ("hello", "water")
    assert {entry.label for entry in defaulted.top_k} == {"hello", "water"}
    assert explicit.vocabulary.labels == ("yes", "no")


def test_unknown_label_in_the_environment_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LABELS_ENV, "water,teapot")

    with pytest.raises(ConfigurationError, match=LABELS_ENV):
        Classifier()


def test_top_k_below_one_is_an_invalid_parameter(classifier: Classifier) -> None:
    landmarks = synthetic_landmarks(10, left=True, right=False)

    with pytest.raises(InvalidParameter, match="top_k"):
        classifier.classify_landmarks(landmarks, top_k=0)


def test_clip_without_hands_is_flagged_and_still_ranked(classifier: Classifier) -> None:
    landmarks = synthetic_landmarks(30, left=False, right=False)

    prediction = classifier.classify_landmarks(landmarks, top_k=3)

    assert prediction.no_hands
    assert prediction.frames_with_hands == 0
    assert len(prediction.top_k) == 3
    assert prediction.to_dict()["no_hands"] is True


def test_test_pattern_clip_end_to_end_reports_facts_and_timings(
    classifier: Classifier, short_clip: Path
) -> None:
    prediction = classifier.classify(short_clip.read_bytes(), top_k=3)
    document = prediction.to_dict()

    assert len(document["top_k"]) == 3
    assert document["clip"]["width"] == 320 and document["clip"]["height"] == 240
    assert document["frames_used"] == 12
    assert set(document["timings_ms"]) == {"decode", "landmarks", "classify"}
    assert document["model"] == {"name": "asl-gislr250", "version": "1.0.0"}
    assert json.loads(json.dumps(document)) == document


def test_package_level_classify_uses_the_default_bundle(short_clip: Path) -> None:
    prediction = sign2text_core.classify(short_clip, top_k=2, labels=["water", "yes"])

    assert isinstance(prediction, sign2text_core.Prediction)
    assert prediction.vocabulary.labels == ("water", "yes")


def test_bytes_that_are_not_a_video_are_refused(classifier: Classifier) -> None:
    with pytest.raises(NotAVideo):
        classifier.classify(b"this is not a video at all" * 100)


@pytest.mark.shared
def test_real_clip_of_water_is_answered_water(
    shared_dir: Path, classifier: Classifier
) -> None:
    clip = shared_dir / "clips" / "water" / "equalvoice__water.mp4"

    prediction = classifier.classify(clip)

    assert "water" in [entry.label for entry in prediction.top_k]
    assert not prediction.no_hands
    assert (
        prediction.frames_with_hands is not None and prediction.frames_with_hands > 30
    )


PIXEL_LABELS = ("red", "green", "blue", "black", "white", "grey", "yellow", "cyan")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def write_pixel_bundle(folder: Path) -> Path:
    """A pixels bundle whose 3D-CNN stand-in scores each label by mean channel value.

    The graph takes [1, 50, 3, 224, 224], averages each channel over frames and
    pixels, and multiplies by a 3 x 8 matrix: red, green and blue score with their
    own channel, so a red clip must come out "red".
    """
    folder.mkdir()
    weights = np.zeros((3, len(PIXEL_LABELS)), dtype=np.float32)
    weights[0, 0] = weights[1, 1] = weights[2, 2] = 4.0
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["video", "axes"], ["means"], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["logits"]),
        ],
        "colour_classifier",
        [
            helper.make_tensor_value_info(
                "video", TensorProto.FLOAT, [1, 50, 3, 224, 224]
            )
        ],
        [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, [1, len(PIXEL_LABELS)]
            )
        ],
        initializer=[
            numpy_helper.from_array(np.array([1, 3, 4], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, folder / "colours.onnx")

    (folder / "labels.txt").write_text("\n".join(PIXEL_LABELS) + "\n")
    manifest = {
        "name": "colours",
        "version": "0.1",
        "pipeline": "pixels",
        "classifier": {
            "file": "colours.onnx",
            "inputs": {"video": {"name": "video", "shape": [1, 50, 3, 224, 224]}},
            "output": {"name": "logits", "kind": "logits"},
        },
        "labels": "labels.txt",
        "preprocessing": {
            "frames": 50,
            "size": 224,
            "frame_max_side": 400,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
        },
        "license": "test fixture",
        "source": {"made_by": "tests/test_signs.py"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def pixel_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pixel_bundle(tmp_path_factory.mktemp("pixels") / "colours")


def colour_clip(path: Path, *, centre: str, sides: str, seconds: float = 1.0) -> Path:
    """A 448x224 clip: a 224x224 square of ``centre`` between bands of ``sides``."""
    source = f"color=c={centre}:size=224x224:rate=25:duration={seconds}"
    pad = f"pad=448:224:112:0:color={sides}"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            source,
            "-vf",
            pad,
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ]
    )
    return path


def test_pixels_bundle_classifies_the_centre_square(
    pixel_bundle: Path, tmp_path: Path
) -> None:
    clip = colour_clip(tmp_path / "red.mp4", centre="red", sides="blue")

    prediction = Classifier(pixel_bundle).classify(clip, top_k=3)

    assert prediction.label == "red"
    assert prediction.score > 0.9
    assert prediction.frames_used == 25
    assert prediction.frames_with_hands is None and not prediction.no_hands
    assert set(prediction.timings_ms) == {"decode", "preprocess", "classify"}


def test_pixels_bundle_takes_a_vocabulary(pixel_bundle: Path, tmp_path: Path) -> None:
    clip = colour_clip(tmp_path / "red.mp4", centre="red", sides="red")

    prediction = Classifier(pixel_bundle).classify(clip, labels=["green", "blue"])

    assert {entry.label for entry in prediction.top_k} == {"green", "blue"}


def test_pixel_input_is_normalised_with_the_bundles_mean_and_std(
    pixel_bundle: Path,
) -> None:
    settings = load_bundle(pixel_bundle).pixels
    assert settings is not None
    white = np.full((120, 200, 3), 255, dtype=np.uint8)

    batch = pixel_input([white] * 7, settings)

    assert batch.shape == (1, 50, 3, 224, 224)
    expected = (1.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(
        batch[0, :, :, 100, 100], np.tile(expected, (50, 1)), rtol=1e-5
    )


def test_landmarks_cannot_be_classified_with_a_pixels_bundle(
    pixel_bundle: Path,
) -> None:
    with pytest.raises(InvalidParameter):
        Classifier(pixel_bundle).classify_landmarks(
            synthetic_landmarks(5, left=True, right=False)
        )
