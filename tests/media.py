"""Make real media files for the tests, with the ffmpeg binary that imageio-ffmpeg ships."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg


def ffmpeg_exe() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(args: Sequence[str]) -> None:
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(command, check=True, capture_output=True)


def make_clip(
    path: Path,
    *,
    seconds: float = 1.0,
    fps: float = 30,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    extra: Sequence[str] = (),
) -> Path:
    """Write a test-pattern clip of `seconds` at `fps` and `size` (width, height)."""
    width, height = size
    source = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
    args = ["-f", "lavfi", "-i", source, "-c:v", codec]
    if pix_fmt:
        args += ["-pix_fmt", pix_fmt]
    run_ffmpeg([*args, *extra, str(path)])
    return path
