"""Model bundles: the bundled default loads, and bad manifests fail naming the field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from sign2text_core.bundle import (
    BUNDLED_MODEL_DIR,
    MODEL_DIR_ENV,
    default_bundle_dir,
    load_bundle,
)
from sign2text_core.errors import ConfigurationError


def linked_copy(source: Path, target: Path) -> Path:
    """A copy of a bundle folder whose large files are symlinks to the originals."""
    target.mkdir()
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".onnx":
            (target / relative).symlink_to(path)
        else:
            (target / relative).write_bytes(path.read_bytes())
    return target


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    return linked_copy(BUNDLED_MODEL_DIR, tmp_path / "bundle")


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_bundled_model_loads_with_its_labels_and_networks() -> None:
    bundle = load_bundle()

    assert bundle.name == "asl-gislr250"
    assert bundle.pipeline == "landmarks"
    assert len(bundle.labels) == 250
    assert {"water", "hello", "thankyou", "TV"} <= set(bundle.labels)
    assert bundle.landmarks is not None
    assert bundle.landmarks.frames == 64
    assert bundle.landmarks.points == 66
    for network in bundle.landmarks.networks:
        assert (bundle.landmarks.networks_dir / network).is_file()


def test_bundled_classifier_session_matches_the_manifest() -> None:
    bundle = load_bundle()

    session = bundle.classifier_session()

    inputs = {node.name: node.shape for node in session.get_inputs()}
    assert inputs == {"frames": [1, 64, 66, 3], "frame_idxs": [1, 64]}
    assert bundle.classifier_session() is session


def test_every_license_the_bundle_names_is_shipped() -> None:
    assert (BUNDLED_MODEL_DIR / "LICENSE").read_text().startswith("MIT License")
    assert "Apache License" in (BUNDLED_MODEL_DIR / "mediapipe" / "LICENSE").read_text()


def test_model_card_lists_the_sha256_of_every_shipped_network() -> None:
    card = (BUNDLED_MODEL_DIR / "README.md").read_text()

    for path in sorted(BUNDLED_MODEL_DIR.rglob("*.onnx")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in card, f"{path.name} is not in the model card with its sha256"


def test_model_dir_comes_from_the_environment(
    bundle_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_manifest(bundle_copy, lambda m: m.update(name="custom", version="9"))
    monkeypatch.setenv(MODEL_DIR_ENV, str(bundle_copy))

    assert default_bundle_dir() == bundle_copy
    assert load_bundle().model_facts == {"name": "custom", "version": "9"}


def test_missing_bundle_folder_names_the_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=MODEL_DIR_ENV):
        load_bundle(tmp_path / "nowhere")


def test_manifest_that_is_not_json_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{not json")

    with pytest.raises(ConfigurationError, match="not readable JSON"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("name", lambda m: m.pop("name")),
        ("pipeline", lambda m: m.update(pipeline="audio")),
        ("classifier.file", lambda m: m["classifier"].update(file="absent.onnx")),
        (
            "classifier.output.kind",
            lambda m: m["classifier"]["output"].update(kind="odds"),
        ),
        ("preprocessing.frames", lambda m: m["preprocessing"].update(frames=0)),
        (
            "classifier.inputs.frames.shape",
            lambda m: m["preprocessing"].update(frames=32),
        ),
        (
            "preprocessing.lip_indices",
            lambda m: m["preprocessing"].update(lip_indices=[61, 500]),
        ),
        (
            "preprocessing.mirror_frames",
            lambda m: m["preprocessing"].update(mirror_frames="yes"),
        ),
        (
            "landmarks.hand_variant",
            lambda m: m["landmarks"].update(hand_variant="heavy"),
        ),
        (
            "landmarks.networks[0]",
            lambda m: m["landmarks"].update(networks=["absent.onnx"]),
        ),
        ("labels", lambda m: m.update(labels="absent.txt")),
    ],
)
def test_bad_manifest_field_is_named(
    bundle_copy: Path, field: str, change: Callable[[dict[str, Any]], None]
) -> None:
    edit_manifest(bundle_copy, change)

    with pytest.raises(ConfigurationError) as raised:
        load_bundle(bundle_copy)

    assert repr(field) in str(raised.value)


def test_labels_file_with_a_duplicate_is_refused(bundle_copy: Path) -> None:
    labels = bundle_copy / "labels.txt"
    labels.write_text(labels.read_text() + "Water\n")

    with pytest.raises(ConfigurationError, match="twice"):
        load_bundle(bundle_copy)


def test_classifier_with_other_input_names_fails_on_first_use(
    bundle_copy: Path,
) -> None:
    edit_manifest(
        bundle_copy,
        lambda m: m["classifier"]["inputs"]["frames"].update(name="pixels"),
    )
    bundle = load_bundle(bundle_copy)

    with pytest.raises(ConfigurationError, match=r"classifier\.inputs\.frames\.name"):
        bundle.classifier_session()


def test_labels_that_do_not_match_the_outputs_fail_on_first_use(
    bundle_copy: Path,
) -> None:
    labels = bundle_copy / "labels.txt"
    labels.write_text("\n".join(labels.read_text().split()[:249]) + "\n")
    bundle = load_bundle(bundle_copy)

    with pytest.raises(ConfigurationError, match="250 classes"):
        bundle.classifier_session()


def test_bundled_networks_run_under_onnxruntime() -> None:
    bundle = load_bundle()
    assert bundle.landmarks is not None

    for network in bundle.landmarks.networks:
        path = bundle.landmarks.networks_dir / network
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape[0] == 1
