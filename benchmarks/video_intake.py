"""Time and peak memory of video intake against the naive order of work.

For each clip, two measurements, each in a fresh Python process so its peak resident
memory (VmHWM, imports included) belongs to that run alone, each taken ``--repeat``
times (default 3; the table shows the best wall time and the highest peak):

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
since the default 20 s limit would refuse the 30 s clip. Then what refusing an
8192x8192 clip (two frames) under the default limits costs: it is refused from its
MP4 boxes, before FFmpeg decodes anything.

Last, the decoder's floors, FFmpeg through PyAV on the stage's threads, nothing
converted or kept: every frame decoded, and only the frames later ones are built from
(what any decoder must do to hand over exact frames; the stage decodes those, plus the
kept frames nothing refers to). Their times on the 1080p clip bound the time ratio;
the first one's peak above the imports on the 720p 3 s and 2160p 30 s clips is what
the decoder alone grows by with resolution.

On this 2-CPU machine, quiet (load average 0.2; 2026-12-04 06:47 UTC, --no-shared):

    | clip      | stage s | stage MB | naive s | naive MB | time  | memory |
    | 720p-3s   | 0.20    | 130      | 0.39    | 1569     | 1.9x  | 12.1x  |
    | 1080p-10s | 0.69    | 151      | 2.71    | 8416     | 3.9x  | 55.6x  |
    | 2160p-3s  | 0.98    | 148      | skipped (est. 9.0 GB)                |
    | 2160p-30s | 7.50    | 148      | skipped (est. 89.6 GB)               |

- Peak under the 300 MB target for every clip: largest 151 MB.
- Flat in length and resolution: 2160p 30 s peaks +0 MB above 2160p 3 s and +18 MB
  above 720p 3 s (target 50 MB); the decoder alone grows by +17 MB.
- 1080p 10 s, memory: 56x less than naive (target 10x).
- 1080p 10 s, time (target 10x): 3.9x. The naive's time is mostly the kernel
  handing it 8.4 GB of fresh pages and swings from 2.5 s to 28 s between runs
  (user time 2.8 to 3.6 s); against its best of three, decoding every frame
  takes 0.69 s and decoding only the reference frames 0.44 s (6.1x), so no stage
  that hands over exact frames reaches 10x here.

    .venv/bin/python benchmarks/video_intake.py [--no-shared] [--repeat 3]
        [--naive-cap-gb 8]
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
    print(
        f"each figure: best wall time and highest peak of {arguments.repeat} runs, "
        "each in a fresh process"
    )
    print()
    print(
        "| clip | size | frames | MB | stage s | stage peak RSS MB "
        "| naive s | naive peak RSS MB | time ratio | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    figures: dict[str, ClipFigures] = {}
    for clip in clips:
        figures[clip_label(clip)] = measure_clip(
            clip, arguments.naive_cap_gb, arguments.repeat
        )
        print(figures[clip_label(clip)].row(), flush=True)

    oversized = synthetic_clip(OVERSIZED, arguments.cache)
    refusal = run_child("refuse", oversized, arguments.repeat)
    print()
    print(
        f"refusing {OVERSIZED.width}x{OVERSIZED.height} H.264 (frame_too_large): "
        f"{refusal['wall_s']:.2f} s, peak RSS {refusal['peak_rss_mb']:.0f} MB"
    )
    stage_peaks = {label: clip.stage["peak_rss_mb"] for label, clip in figures.items()}
    print(f"largest stage peak RSS: {max(stage_peaks.values()):.0f} MB")
    for longer, shorter in (("2160p-30s", "720p-3s"), ("2160p-30s", "2160p-3s")):
        growth = stage_peaks[longer] - stage_peaks[shorter]
        print(f"stage peak RSS, {longer} minus {shorter}: {growth:+.0f} MB")

    print()
    print_time_floor(figures["1080p-10s"], arguments.repeat)
    print_memory_floor(arguments.cache)
    return 0


@dataclass(frozen=True)
class ClipFigures:
    """The stage's and the naive run's figures for one clip (naive None: skipped)."""

    clip: Path
    frame_count: int
    width: int
    height: int
    stage: dict[str, float]
    naive: dict[str, float] | None
    naive_gb: float

    def row(self) -> str:
        """One markdown row of the table."""
        if self.naive is None:
            naive_cells = [f"skipped (est. {self.naive_gb:.1f} GB)", "", "", ""]
        else:
            naive_cells = [
                f"{self.naive['wall_s']:.2f}",
                f"{self.naive['peak_rss_mb']:.0f}",
                f"{self.naive['wall_s'] / self.stage['wall_s']:.1f}x",
                f"{self.naive['peak_rss_mb'] / self.stage['peak_rss_mb']:.1f}x",
            ]
        cells = [
            clip_label(self.clip),
            f"{self.width}x{self.height}",
            str(self.frame_count),
            f"{self.clip.stat().st_size / 1e6:.1f}",
            f"{self.stage['wall_s']:.2f}",
            f"{self.stage['peak_rss_mb']:.0f}",
            *naive_cells,
        ]
        return "| " + " | ".join(cells) + " |"


def print_time_floor(figures: ClipFigures, repeat: int) -> None:
    """The stage's time beside the decoder's floors and the naive run's."""
    floor = run_child("floor", figures.clip, repeat)["wall_s"]
    references = run_child("floor-references", figures.clip, repeat)["wall_s"]
    stage = figures.stage["wall_s"]
    print(
        f"{clip_label(figures.clip)}: the stage {stage:.2f} s; decoding every frame "
        f"and converting none {floor:.2f} s; decoding only the frames others are "
        f"built from {references:.2f} s (the least any exact decoder needs)"
    )
    if figures.naive is not None:
        naive = figures.naive["wall_s"]
        print(
            f"naive / stage: {naive / stage:.1f}x; naive / every frame: "
            f"{naive / floor:.1f}x; naive / reference frames only: "
            f"{naive / references:.1f}x"
        )


