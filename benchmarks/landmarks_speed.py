"""Time of the landmark stage per clip and per frame, beside MediaPipe Holistic's.

Holistic's figures are the ``holistic_ms`` it took per frame on every frame of each
shared clip (../shared/reference, measured on a machine like this one). The stage is
timed here, in the same run, on the same clips:

- ``all frames``: every frame at full size, the same work Holistic did;
- ``service``: what a request does — 64 frames spread evenly over the clip, longer
  side shrunk to 640 pixels (the bundled model's manifest);

each with the face mesh only (``pose=False``, the bundled model's setting) and, with
``--pose``, with the pose networks too. Then the levers, one at a time, on a few clips:
tracking against detecting on every frame, lite hand networks, the thread budget,
frame size; three ways to spend two threads (one lane with two intra-op threads per
call, two lanes with one, two lanes whose lone hand calls take both), timed clip by
clip in turn; and each network alone with ORT's graph optimisations on and off.

Other processes on the machine make every figure noisy; compare rows of one run and
read the load average printed at the start and the end.

    SIGN2TEXT_ORT_THREADS=2 .venv/bin/python benchmarks/landmarks_speed.py --clips 0

(all 68 clips; options: ``[--shared ../shared] [--clips N] [--pose] [--lite]
[--levers]``, ``--clips N`` takes N clips spread over the set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout
os.environ.setdefault("SIGN2TEXT_ORT_THREADS", "2")

from benchmarks.landmarks_parity import SharedClip, decode_frames, shared_clips  # noqa: E402
from sign2text_core.landmarks import LandmarkExtractor  # noqa: E402
from sign2text_core.landmarks.face import FaceMesh, FaceTracker  # noqa: E402
from sign2text_core.landmarks.hands import HandModels, HandTracker  # noqa: E402
from sign2text_core.landmarks.lanes import Lanes  # noqa: E402
from sign2text_core.landmarks.runtime import clear_sessions  # noqa: E402

SHARED = ROOT.parent / "shared"
SERVICE_FRAMES = 64
SERVICE_MAX_SIDE = 640


def service_frames(clip: SharedClip) -> list[np.ndarray]:
    """The frames a request keeps: 64 spread evenly, longer side at most 640."""
    count = len(np.load(clip.reference)["holistic_ms"])
    keep = np.rint(np.linspace(0, count - 1, min(count, SERVICE_FRAMES))).astype(int)
    return [
        shrink(frame, SERVICE_MAX_SIDE) for frame in decode_frames(clip.video, keep)
    ]


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return frame
    size = (round(width * scale), round(height * scale))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


@dataclass
class Timing:
    """Wall and CPU seconds of the stage over some clips."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def add(self, stage: Stage, frames: Sequence[np.ndarray]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        stage(frames)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        self.frames.append(len(frames))

    def per_clip(self) -> tuple[float, float]:
        """Median wall and CPU seconds per clip."""
        return statistics.median(self.wall), statistics.median(self.cpu)

    def per_frame_ms(self) -> tuple[float, float]:
        """Median over clips of wall and CPU milliseconds per frame."""
        wall = [1000 * w / n for w, n in zip(self.wall, self.frames, strict=True)]
        cpu = [1000 * c / n for c, n in zip(self.cpu, self.frames, strict=True)]
        return statistics.median(wall), statistics.median(cpu)


Stage = Callable[[Sequence[np.ndarray]], object]


def warm(stage: Stage) -> Stage:
    """``stage`` with its sessions created, so that timing leaves creation out."""
    stage([np.zeros((64, 64, 3), np.uint8)])
    return stage


