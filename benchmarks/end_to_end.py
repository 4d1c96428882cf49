"""End to end: time per clip against MediaPipe Holistic + the same model, and peak RSS.

Speed. For the real 1280x720 clips of about three seconds in ``../shared/clips``, this
run times Sign2Text's whole path (decode, landmarks, classify) after a warm-up clip,
and sets it beside the MediaPipe Holistic path the reference measured on this kind of
machine: every frame decoded with OpenCV (timed here, in the same run), Holistic on
every frame (``holistic_ms`` of ``../shared/reference``, summed), then the classifier
(``infer_ms`` of ``results.csv``).

Memory. Each clip is classified in a fresh process that reports its own peak resident
set size: clips made here with ffmpeg up to the default limits (20 s, 4096 px frames,
32 MB), and the largest real clip.

    .venv/bin/python benchmarks/end_to_end.py            # both parts
    .venv/bin/python benchmarks/end_to_end.py --no-rss   # speed only

Timings on a shared machine are noisy: compare the columns of one run. On a busy
machine the CPU column is the fairer one, and ``SIGN2TEXT_ORT_THREADS=1`` keeps ONNX
Runtime's waiting threads from spinning it up.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sign2text_core.signs import Classifier  # noqa: E402
from tests.media import make_clip  # noqa: E402

SHARED = ROOT.parent / "shared"

# VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child of this
# benchmark would report the parent's own peak (with its models loaded) whenever
# that is the higher.
RSS_PROBE = """
import sys
from sign2text_core import classify
prediction = classify(sys.argv[1])
with open("/proc/self/status") as status:
    peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(peak_kib, prediction.frames_used, prediction.label)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--repeat", type=int, default=3, help="runs per clip (median)")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory part")
    args = parser.parse_args()

    if (args.shared / "clips").is_dir():
        speed(args.shared, args.repeat)
    else:
        print(f"speed: skipped, no clips in {args.shared}")
    if not args.no_rss:
        memory(args.shared)
    return 0


def speed(shared: Path, repeat: int) -> None:
    clips = three_second_720p_clips(shared)
    classifier = Classifier()
    classifier.classify(clips[0])  # warm-up: sessions created, caches filled

    print(
        f"speed: median of {repeat} runs per clip; Holistic figures from the reference"
    )
    columns = ("clip", "frames", "holistic s", "ours wall s", "ours CPU s", "ratio")
    print("{:<28} {:>6} {:>10} {:>11} {:>10} {:>6}".format(*columns))
    ratios, cpu_ratios = [], []
    for clip in clips:
        baseline = holistic_path_seconds(shared, clip)
        runs = [timed_classify(classifier, clip) for _ in range(repeat)]
        ours = statistics.median(run.wall for run in runs)
        ours_cpu = statistics.median(run.cpu for run in runs)
        stages = runs[-1].stages
        ratios.append(ours / baseline["total"])
        cpu_ratios.append(ours_cpu / baseline["total"])
        name = f"{clip.parent.name}/{clip.name}"
        print(
            f"{name:<28} {baseline['frames']:>6.0f} {baseline['total']:>10.2f} "
            f"{ours:>11.2f} {ours_cpu:>10.2f} {ours / baseline['total']:>6.2f}"
        )
        print(
            f"{'':<28} holistic path: decode {baseline['decode']:.2f} s + Holistic "
            f"{baseline['holistic']:.2f} s + classify {baseline['classify']:.3f} s"
        )
        print(
            f"{'':<28} sign2text: "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in stages.items())
        )
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    print(f"speed: sign2text takes {ratio:.2f}x the Holistic path's time (wall clock)")
    # On a busy machine wall time counts the waits for a core; the CPU time of every
    # thread is what the clip costs, and bounds the wall time on an idle machine.
    print(f"speed: sign2text's CPU time is {cpu_ratio:.2f}x the Holistic path's time")


