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

Clips are read with FFmpeg through PyAV rather than OpenCV's capture: OpenCV hands
each frame over as a full-size BGR image (two copies of it, 48 MB at 2160p), cannot
shrink while converting and cannot tell its decoder to skip frames; PyAV can do all
three (see :func:`_decode_indices` and :func:`_convert`). PyAV leaves FFmpeg's console
logging off, so a broken upload prints nothing; failures are reported as errors from
:mod:`sign2text_core.errors` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import av
import cv2
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType

from sign2text_core import errors
from sign2text_core.limits import Limits

logger = logging.getLogger(__name__)

# FFmpeg allocates what a file's header declares before reading it: a 97 KB AVI whose
# INFO chunk claimed 1.8 GB had it zero 1.8 GB of memory. So the largest block it may
# allocate at once is capped at what a clip within the limits can need (see
# _allocation_cap; 256 MiB under the default limits); a larger request fails inside
# FFmpeg, which then treats the file as damaged.
_MIN_ALLOCATION_CAP: Final = 256 * 1024 * 1024


def _find_av_max_alloc() -> list[Callable[[int], None]]:
    """FFmpeg's ``av_max_alloc`` in each libavutil this process loaded (PyAV's; the
    one bundled with OpenCV too), which PyAV does not expose. Empty where none is
    found: they are looked up in Linux's ``/proc/self/maps``."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            fields = (line.split(maxsplit=5) for line in maps)
            paths = {f[5].strip() for f in fields if len(f) == 6}
    except OSError:
        return []
    setters: list[Callable[[int], None]] = []
    for path in sorted(p for p in paths if Path(p).name.startswith("libavutil")):
        try:
            av_max_alloc = ctypes.CDLL(path).av_max_alloc
        except (OSError, AttributeError):
            continue
        av_max_alloc.argtypes = [ctypes.c_size_t]
        av_max_alloc.restype = None
        setters.append(av_max_alloc)
    return setters


_AV_MAX_ALLOC: Final = _find_av_max_alloc()
if not _AV_MAX_ALLOC:
    logger.warning("FFmpeg's allocations are not capped: libavutil was not found")


def _cap_ffmpeg_allocations(limits: Limits) -> None:
    """Cap FFmpeg's single allocations for clips within ``limits`` (process-wide)."""
    for av_max_alloc in _AV_MAX_ALLOC:
        av_max_alloc(_allocation_cap(limits))


def _allocation_cap(limits: Limits) -> int:
    """The largest single block a clip within ``limits`` can need: a frame of the
    largest size at 8 bytes a pixel (16-bit RGBA), or a packet as large as the
    whole upload, and never less than 256 MiB."""
    return max(_MIN_ALLOCATION_CAP, 8 * _max_pixels(limits), 2 * limits.max_bytes)


VideoSource = bytes | bytearray | memoryview | str | os.PathLike[str]
"""A clip as the bytes of an upload or the path of a file."""

Frame = np.ndarray
"""One RGB uint8 image, height x width x 3."""

# Containers sometimes store nonsense (negative or 2**63) for a count or a rate; beyond
# these bounds a header value is treated as missing.
_MAX_PLAUSIBLE_FRAMES: Final = 2**31
_MAX_PLAUSIBLE_FPS: Final = 1000.0

# Above this many pixels a frame is decoded on one thread. FFmpeg's frame threading
# keeps a frame in flight per thread, so at 2160p each extra thread costs a 12 MB frame
# or more of peak memory; at 1080p and below frames are small and the threads are
# worth their speed.
_MAX_THREADED_PIXELS: Final = 1920 * 1080

# Codecs FFmpeg also uses for single pictures: a "clip" of one such frame is a photo
# (a PNG or JPEG renamed .mp4, a one-frame GIF), not a signed word.
_STILL_IMAGE_CODECS: Final = frozenset(
    {"png", "apng", "mjpeg", "jpeg2000", "jpegls", "jpegxl", "gif", "webp", "bmp"}
    | {"tiff", "qoi"}
)


