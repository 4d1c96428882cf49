"""Time each step of the hand pipeline on real clips and print one table.

Steps: letterbox, palm network, palm decoding + suppression, region crop (one affine
warp), hand network, landmark projection; then the levers: full against lite
networks, one batched call against single calls (a copy of each graph with a dynamic
batch, made here with the ``onnx`` dev package), one ORT thread against two, a
session's cold start with and without an optimised-model file, and the tracker per
frame against palm detection on every frame.

Rows that compare two choices are timed in alternating rounds in the same run, so
other load on the machine falls on both; still, compare rows of one run only.

    .venv/bin/python benchmarks/landmarks_steps.py [--shared ../shared] [--clips 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout

from sign2text_core.landmarks.detection import (  # noqa: E402
    PALM_DETECTOR,
    Detector,
    decode_detections,
    letterbox,
    weighted_nms,
)
from sign2text_core.landmarks.hands import (  # noqa: E402
    LANDMARK_INPUT,
    HandModels,
    HandOptions,
    HandTracker,
)
from sign2text_core.landmarks.regions import (  # noqa: E402
    crop,
    palm_region,
    project_landmarks,
)
from sign2text_core.landmarks.runtime import session_options  # noqa: E402

MAX_SIDE = 640
ROUNDS = 5


def read_frames(path: Path, max_side: int, limit: int = 64) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        scale = max_side / max(rgb.shape[:2])
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    capture.release()
    return frames


def per_call_ms(step: Callable[[], object], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) * 1000 / repeats


def compare(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms per call of each step, timed in alternating rounds."""
    for step in steps.values():
        step()  # warm up
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(ROUNDS):
        for name, step in steps.items():
            samples[name].append(per_call_ms(step, repeats))
    return {name: statistics.median(values) for name, values in samples.items()}


def session(path: Path, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path), session_options(threads), providers=["CPUExecutionProvider"]
    )