def three_second_720p_clips(shared: Path) -> list[Path]:
    """The real 1280x720 clips lasting 2.5 to 3.5 s, per the clips' manifest."""
    chosen = []
    with (shared / "clips" / "manifest.csv").open() as rows:
        for row in csv.DictReader(rows):
            size = (int(row["width"]), int(row["height"]))
            if size == (1280, 720) and 2.5 <= float(row["duration_s"]) <= 3.5:
                chosen.append(shared / "clips" / row["file"])
    return chosen


@dataclass(frozen=True)
class Run:
    """One classification: wall seconds, CPU seconds of every thread, stage times."""

    wall: float
    cpu: float
    stages: dict[str, float]


def holistic_path_seconds(shared: Path, clip: Path) -> dict[str, float]:
    stem = f"{clip.parent.name}/{clip.stem}"
    with np.load(shared / "reference" / f"{stem}.npz") as reference:
        holistic_ms = reference["holistic_ms"]
    classify_ms = 0.0
    with (shared / "reference" / "results.csv").open() as rows:
        for row in csv.DictReader(rows):
            same_clip = row["file"] == f"{clip.parent.name}/{clip.name}"
            if same_clip and row["model"] == "gislr66" and row["variant"] == "orig":
                classify_ms = float(row["infer_ms"])

    decode = decode_every_frame(clip)
    holistic = float(holistic_ms.sum()) / 1000
    total = decode + holistic + classify_ms / 1000
    return {
        "frames": float(len(holistic_ms)),
        "decode": decode,
        "holistic": holistic,
        "classify": classify_ms / 1000,
        "total": total,
    }


def decode_every_frame(clip: Path) -> float:
    """CPU seconds to decode and convert every frame with OpenCV, as the reference did.

    CPU time, not wall time, so a busy machine does not inflate the baseline.
    """
    started = time.process_time()
    capture = cv2.VideoCapture(str(clip))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    capture.release()
    return time.process_time() - started


def timed_classify(classifier: Classifier, clip: Path) -> Run:
    started, started_cpu = time.perf_counter(), time.process_time()
    prediction = classifier.classify(clip)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    return Run(wall, cpu, dict(prediction.timings_ms))


def memory(shared: Path) -> None:
    print("\nmemory: peak RSS of a fresh process classifying one clip")
    with tempfile.TemporaryDirectory() as folder:
        clips = made_clips(Path(folder))
        real = shared / "clips" / "book" / "callmehus__book.mp4"
        if real.is_file():
            clips.append(("real 1920x1080 15 fps 2.9 s", real))
        for title, clip in clips:
            size_mb = clip.stat().st_size / 1e6
            peak_mb, frames, label = peak_rss(clip)
            facts = f"{size_mb:>6.1f} MB file  peak RSS {peak_mb:>6.0f} MB"
            print(f"{title:<34} {facts}  ({frames} frames, {label})")


def made_clips(folder: Path) -> list[tuple[str, Path]]:
    specs = [
        ("720p 30 fps 3 s", (1280, 720), 30, 3.0),
        ("1080p 30 fps 10 s", (1920, 1080), 30, 10.0),
        ("2160p 10 fps 19.5 s (long, large)", (3840, 2160), 10, 19.5),
        ("4096x4096 10 fps 2 s (largest)", (4096, 4096), 10, 2.0),
    ]
    made = []
    for title, size, fps, seconds in specs:
        path = folder / f"{size[0]}x{size[1]}_{seconds:g}s.mp4"
        make_clip(
            path,
            seconds=seconds,
            fps=fps,
            size=size,
            extra=["-preset", "ultrafast", "-crf", "35"],
        )
        made.append((title, path))
    return made


def peak_rss(clip: Path) -> tuple[float, str, str]:
    finished = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(clip)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    peak_kib, frames, label = finished.stdout.split()
    return int(peak_kib) / 1024, frames, label


if __name__ == "__main__":
    sys.exit(main())
