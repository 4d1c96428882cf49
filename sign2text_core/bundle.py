"""A model bundle: a folder with a manifest, a classifier, its labels and its networks.

``manifest.json`` names the bundle's pipeline kind and everything that kind needs:

- ``landmarks``: the MediaPipe-layout landmark networks (in a sub-folder), the points
  the classifier reads and how the clip is turned into its input;
- ``pixels``: a video classifier that takes RGB frames directly, shaped
  ``[1, frames, 3, size, size]``.

Loading a bundle validates the manifest and checks that every file it names exists;
ONNX sessions are created on first use and shared by the whole process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import onnxruntime as ort

from sign2text_core.errors import ConfigurationError
from sign2text_core.landmarks.runtime import get_session

MODEL_DIR_ENV = "SIGN2TEXT_MODEL_DIR"
MANIFEST_NAME = "manifest.json"
PIPELINE_KINDS = ("landmarks", "pixels")
OUTPUT_KINDS = ("probabilities", "logits")
HAND_SELECTION_RULES = ("more_detected_values",)
HAND_VARIANTS = ("full", "lite")

# In this package's source tree the bundled model sits beside the package folder; an
# editable install keeps that layout, and so does the function image.
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "asl-gislr250"


@dataclass(frozen=True)
class TensorSpec:
    """One classifier input: its graph name and the shape the bundle feeds it."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LandmarkSettings:
    """How clip landmarks become the classifier's input (pipeline ``landmarks``).

    ``frames`` is the classifier's frame count; ``landmark_frames`` how many frames of a
    clip (evenly spaced) go through the landmark networks, at most ``frames``: fewer
    cost less, and each model frame then takes the landmarks of the nearest one.
    Indices are into the MediaPipe face mesh (468 points) and pose (33 points).
    """

    frames: int
    landmark_frames: int
    lip_indices: tuple[int, ...]
    pose_indices: tuple[int, ...]
    hand_selection: str
    negate_x_for_right_hand: bool
    mirror_frames: bool
    networks_dir: Path
    networks: tuple[str, ...]
    face: bool
    pose: bool
    hand_variant: str

    @property
    def points(self) -> int:
        """Points per frame in the classifier input: lips, one hand, pose."""
        return len(self.lip_indices) + 21 + len(self.pose_indices)


