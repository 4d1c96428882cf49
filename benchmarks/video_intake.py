"""Time and peak memory of video intake against the naive order of work.

For each clip, two measurements, each in a fresh Python process so its peak resident
memory (VmHWM) belongs to that run alone:

- stage: ``read_clip(clip, max_frames=64, max_side=640)`` from ``sign2text_core.video``
  (64 frames is what the sign model reads; 640 px is plenty for the palm and face
  detectors, which work at 192 to 256 px).
- naive: decode every frame at full resolution, convert each to RGB float32, keep them
  all, then pick 50 evenly spaced (how the service this project replaces worked).

The naive run is skipped when its frames alone would exceed ``--naive-cap-gb`` or half
of the memory available, so the benchmark never starves the machine.

Clips: 720p 3 s, 1080p 10 s, 2160p 3 s, the same stored sideways (as phones record)
and 2160p 30 s at 30 fps (the 3 s and 30 s 2160p clips show what length alone costs),
made once with ffmpeg's moving
test pattern (H.264; "veryfast" preset, "ultrafast" for 2160p to keep generation short)
and cached in ``--cache`` (default: ``$TMPDIR/sign2text-benchmark-clips``), plus every
clip in ``../shared/clips`` when that folder exists. The stage runs with raised limits,
since the default 20 s limit would refuse the 30 s clip. Last, what refusing an
8192x8192 clip (two frames) under the default limits costs: it is refused from its
MP4 boxes, before FFmpeg decodes anything.

    .venv/bin/python benchmarks/video_intake.py [--no-shared] [--naive-cap-gb 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED_CLIPS = ROOT.parent / "shared" / "clips"
STAGE_MAX_FRAMES = 64
STAGE_MAX_SIDE = 640
NAIVE_SAMPLES = 50


@dataclass(frozen=True)
class SyntheticClip:
    name: str
    width: int
    height: int
    seconds: int
    preset: str
    fps: int = 30
    # A display matrix turning the stored frames, as phones record sideways video.
    display_rotation: int = 0


SYNTHETIC = (
    SyntheticClip("720p-3s", 1280, 720, 3, "veryfast"),
    SyntheticClip("1080p-10s", 1920, 1080, 10, "veryfast"),
    SyntheticClip("2160p-3s", 3840, 2160, 3, "ultrafast"),
    SyntheticClip("2160p-3s-sideways", 3840, 2160, 3, "ultrafast", display_rotation=90),
    SyntheticClip("2160p-30s", 3840, 2160, 30, "ultrafast"),
)
# Beyond the default 4096x4096 frame-size limit: what refusing it costs.
OVERSIZED = SyntheticClip("8192x8192-refused", 8192, 8192, 1, "ultrafast", fps=2)


def main() -> int:
    arguments = parse_arguments()
    if arguments.measure:
        return measure(arguments.measure, Path(arguments.clip))

    clips = synthetic_clips(arguments.cache)
    if arguments.shared and SHARED_CLIPS.is_dir():
        clips += sorted(SHARED_CLIPS.glob("*/*.mp4"))

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"stage: read_clip(max_frames={STAGE_MAX_FRAMES}, max_side={STAGE_MAX_SIDE})")
    print(f"naive: every frame RGB float32 at full size, then {NAIVE_SAMPLES} sampled")
    print(
        f"python + imports alone: {run_child('none', clips[0])['peak_rss_mb']:.0f} MB"
    )
    print()
    print(
        "| clip | size | frames | MB | stage s | stage peak RSS MB "
        "| naive s | naive peak RSS MB | time ratio | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    stage_peaks: dict[str, float] = {}
    for clip in clips:
        row, stage_peaks[clip_label(clip)] = table_row(clip, arguments.naive_cap_gb)
        print(row, flush=True)

    oversized = synthetic_clip(OVERSIZED, arguments.cache)
    refusal = run_child("refuse", oversized)
    print()
    print(
        f"refusing {OVERSIZED.width}x{OVERSIZED.height} H.264 (frame_too_large): "
        f"{refusal['wall_s']:.2f} s, peak RSS {refusal['peak_rss_mb']:.0f} MB"
    )
    print(f"largest stage peak RSS: {max(stage_peaks.values()):.0f} MB")
    for longer, shorter in (("2160p-30s", "720p-3s"), ("2160p-30s", "2160p-3s")):
        growth = stage_peaks[longer] - stage_peaks[shorter]
        print(f"stage peak RSS, {longer} minus {shorter}: {growth:+.0f} MB")
    return 0


def parse_arguments() -> argparse.Namespace:
    default_cache = Path(tempfile.gettempdir()) / "sign2text-benchmark-clips"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache)
    parser.add_argument("--naive-cap-gb", type=float, default=8.0)
    parser.add_argument(
        "--no-shared", dest="shared", action="store_false", help="skip ../shared/clips"
    )
    parser.add_argument("--measure", choices=("stage", "naive", "refuse", "none"))
    parser.add_argument("--clip", help="with --measure: the clip to read")
    return parser.parse_args()


def synthetic_clips(cache: Path) -> list[Path]:
    return [synthetic_clip(spec, cache) for spec in SYNTHETIC]


def synthetic_clip(spec: SyntheticClip, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{spec.name}.mp4"
    if not path.exists():
        print(f"making {path} ...", file=sys.stderr, flush=True)
        make_synthetic(spec, path)
    return path


def make_synthetic(spec: SyntheticClip, path: Path) -> None:
    import imageio_ffmpeg

    source = (
        f"testsrc2=size={spec.width}x{spec.height}:rate={spec.fps}"
        f":duration={spec.seconds}"
    )
    partial = path.with_suffix(".partial.mp4")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error"]
    command = [*ffmpeg, "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264"]
    command += ["-preset", spec.preset, "-pix_fmt", "yuv420p", str(partial)]
    subprocess.run(command, check=True)
    if spec.display_rotation:
        # Copied, not re-encoded, so the frames stay stored sideways.
        turned = path.with_suffix(".turned.mp4")
        command = [*ffmpeg, "-y", "-display_rotation", str(spec.display_rotation)]
        command += ["-i", str(partial), "-c", "copy", str(turned)]
        subprocess.run(command, check=True)
        turned.replace(partial)
    partial.rename(path)


def table_row(clip: Path, naive_cap_gb: float) -> tuple[str, float]:
    """One markdown row of measurements, and the stage's peak RSS in MB."""
    frame_count, width, height = clip_facts(clip)
    stage = run_child("stage", clip)

    naive_gb = frame_count * width * height * 3 * 4 / 1e9
    allowed_gb = min(naive_cap_gb, available_gb() / 2)
    if naive_gb > allowed_gb:
        naive_cells = [f"skipped (est. {naive_gb:.1f} GB)", "", "", ""]
    else:
        naive = run_child("naive", clip)
        naive_cells = [
            f"{naive['wall_s']:.2f}",
            f"{naive['peak_rss_mb']:.0f}",
            f"{naive['wall_s'] / stage['wall_s']:.1f}x",
            f"{naive['peak_rss_mb'] / stage['peak_rss_mb']:.1f}x",
        ]

    cells = [
        clip_label(clip),
        f"{width}x{height}",
        str(frame_count),
        f"{clip.stat().st_size / 1e6:.1f}",
        f"{stage['wall_s']:.2f}",
        f"{stage['peak_rss_mb']:.0f}",
        *naive_cells,
    ]
    return "| " + " | ".join(cells) + " |", stage["peak_rss_mb"]