@dataclass(frozen=True)
class ClipInfo:
    """What is known about a clip.

    ``width`` and ``height`` are those of the upright frames; ``rotation`` is the
    clockwise turn in degrees (0, 90, 180 or 270) applied to the stored frames to make
    them upright, after flipping them left to right when ``mirrored`` (the container
    said to show them mirrored). ``frame_count`` is the number of frames the clip
    holds as far as it could be read (fewer than the container promised when the
    file is truncated).
    """

    frame_count: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    rotation: int
    mirrored: bool
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

    _cap_ffmpeg_allocations(active_limits)
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
    """Facts read from the container when the clip is opened, before decoding.
    ``width`` and ``height`` are those of the frames as stored."""

    frame_count: int | None
    fps: float | None
    width: int
    height: int
    codec: str
    duration_s: float | None = None
    """The stream's duration as the container states it (after any edit list)."""


@dataclass(frozen=True)
class _Orientation:
    """How stored frames are shown: flipped left to right first when ``mirrored``,
    then turned clockwise by ``turn`` degrees (0, 90, 180 or 270)."""

    turn: int = 0
    mirrored: bool = False


_AS_STORED: Final = _Orientation()


@dataclass(frozen=True)
class _Timeline:
    """The clip's frames as counted from its packets, without decoding.

    ``positions`` maps each packet's timestamp to the position of its frame in the
    clip (packets come in decoding order, frames leave the decoder in presentation
    order); it is None when the timestamps are missing or repeated, and then frames
    are numbered in the order they are decoded.
    """

    frame_count: int
    positions: dict[int, int] | None
    duration_s: float | None = None
    """From the first frame's timestamp to the end of the last, when known."""


@dataclass(frozen=True)
class _Walk:
    """What every walk through one clip shares."""

    path: Path
    header: _Header
    timeline: _Timeline
    max_frames: int
    max_side: int | None
    limits: Limits


@dataclass(frozen=True)
class _Decoded:
    frames: list[Frame]
    kept: list[int]
    frame_count: int
    orientation: _Orientation
    first: int | None
    """The position of the first frame that left the decoder."""


def _read_file(
    path: Path, size_bytes: int, max_frames: int, max_side: int | None, limits: Limits
) -> Clip:
    started = time.perf_counter()
    try:
        header, timeline = _probe(path, limits)
        if timeline.frame_count == 0:
            raise errors.NoFrames()
        if timeline.frame_count == 1 and header.codec in _STILL_IMAGE_CODECS:
            raise errors.NotAVideo(
                f"The upload is a still image ({header.codec}), not a video.",
                codec=header.codec,
            )
        walk = _Walk(path, header, timeline, max_frames, max_side, limits)
        decoded = _decode_evenly(walk)
    except av.FFmpegError as exc:
        raise errors.NotAVideo(f"FFmpeg could not read the video: {exc}") from exc

    fps = header.fps or 0.0
    duration_s = decoded.frame_count / fps if fps else 0.0
    if timeline.duration_s and decoded.frame_count == timeline.frame_count:
        # The timestamps' span is right for a clip of variable rate too.
        duration_s = timeline.duration_s
    width, height = header.width, header.height
    if decoded.orientation.turn in (90, 270):
        width, height = height, width
    info = ClipInfo(
        frame_count=decoded.frame_count,
        fps=fps,
        duration_s=round(duration_s, 3),
        width=width,
        height=height,
        codec=header.codec,
        rotation=decoded.orientation.turn,
        mirrored=decoded.orientation.mirrored,
        size_bytes=size_bytes,
    )
    logger.debug(
        "clip read: %s, kept %d frames in %.0f ms",
        info.to_dict(),
        len(decoded.frames),
        (time.perf_counter() - started) * 1000,
    )
    kept = np.asarray(decoded.kept, dtype=np.int64)
    return Clip(info=info, frames=decoded.frames, frame_index=kept)


