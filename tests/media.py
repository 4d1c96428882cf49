"""Make real media files for the tests, with the ffmpeg that imageio-ffmpeg ships.

Two kinds of clip: :func:`make_clip` writes ffmpeg's moving test pattern, and
:func:`make_numbered_clip` writes frames that carry their own index, so a test can read
back which frames it was given (:func:`frame_number`). The numbered frames are split in
a left and a right half of flat grey, whose levels are the index's two base-16 digits;
flat areas survive every lossy codec, GIF palettes and shrinking. A pure red block in
the top-left corner shows the colour order and which way up a frame is.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

MAX_NUMBERED_FRAMES = 256
RED = (255, 0, 0)


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


@dataclass(frozen=True)
class VideoFormat:
    """A container and codec pair, with the ffmpeg output options that make it."""

    name: str
    suffix: str
    codec: str
    """The codec name `sign2text_core.video` reports for it."""
    options: tuple[str, ...]


_YUV = ("-pix_fmt", "yuv420p")
# libvpx's own threads made a 2 s clip take seconds on a busy machine; one is plenty.
_VPX_FAST = ("-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8", "-threads", "1")
_X265 = ("-c:v", "libx265", *_YUV, "-x265-params", "log-level=error")

FORMATS: dict[str, VideoFormat] = {
    fmt.name: fmt
    for fmt in (
        VideoFormat("h264-mp4", ".mp4", "h264", ("-c:v", "libx264", *_YUV)),
        VideoFormat("h265-mp4", ".mp4", "hevc", (*_X265, "-tag:v", "hvc1")),
        VideoFormat("h264-mov", ".mov", "h264", ("-c:v", "libx264", *_YUV)),
        VideoFormat("h265-mov", ".mov", "hevc", _X265),
        VideoFormat("vp8-webm", ".webm", "vp8", ("-c:v", "libvpx", *_VPX_FAST)),
        VideoFormat("vp9-webm", ".webm", "vp9", ("-c:v", "libvpx-vp9", *_VPX_FAST)),
        VideoFormat("mjpeg-avi", ".avi", "mjpeg", ("-c:v", "mjpeg", "-q:v", "3")),
        VideoFormat("h264-mkv", ".mkv", "h264", ("-c:v", "libx264", *_YUV)),
        VideoFormat("gif", ".gif", "gif", ("-c:v", "gif")),
        # What phones record by default: 10-bit HEVC.
        VideoFormat(
            "h265-10bit-mov",
            ".mov",
            "hevc",
            (
                *("-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1"),
                *("-x265-params", "log-level=error"),
            ),
        ),
        VideoFormat("mpeg4-avi", ".avi", "mpeg4", ("-c:v", "mpeg4", "-q:v", "3")),
        VideoFormat("av1-mp4", ".mp4", "av1", ("-c:v", "libsvtav1")),
    )
}
"""Every format the service promises to read, by name."""


def numbered_frame(index: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """The RGB frame that :func:`frame_number` reads back as `index`."""
    if not 0 <= index < MAX_NUMBERED_FRAMES:
        raise ValueError(f"index must be in [0, {MAX_NUMBERED_FRAMES}): {index}")
    width, height = size
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = _grey_level(index % 16)
    frame[:, width // 2 :] = _grey_level(index // 16)
    frame[: height // 8, : width // 4] = RED
    return frame


def frame_number(frame: np.ndarray) -> int:
    """The index a frame of :func:`numbered_frame` carries (upright frames only)."""
    height, width = frame.shape[:2]
    low = frame[height // 2 :, : width // 4].mean()
    high = frame[height // 2 :, 3 * width // 4 :].mean()
    return _digit(low) + 16 * _digit(high)


def _grey_level(digit: int) -> int:
    return digit * 16 + 8


def _digit(level: float) -> int:
    return int(np.clip(round((level - 8) / 16), 0, 15))


def numbered_frames(count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    for index in range(count):
        yield numbered_frame(index, size)


def make_numbered_clip(
    path: Path,
    *,
    frames: int = 60,
    fps: float = 30,
    size: tuple[int, int] = (320, 240),
    video_format: str | VideoFormat = "h264-mp4",
    muxer: str | None = None,
) -> Path:
    """Write `frames` numbered frames at `fps` and `size` (width, height) to `path`.

    `video_format` names an entry of :data:`FORMATS`. With `muxer` (e.g. "matroska",
    "webm") the clip is written through a pipe, as a live encoder would stream it:
    the container then has no duration, no frame count and no index.
    """
    chosen = FORMATS[video_format] if isinstance(video_format, str) else video_format
    width, height = size
    raw_input = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    raw_input += ["-r", str(fps), "-i", "pipe:0"]
    output = ["-f", muxer, "pipe:1"] if muxer else [str(path)]
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *raw_input]
    command += [*chosen.options, *output]

    with open(path, "wb") if muxer else contextlib.nullcontext() as sink:
        writer = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.PIPE
        )
        assert writer.stdin is not None
        for frame in numbered_frames(frames, size):
            writer.stdin.write(frame.tobytes())
        writer.stdin.close()
        stderr = writer.stderr.read() if writer.stderr else b""
        if writer.wait() != 0:
            raise RuntimeError(f"ffmpeg failed on {path}: {stderr.decode()}")
    return path


def rotate_clip(
    source: Path,
    path: Path,
    degrees: int,
    *,
    hflip: bool = False,
    vflip: bool = False,
) -> Path:
    """Copy `source` to `path` with a display matrix turning it `degrees`
    counter-clockwise (as phones store sideways video), mirrored too with `hflip`
    or `vflip`; the frames are not re-encoded, so they stay stored as they were."""
    display = ["-display_rotation", str(degrees)]
    display += ["-display_hflip"] if hflip else []
    display += ["-display_vflip"] if vflip else []
    run_ffmpeg([*display, "-i", str(source), "-c", "copy", str(path)])
    return path


def with_display_matrix(source: Path, path: Path, matrix: Sequence[int]) -> Path:
    """Copy an MP4 of one track with the nine numbers of its track header's display
    matrix (`tkhd`, ISO/IEC 14496-12) replaced by `matrix`."""
    data = bytearray(source.read_bytes())
    header = data.find(b"tkhd")
    assert header > 0 and data.find(b"tkhd", header + 4) < 0, "one track expected"
    version = data[header + 4]
    # After version and flags: times, track id, reserved, duration (wider in
    # version 1), reserved, layer, group, volume, reserved; then the matrix.
    offset = header + 4 + (52 if version == 1 else 40)
    data[offset : offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


def faststart_copy(source: Path, path: Path) -> Path:
    """Copy an MP4/MOV with its index (moov) moved before the media data, as web
    uploads usually are: a truncated copy still opens and promises every frame."""
    run_ffmpeg(["-i", str(source), "-c", "copy", "-movflags", "+faststart", str(path)])
    return path


def truncated_copy(source: Path, path: Path, fraction: float) -> Path:
    """Copy the first `fraction` of `source`'s bytes, like an interrupted upload."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def header_only_mp4(source: Path, path: Path) -> Path:
    """Copy a faststart MP4 up to the start of its media data: the header promises
    every frame, and none is there."""
    data = source.read_bytes()
    media_data = data.find(b"mdat")
    if media_data < 0:
        raise ValueError(f"{source} has no media data box")
    path.write_bytes(data[: media_data + 4])
    return path