@dataclass(frozen=True)
class PixelSettings:
    """How frames become the classifier's input (pipeline ``pixels``)."""

    frames: int
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle. Create it with :func:`load_bundle`."""

    directory: Path
    name: str
    version: str
    pipeline: str
    labels: tuple[str, ...]
    classifier_path: Path
    inputs: Mapping[str, TensorSpec]
    output_name: str
    output_kind: str
    frame_max_side: int | None
    license: str
    source: Mapping[str, Any]
    landmarks: LandmarkSettings | None = None
    pixels: PixelSettings | None = None

    @property
    def model_facts(self) -> dict[str, str]:
        """Name and version, as every prediction reports them."""
        return {"name": self.name, "version": self.version}

    def classifier_session(self) -> ort.InferenceSession:
        """The classifier's ONNX session, created on first use and then shared.

        Raises:
            ModelUnavailable: onnxruntime cannot load the file.
            ConfigurationError: the graph's inputs or output differ from the manifest.
        """
        session = get_session(self.classifier_path)
        _check_graph(self, session)
        return session


def default_bundle_dir() -> Path:
    """``SIGN2TEXT_MODEL_DIR`` when set, else the bundle shipped with the package."""
    configured = os.environ.get(MODEL_DIR_ENV, "").strip()
    return Path(configured) if configured else BUNDLED_MODEL_DIR


def load_bundle(directory: str | os.PathLike[str] | None = None) -> Bundle:
    """Read and validate the bundle in ``directory`` (default: the configured one).

    Raises:
        ConfigurationError: the folder or its manifest is missing, or a manifest field
            is invalid (the message names the field), or a file it names is missing.
    """
    folder = Path(directory) if directory is not None else default_bundle_dir()
    manifest = _read_manifest(folder)
    fields = _Fields(manifest, folder / MANIFEST_NAME)

    pipeline = fields.choice("pipeline", PIPELINE_KINDS)
    labels = _read_labels(folder, fields.text("labels"), fields)
    classifier = fields.mapping("classifier")
    classifier_path = fields.file(folder, "classifier.file")
    inputs = _input_specs(fields, classifier)
    max_side = fields.optional_positive_int("preprocessing.frame_max_side")

    bundle = Bundle(
        directory=folder,
        name=fields.text("name"),
        version=fields.text("version"),
        pipeline=pipeline,
        labels=labels,
        classifier_path=classifier_path,
        inputs=inputs,
        output_name=fields.text("classifier.output.name"),
        output_kind=fields.choice("classifier.output.kind", OUTPUT_KINDS),
        frame_max_side=max_side,
        license=fields.text("license"),
        source=fields.mapping("source"),
        landmarks=_landmark_settings(fields, folder)
        if pipeline == "landmarks"
        else None,
        pixels=_pixel_settings(fields) if pipeline == "pixels" else None,
    )
    _check_input_shapes(bundle, fields)
    return bundle


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ConfigurationError(
            f"No model bundle at {folder}: {MANIFEST_NAME} is missing "
            f"(set {MODEL_DIR_ENV} to a bundle folder)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ConfigurationError(f"{path} must hold a JSON object")
    return manifest


def _read_labels(folder: Path, file_name: str, fields: _Fields) -> tuple[str, ...]:
    path = fields.file(folder, "labels")
    lines = path.read_text(encoding="utf-8").splitlines()
    labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        fields.fail("labels", f"{file_name} lists no labels")
    if len({label.casefold() for label in labels}) != len(labels):
        fields.fail("labels", f"{file_name} lists a label twice (ignoring case)")
    return labels


def _input_specs(
    fields: _Fields, classifier: Mapping[str, Any]
) -> dict[str, TensorSpec]:
    inputs = classifier.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        fields.fail("classifier.inputs", "must map each input's role to {name, shape}")
    specs = {}
    for role in inputs:
        key = f"classifier.inputs.{role}"
        shape = fields.int_list(f"{key}.shape", minimum=1)
        specs[str(role)] = TensorSpec(fields.text(f"{key}.name"), tuple(shape))
    return specs


def _landmark_settings(fields: _Fields, folder: Path) -> LandmarkSettings:
    networks_dir = folder / fields.text("landmarks.dir")
    networks = tuple(fields.text_list("landmarks.networks"))
    for index, network in enumerate(networks):
        if not (networks_dir / network).is_file():
            fields.fail(
                f"landmarks.networks[{index}]", f"{network} is not in {networks_dir}"
            )

    frames = fields.positive_int("preprocessing.frames")
    landmark_frames = fields.optional_positive_int("preprocessing.landmark_frames")
    if landmark_frames is not None and landmark_frames > frames:
        fields.fail(
            "preprocessing.landmark_frames", f"must be at most frames ({frames})"
        )

    return LandmarkSettings(
        frames=frames,
        landmark_frames=landmark_frames or frames,
        lip_indices=tuple(fields.int_list("preprocessing.lip_indices", maximum=467)),
        pose_indices=tuple(fields.int_list("preprocessing.pose_indices", maximum=32)),
        hand_selection=fields.choice(
            "preprocessing.hand_selection", HAND_SELECTION_RULES
        ),
        negate_x_for_right_hand=fields.flag("preprocessing.negate_x_for_right_hand"),
        mirror_frames=fields.flag("preprocessing.mirror_frames"),
        networks_dir=networks_dir,
        networks=networks,
        face=fields.flag("landmarks.face"),
        pose=fields.flag("landmarks.pose"),
        hand_variant=fields.choice("landmarks.hand_variant", HAND_VARIANTS),
    )


def _pixel_settings(fields: _Fields) -> PixelSettings:
    mean = fields.float_triple("preprocessing.mean")
    std = fields.float_triple("preprocessing.std")
    if min(std) <= 0:
        fields.fail("preprocessing.std", "every value must be positive")
    return PixelSettings(
        frames=fields.positive_int("preprocessing.frames"),
        size=fields.positive_int("preprocessing.size"),
        mean=mean,
        std=std,
    )


def _check_input_shapes(bundle: Bundle, fields: _Fields) -> None:
    """The manifest's input shapes must agree with its preprocessing constants."""
    if bundle.landmarks is not None:
        settings = bundle.landmarks
        expected = {
            "frames": (1, settings.frames, settings.points, 3),
            "frame_idxs": (1, settings.frames),
        }
    else:
        assert bundle.pixels is not None
        pixels = bundle.pixels
        expected = {"video": (1, pixels.frames, 3, pixels.size, pixels.size)}

    for role, shape in expected.items():
        spec = bundle.inputs.get(role)
        if spec is None:
            fields.fail(f"classifier.inputs.{role}", "is missing")
        elif spec.shape != shape:
            fields.fail(
                f"classifier.inputs.{role}.shape",
                f"is {list(spec.shape)} but the preprocessing makes {list(shape)}",
            )
    extra = sorted(set(bundle.inputs) - set(expected))
    if extra:
        fields.fail(
            f"classifier.inputs.{extra[0]}",
            f"is not an input of a {bundle.pipeline} bundle",
        )