def _probe(path: Path, limits: Limits) -> tuple[_Header, _Timeline]:
    """Open the clip once to read its header, refuse it when the header alone breaks
    a limit, and count its frames."""
    # FFmpeg's stream probing inside the open decodes several frames of an H.264
    # stream at full size (refusing an 8192x8192 clip peaked at 206 MB), so the frame
    # size of an MP4 or QuickTime file is judged from its own boxes first.
    # Matroska, WebM and AVI are judged after FFmpeg's probing, which the pixel cap
    # of _open_video bounds (as it bounds an MP4 whose boxes lie about the size).
    for width, height in _mp4_frame_sizes(path):
        _check_frame_size(width, height, limits)

    with _open_video(path, limits) as (container, stream):
        header = _read_header(stream)
        _check_header(header, limits)
        timeline = _count_frames(container, stream, header, limits)
    return header, timeline


def _check_header(header: _Header, limits: Limits) -> None:
    _check_frame_size(header.width, header.height, limits)
    # A container's frame count may include frames its edit list cuts (a clip
    # trimmed without re-encoding), so its stated duration goes first.
    if header.duration_s is not None:
        _check_duration(header.duration_s, limits)
    elif header.frame_count is not None and header.fps is not None:
        _check_duration(header.frame_count / header.fps, limits)


def _read_header(stream: av.video.stream.VideoStream) -> _Header:
    context = stream.codec_context
    if context.width < 1 or context.height < 1:
        raise errors.NotAVideo("The video's frames have no size.")
    # The average rate (frames over duration) is what a clip of variable rate, as
    # phones record, really holds; FFmpeg's guess from the container and codec
    # (ffprobe's r_frame_rate) took the 100 fps timestamp grid of such a clip for its
    # rate. A stream of no known duration (an H.264 elementary stream) has no real
    # average (FFmpeg assumes 25 fps), and there the codec's own timing is better.
    if stream.duration:
        rate = stream.average_rate or stream.guessed_rate
    else:
        rate = stream.guessed_rate or stream.average_rate
    return _Header(
        frame_count=_plausible_count(stream.frames),
        fps=_plausible_fps(float(rate) if rate else math.nan),
        width=context.width,
        height=context.height,
        codec=context.codec.canonical_name,
        duration_s=_stream_duration(stream),
    )


def _stream_duration(stream: av.video.stream.VideoStream) -> float | None:
    if not stream.duration or not stream.time_base or stream.duration < 0:
        return None
    duration_s = float(stream.duration * stream.time_base)
    return duration_s if math.isfinite(duration_s) else None


def _plausible_count(value: float) -> int | None:
    if not math.isfinite(value) or not 1 <= value < _MAX_PLAUSIBLE_FRAMES:
        return None
    return round(value)


def _plausible_fps(value: float) -> float | None:
    if not math.isfinite(value) or not 0 < value <= _MAX_PLAUSIBLE_FPS:
        return None
    return float(value)


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


def _too_long(duration_s: float, limits: Limits) -> bool:
    """Whether ``duration_s`` breaks the limit, to the millisecond: Matroska's
    timestamps are in milliseconds, and float sums must not push a clip exactly as
    long as the limit past it."""
    return round(duration_s, 3) > limits.max_duration_s


def _check_duration(duration_s: float, limits: Limits) -> None:
    if _too_long(duration_s, limits):
        raise errors.VideoTooLong(
            f"The video lasts {duration_s:.1f} s; this service accepts at most "
            f"{limits.max_duration_s:g} s.",
            duration_s=round(duration_s, 3),
            max_duration_s=limits.max_duration_s,
        )