def side_by_side(shared: Path, clips: list[SharedClip], pose: bool, lite: bool) -> None:
    """Per-clip table: Holistic against the stage, all frames and service frames."""
    networks = shared / "models" / "mediapipe"
    variant = "lite" if lite else "full"
    stages = {
        "face": warm(
            LandmarkExtractor(networks, pose=False, hand_variant=variant).extract
        )
    }
    if pose:
        stages["face+pose"] = warm(
            LandmarkExtractor(networks, pose=True, hand_variant=variant).extract
        )

    header = f"{'clip':<34}{'frames':>7}{'Holistic s':>11}"
    for name in stages:
        header += f"{name + ' all s':>16}{name + ' 64@640 s':>18}"
    print(header + "   (wall seconds)")
    holistic = Timing()
    timings = {
        f"{name} {kind}": Timing() for name in stages for kind in ("all", "64@640")
    }
    for clip in clips:
        holistic_ms = np.load(clip.reference)["holistic_ms"]
        holistic.wall.append(float(holistic_ms.sum()) / 1000)
        holistic.cpu.append(float("nan"))
        holistic.frames.append(len(holistic_ms))
        row = f"{clip.name:<34}{len(holistic_ms):>7}{holistic.wall[-1]:>11.2f}"

        all_frames = decode_frames(clip.video)
        small = service_frames(clip)
        for name, stage in stages.items():
            for kind, frames in (("all", all_frames), ("64@640", small)):
                timing = timings[f"{name} {kind}"]
                timing.add(stage, frames)
                row += f"{timing.wall[-1]:>{16 if kind == 'all' else 18}.2f}"
        print(row, flush=True)
        del all_frames

    print(
        f"\n{'':<18}{'median s/clip':>14}{'CPU s/clip':>11}{'ms/frame':>10}"
        f"{'CPU ms/frame':>13}{'Holistic/this':>15}"
    )
    holistic_clip = statistics.median(holistic.wall)
    for name, timing in {"Holistic": holistic, **timings}.items():
        wall_clip, cpu_clip = timing.per_clip()
        wall_frame, cpu_frame = timing.per_frame_ms()
        print(
            f"{name:<18}{wall_clip:>14.2f}{cpu_clip:>11.2f}{wall_frame:>10.1f}"
            f"{cpu_frame:>13.1f}{holistic_clip / wall_clip:>14.1f}x"
        )


def lever_rows(shared: Path, clips: list[SharedClip]) -> None:
    """One lever at a time, on the same clips' service frames."""
    networks = shared / "models" / "mediapipe"
    frames = [service_frames(clip) for clip in clips]
    full_size = [full_size_frames(clip) for clip in clips]
    print(f"\nlevers on {len(clips)} clips ({sum(map(len, frames))} service frames)")
    print(
        f"{'configuration':<46}{'s/clip':>8}{'CPU s':>7}{'ms/frame':>10}{'CPU ms':>8}"
    )

    def extractor(**options: Any) -> Stage:
        return LandmarkExtractor(networks, **options).extract

    lever("face, full hands, tracking (the default)", extractor(pose=False), frames)
    lever("face, lite hands", extractor(pose=False, hand_variant="lite"), frames)
    lever("hands only (face=False)", extractor(face=False, pose=False), frames)
    lever("face + pose networks", extractor(pose=True), frames)
    lever("frames at full size, not shrunk to 640", extractor(pose=False), full_size)
    lever("no tracking: detectors on every frame", untracked(networks), frames)
    for threads in ("1", "2"):
        os.environ["SIGN2TEXT_ORT_THREADS"] = threads
        clear_sessions()
        lever(f"SIGN2TEXT_ORT_THREADS = {threads}", extractor(pose=False), frames)
    os.environ["SIGN2TEXT_ORT_THREADS"] = "2"
    clear_sessions()
    thread_layouts(networks, frames)


def thread_layouts(networks: Path, clips: list[list[np.ndarray]]) -> None:
    """Ways to spend two threads, timed clip by clip in turn (same load on each)."""
    layouts = {
        "one lane, every call on 2 intra-op threads": chains(networks, False, 2, None),
        "two lanes, every call on 1 thread": chains(networks, True, 1, None),
        "two lanes, hand calls alone on 2 (default)": chains(networks, True, 1, 2),
    }
    timings = {name: Timing() for name in layouts}
    for stage in layouts.values():
        warm(stage)
    for round_ in range(2):
        for index, frames in enumerate(clips):
            names = list(layouts)
            turn = (index + round_) % len(names)
            for name in names[turn:] + names[:turn]:
                timings[name].add(layouts[name], frames)
    first = statistics.median(timings[next(iter(layouts))].wall)
    print(f"\nthread layouts, {len(clips)} clips x 2 rounds, in turn")
    print(f"{'layout':<46}{'s/clip':>8}{'CPU s':>7}{'vs first':>10}")
    for name, timing in timings.items():
        wall, cpu = timing.per_clip()
        print(f"{name:<46}{wall:>8.2f}{cpu:>7.2f}{wall / first:>9.2f}x")