def clip_label(clip: Path) -> str:
    if clip.is_relative_to(SHARED_CLIPS):
        return f"shared/{clip.relative_to(SHARED_CLIPS)}"
    return clip.stem


def clip_facts(clip: Path) -> tuple[int, int, int]:
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    return frame_count, width, height


def available_gb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9
    return math.inf


def run_child(kind: str, clip: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", kind, "--clip", str(clip)]
    finished = subprocess.run(
        command, check=True, capture_output=True, text=True, cwd=ROOT
    )
    result: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def measure(kind: str, clip: Path) -> int:
    """Run one measurement in this process and print it as JSON."""
    sys.path.insert(0, str(ROOT))
    from sign2text_core.video import Limits, read_clip

    started = time.perf_counter()
    if kind == "stage":
        raised = Limits(
            max_bytes=1 << 40, max_duration_s=3600, max_width=8192, max_height=8192
        )
        read_clip(
            clip, max_frames=STAGE_MAX_FRAMES, max_side=STAGE_MAX_SIDE, limits=raised
        )
    elif kind == "naive":
        read_naively(clip)
    elif kind == "refuse":
        refuse(clip)
    wall_s = time.perf_counter() - started

    print(json.dumps({"wall_s": wall_s, "peak_rss_mb": peak_rss_mb()}))
    return 0


def refuse(clip: Path) -> None:
    from sign2text_core.errors import FrameTooLarge
    from sign2text_core.video import Limits, read_clip

    try:
        read_clip(clip, max_frames=STAGE_MAX_FRAMES, limits=Limits())
    except FrameTooLarge:
        return
    raise SystemExit(f"{clip} was not refused as too large")


def read_naively(clip: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        frames.append(rgb.astype(np.float32))
    capture.release()

    chosen = np.linspace(0, len(frames) - 1, NAIVE_SAMPLES).round().astype(int)
    return np.stack([frames[index] for index in chosen])


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