def _count_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    header: _Header,
    limits: Limits,
) -> _Timeline:
    """The clip's frames, counted from the packets of ``stream`` without decoding
    them (10 to 20 ms for the 300 packets of a 10 s 1080p clip, opening included).

    Headers are often wrong or silent (streamed WebM and Matroska have no count,
    estimated counts drift, truncated MP4s promise frames that are gone), so the
    packets are always counted. The count stops as soon as the clip is known to be
    too long, by its frames at its frame rate or by the span of its timestamps (a
    clip of variable rate may hold few frames over a long time); without a frame
    rate or timestamps the duration is unknown, and counting stops at what the
    fastest plausible rate would fit in the limit.
    """
    fps = header.fps or _MAX_PLAUSIBLE_FPS
    frame_cap = math.floor(limits.max_duration_s * fps)
    time_base = float(stream.time_base) if stream.time_base else 0.0
    frame_s = 1 / header.fps if header.fps else 0.0

    stamps: list[int] | None = []
    first = last = 0
    count = 0
    span_s = 0.0
    try:
        for packet in container.demux(stream):
            # The demuxer ends with an empty packet; packets flagged for discarding
            # (cut by an edit list) never leave the decoder as frames.
            if packet.size == 0 or packet.is_discard:
                continue
            count += 1
            if packet.pts is None:
                stamps = None
            elif stamps is not None:
                if not stamps:
                    first = last = packet.pts
                first, last = min(first, packet.pts), max(last, packet.pts)
                stamps.append(packet.pts)
                span_s = (last - first) * time_base + frame_s
            if count > frame_cap or _too_long(span_s, limits):
                break
    except av.FFmpegError as exc:  # a damaged or truncated file ends here
        logger.info("packets stop after %d: %s", count, exc)

    if count > frame_cap:
        _check_duration(count / fps, limits)
    if stamps is not None:
        _check_duration(span_s, limits)
    if header.frame_count is not None and count != header.frame_count:
        logger.info("container promised %d frames, found %d", header.frame_count, count)

    return _Timeline(
        frame_count=count,
        positions=_positions(stamps, reorders=bool(stream.codec_context.has_b_frames)),
        duration_s=span_s if stamps else None,
    )


def _positions(stamps: list[int] | None, *, reorders: bool) -> dict[int, int] | None:
    """Each timestamp's position among the frames, or None when the timestamps
    cannot say it: some are missing or repeated, or they merely count the packets
    in decoding order while the codec reorders frames (AVI stores H.264 so)."""
    if stamps is None or len(set(stamps)) != len(stamps):
        return None
    ordered = sorted(stamps)
    if reorders and len(stamps) > 2 and stamps == ordered:
        return None
    return {stamp: index for index, stamp in enumerate(ordered)}


def _decoder_threads(header: _Header) -> int:
    """How many threads FFmpeg may decode with: one for frames above 1080p, else
    FFmpeg's default (0, one per CPU)."""
    if header.width * header.height > _MAX_THREADED_PIXELS:
        return 1
    return 0


class _TimestampsOutOfOrder(Exception):
    """The decoder let frames out in an order their timestamps contradict."""


def _decode_evenly(walk: _Walk) -> _Decoded:
    """Decode up to ``max_frames`` frames spread evenly over the clip.

    When the stream ends early (a truncated file) and too few frames were kept, the
    frames that did decode are sampled again, once. When the timestamps turn out not
    to give the frames' order, the clip is walked again with frames numbered as they
    leave the decoder.
    """
    try:
        return _sample(walk)
    except _TimestampsOutOfOrder:
        logger.info("timestamps out of presentation order: frames numbered as decoded")
        unordered = replace(walk.timeline, positions=None)
        return _sample(replace(walk, timeline=unordered))


def _sample(walk: _Walk) -> _Decoded:
    frame_count, max_frames = walk.timeline.frame_count, walk.max_frames
    indices = sample_indices(frame_count, max_frames)
    decoded = _decode_indices(walk, indices)
    # The walk stops after the last wanted frame: past it, the count covers the rest.
    end = frame_count if decoded.frame_count > indices[-1] else decoded.frame_count
    if end < frame_count:
        logger.info("only %d of %d frames could be decoded", end, frame_count)
    start = decoded.first or 0
    ends_lost = decoded.first is not None and (start > 0 or end < frame_count)
    if ends_lost and len(decoded.frames) < min(end - start, max_frames):
        # Wanted frames never decoded: past where a truncated file ends, or before
        # the first key frame of a clip cut between two. Spread them again over the
        # frames that did.
        logger.info("frames %d to %d decode; sampling those", start, end - 1)
        indices = start + sample_indices(end - start, max_frames)
        decoded = _decode_indices(walk, indices)
    decoded = replace(decoded, frame_count=end)

    if not decoded.frames:
        raise errors.NoFrames()
    return decoded