def chains(
    networks: Path, parallel: bool, threads: int, solo_threads: int | None
) -> Stage:
    """The extractor's hand and face chains with a chosen thread layout."""
    hands = HandModels.load(networks, threads=threads)
    solo = HandModels.load(networks, threads=solo_threads) if solo_threads else None
    face_mesh = FaceMesh.from_dir(networks, threads)

    def stage(frames: Sequence[np.ndarray]) -> None:
        face = FaceTracker(face_mesh)
        with Lanes(parallel) as lanes:
            faces = lanes.offer(lambda: [face.update(frame) for frame in frames])
            tracker = HandTracker(hands, lanes=lanes, solo_models=solo)
            for frame in frames:
                tracker.process(frame)
            faces.result()

    return stage


def lever(label: str, stage: Stage, clips: list[list[np.ndarray]]) -> None:
    timing = Timing()
    warm(stage)
    for frames in clips:
        timing.add(stage, frames)
    wall, cpu = sum(timing.wall), sum(timing.cpu)
    count = sum(timing.frames)
    print(
        f"{label:<46}{wall / len(clips):>8.2f}{cpu / len(clips):>7.2f}"
        f"{wall * 1000 / count:>10.1f}{cpu * 1000 / count:>8.1f}"
    )


def untracked(networks: Path) -> Stage:
    """Face and hands found by their detectors on every frame, nothing carried over."""
    face_mesh = FaceMesh.from_dir(networks)
    hand_models = HandModels.load(networks)

    def stage(frames: Sequence[np.ndarray]) -> None:
        face = FaceTracker(face_mesh, tracking=False)
        for frame in frames:
            HandTracker(hand_models).process(frame)
            face.update(frame)

    return stage


def full_size_frames(clip: SharedClip) -> list[np.ndarray]:
    count = len(np.load(clip.reference)["holistic_ms"])
    keep = np.rint(np.linspace(0, count - 1, min(count, SERVICE_FRAMES))).astype(int)
    return decode_frames(clip.video, keep)


def network_rows(shared: Path) -> None:
    """Each network alone: ms per call with 1 and 2 threads, optimisations on/off."""
    networks = shared / "models" / "mediapipe"
    print(f"\n{'network':<30}{'1 thread':>10}{'2 threads':>11}{'2t, no graph opt':>18}")
    for path in sorted(networks.glob("*.onnx")):
        row = f"{path.stem:<30}"
        for threads, level in ((1, "all"), (2, "all"), (2, "none")):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = (
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                if level == "all"
                else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            )
            session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            spec = session.get_inputs()[0]
            tensor = np.random.default_rng(0).random(
                [int(d) for d in spec.shape], np.float32
            )
            session.run(None, {spec.name: tensor})
            calls = 20
            started = time.perf_counter()
            for _ in range(calls):
                session.run(None, {spec.name: tensor})
            width = {(1, "all"): 10, (2, "all"): 11, (2, "none"): 18}[(threads, level)]
            row += f"{(time.perf_counter() - started) * 1000 / calls:>{width}.1f}"
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--clips", type=int, default=0, help="first N clips (0: all)")
    parser.add_argument("--pose", action="store_true", help="also time pose networks")
    parser.add_argument("--lite", action="store_true", help="lite hand networks")
    parser.add_argument("--levers", action="store_true", help="time each lever")
    args = parser.parse_args()

    clips = shared_clips(args.shared)
    if args.clips:
        step = max(1, len(clips) // args.clips)
        clips = clips[::step][: args.clips]
    print(
        f"SIGN2TEXT_ORT_THREADS={os.environ['SIGN2TEXT_ORT_THREADS']}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    side_by_side(args.shared, clips, args.pose, args.lite)
    if args.levers:
        lever_rows(args.shared, clips[:: max(1, len(clips) // 6)][:6])
        network_rows(args.shared)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