def _check_graph(bundle: Bundle, session: ort.InferenceSession) -> None:
    """The ONNX graph must have the inputs, shapes and output the manifest promises."""
    graph_inputs = {node.name: node.shape for node in session.get_inputs()}
    for role, spec in bundle.inputs.items():
        graph_shape = graph_inputs.get(spec.name)
        if graph_shape is None:
            raise ConfigurationError(
                f"{bundle.classifier_path.name} has no input {spec.name!r} "
                f"(manifest field classifier.inputs.{role}.name); "
                f"its inputs are {sorted(graph_inputs)}"
            )
        if not _shape_fits(graph_shape, spec.shape):
            raise ConfigurationError(
                f"{bundle.classifier_path.name} input {spec.name!r} has shape "
                f"{graph_shape}, not {list(spec.shape)} "
                f"(manifest field classifier.inputs.{role}.shape)"
            )

    outputs = {node.name: node.shape for node in session.get_outputs()}
    output_shape = outputs.get(bundle.output_name)
    if output_shape is None:
        raise ConfigurationError(
            f"{bundle.classifier_path.name} has no output {bundle.output_name!r} "
            "(manifest field classifier.output.name); "
            f"its outputs are {sorted(outputs)}"
        )
    classes = output_shape[-1] if output_shape else None
    if isinstance(classes, int) and classes != len(bundle.labels):
        raise ConfigurationError(
            f"{bundle.classifier_path.name} scores {classes} classes but the labels "
            f"file lists {len(bundle.labels)} (manifest field labels)"
        )


def _shape_fits(graph_shape: Sequence[Any], shape: tuple[int, ...]) -> bool:
    if len(graph_shape) != len(shape):
        return False
    return all(
        not isinstance(dim, int) or dim == want
        for dim, want in zip(graph_shape, shape, strict=True)
    )


class _Fields:
    """Typed access to manifest fields by dotted path; failures name the field."""

    def __init__(self, manifest: Mapping[str, Any], path: Path) -> None:
        self._manifest = manifest
        self._path = path

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigurationError(f"{self._path}: field {key!r} {problem}")

    def get(self, key: str) -> Any:
        value: Any = self._manifest
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                self.fail(key, "is missing")
            value = value[part]
        return value

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return str(value)

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.get(key)
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object, not {value!r}")
        return dict(value)

    def choice(self, key: str, allowed: Sequence[str]) -> str:
        value = self.get(key)
        if value not in allowed:
            self.fail(key, f"must be one of {list(allowed)}, not {value!r}")
        return str(value)

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {value!r}")
        return bool(value)

    def positive_int(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, f"must be a positive integer, not {value!r}")
        return int(value)

    def optional_positive_int(self, key: str) -> int | None:
        parent, _, leaf = key.rpartition(".")
        section = self.get(parent) if parent else self._manifest
        if not isinstance(section, Mapping) or section.get(leaf) is None:
            return None
        return self.positive_int(key)

    def int_list(
        self, key: str, *, minimum: int = 0, maximum: int | None = None
    ) -> list[int]:
        value = self.get(key)
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty list of integers, not {value!r}")
        for item in value:
            in_range = (
                isinstance(item, int) and not isinstance(item, bool) and item >= minimum
            )
            if not in_range or (maximum is not None and item > maximum):
                self.fail(key, f"holds {item!r}, outside {minimum}..{maximum or 'any'}")
        return [int(item) for item in value]

    def text_list(self, key: str) -> list[str]:
        value = self.get(key)
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item for item in value
        ):
            self.fail(key, f"must be a list of file names, not {value!r}")
        return [str(item) for item in value]

    def float_triple(self, key: str) -> tuple[float, float, float]:
        value = self.get(key)
        numbers = isinstance(value, list) and all(
            isinstance(item, int | float) and not isinstance(item, bool)
            for item in value
        )
        if not numbers or len(value) != 3:
            self.fail(key, f"must be three numbers (R, G, B), not {value!r}")
        return (float(value[0]), float(value[1]), float(value[2]))

    def file(self, folder: Path, key: str) -> Path:
        name = self.text(key)
        path = folder / name
        if not path.is_file():
            self.fail(key, f"names {name}, which is not in {folder}")
        return path
