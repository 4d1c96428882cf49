"""Video intake: from an uploaded clip to the few frames the landmark stage needs.

A clip is opened with OpenCV's FFmpeg backend from a file; uploads given as bytes are
written to a private temporary file first, which is always removed. The clip's facts
come from the container, the frame indices to keep are chosen before any frame is
decoded, and only the kept frames are converted (resized, rotated upright, BGR to RGB).
Skipped frames still pass through the decoder (later frames may depend on them) but are
never converted or copied, so the memory a clip costs depends on the frames kept, not
on its length; its resolution only sizes the few full-size buffers of the decoder.

Limits refuse what a small function cannot afford, as early as possible: the byte size
before the file is written or opened, the frame size and duration from the container's
header before any frame is decoded.

Importing this module quietens OpenCV's and FFmpeg's own console logging (every broken
upload would otherwise print several lines of native noise) unless the operator set
``OPENCV_LOG_LEVEL`` or ``OPENCV_FFMPEG_LOGLEVEL``; failures are reported as errors from
:mod:`sign2text_core.errors` instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import cv2
import numpy as np

from sign2text_core import errors

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

VideoSource = bytes | bytearray | memoryview | str | os.PathLike[str]
"""A clip as the bytes of an upload or the path of a file."""

Frame = np.ndarray
"""One RGB uint8 image, height x width x 3."""

DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
DEFAULT_MAX_DURATION_S: Final = 20.0
DEFAULT_MAX_FRAME_SIZE: Final = (4096, 4096)

ENV_MAX_BYTES: Final = "SIGN2TEXT_MAX_BYTES"
ENV_MAX_DURATION_S: Final = "SIGN2TEXT_MAX_DURATION_S"
ENV_MAX_FRAME_SIZE: Final = "SIGN2TEXT_MAX_FRAME_SIZE"

# Containers sometimes store nonsense (negative or 2**63) for a count or a rate; beyond
# these bounds a header value is treated as missing.
_MAX_PLAUSIBLE_FRAMES: Final = 2**31
_MAX_PLAUSIBLE_FPS: Final = 1000.0

# Above this many pixels a frame is decoded on one thread. FFmpeg's frame threading
# keeps a frame in flight per thread, so at 2160p each extra thread cost about 25 MB of
# peak memory; at 1080p and below frames are small and the threads are worth their
# speed.
_MAX_THREADED_PIXELS: Final = 1920 * 1080

# Codecs FFmpeg also uses for single pictures: a "clip" of one such frame is a photo
# (a PNG or JPEG renamed .mp4, a one-frame GIF), not a signed word.
_STILL_IMAGE_CODECS: Final = frozenset({"png", "mjpeg", "gif", "webp", "bmp", "tiff"})

# Four-character codes OpenCV reports, mapped to the codec names people know.
_CODEC_NAMES: Final = {
    "avc1": "h264",
    "h264": "h264",
    "x264": "h264",
    "hevc": "hevc",
    "hev1": "hevc",
    "hvc1": "hevc",
    "h265": "hevc",
    "vp80": "vp8",
    "vp90": "vp9",
    "av01": "av1",
    "mjpg": "mjpeg",
    "mpng": "png",
    "mp4v": "mpeg4",
    "fmp4": "mpeg4",
    "xvid": "mpeg4",
    "divx": "mpeg4",
}


def _quieten_native_logs() -> None:
    # FFmpeg reads its level once, when OpenCV first opens a capture.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


_quieten_native_logs()


@dataclass(frozen=True)
class Limits:
    """What a clip may cost before it is refused.

    A frame fits when it fits the ``max_width`` x ``max_height`` box in either
    orientation: the cost of a frame is its pixels, not which way it is held.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_width: int = DEFAULT_MAX_FRAME_SIZE[0]
    max_height: int = DEFAULT_MAX_FRAME_SIZE[1]

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise errors.ConfigurationError(f"max_bytes must be >= 1: {self.max_bytes}")
        if not (self.max_duration_s > 0 and math.isfinite(self.max_duration_s)):
            raise errors.ConfigurationError(
                f"max_duration_s must be a positive number: {self.max_duration_s}"
            )
        if self.max_width < 1 or self.max_height < 1:
            raise errors.ConfigurationError(
                f"max frame size must be positive: {self.max_width}x{self.max_height}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Limits from ``SIGN2TEXT_MAX_BYTES`` (an integer number of bytes),
        ``SIGN2TEXT_MAX_DURATION_S`` (seconds) and ``SIGN2TEXT_MAX_FRAME_SIZE``
        (``WIDTHxHEIGHT``); an unset or empty variable keeps its default.

        Raises:
            errors.ConfigurationError: a variable is set to a value that is not valid,
                naming the variable and the value.
        """
        env = os.environ if environ is None else environ
        max_bytes = _env_value(env, ENV_MAX_BYTES, _parse_positive_int)
        max_duration_s = _env_value(env, ENV_MAX_DURATION_S, _parse_positive_float)
        frame_size = _env_value(env, ENV_MAX_FRAME_SIZE, _parse_frame_size)

        width, height = frame_size or DEFAULT_MAX_FRAME_SIZE
        return cls(
            max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
            max_duration_s=(
                DEFAULT_MAX_DURATION_S if max_duration_s is None else max_duration_s
            ),
            max_width=width,
            max_height=height,
        )


def _env_value(
    env: Mapping[str, str], name: str, parse: Callable[[str], _T]
) -> _T | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise errors.ConfigurationError(f"{name}={text!r} is not valid: {exc}") from exc


def _parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def _parse_positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("expected a number > 0")
    return value


def _parse_frame_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise ValueError("expected WIDTHxHEIGHT, e.g. 4096x4096")
    return _parse_positive_int(parts[0]), _parse_positive_int(parts[1])


@dataclass(frozen=True)
class ClipInfo:
    """What is known about a clip.

    ``width`` and ``height`` are those of the upright frames; ``rotation`` is the
    clockwise turn in degrees (0, 90, 180 or 270) applied to the stored frames to make
    them upright. ``frame_count`` is the number of frames the clip holds as far as it
    could be read (fewer than the container promised when the file is truncated).
    """

    frame_count: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    rotation: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Clip:
    """The frames kept from a clip: RGB uint8 images in clip order, and the index of
    each in the clip (``frame_index[i]`` is the position of ``frames[i]``)."""

    info: ClipInfo
    frames: list[Frame]
    frame_index: np.ndarray = field(repr=False)


def sample_indices(frame_count: int, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` frame indices spread evenly over ``frame_count`` frames,
    first and last included, increasing and distinct (int64)."""
    if frame_count <= 0 or max_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if frame_count <= max_frames:
        return np.arange(frame_count, dtype=np.int64)
    # With frame_count > max_frames the spacing is above one, so rounding keeps the
    # indices distinct.
    spaced = np.linspace(0, frame_count - 1, max_frames)
    return np.rint(spaced).astype(np.int64)


def read_clip(
    source: VideoSource,
    *,
    max_frames: int,
    max_side: int | None = None,
    limits: Limits | None = None,
) -> Clip:
    """Read a clip and keep at most ``max_frames`` frames spread evenly over it.

    Each kept frame is upright, RGB uint8 and, when ``max_side`` is given, shrunk so
    its longer side is at most ``max_side`` pixels (never enlarged). ``limits`` default
    to :meth:`Limits.from_env`.

    Raises:
        errors.InvalidParameter: ``max_frames`` or ``max_side`` is below 1.
        errors.EmptyUpload: the upload or file has no bytes.
        errors.VideoTooLarge: it has more bytes than ``limits.max_bytes``.
        errors.NotAVideo: it cannot be opened as a video (or is a still image).
        errors.FrameTooLarge: its frames exceed the limit's frame size.
        errors.VideoTooLong: it lasts longer than ``limits.max_duration_s``.
        errors.NoFrames: not a single frame of it can be decoded.
        errors.ConfigurationError: ``limits`` is None and the environment holds an
            invalid limit.
        FileNotFoundError: ``source`` is a path to no file.
    """
    _check_request(max_frames, max_side)
    active_limits = Limits.from_env() if limits is None else limits
    size_bytes = _checked_size(source, active_limits)

    with video_file(source) as path:
        return _read_file(path, size_bytes, max_frames, max_side, active_limits)


@contextlib.contextmanager
def video_file(source: VideoSource) -> Iterator[Path]:
    """The clip as a file: a path is yielded as it is; bytes are written to a private
    temporary file (mode 0600, under :func:`tempfile.gettempdir`, so ``TMPDIR`` is
    honoured) that is removed when the block exits, whether it succeeds or fails."""
    if isinstance(source, bytes | bytearray | memoryview):
        with _upload_file(source) as path:
            yield path
    else:
        yield Path(os.fspath(source))


@contextlib.contextmanager
def _upload_file(data: bytes | bytearray | memoryview) -> Iterator[Path]:
    descriptor, name = tempfile.mkstemp(prefix="sign2text-", suffix=".video")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _check_request(max_frames: int, max_side: int | None) -> None:
    if max_frames < 1:
        raise errors.InvalidParameter(
            f"max_frames must be at least 1, not {max_frames}.", max_frames=max_frames
        )
    if max_side is not None and max_side < 1:
        raise errors.InvalidParameter(
            f"max_side must be at least 1, not {max_side}.", max_side=max_side
        )


def _checked_size(source: VideoSource, limits: Limits) -> int:
    if isinstance(source, bytes | bytearray | memoryview):
        size_bytes = memoryview(source).nbytes
    else:
        size_bytes = os.stat(source).st_size

    if size_bytes == 0:
        raise errors.EmptyUpload()
    if size_bytes > limits.max_bytes:
        raise errors.VideoTooLarge(
            f"The video is {size_bytes} bytes; this service accepts at most "
            f"{limits.max_bytes}.",
            size_bytes=size_bytes,
            max_bytes=limits.max_bytes,
        )
    return size_bytes


@dataclass(frozen=True)
class _Header:
    """Facts read from the container when the clip is opened, before decoding."""

    frame_count: int | None
    fps: float | None
    width: int
    height: int
    codec: str
    rotation: int
    rotated_by_backend: bool


def _read_file(
    path: Path, size_bytes: int, max_frames: int, max_side: int | None, limits: Limits
) -> Clip:
    started = time.perf_counter()
    try:
        header, frame_count = _probe(path, limits)
        if frame_count == 0:
            raise errors.NoFrames()
        if frame_count == 1 and header.codec in _STILL_IMAGE_CODECS:
            raise errors.NotAVideo(
                f"The upload is a still image ({header.codec}), not a video.",
                codec=header.codec,
            )
        convert = _frame_converter(header, max_side)
        threads = _decoder_threads(header)
        frames, kept, frame_count = _decode_evenly(
            path, frame_count, max_frames, convert, threads
        )
    except cv2.error as exc:
        raise errors.NotAVideo(f"OpenCV could not read the video: {exc.err}") from exc

    fps = header.fps or 0.0
    info = ClipInfo(
        frame_count=frame_count,
        fps=fps,
        duration_s=frame_count / fps if fps else 0.0,
        width=header.width,
        height=header.height,
        codec=header.codec,
        rotation=header.rotation,
        size_bytes=size_bytes,
    )
    logger.debug(
        "clip read: %s, kept %d frames in %.0f ms",
        info.to_dict(),
        len(frames),
        (time.perf_counter() - started) * 1000,
    )
    return Clip(info=info, frames=frames, frame_index=np.asarray(kept, dtype=np.int64))


def _probe(path: Path, limits: Limits) -> tuple[_Header, int]:
    """Open the clip once to read its header, refuse it when the header alone breaks
    a limit, and count its frames.

    Returns the header and the number of frames counted.
    """
    # FFmpeg's stream probing inside the open decodes several frames of an H.264
    # stream at full size (refusing an 8192x8192 clip peaked at 206 MB), so the frame
    # size of an MP4 or QuickTime file is judged from its own boxes first.
    # TODO: Matroska, WebM and AVI are still judged only after FFmpeg's probing;
    # reading their headers here would need parsers for EBML and RIFF too.
    for width, height in _mp4_frame_sizes(path):
        _check_frame_size(width, height, limits)

    # One capture serves the header and the count: every open probes the stream
    # again (8 ms at 1080p, 16 to 24 ms at 2160p).
    with _capture(path) as capture:
        header = _read_header(capture)
        _check_header(header, limits)
        frame_count = _count_frames(capture, header, limits)
    return header, frame_count


def _check_header(header: _Header, limits: Limits) -> None:
    _check_frame_size(header.width, header.height, limits)
    if header.frame_count is not None and header.fps is not None:
        _check_duration(header.frame_count / header.fps, limits)


def _read_header(capture: cv2.VideoCapture) -> _Header:
    rotation = _rotation(capture)
    rotated_by_backend = rotation == 0 or _backend_rotates(capture)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width < 1 or height < 1:
        raise errors.NotAVideo("The video's frames have no size.")
    # The backend reports the upright size only when it turns the frames itself.
    if not rotated_by_backend and rotation in (90, 270):
        width, height = height, width

    return _Header(
        frame_count=_plausible_count(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        fps=_plausible_fps(capture.get(cv2.CAP_PROP_FPS)),
        width=width,
        height=height,
        codec=_codec_name(capture.get(cv2.CAP_PROP_FOURCC)),
        rotation=rotation,
        rotated_by_backend=rotated_by_backend,
    )


def _rotation(capture: cv2.VideoCapture) -> int:
    """The clockwise quarter turn that makes the stored frames upright, from the
    container's display matrix."""
    degrees = capture.get(cv2.CAP_PROP_ORIENTATION_META)
    if not math.isfinite(degrees):
        return 0
    # Display matrices may hold any angle; only quarter turns make sense for frames.
    return (round(degrees / 90) * 90) % 360


def _backend_rotates(capture: cv2.VideoCapture) -> bool:
    return bool(capture.get(cv2.CAP_PROP_ORIENTATION_AUTO))


def _plausible_count(value: float) -> int | None:
    if not math.isfinite(value) or not 1 <= value < _MAX_PLAUSIBLE_FRAMES:
        return None
    return round(value)


def _plausible_fps(value: float) -> float | None:
    if not math.isfinite(value) or not 0 < value <= _MAX_PLAUSIBLE_FPS:
        return None
    return float(value)


def _codec_name(fourcc: float) -> str:
    code = int(fourcc) if math.isfinite(fourcc) else 0
    characters = "".join(chr((code >> shift) & 0xFF) for shift in (0, 8, 16, 24))
    tag = characters.strip("\0 ").lower()
    if not tag.isprintable() or not tag:
        return "unknown"
    return _CODEC_NAMES.get(tag, tag)


def _check_frame_size(width: int, height: int, limits: Limits) -> None:
    long_side, short_side = sorted((width, height), reverse=True)
    limit_long, limit_short = sorted(
        (limits.max_width, limits.max_height), reverse=True
    )
    if long_side > limit_long or short_side > limit_short:
        raise errors.FrameTooLarge(
            f"The video's frames are {width}x{height}; this service "
            f"accepts at most {limits.max_width}x{limits.max_height}.",
            width=width,
            height=height,
            max_width=limits.max_width,
            max_height=limits.max_height,
        )


# The boxes of an MP4 or QuickTime file (ISO/IEC 14496-12) on the way from the file's
# top level to a track's sample descriptions, and the most of a movie box read into
# memory (an index of a long clip takes a few hundred kilobytes).
_MP4_TRACK_PATH: Final = (b"mdia", b"minf", b"stbl", b"stsd")
_MP4_MAX_MOVIE_BYTES: Final = 16 * 1024 * 1024
# Real files have a handful of top-level boxes before their movie box (a fragmented
# one a pair per fragment after it); past this many the file is left to FFmpeg rather
# than walked eight bytes at a time.
_MP4_MAX_TOP_LEVEL_BOXES: Final = 64
# In a visual sample entry, width and height (16 bits each) follow 24 bytes of
# reserved fields, the data reference index and pre-defined fields.
_MP4_SAMPLE_ENTRY_SIZE_OFFSET: Final = 24


def _mp4_frame_sizes(path: Path) -> list[tuple[int, int]]:
    """The stored frame sizes (width, height) of the video tracks of an MP4 or
    QuickTime file, read from its sample descriptions without decoding; empty when the
    file is not one or its boxes cannot be followed (FFmpeg then judges it)."""
    movie = _mp4_movie_box(path)
    if movie is None:
        return []

    sizes = []
    for kind, start, end in _mp4_boxes(movie, 0, len(movie)):
        if kind == b"trak" and _mp4_is_video_track(movie, start, end):
            sizes += _mp4_sample_entry_sizes(movie, start, end)
    return sizes


def _mp4_movie_box(path: Path) -> bytes | None:
    """The contents of the file's top-level movie box (moov), found by skipping from
    box header to box header."""
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        position = 0
        for _ in range(_MP4_MAX_TOP_LEVEL_BOXES):
            file.seek(position)
            found = _mp4_box_at(file.read(16), 0, file_size - position)
            if found is None:
                return None
            kind, payload_start, box_size = found
            if kind == b"moov":
                if box_size > _MP4_MAX_MOVIE_BYTES:
                    return None
                file.seek(position + payload_start)
                return file.read(box_size - payload_start)
            position += box_size
    return None


def _mp4_box_at(data: bytes, position: int, room: int) -> tuple[bytes, int, int] | None:
    """The type, payload offset and whole size of the box starting at ``position``
    in ``data``, if its header is whole and its size fits in ``room`` bytes."""
    if len(data) < position + 8:
        return None
    size, kind = struct.unpack_from(">I4s", data, position)
    header = 8
    if size == 1:  # the size follows the type as 64 bits
        if len(data) < position + 16:
            return None
        (size,) = struct.unpack_from(">Q", data, position + 8)
        header = 16
    elif size == 0:  # the box runs to the end of its parent
        size = room
    if not header <= size <= room:
        return None
    return kind, header, size


def _mp4_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The type, payload start and end of each box in ``data[start:end]``."""
    position = start
    while position < end:
        found = _mp4_box_at(data, position, end - position)
        if found is None:
            return
        kind, payload_start, box_size = found
        yield kind, position + payload_start, position + box_size
        position += box_size


def _mp4_child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    """Payload start and end of the first ``kind`` box in ``data[start:end]``, or an
    empty range."""
    for child_kind, child_start, child_end in _mp4_boxes(data, start, end):
        if child_kind == kind:
            return child_start, child_end
    return 0, 0


def _mp4_is_video_track(movie: bytes, start: int, end: int) -> bool:
    media_start, media_end = _mp4_child(movie, start, end, b"mdia")
    handler_start, handler_end = _mp4_child(movie, media_start, media_end, b"hdlr")
    # The handler type follows version, flags and a pre-defined field.
    handler_type = movie[handler_start + 8 : handler_start + 12]
    return handler_end - handler_start >= 12 and handler_type == b"vide"


def _mp4_sample_entry_sizes(
    movie: bytes, track_start: int, track_end: int
) -> list[tuple[int, int]]:
    """The (width, height) of each sample description of the track whose payload is
    ``movie[track_start:track_end]``."""
    start, end = track_start, track_end
    for kind in _MP4_TRACK_PATH:
        start, end = _mp4_child(movie, start, end, kind)

    # Sample descriptions: version, flags and an entry count, then one box per entry.
    sizes = []
    for _, entry_start, entry_end in _mp4_boxes(movie, start + 8, end):
        offset = entry_start + _MP4_SAMPLE_ENTRY_SIZE_OFFSET
        if offset + 4 <= entry_end:
            sizes.append(struct.unpack_from(">HH", movie, offset))
    return sizes


def _check_duration(duration_s: float, limits: Limits) -> None:
    if duration_s > limits.max_duration_s:
        raise errors.VideoTooLong(
            f"The video lasts {duration_s:.1f} s; this service accepts at most "
            f"{limits.max_duration_s:g} s.",
            duration_s=round(duration_s, 3),
            max_duration_s=limits.max_duration_s,
        )


def _count_frames(capture: cv2.VideoCapture, header: _Header, limits: Limits) -> int:
    """The number of frames in the clip, counted from the packets of ``capture``,
    which must not have read a frame yet (the count leaves it at the end).

    Headers are often wrong or silent (streamed WebM and Matroska have no count,
    estimated counts drift, truncated MP4s promise frames that are gone), while
    reading packets without decoding them costs a few milliseconds (2.5 ms for the
    300 packets of a 10 s 1080p clip). The count stops as soon as the clip is known
    to be too long.
    """
    # An MP4's index also promises a count, but a promise the file does not keep (a
    # truncated upload) would cost a second decoding pass, while counting costs
    # 2.5 ms at 1080p and 60 ms for the 900 packets of a 30 s 2160p clip.
    # Without a frame rate the duration is unknown; counting still stops at what the
    # fastest plausible rate would fit in the limit.
    fps = header.fps or _MAX_PLAUSIBLE_FPS
    frame_cap = math.floor(limits.max_duration_s * fps)

    undecoded = bool(capture.set(cv2.CAP_PROP_FORMAT, -1))
    if not undecoded:
        logger.debug("backend cannot read packets undecoded; counting by decoding")
    count = 0
    while count <= frame_cap and capture.grab():
        count += 1

    if count > frame_cap:
        _check_duration(count / fps, limits)
    if header.frame_count is not None and count != header.frame_count:
        logger.info("container promised %d frames, found %d", header.frame_count, count)
    return count


def _decoder_threads(header: _Header) -> int:
    """How many threads FFmpeg may decode with: one for frames above 1080p, else
    FFmpeg's default (0, one per CPU)."""
    if header.width * header.height > _MAX_THREADED_PIXELS:
        return 1
    return 0


def _decode_evenly(
    path: Path,
    frame_count: int,
    max_frames: int,
    convert: Callable[[np.ndarray], Frame],
    threads: int,
) -> tuple[list[Frame], list[int], int]:
    """Decode up to ``max_frames`` frames spread evenly over ``frame_count``.

    Returns the converted frames, their indices and the clip's frame count. When the
    stream ends early (a truncated file) and too few frames were kept, the frames that
    did decode are sampled again, once.
    """
    indices = sample_indices(frame_count, max_frames)
    frames, kept, reached = _decode_indices(path, indices, convert, threads)
    if reached <= indices[-1]:
        decoded = reached
        logger.info("only %d of %d frames could be decoded", decoded, frame_count)
        frame_count = decoded
        if decoded > 0 and len(frames) < min(decoded, max_frames):
            frames.clear()
            indices = sample_indices(decoded, max_frames)
            frames, kept, _ = _decode_indices(path, indices, convert, threads)

    if not frames:
        raise errors.NoFrames()
    return frames, kept, frame_count


def _decode_indices(
    path: Path,
    indices: np.ndarray,
    convert: Callable[[np.ndarray], Frame],
    threads: int,
) -> tuple[list[Frame], list[int], int]:
    """Walk the stream once up to the last wanted index, converting only the wanted
    frames. Seeking is not used: for inter-coded video it decodes from the previous
    key frame on every jump, which measured ten times slower than walking.

    Returns the frames, their indices and how many frames were reached (fewer than
    ``indices[-1] + 1`` when the stream ended early).
    """
    wanted = set(indices.tolist())
    last = int(indices[-1]) if len(indices) else -1
    frames: list[Frame] = []
    kept: list[int] = []

    # One full-size buffer, reused for every kept frame: a fresh 25 MB array per 4K
    # frame fragments the heap and raised peak memory by a fifth in measurements.
    # TODO: a kept frame still exists twice at full size in BGR (OpenCV's converted
    # frame and this copy of it, 48 MB at 2160p) beside the decoder's three frames
    # (36 MB), so a 2160p clip peaks 65 MB above a 720p one. That is OpenCV's own
    # floor: decoding through it with nothing kept grows as much (measured by
    # benchmarks/video_intake.py). It cannot shrink while converting, opens the
    # decoder without FFmpeg options (OPENCV_FFMPEG_CAPTURE_OPTIONS reaches only the
    # demuxer, and its "avdiscard" key drops whole frames), and with
    # CAP_PROP_CONVERT_RGB off hands over only the luma plane of YUV video. Shrinking
    # inside FFmpeg would need another runtime dependency.
    buffer: np.ndarray | None = None
    position = 0
    with _capture(path, threads=threads) as capture:
        while position <= last and capture.grab():
            if position in wanted:
                ok, buffer = capture.retrieve(buffer)
                if ok and buffer is not None:
                    frames.append(convert(buffer))
                    kept.append(position)
            position += 1
    return frames, kept, position


def _frame_converter(
    header: _Header, max_side: int | None
) -> Callable[[np.ndarray], Frame]:
    """A function turning one decoded frame into what the next stage wants: shrunk to
    ``max_side``, upright and RGB, converting the smallest image possible. The result
    never shares memory with the decoded frame, whose buffer is reused."""
    turn = None if header.rotated_by_backend else _ROTATE_CODES.get(header.rotation)

    def convert(image: np.ndarray) -> Frame:
        if max_side is not None:
            image = _shrink(image, max_side)
        if turn is not None:
            image = cv2.rotate(image, turn)
        return _to_rgb(image)

    return convert


_ROTATE_CODES: Final = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # INTER_AREA averages every source pixel. INTER_LINEAR is 1.5 ms faster per
    # 1080p frame but at 3:1 it reads one pixel in nine: on the shared 1080p clips it
    # moved hand landmarks by up to 0.09 of the frame (90th percentile) and changed
    # a label.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _to_rgb(image: np.ndarray) -> Frame:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def _capture(path: Path, *, threads: int = 0) -> Iterator[cv2.VideoCapture]:
    """An open FFmpeg capture of ``path`` decoding on ``threads`` threads (0: FFmpeg's
    default), released on exit.

    Raises:
        errors.NotAVideo: FFmpeg cannot open the file as a video.
    """
    parameters = [cv2.CAP_PROP_N_THREADS, threads]
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, parameters)
    try:
        if not capture.isOpened():
            raise errors.NotAVideo()
        # Sideways frames are turned upright after they are shrunk (see
        # _frame_converter): the backend would turn each kept frame at full size, one
        # more full-size copy, which raised a sideways 2160p clip's peak by 70 MB.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        yield capture
    finally:
        capture.release()


__all__ = [
    "Clip",
    "ClipInfo",
    "Limits",
    "read_clip",
    "sample_indices",
    "video_file",
]
