"""Can the face mesh stand in for the five pose points the 250-sign model reads?

The asl-gislr250 transformer reads 40 lip points, one hand and pose points 0, 1, 3,
4, 5 (nose, left eye inner, left eye outer, right eye inner, right eye). Running the
pose networks only for those five points costs a whole extra pipeline, so this script
measures, on MediaPipe Holistic's own landmarks in ../shared/reference:

1. how far the mesh points chosen by anatomy (see ``MESH_FOR_POSE``) lie from the
   pose points, per axis, over every frame where Holistic found both;
2. the classifier's top-1 / top-5 over the clips whose gloss it knows, with the pose
   points as Holistic found them and with each substitution variant.

The preprocessing is the model's published one (see ../shared/models/README.md).

    .venv/bin/python benchmarks/pose_from_mesh.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout

from sign2text_core.bundle import LandmarkSettings, load_bundle  # noqa: E402
from sign2text_core.landmarks import FACE, POSE  # noqa: E402
from sign2text_core.landmarks.face import MESH_FOR_POSE, pose_from_mesh  # noqa: E402
from sign2text_core.signs import landmark_input  # noqa: E402

MODEL_POSE = [0, 1, 3, 4, 5]

Variant = Callable[[np.ndarray], np.ndarray]


@functools.cache
def _bundled_settings() -> LandmarkSettings:
    return load_bundle().landmarks


def model_input(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[T, 543, 3] -> the bundled model's (frames [1,64,66,3], frame_idxs [1,64]).

    The service's own preprocessing, with the bundled manifest's settings.
    """
    return landmark_input(landmarks, _bundled_settings())


def holistic(landmarks: np.ndarray) -> np.ndarray:
    return landmarks


def mesh_xyz(landmarks: np.ndarray) -> np.ndarray:
    """Pose points replaced by mesh points, mesh z included."""
    out = landmarks.copy()
    out[:, POSE] = np.nan
    out[:, POSE.start + np.array(MODEL_POSE)] = pose_from_mesh(
        landmarks[:, FACE], with_depth=False
    )
    return out


def mesh_xy_holistic_z(landmarks: np.ndarray) -> np.ndarray:
    """Only x, y from the mesh: isolates the effect of the x, y error."""
    out = mesh_xyz(landmarks)
    slots = POSE.start + np.array(MODEL_POSE)
    out[:, slots, 2] = landmarks[:, slots, 2]
    return out


def mesh_depth_estimate(landmarks: np.ndarray) -> np.ndarray:
    """Mesh x, y, z with the pose depth estimated from the eye span."""
    out = landmarks.copy()
    out[:, POSE] = np.nan
    out[:, POSE.start + np.array(MODEL_POSE)] = pose_from_mesh(
        landmarks[:, FACE], with_depth=True
    )
    return out


def pose_missing(landmarks: np.ndarray) -> np.ndarray:
    """No pose at all: the model's centring step has nothing to centre on."""
    out = landmarks.copy()
    out[:, POSE] = np.nan
    return out


VARIANTS: dict[str, Variant] = {
    "holistic pose (reference)": holistic,
    "mesh x,y + holistic pose z": mesh_xy_holistic_z,
    "mesh x,y,z": mesh_xyz,
    "mesh x,y,z + depth estimate": mesh_depth_estimate,
    "pose slots NaN": pose_missing,
}


def point_errors(clips: list[np.ndarray]) -> None:
    """Median / p90 distance per substituted point, over frames with face and pose."""
    print(
        "mesh point vs Holistic pose point (normalised image units, frames with both)"
    )
    print(
        f"{'pose point':<22}{'mesh':<14}{'median xy':>10}{'p90 xy':>9}{'dz median':>11}"
    )
    names = ["nose", "left eye inner", "left eye outer", "right eye inner", "right eye"]
    stacked = np.concatenate(clips)
    both = ~np.isnan(stacked[:, 0, 0]) & ~np.isnan(stacked[:, POSE.start, 0])
    frames = stacked[both]
    mesh = pose_from_mesh(frames[:, FACE], with_depth=False)
    for k, (index, name) in enumerate(zip(MODEL_POSE, names, strict=True)):
        pose_point = frames[:, POSE.start + index]
        xy = np.linalg.norm(mesh[:, k, :2] - pose_point[:, :2], axis=1)
        dz = np.median(pose_point[:, 2] - mesh[:, k, 2])
        source = "+".join(str(i) for i in MESH_FOR_POSE[index])
        print(
            f"{name:<22}{source:<14}{np.median(xy):>10.4f}{np.percentile(xy, 90):>9.4f}"
            f"{dz:>11.3f}"
        )
    print(f"frames: {len(frames)}\n")


def accuracy(shared: Path) -> None:
    reference = shared / "reference"
    model_dir = shared / "models" / "asl-gislr250"
    session = ort.InferenceSession(str(model_dir / "gislr66_transformer.onnx"))
    mapping = json.loads((model_dir / "label_mappings.json").read_text())
    sign2ord: dict[str, int] = mapping["sign2ord"]

    with (shared / "clips" / "manifest.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["gloss"] in sign2ord]

    print(f"asl-gislr250 over the {len(rows)} clips whose gloss it knows")
    print(f"{'pose points':<30}{'top-1':>12}{'top-5':>12}{'same top-1':>12}")
    baseline: list[int] = []
    for name, variant in VARIANTS.items():
        top1 = top5 = same = 0
        answers: list[int] = []
        for row in rows:
            npz = reference / Path(row["file"]).with_suffix(".npz")
            landmarks = np.load(npz)["landmarks"]
            frames, idxs = model_input(variant(landmarks))
            scores = session.run(None, {"frames": frames, "frame_idxs": idxs})[0][0]
            ranked = np.argsort(-scores)
            truth = sign2ord[row["gloss"]]
            top1 += int(ranked[0] == truth)
            top5 += int(truth in ranked[:5])
            answers.append(int(ranked[0]))
        if not baseline:
            baseline = answers
        same = sum(a == b for a, b in zip(answers, baseline, strict=True))
        n = len(rows)
        print(
            f"{name:<30}{top1 / n:>8.1%} ({top1:>2}){top5 / n:>7.1%} ({top5:>2})"
            f"{same:>8}/{n}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()

    clips = [
        np.load(p)["landmarks"]
        for p in sorted((args.shared / "reference").glob("*/*.npz"))
    ]
    point_errors(clips)
    accuracy(args.shared)


if __name__ == "__main__":
    main()