def _decode_indices(walk: _Walk, indices: np.ndarray) -> _Decoded:
    """Walk the stream once, up to the last wanted frame, converting only the wanted
    frames. Seeking is not used: for inter-coded video it decodes from the previous
    key frame on every jump, which measured ten times slower than walking.

    Frames nothing else is built from (most B-frames of H.264 and HEVC, say) are not
    decoded at all unless wanted: the decoder is told to skip non-reference frames
    for every packet whose frame is not wanted, which needs the packets' timestamps
    to know which frame a packet holds. Every other frame passes through the decoder
    (later frames are built from it) in YUV and is never converted or copied.

    Every kept frame has the size the header gives, shrunk to ``walk.max_side``,
    even when the stream changes its frame size midway (no frame of more pixels than
    the limits allow leaves the decoder; one outside the frame-size box is refused).

    Returns ``frame_count`` as the number of frames reached: fewer than
    ``indices[-1] + 1`` when the stream ended early.

    Raises:
        _TimestampsOutOfOrder: with ``walk.timeline.positions``, a frame left the
            decoder after one its timestamp places later.
        errors.FrameTooLarge: a frame is larger than the limits allow.
    """
    wanted = set(indices.tolist())
    last = int(indices[-1])
    header, limits = walk.header, walk.limits
    positions = walk.timeline.positions
    size = _shrunk_size(header.width, header.height, walk.max_side)
    frames: dict[int, Frame] = {}
    orientation = _AS_STORED
    first: int | None = None
    reached = 0

    with _open_video(walk.path, limits) as (container, stream):
        context = stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = _decoder_threads(header)
        for packet in _packets_until_damaged(container, stream):
            if positions is not None and packet.pts is not None:
                skip = positions.get(packet.pts, -1) not in wanted
                context.skip_frame = "NONREF" if skip else "DEFAULT"
            for frame in _frames_until_damaged(context, packet):
                if positions is not None and frame.pts in positions:
                    position = positions[frame.pts]
                    if position < reached:
                        raise _TimestampsOutOfOrder()
                else:
                    position = reached
                reached = position + 1
                first = position if first is None else first
                if position in wanted and position not in frames:
                    _check_frame_size(frame.width, frame.height, limits)
                    if not frames:
                        orientation = _orientation(frame)
                    frames[position] = _convert(frame, orientation, size)
            # Frames leave the decoder in order: none wanted comes after the last.
            if len(frames) == len(wanted) or reached > last:
                break

    kept = sorted(frames)
    return _Decoded(
        frames=[frames[position] for position in kept],
        kept=kept,
        frame_count=reached,
        orientation=orientation,
        first=first,
    )


def _packets_until_damaged(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.Packet[av.video.stream.VideoStream]]:
    """The stream's packets, ending with the empty ones that flush the decoder, or
    where the file stops making sense (a truncated upload)."""
    try:
        yield from container.demux(stream)
    except av.FFmpegError as exc:
        logger.info("the stream breaks off: %s", exc)


def _frames_until_damaged(
    context: av.video.codeccontext.VideoCodecContext,
    packet: av.Packet[av.video.stream.VideoStream],
) -> list[av.VideoFrame]:
    """The frames the decoder lets out after taking ``packet``; none when the
    packet is damaged (the decoder carries on with the next, as ffmpeg does)."""
    try:
        return context.decode(packet)
    except av.FFmpegError as exc:
        logger.info("a packet could not be decoded: %s", exc)
        return []