def with_declared_frame_size(source: Path, path: Path, size: tuple[int, int]) -> Path:
    """Copy an MP4/MOV with the frame size in its first sample description replaced
    by `size`: the coded stream still holds the old size, so FFmpeg, which takes the
    size from the stream, sees no change; only the container's boxes declare `size`."""
    data = bytearray(source.read_bytes())
    descriptions = data.find(b"stsd")
    if descriptions < 0:
        raise ValueError(f"{source} has no sample description box")
    # After the box type: version and flags, entry count, the first entry's size and
    # type, then 24 bytes of the entry before its width and height.
    offset = descriptions + 4 + 8 + 8 + 24
    struct.pack_into(">HH", data, offset, *size)
    path.write_bytes(data)
    return path


def with_huge_info_chunk(source: Path, path: Path) -> Path:
    """Copy an AVI with its first INFO tag (RIFF, ffmpeg writes ISFT) claiming
    1.75 GiB, and the list holding it claiming as much as a chunk can: a 100 KB
    file whose header asks the demuxer for a huge buffer."""
    data = bytearray(source.read_bytes())
    info = data.find(b"INFO")
    assert info > 8 and data[info - 8 : info - 4] == b"LIST", "no INFO list"
    data[info - 4 : info] = struct.pack("<I", 0xFFFFFFFF)
    data[info + 8 : info + 12] = struct.pack("<I", 0x70000000)
    path.write_bytes(bytes(data))
    return path


def make_empty_track_mp4(path: Path) -> Path:
    """An MP4 with a video track that holds no frame at all."""
    source = "testsrc2=size=64x48:rate=30"
    run_ffmpeg(
        ["-f", "lavfi", "-i", source, "-frames:v", "0", "-c:v", "libx264", str(path)]
    )
    return path


def with_audio(source: Path, path: Path, *, codec: str = "aac") -> Path:
    """Copy `source`'s video beside a new audio track, as cameras and phones record
    (use "libopus" for WebM)."""
    inputs = ["-i", str(source), "-f", "lavfi", "-i", "sine=duration=2"]
    streams = ["-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", codec]
    run_ffmpeg([*inputs, *streams, str(path)])
    return path


def make_audio(path: Path, *, seconds: float = 1.0) -> Path:
    """An audio-only AAC file (use an .mp4 or .m4a suffix)."""
    run_ffmpeg(
        ["-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:a", "aac", str(path)]
    )
    return path


def make_still_image(path: Path, *, size: tuple[int, int] = (64, 48)) -> Path:
    """One picture, encoded as the `path` suffix says (.png or .jpg)."""
    width, height = size
    source = f"testsrc2=size={width}x{height}"
    run_ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", "1", str(path)])
    return path


def decode_with_ffmpeg(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """Every frame of `path` as RGB, decoded by the ffmpeg command line, which applies
    rotation metadata itself; `size` is the (width, height) of its upright frames."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path)]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    raw = subprocess.run(command, check=True, capture_output=True).stdout
    width, height = size
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)
    return list(frames)