def print_memory_floor(cache: Path) -> None:
    """What the decoder alone needs, above the imports, to walk the 2160p 30 s clip
    against the 720p 3 s one."""
    peaks = {}
    for name in ("720p-3s", "2160p-30s"):
        spec = next(spec for spec in SYNTHETIC if spec.name == name)
        peaks[name] = run_child("floor", synthetic_clip(spec, cache))["peak_rss_mb"]
    growth = peaks["2160p-30s"] - peaks["720p-3s"]
    print(
        "decoder's floor, peak RSS above the imports: "
        f"720p-3s {peaks['720p-3s']:.0f} MB, 2160p-30s {peaks['2160p-30s']:.0f} MB, "
        f"difference {growth:+.0f} MB"
    )


def parse_arguments() -> argparse.Namespace:
    default_cache = Path(tempfile.gettempdir()) / "sign2text-benchmark-clips"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache)
    parser.add_argument("--naive-cap-gb", type=float, default=8.0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per figure, each in a fresh process (best time, highest peak)",
    )
    parser.add_argument(
        "--no-shared", dest="shared", action="store_false", help="skip ../shared/clips"
    )
    parser.add_argument(
        "--measure",
        choices=("stage", "naive", "refuse", "floor", "floor-references", "none"),
    )
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


def measure_clip(clip: Path, naive_cap_gb: float, repeat: int) -> ClipFigures:
    frame_count, width, height = clip_facts(clip)
    stage = run_child("stage", clip, repeat)

    naive_gb = frame_count * width * height * 3 * 4 / 1e9
    allowed_gb = min(naive_cap_gb, available_gb() / 2)
    naive = None if naive_gb > allowed_gb else run_child("naive", clip, repeat)
    return ClipFigures(clip, frame_count, width, height, stage, naive, naive_gb)


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


def run_child(kind: str, clip: Path, repeat: int = 1) -> dict[str, float]:
    """The best wall time and the highest peak RSS of ``repeat`` runs of one
    measurement, each in a fresh process."""
    command = [sys.executable, __file__, "--measure", kind, "--clip", str(clip)]
    runs = []
    for _ in range(max(1, repeat)):
        finished = subprocess.run(
            command, check=True, capture_output=True, text=True, cwd=ROOT
        )
        runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    return {
        "wall_s": min(run["wall_s"] for run in runs),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
    }


def measure(kind: str, clip: Path) -> int:
    """Run one measurement in this process and print it as JSON."""
    sys.path.insert(0, str(ROOT))
    from sign2text_core.video import Limits, read_clip

    imported_mb = peak_rss_mb()
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
    elif kind.startswith("floor"):
        walk(clip, references_only=kind == "floor-references")
    wall_s = time.perf_counter() - started
    if kind.startswith("floor"):
        return print_measurement(wall_s, peak_rss_mb() - imported_mb)
    return print_measurement(wall_s, peak_rss_mb())


def print_measurement(wall_s: float, peak_mb: float) -> int:
    print(json.dumps({"wall_s": wall_s, "peak_rss_mb": peak_mb}))
    return 0


def refuse(clip: Path) -> None:
    from sign2text_core.errors import FrameTooLarge
    from sign2text_core.video import Limits, read_clip

    try:
        read_clip(clip, max_frames=STAGE_MAX_FRAMES, limits=Limits())
    except FrameTooLarge:
        return
    raise SystemExit(f"{clip} was not refused as too large")


def walk(clip: Path, *, references_only: bool = False) -> None:
    """Decode every frame as the stage's decoder is set up (one thread above 1080p),
    converting and keeping none; with ``references_only``, decode only the frames
    later ones are built from, the least any exact decoder must do."""
    import av

    _, width, height = clip_facts(clip)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = 1 if width * height > 1920 * 1080 else 0
        if references_only:
            stream.codec_context.skip_frame = "NONREF"
        for _ in container.decode(stream):
            pass


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