def _orientation(frame: av.VideoFrame) -> _Orientation:
    """How the frame is to be shown, from the display matrix its container gave it
    (phones record sideways and say so there). A matrix of no area says nothing
    and is ignored, as ffmpeg ignores it."""
    # A container of its own, not ``frame.side_data``: PyAV keeps that one on the
    # frame, and the reference cycle kept the frame (12 MB at 2160p) alive until
    # the next garbage collection.
    side_data = SideDataContainer(frame)  # type: ignore[call-arg]  # stub lacks it
    matrix = side_data.get(SideDataType.DISPLAYMATRIX)
    if matrix is None:
        return _AS_STORED
    raw = bytes(matrix)
    if len(raw) != 36:
        return _AS_STORED
    # Nine native int32s, row by row; the 16.16 fixed-point 2x2 block at the top
    # left maps a stored pixel (x, y) to (a*x + c*y, b*x + d*y) on the display.
    a, b, _, c, d, *_ = struct.unpack("=9i", raw)
    area = a * d - b * c
    if area == 0:
        return _AS_STORED
    mirrored = area < 0
    if mirrored:  # what is left once the flip of x is taken out first
        a, b = -a, -b
    # Only quarter turns make sense for frames.
    turn = round(math.degrees(math.atan2(b, a)) / 90) * 90 % 360
    return _Orientation(turn=turn, mirrored=mirrored)


def _convert(
    frame: av.VideoFrame, orientation: _Orientation, size: tuple[int, int]
) -> Frame:
    """One decoded frame as the next stage wants it: scaled to ``size`` (width,
    height, as stored), RGB and upright, in memory of its own.

    FFmpeg's scaler shrinks and converts in one pass straight from the decoder's
    YUV planes, so no full-size RGB copy of the frame is ever made; the small result
    is then turned upright.
    """
    width, height = size
    # Area averaging reads every source pixel, as shrinking by 3:1 needs: a filter
    # that samples (OpenCV's INTER_LINEAR reads one pixel in nine at 3:1) moved hand
    # landmarks by up to 0.09 of the frame on the shared 1080p clips.
    image: np.ndarray = frame.to_ndarray(
        width=width, height=height, format="rgb24", interpolation="AREA"
    )
    if orientation.mirrored:
        image = cv2.flip(image, 1)
    turn = _ROTATE_CODES.get(orientation.turn)
    if turn is not None:
        image = cv2.rotate(image, turn)
    return np.ascontiguousarray(image)


_ROTATE_CODES: Final = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def _max_pixels(limits: Limits) -> int:
    """What FFmpeg may count for a frame within ``limits``, in either orientation:
    its decoders count the width padded to 64 pixels and the height padded to whole
    macroblocks, so both sides get room beyond the limit. The frame-size limit
    itself is checked exactly, from the header and on every frame kept."""
    long_side = _padded(max(limits.max_width, limits.max_height))
    short_side = _padded(min(limits.max_width, limits.max_height))
    return long_side * short_side


def _padded(side: int) -> int:
    return (side + 63) // 64 * 64 + 64


def _shrunk_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size ``width`` x ``height`` takes when shrunk so its longer side is at
    most ``max_side`` (never enlarged)."""
    if max_side is None:
        return width, height
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


@contextlib.contextmanager
def _open_video(
    path: Path, limits: Limits
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The clip opened by FFmpeg, with its video stream, closed on exit.

    FFmpeg's decoders refuse any picture of more pixels than the frame-size limit
    allows (its ``max_pixels`` option), both while FFmpeg probes the file here and
    while the stream is decoded later: a header that lies about the frame size, or a
    stream that switches to larger frames midway, cannot make the decoder allocate
    beyond the limit.

    Raises:
        errors.NotAVideo: FFmpeg cannot open the file, it holds no video, or FFmpeg
            has no decoder for its video.
    """
    pixel_cap = {"max_pixels": str(_max_pixels(limits))}
    try:
        # Tags are text the uploader chose: bytes that are not UTF-8 are replaced
        # rather than failing the open.
        container = av.open(
            str(path), mode="r", options=pixel_cap, metadata_errors="replace"
        )
    except av.FFmpegError as exc:
        raise errors.NotAVideo() from exc
    try:
        stream = container.streams.best("video")
        if not isinstance(stream, av.video.stream.VideoStream):
            raise errors.NotAVideo("The file holds no video track.")
        if stream.codec_context is None:
            raise errors.NotAVideo(
                "The video is in a codec this service cannot decode."
            )
        stream.codec_context.options = pixel_cap
        yield container, stream
    finally:
        container.close()


__all__ = [
    "Clip",
    "ClipInfo",
    "Limits",
    "read_clip",
    "sample_indices",
    "video_file",
]