def dynamic_batch_copy(source: Path, folder: Path) -> Path:
    """A copy of ``source`` whose batch axis is free (reshapes copy the input's)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in constants:
            shape = numpy_helper.to_array(constants[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0  # 0 = keep the input's batch
                constants[node.input[1]].CopyFrom(
                    numpy_helper.from_array(shape, node.input[1])
                )
    del graph.value_info[:]
    target = folder / source.name
    onnx.save(model, str(target))
    return target


def cold_start_ms(path: Path, cache: Path | None) -> float:
    options = session_options(2)
    if cache is not None:
        if cache.exists():
            options.graph_optimization_level = (
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            )
            path = cache
        else:
            options.optimized_model_filepath = str(cache)
    started = time.perf_counter()
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--clips", type=int, default=6)
    args = parser.parse_args()
    networks = args.shared / "models" / "mediapipe"
    clips = sorted((args.shared / "clips").glob("*/*.mp4"))[:: max(1, 68 // args.clips)]
    clip_frames = [read_frames(clip, MAX_SIDE) for clip in clips[: args.clips]]
    frames = [each for one_clip in clip_frames for each in one_clip]
    print(f"{len(frames)} frames from {len(clip_frames)} clips, <= {MAX_SIDE} px")

    rows: list[tuple[str, float, str]] = []
    frame = frames[len(frames) // 2]
    height, width = frame.shape[:2]
    palm = Detector(session(networks / "palm_detection_full.onnx", 2), PALM_DETECTOR)
    detections = palm.detect(frame)
    if len(detections) == 0:
        raise SystemExit("no palm in the chosen frame; try other --clips")
    region = palm_region(detections.boxes[0], detections.keypoints[0], (width, height))
    tensor, _ = letterbox(frame, PALM_DETECTOR.input_size, PALM_DETECTOR.value_range)
    raw_boxes, raw_scores = palm.session.run(None, {"input_1": tensor[None]})
    hand_tensor = crop(frame, region, LANDMARK_INPUT)[None]
    points = np.random.default_rng(0).random((21, 3)) * 224

    steps = compare(
        {
            "letterbox (1 warp to 192x192)": lambda: letterbox(
                frame, PALM_DETECTOR.input_size, PALM_DETECTOR.value_range
            ),
            "palm decode + weighted NMS": lambda: weighted_nms(
                decode_detections(
                    raw_boxes[0], raw_scores[0], palm.anchors, PALM_DETECTOR
                ),
                0.3,
            ),
            "hand crop (1 warp to 224x224)": lambda: crop(
                frame, region, LANDMARK_INPUT
            ),
            "landmark projection": lambda: project_landmarks(
                points, region, (width, height), LANDMARK_INPUT, 0.4
            ),
        },
        repeats=50,
    )
    rows += [(name, ms, "") for name, ms in steps.items()]

    for threads in (1, 2):
        nets = {
            f"palm network {variant}, {threads} thread(s)": (
                session(networks / f"palm_detection_{variant}.onnx", threads),
                tensor[None],
            )
            for variant in ("full", "lite")
        } | {
            f"hand network {variant}, {threads} thread(s)": (
                session(networks / f"hand_landmark_{variant}.onnx", threads),
                hand_tensor,
            )
            for variant in ("full", "lite")
        }
        timed = compare(
            {
                name: (lambda s=s, x=x: s.run(None, {s.get_inputs()[0].name: x}))
                for name, (s, x) in nets.items()
            },
            repeats=10,
        )
        rows += [(name, ms, "") for name, ms in timed.items()]

    with tempfile.TemporaryDirectory() as folder:
        for name, shape in (
            ("hand_landmark_full", (224, 224, 3)),
            ("palm_detection_full", (192, 192, 3)),
        ):
            dynamic = session(
                dynamic_batch_copy(networks / f"{name}.onnx", Path(folder)), 2
            )
            single = session(networks / f"{name}.onnx", 2)
            batch = np.random.default_rng(1).random((4, *shape), dtype=np.float32)

            def one_by_one(
                s: ort.InferenceSession = single, b: np.ndarray = batch
            ) -> None:
                for item in range(len(b)):
                    s.run(None, {"input_1": b[item : item + 1]})

            timed = compare(
                {
                    "single": one_by_one,
                    "batch": lambda d=dynamic, b=batch: d.run(None, {"input_1": b}),
                },
                repeats=5,
            )
            rows.append(
                (f"{name}: 4 items, 4 single calls", timed["single"] / 4, "per item")
            )
            rows.append(
                (f"{name}: 4 items, 1 batched call", timed["batch"] / 4, "per item")
            )

        cache = Path(folder) / "palm.optimised.onnx"
        plain = [
            cold_start_ms(networks / "palm_detection_full.onnx", None) for _ in range(3)
        ]
        cold_start_ms(networks / "palm_detection_full.onnx", cache)  # writes the file
        cached = [
            cold_start_ms(networks / "palm_detection_full.onnx", cache)
            for _ in range(3)
        ]
        rows.append(("palm session cold start", statistics.median(plain), ""))
        rows.append(("palm session from optimised file", statistics.median(cached), ""))

    models = HandModels.load(networks)
    for interval in (HandOptions().redetect_interval, 1):
        options = HandOptions(redetect_interval=interval)
        detections_run = 0
        started = time.perf_counter()
        for one_clip in clip_frames:
            tracker = HandTracker(models, options)
            for each in one_clip:
                tracker.process(each)
            detections_run += tracker.detections_run
        ms = (time.perf_counter() - started) * 1000 / len(frames)
        note = (
            f"per frame; palm detection on {detections_run / len(frames):.0%} of frames"
        )
        rows.append((f"tracker, palm re-check every {interval} frame(s)", ms, note))

    detect_all = per_call_ms(
        lambda: [models.detector.detect(each) for each in frames[:20]], 1
    )
    rows.append(
        ("palm detection on every frame (no tracking)", detect_all / 20, "per frame")
    )

    print("\n| step | ms | note |\n| --- | ---: | --- |")
    for name, ms, note in rows:
        print(f"| {name} | {ms:.2f} | {note} |")


if __name__ == "__main__":
    main()
