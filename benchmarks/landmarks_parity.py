"""How close the landmark stage comes to MediaPipe Holistic on the shared clips.

For every clip in ../shared/reference, every frame is decoded as the reference was
(OpenCV, BGR -> RGB), run through ``LandmarkExtractor`` and compared with what
MediaPipe 0.10.21 Holistic found on the same frame:

- hands: found-rate = share of the (frame, hand) pairs Holistic found that the
  extractor found too, under the same name (left/right); error = distance in
  normalised image units between matching landmarks (x, y) on those pairs;
- lips: the same for the 40 lip points of the face mesh the 250-sign model reads.

Targets: found-rate >= 95 %, median error <= 0.02, 90th percentile <= 0.05.

With ``--service`` only the frames a request keeps are compared: 64 spread evenly,
read by the service's own intake (``read_clip``, longer side 640 px), tracked across
those frames alone, as a request tracks them; this is what the landmark speed
benchmark times.

With ``--classifier`` it also runs the 250-sign model on the frames it would see
(64 evenly spaced per clip, tracked as the service tracks them) with the pose
networks and with the face mesh standing in for the pose points, beside Holistic.

    .venv/bin/python benchmarks/landmarks_parity.py [--shared ../shared] [--lite]
        [--clips GLOSS/NAME ...] [--service] [--classifier]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout

from sign2text_core.bundle import LandmarkSettings, load_bundle  # noqa: E402
from sign2text_core.landmarks import (  # noqa: E402
    FACE,
    LEFT_HAND,
    POSE,
    POSE_FROM_MESH,
    RIGHT_HAND,
    LandmarkExtractor,
)
from sign2text_core.landmarks.face import pose_from_mesh  # noqa: E402
from sign2text_core.signs import landmark_input  # noqa: E402
from sign2text_core.video import read_clip  # noqa: E402

SHARED = ROOT.parent / "shared"
LIPS = [
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405,
    321, 375, 78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317,
    402, 318, 324, 308,
]  # fmt: skip
MIN_FOUND_RATE = 0.95
MAX_MEDIAN_ERROR = 0.02
MAX_P90_ERROR = 0.05
MODEL_FRAMES = 64
SERVICE_SIDE = 640


@dataclass(frozen=True)
class SharedClip:
    """One shared clip and Holistic's landmarks for it."""

    name: str  # gloss/source__name
    gloss: str
    video: Path
    reference: Path

    def reference_landmarks(self) -> np.ndarray:
        return np.asarray(np.load(self.reference)["landmarks"], np.float32)


def shared_clips(shared: Path) -> list[SharedClip]:
    """Every shared clip that has reference landmarks, in manifest order."""
    with (shared / "clips" / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    clips = []
    for row in rows:
        relative = Path(row["file"])
        reference = shared / "reference" / relative.with_suffix(".npz")
        if reference.is_file():
            name = str(relative.with_suffix(""))
            clips.append(
                SharedClip(name, row["gloss"], shared / "clips" / relative, reference)
            )
    return clips


def decode_frames(
    video: Path, indices: Iterable[int] | None = None
) -> list[np.ndarray]:
    """RGB frames of ``video`` decoded as the reference did: all, or ``indices``."""
    wanted = None if indices is None else set(int(i) for i in indices)
    capture = cv2.VideoCapture(str(video))
    frames = []
    index = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if wanted is None or index in wanted:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
            if wanted is not None and len(frames) == len(wanted):
                break
    finally:
        capture.release()
    return frames


@dataclass
class Comparison:
    """Found counts and landmark errors of one part (hands or lips) over frames."""

    expected: int = 0
    found: int = 0
    errors: list[np.ndarray] = field(default_factory=list)

    def add(self, ours: np.ndarray, theirs: np.ndarray) -> None:
        """Compare [T, N, 3] landmarks of one part, NaN where not found."""
        theirs_found = ~np.isnan(theirs[:, 0, 0])
        ours_found = ~np.isnan(ours[:, 0, 0])
        both = theirs_found & ours_found
        self.expected += int(theirs_found.sum())
        self.found += int(both.sum())
        if both.any():
            gap = ours[both, :, :2] - theirs[both, :, :2]
            self.errors.append(np.linalg.norm(gap, axis=-1).ravel())

    def merge(self, other: Comparison) -> None:
        self.expected += other.expected
        self.found += other.found
        self.errors += other.errors

    @property
    def found_rate(self) -> float:
        return self.found / self.expected if self.expected else float("nan")

    def error(self, percentile: float) -> float:
        if not self.errors:
            return float("nan")
        return float(np.percentile(np.concatenate(self.errors), percentile))

    def passes(self) -> bool:
        return (
            self.found_rate >= MIN_FOUND_RATE
            and self.error(50) <= MAX_MEDIAN_ERROR
            and self.error(90) <= MAX_P90_ERROR
        )


@dataclass
class ClipParity:
    name: str
    frames: int
    seconds: float
    hands: Comparison
    lips: Comparison


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[Comparison, Comparison]:
    """(hands, lips) comparisons of two [T, 543, 3] landmark arrays."""
    hands = Comparison()
    hands.add(ours[:, LEFT_HAND], theirs[:, LEFT_HAND])
    hands.add(ours[:, RIGHT_HAND], theirs[:, RIGHT_HAND])
    lips = Comparison()
    lips.add(ours[:, FACE][:, LIPS], theirs[:, FACE][:, LIPS])
    return hands, lips


def clip_parity(
    extractor: LandmarkExtractor,
    clip: SharedClip,
    max_frames: int | None = None,
    service: bool = False,
) -> ClipParity:
    """Run the extractor over the clip's first ``max_frames`` frames (all if None),
    or, with ``service``, over the frames a request keeps (``read_clip`` with the
    64 frames and 640 px of the service benchmarks), compared on those frames."""
    theirs = clip.reference_landmarks()
    if service:
        kept = read_clip(clip.video, max_frames=MODEL_FRAMES, max_side=SERVICE_SIDE)
        frames = kept.frames
        theirs = theirs[kept.frame_index]
    else:
        first = None if max_frames is None else range(min(max_frames, len(theirs)))
        frames = decode_frames(clip.video, first)
        theirs = theirs[: len(frames)]

    started = time.perf_counter()
    ours = extractor.extract(frames)
    seconds = time.perf_counter() - started

    hands, lips = compare(ours, theirs)
    return ClipParity(clip.name, len(frames), seconds, hands, lips)


def parity(
    extractor: LandmarkExtractor,
    clips: Iterable[SharedClip],
    max_frames: int | None = None,
    service: bool = False,
) -> Iterator[ClipParity]:
    for clip in clips:
        yield clip_parity(extractor, clip, max_frames, service)


def _row(name: str, frames: int, hands: Comparison, lips: Comparison) -> str:
    def part(comparison: Comparison) -> str:
        return (
            f"{comparison.found:>5}/{comparison.expected:<5}"
            f"{comparison.found_rate:>7.1%}{comparison.error(50):>8.4f}"
            f"{comparison.error(90):>8.4f}"
        )

    return f"{name:<38}{frames:>6}  {part(hands)}  {part(lips)}"


def print_parity(results: Iterable[ClipParity]) -> tuple[Comparison, Comparison]:
    head = "found/expected   rate  median     p90"
    print(f"{'clip':<38}{'frames':>6}  hands {head[6:]}  lips  {head[6:]}")
    hands, lips = Comparison(), Comparison()
    frames = 0
    seconds = 0.0
    for result in results:
        print(_row(result.name, result.frames, result.hands, result.lips), flush=True)
        hands.merge(result.hands)
        lips.merge(result.lips)
        frames += result.frames
        seconds += result.seconds
    print(_row("ALL", frames, hands, lips))
    print(
        f"targets: found-rate >= {MIN_FOUND_RATE:.0%}, median <= {MAX_MEDIAN_ERROR}, "
        f"p90 <= {MAX_P90_ERROR}; hands {'PASS' if hands.passes() else 'FAIL'}, "
        f"lips {'PASS' if lips.passes() else 'FAIL'}"
    )
    print(f"landmark stage: {seconds:.1f} s for {frames} frames")
    return hands, lips


@functools.cache
def _bundled_settings() -> LandmarkSettings:
    return load_bundle().landmarks


def model_input(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[T, 543, 3] -> the bundled model's (frames [1,64,66,3], frame_idxs [1,64]).

    The service's own preprocessing, with the bundled manifest's settings.
    """
    return landmark_input(landmarks, _bundled_settings())


def classifier_check(shared: Path, clips: list[SharedClip], lite: bool) -> None:
    """Top-1 / top-5 of the 250-sign model on Holistic's and on our landmarks."""
    import onnxruntime as ort

    model_dir = shared / "models" / "asl-gislr250"
    session = ort.InferenceSession(str(model_dir / "gislr66_transformer.onnx"))
    sign2ord: dict[str, int] = json.loads(
        (model_dir / "label_mappings.json").read_text()
    )["sign2ord"]
    known = [clip for clip in clips if clip.gloss in sign2ord]
    extractor = LandmarkExtractor(
        shared / "models" / "mediapipe",
        pose=True,
        hand_variant="lite" if lite else "full",
    )

    variants = ["Holistic (reference)", "ours, pose networks", "ours, mesh for pose"]
    answers: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    pose_errors: list[np.ndarray] = []
    for clip in known:
        theirs = clip.reference_landmarks()
        keep = np.linspace(0, len(theirs) - 1, min(len(theirs), MODEL_FRAMES))
        keep = keep.astype(int)
        ours = extractor.extract(decode_frames(clip.video, keep))
        mesh_for_pose = ours.copy()
        mesh_for_pose[:, POSE] = np.nan
        slots = [POSE.start + point for point in POSE_FROM_MESH]
        mesh_for_pose[:, slots] = pose_from_mesh(ours[:, FACE])

        both = ~np.isnan(ours[:, POSE.start, 0]) & ~np.isnan(
            theirs[keep, POSE.start, 0]
        )
        gap = ours[both][:, slots, :2] - theirs[keep][both][:, slots, :2]
        pose_errors.append(np.linalg.norm(gap, axis=-1).ravel())

        for name, landmarks in zip(
            variants, [theirs, ours, mesh_for_pose], strict=True
        ):
            frames, idxs = model_input(landmarks)
            scores = session.run(None, {"frames": frames, "frame_idxs": idxs})[0][0]
            answers[name].append(np.argsort(-scores))

    truths = [sign2ord[clip.gloss] for clip in known]
    n = len(known)
    errors = np.concatenate(pose_errors)
    print(
        f"\nour pose points 0,1,3,4,5 vs Holistic's: median {np.median(errors):.4f}, "
        f"p90 {np.percentile(errors, 90):.4f}"
    )
    print(f"asl-gislr250 on {n} clips of known glosses, 64 frames each")
    print(f"{'landmarks':<26}{'top-1':>12}{'top-5':>12}{'same top-1 as Holistic':>25}")
    reference = [ranked[0] for ranked in answers[variants[0]]]
    for name in variants:
        ranked_all = answers[name]
        top1 = sum(r[0] == t for r, t in zip(ranked_all, truths, strict=True))
        top5 = sum(t in r[:5] for r, t in zip(ranked_all, truths, strict=True))
        same = sum(r[0] == h for r, h in zip(ranked_all, reference, strict=True))
        print(
            f"{name:<26}{top1 / n:>7.1%} ({top1:>2}){top5 / n:>7.1%} ({top5:>2})"
            f"{same:>20}/{n}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--lite", action="store_true", help="lite hand networks")
    parser.add_argument("--clips", nargs="*", help="gloss/name of clips to run")
    parser.add_argument("--max-frames", type=int, help="first N frames of each clip")
    parser.add_argument(
        "--service",
        action="store_true",
        help=f"only the {MODEL_FRAMES} frames a request keeps, at {SERVICE_SIDE} px",
    )
    parser.add_argument("--classifier", action="store_true")
    args = parser.parse_args()

    clips = shared_clips(args.shared)
    if args.clips:
        clips = [clip for clip in clips if clip.name in args.clips]
    extractor = LandmarkExtractor(
        args.shared / "models" / "mediapipe",
        pose=False,
        hand_variant="lite" if args.lite else "full",
    )
    print_parity(parity(extractor, clips, args.max_frames, args.service))
    if args.classifier:
        classifier_check(args.shared, clips, args.lite)


if __name__ == "__main__":
    main()
