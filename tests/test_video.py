"""Video intake on real files made by ffmpeg: formats, sampling, rotation, limits and
every error the stage raises."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from sign2text_core import errors
from sign2text_core.video import (
    Clip,
    ClipInfo,
    Limits,
    read_clip,
    sample_indices,
    video_file,
)
from tests import media


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def numbered_mp4(clips: Path) -> Path:
    """60 numbered 320x240 frames at 30 fps, H.264 in MP4."""
    return media.make_numbered_clip(clips / "numbered.mp4")


@pytest.fixture(scope="module")
def faststart_mp4(clips: Path) -> Path:
    """A longer numbered clip (150 frames, a key frame every 10) with its index first:
    truncated copies of it still open and promise all 150 frames."""
    source = media.make_numbered_clip(
        clips / "long.mp4",
        frames=150,
        video_format=media.VideoFormat(
            "h264-gop10",
            ".mp4",
            "h264",
            ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10"),
        ),
    )
    return media.faststart_copy(source, clips / "long-faststart.mp4")


@pytest.fixture()
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the temporary-file module at an empty folder of this test."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def numbers(clip: Clip) -> list[int]:
    return [media.frame_number(frame) for frame in clip.frames]


def assert_rgb_frames(clip: Clip) -> None:
    for frame in clip.frames:
        assert frame.dtype == np.uint8
        assert frame.ndim == 3 and frame.shape[2] == 3
        assert frame.flags.c_contiguous


@pytest.mark.parametrize("name", sorted(media.FORMATS))
def test_every_format_gives_the_evenly_sampled_frames(clips: Path, name: str) -> None:
    video_format = media.FORMATS[name]
    fps = 10 if name == "gif" else 30
    path = clips / f"format-{name}{video_format.suffix}"
    media.make_numbered_clip(path, frames=60, fps=fps, video_format=name)

    clip = read_clip(path, max_frames=8, max_side=160)

    expected = [0, 8, 17, 25, 34, 42, 51, 59]
    assert clip.frame_index.tolist() == expected
    assert numbers(clip) == expected
    assert clip.info.codec == video_format.codec
    assert clip.info.frame_count == 60
    assert clip.info.fps == pytest.approx(fps)
    assert clip.info.duration_s == pytest.approx(60 / fps)
    assert (clip.info.width, clip.info.height) == (320, 240)
    assert clip.info.rotation == 0
    assert clip.info.size_bytes == path.stat().st_size
    assert_rgb_frames(clip)
    assert all(frame.shape == (120, 160, 3) for frame in clip.frames)


def test_frames_skipped_by_the_decoder_leave_the_kept_ones_exact(clips: Path) -> None:
    # B-frames that nothing refers to are not decoded unless kept; every kept frame
    # must still be the one ffmpeg itself decodes at that position.
    path = media.make_clip(
        clips / "b-frames.mp4", seconds=2, extra=("-bf", "3", "-g", "60")
    )
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        referenced = sum(1 for _ in container.decode(stream))
    assert referenced < 60  # the clip has frames the decoder may skip

    clip = read_clip(path, max_frames=7)
    reference = media.decode_with_ffmpeg(path, (320, 240))

    assert clip.frame_index.tolist() == sample_indices(60, 7).tolist()
    for frame, index in zip(clip.frames, clip.frame_index, strict=True):
        difference = np.abs(frame.astype(int) - reference[index].astype(int))
        assert difference.max() <= 1, index


@pytest.mark.parametrize("max_frames", [7, 64])
def test_avi_whose_timestamps_count_packets_gives_the_frames_in_order(
    clips: Path, max_frames: int
) -> None:
    # AVI stamps H.264 packets in decoding order while B-frames leave the decoder in
    # presentation order, so the stamps cannot say which frame a packet holds.
    b_frames = media.VideoFormat(
        "h264-avi",
        ".avi",
        "h264",
        ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "3"),
    )
    path = media.make_numbered_clip(
        clips / "b-frames.avi", frames=90, video_format=b_frames
    )

    clip = read_clip(path, max_frames=max_frames)

    expected = sample_indices(90, max_frames).tolist()
    assert clip.frame_index.tolist() == expected
    assert numbers(clip) == expected
    assert clip.info.frame_count == 90


def test_elementary_stream_without_timestamps_is_numbered_in_decoding_order(
    clips: Path,
) -> None:
    raw = media.VideoFormat(
        "h264-raw", ".h264", "h264", media.FORMATS["h264-mp4"].options
    )
    path = media.make_numbered_clip(
        clips / "elementary.h264", video_format=raw, muxer="h264"
    )

    clip = read_clip(path, max_frames=4)

    assert numbers(clip) == [0, 20, 39, 59]
    assert clip.frame_index.tolist() == [0, 20, 39, 59]
    assert clip.info.frame_count == 60
    assert clip.info.fps == pytest.approx(30)


def test_frames_are_rgb_with_red_first(numbered_mp4: Path) -> None:
    clip = read_clip(numbered_mp4, max_frames=1)

    red, green, blue = clip.frames[0][2, 2].astype(int)
    assert red > 200 and green < 50 and blue < 50


def test_short_clip_keeps_every_frame(numbered_mp4: Path) -> None:
    clip = read_clip(numbered_mp4, max_frames=64)

    assert clip.frame_index.tolist() == list(range(60))
    assert numbers(clip) == list(range(60))


def test_max_side_shrinks_the_long_side_and_never_enlarges(numbered_mp4: Path) -> None:
    shrunk = read_clip(numbered_mp4, max_frames=2, max_side=100)
    untouched = read_clip(numbered_mp4, max_frames=2, max_side=1000)
    full = read_clip(numbered_mp4, max_frames=2)

    assert shrunk.frames[0].shape == (75, 100, 3)
    assert untouched.frames[0].shape == (240, 320, 3)
    assert full.frames[0].shape == (240, 320, 3)
    assert (shrunk.info.width, shrunk.info.height) == (320, 240)


def test_bytes_and_path_give_the_same_clip(numbered_mp4: Path) -> None:
    from_path = read_clip(numbered_mp4, max_frames=5)
    data = numbered_mp4.read_bytes()

    for upload in (data, bytearray(data), memoryview(data)):
        from_bytes = read_clip(upload, max_frames=5)
        assert from_bytes.info == from_path.info
        assert from_bytes.frame_index.tolist() == from_path.frame_index.tolist()
        for ours, theirs in zip(from_bytes.frames, from_path.frames, strict=True):
            assert np.array_equal(ours, theirs)


def test_clips_read_at_once_from_several_threads_do_not_mix(
    numbered_mp4: Path, clips: Path
) -> None:
    other = media.make_numbered_clip(clips / "other.webm", video_format="vp9-webm")
    uploads = [numbered_mp4.read_bytes(), other.read_bytes()] * 4

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda data: read_clip(data, max_frames=6), uploads))

    for clip, upload in zip(results, uploads, strict=True):
        assert clip.info.size_bytes == len(upload)
        assert numbers(clip) == [0, 12, 24, 35, 47, 59]


def test_clip_info_is_json_ready(numbered_mp4: Path) -> None:
    info = read_clip(numbered_mp4, max_frames=1).info

    facts = info.to_dict()

    assert set(facts) == {
        "frame_count",
        "fps",
        "duration_s",
        "width",
        "height",
        "codec",
        "rotation",
        "mirrored",
        "size_bytes",
    }
    assert ClipInfo(**facts) == info


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_clip_is_upright_exactly_once(
    clips: Path, numbered_mp4: Path, degrees: int
) -> None:
    rotated = media.rotate_clip(numbered_mp4, clips / f"rot{degrees}.mp4", degrees)
    quarter = degrees in (90, 270)
    upright_size = (240, 320) if quarter else (320, 240)

    clip = read_clip(rotated, max_frames=3)
    reference = media.decode_with_ffmpeg(rotated, upright_size)

    assert (clip.info.width, clip.info.height) == upright_size
    assert clip.info.rotation == (360 - degrees) % 360
    assert clip.frames[0].shape == (upright_size[1], upright_size[0], 3)
    for frame, index in zip(clip.frames, clip.frame_index, strict=True):
        difference = np.abs(frame.astype(int) - reference[index].astype(int))
        assert difference.mean() < 2
    # The red corner has left the top-left: the frame was turned, not left as stored.
    assert clip.frames[0][2, 2, 0] < 100


@pytest.mark.parametrize(
    ("degrees", "hflip", "vflip"),
    [(0, True, False), (0, False, True), (90, True, False), (270, False, True)],
)
def test_mirrored_clip_is_shown_as_ffmpeg_shows_it(
    clips: Path, numbered_mp4: Path, degrees: int, hflip: bool, vflip: bool
) -> None:
    name = f"mirror-{degrees}-{int(hflip)}{int(vflip)}.mp4"
    mirrored = media.rotate_clip(
        numbered_mp4, clips / name, degrees, hflip=hflip, vflip=vflip
    )
    upright_size = (240, 320) if degrees in (90, 270) else (320, 240)

    clip = read_clip(mirrored, max_frames=3)
    reference = media.decode_with_ffmpeg(mirrored, upright_size)

    assert clip.info.mirrored
    assert (clip.info.width, clip.info.height) == upright_size
    for frame, index in zip(clip.frames, clip.frame_index, strict=True):
        difference = np.abs(frame.astype(int) - reference[index].astype(int))
        assert difference.mean() < 2, index


def test_display_matrix_of_no_area_leaves_frames_as_stored(
    clips: Path, numbered_mp4: Path
) -> None:
    degenerate = media.with_display_matrix(
        numbered_mp4, clips / "matrix-zero.mp4", [0] * 9
    )

    clip = read_clip(degenerate, max_frames=2)

    assert (clip.info.rotation, clip.info.mirrored) == (0, False)
    assert clip.frames[0].shape == (240, 320, 3)
    assert clip.frames[0][2, 2].tolist() == pytest.approx(list(media.RED), abs=40)


def test_tags_that_are_not_utf8_do_not_stop_the_clip(clips: Path) -> None:
    tagged = clips / "tagged.mkv"
    media.make_clip(tagged, seconds=1, extra=("-metadata", "title=TITLE-PLACEHOLDER"))
    data = tagged.read_bytes()
    assert b"TITLE-PLACEHOLDER" in data
    broken = clips / "tag-not-utf8.mkv"
    broken.write_bytes(
        data.replace(b"TITLE-PLACEHOLDER", b"\xff\xfe\xfdLE-PLACEHOLDER")
    )

    clip = read_clip(broken, max_frames=3)

    assert clip.info.frame_count == 30


def test_video_in_a_codec_ffmpeg_cannot_decode_is_not_a_video(clips: Path) -> None:
    source = media.make_clip(clips / "known-codec.mkv", seconds=1)
    data = source.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    unknown = clips / "unknown-codec.mkv"
    unknown.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/ZZZ"))

    with pytest.raises(errors.NotAVideo) as caught:
        read_clip(unknown, max_frames=3)

    assert caught.value.status == 422


def test_streamed_matroska_without_frame_count_is_sampled_by_counting(
    clips: Path,
) -> None:
    for name, muxer in (("h264-mkv", "matroska"), ("vp9-webm", "webm")):
        path = clips / f"streamed-{name}{media.FORMATS[name].suffix}"
        media.make_numbered_clip(path, frames=90, video_format=name, muxer=muxer)

        clip = read_clip(path, max_frames=4)

        assert clip.info.frame_count == 90
        assert clip.frame_index.tolist() == [0, 30, 59, 89]
        assert numbers(clip) == [0, 30, 59, 89]
        assert clip.info.duration_s == pytest.approx(3.0)


def test_audio_track_beside_the_video_is_ignored(
    clips: Path, numbered_mp4: Path
) -> None:
    streamed = media.make_numbered_clip(
        clips / "streamed-for-audio.webm", video_format="vp9-webm", muxer="webm"
    )
    sources = (
        media.with_audio(numbered_mp4, clips / "with-audio.mp4"),
        media.with_audio(streamed, clips / "with-audio.webm", codec="libopus"),
    )

    for source in sources:
        clip = read_clip(source, max_frames=4)

        assert clip.info.frame_count == 60
        assert numbers(clip) == [0, 20, 39, 59]


def test_truncated_mp4_promising_more_frames_gives_those_that_decode(
    clips: Path, faststart_mp4: Path
) -> None:
    truncated = media.truncated_copy(faststart_mp4, clips / "cut.mp4", 0.5)

    clip = read_clip(truncated, max_frames=5)

    decodable = clip.info.frame_count
    assert 10 < decodable < 150
    expected = sample_indices(decodable, 5).tolist()
    assert clip.frame_index.tolist() == expected
    assert numbers(clip) == expected


@pytest.mark.parametrize("max_frames", [8, 64])
def test_stream_cut_between_key_frames_is_sampled_over_what_decodes(
    clips: Path, max_frames: int
) -> None:
    # A transport stream joined mid-broadcast starts with frames that refer to a key
    # frame it lacks: those never decode, and the sample spreads over the rest.
    gop = media.VideoFormat(
        "h264-ts", ".ts", "h264", ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "40")
    )
    source = media.make_numbered_clip(
        clips / "broadcast.ts", frames=120, video_format=gop
    )
    data = source.read_bytes()
    joined = clips / f"joined-late-{max_frames}.ts"
    joined.write_bytes(data[len(data) // 4 // 188 * 188 :])  # whole TS packets

    clip = read_clip(joined, max_frames=max_frames)

    index = clip.frame_index.tolist()
    assert len(clip.frames) == max_frames
    assert index[0] > 0 and index[-1] == clip.info.frame_count - 1
    # The frames kept are the ones their positions name, counted from the cut.
    offsets = {
        number - position for number, position in zip(numbers(clip), index, strict=True)
    }
    assert len(offsets) == 1


def test_truncated_mp4_without_its_index_is_not_a_video(
    clips: Path, numbered_mp4: Path
) -> None:
    truncated = media.truncated_copy(numbered_mp4, clips / "cut-noindex.mp4", 0.6)

    with pytest.raises(errors.NotAVideo):
        read_clip(truncated, max_frames=5)


def test_header_without_media_data_has_no_frames(
    clips: Path, faststart_mp4: Path
) -> None:
    empty = media.header_only_mp4(faststart_mp4, clips / "header-only.mp4")

    with pytest.raises(errors.NoFrames) as caught:
        read_clip(empty, max_frames=5)

    assert caught.value.code == "no_frames"
    assert caught.value.status == 422


def test_mp4_with_an_empty_video_track_is_not_a_video(clips: Path) -> None:
    path = media.make_empty_track_mp4(clips / "zero-frames.mp4")

    with pytest.raises(errors.NotAVideo):
        read_clip(path, max_frames=5)


def test_header_claiming_a_huge_chunk_cannot_make_ffmpeg_allocate_it(
    clips: Path,
) -> None:
    source = media.make_numbered_clip(
        clips / "tagged.avi", frames=30, video_format="mjpeg-avi"
    )
    hostile = media.with_huge_info_chunk(source, clips / "huge-info.avi")
    # A fresh interpreter, so its peak memory belongs to this file alone.
    script = (
        "import sys\n"
        "from sign2text_core import errors\n"
        "from sign2text_core.video import read_clip\n"
        "try:\n"
        "    print(read_clip(sys.argv[1], max_frames=8).info.frame_count)\n"
        "except errors.NotAVideo:\n"
        "    print('not_a_video')\n"
        "status = open('/proc/self/status').read()\n"
        "print(next(line for line in status.splitlines() if 'VmHWM' in line))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(hostile)],
        capture_output=True,
        text=True,
        check=True,
    )

    outcome, peak = result.stdout.split("\n")[:2]
    assert outcome in {"30", "not_a_video"}
    peak_mb = int(peak.split()[1]) / 1024
    assert peak_mb < 400, f"reading a {hostile.stat().st_size} byte file: {peak_mb} MB"


def test_random_bytes_are_not_a_video() -> None:
    noise = np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8)

    with pytest.raises(errors.NotAVideo) as caught:
        read_clip(noise.tobytes(), max_frames=5)

    assert caught.value.code == "not_a_video"
    assert caught.value.status == 422


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".apng", ".jp2"])
def test_still_image_renamed_mp4_is_not_a_video(clips: Path, suffix: str) -> None:
    image = media.make_still_image(clips / f"still{suffix}")
    renamed = clips / f"still-{suffix[1:]}.mp4"
    renamed.write_bytes(image.read_bytes())

    with pytest.raises(errors.NotAVideo, match="still image"):
        read_clip(renamed, max_frames=5)


def test_audio_only_file_is_not_a_video(clips: Path) -> None:
    audio = media.make_audio(clips / "tone.m4a")

    with pytest.raises(errors.NotAVideo):
        read_clip(audio, max_frames=5)
    with pytest.raises(errors.NotAVideo):
        read_clip(audio.read_bytes(), max_frames=5)


def test_empty_upload_and_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()

    for source in (b"", empty):
        with pytest.raises(errors.EmptyUpload) as caught:
            read_clip(source, max_frames=5)
        assert caught.value.code == "empty_upload"
        assert caught.value.status == 400


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_clip(tmp_path / "nowhere.mp4", max_frames=5)


def test_too_many_bytes_are_refused(numbered_mp4: Path, private_tmp: Path) -> None:
    size = numbered_mp4.stat().st_size
    limits = Limits(max_bytes=size - 1)

    for source in (numbered_mp4, numbered_mp4.read_bytes()):
        with pytest.raises(errors.VideoTooLarge) as caught:
            read_clip(source, max_frames=5, limits=limits)
        assert caught.value.code == "video_too_large"
        assert caught.value.status == 413
        assert caught.value.details == {"size_bytes": size, "max_bytes": size - 1}
    assert read_clip(numbered_mp4, max_frames=1, limits=Limits(max_bytes=size)).frames
    assert list(private_tmp.iterdir()) == []


def test_too_long_clip_is_refused(numbered_mp4: Path) -> None:
    with pytest.raises(errors.VideoTooLong) as caught:
        read_clip(numbered_mp4, max_frames=5, limits=Limits(max_duration_s=1.9))

    assert caught.value.code == "video_too_long"
    assert caught.value.status == 422
    assert caught.value.details["duration_s"] == pytest.approx(2.0)
    assert read_clip(numbered_mp4, max_frames=1, limits=Limits(max_duration_s=2.0))


@pytest.mark.parametrize(
    ("suffix", "extra"),
    [
        (".mkv", ()),  # timestamps in milliseconds
        (".ts", ()),  # in 1/90000 s
        (".mp4", ("-video_track_timescale", "90000")),  # as Android writes
        (".mp4", ("-video_track_timescale", "600")),  # as Apple writes
    ],
)
def test_clip_exactly_as_long_as_the_limit_is_accepted(
    clips: Path, suffix: str, extra: tuple[str, ...]
) -> None:
    name = f"twenty-seconds-{len(extra) and extra[1]}{suffix}"
    path = media.make_clip(clips / name, seconds=20, size=(64, 48), extra=extra)

    clip = read_clip(path, max_frames=4, limits=Limits(max_duration_s=20))

    assert clip.info.frame_count == 600
    assert clip.info.duration_s == pytest.approx(20.0, abs=0.001)


def test_clip_trimmed_without_reencoding_is_as_long_as_it_plays(
    clips: Path,
) -> None:
    # The trimmed copy keeps every frame from the key frame before the cut and an
    # edit list that skips those before it: the container holds 90 frames, 51 play.
    source = media.make_clip(clips / "untrimmed.mp4", seconds=3, size=(64, 48))
    trimmed = clips / "trimmed.mp4"
    media.run_ffmpeg(["-ss", "1.3", "-i", str(source), "-c", "copy", str(trimmed)])

    clip = read_clip(trimmed, max_frames=4, limits=Limits(max_duration_s=2))

    assert clip.info.frame_count == 51
    assert clip.info.duration_s == pytest.approx(1.7)


@pytest.mark.parametrize(
    ("size", "limit"), [((720, 1280), (1280, 720)), ((470, 640), (640, 480))]
)
def test_portrait_clip_within_a_landscape_limit_decodes(
    clips: Path, size: tuple[int, int], limit: tuple[int, int]
) -> None:
    path = media.make_clip(clips / f"portrait-{size[0]}.mp4", seconds=0.5, size=size)
    limits = Limits(max_width=limit[0], max_height=limit[1])

    clip = read_clip(path, max_frames=15, limits=limits)

    assert len(clip.frames) == 15
    assert (clip.info.width, clip.info.height) == size


def test_too_long_streamed_clip_is_refused_while_counting(clips: Path) -> None:
    path = media.make_numbered_clip(
        clips / "streamed-long.mkv",
        frames=90,
        video_format="h264-mkv",
        muxer="matroska",
    )

    with pytest.raises(errors.VideoTooLong):
        read_clip(path, max_frames=5, limits=Limits(max_duration_s=2.5))


def test_limits_are_judged_from_the_header_before_decoding(
    clips: Path, faststart_mp4: Path
) -> None:
    # No frame of this file can be decoded, so only its header can break these limits.
    empty = media.header_only_mp4(faststart_mp4, clips / "header-only-limits.mp4")

    with pytest.raises(errors.FrameTooLarge):
        read_clip(empty, max_frames=5, limits=Limits(max_width=100, max_height=100))
    with pytest.raises(errors.VideoTooLong):
        read_clip(empty, max_frames=5, limits=Limits(max_duration_s=1.0))


def test_mp4_frame_size_is_judged_from_its_boxes_before_ffmpeg_opens_it(
    clips: Path, numbered_mp4: Path
) -> None:
    # The stream inside is 320x240 and would decode; only the container's sample
    # description declares 5000x5000, so a refusal shows the boxes were read first.
    declared = media.with_declared_frame_size(
        numbered_mp4, clips / "declared-large.mp4", (5000, 5000)
    )

    with pytest.raises(errors.FrameTooLarge) as caught:
        read_clip(declared, max_frames=1, limits=Limits())

    assert (caught.value.details["width"], caught.value.details["height"]) == (
        5000,
        5000,
    )
    roomy = Limits(max_width=8192, max_height=8192)
    assert read_clip(declared, max_frames=1, limits=roomy).info.width == 320


def test_too_large_frames_are_refused_in_either_orientation(
    numbered_mp4: Path,
) -> None:
    portrait_box = Limits(max_width=240, max_height=320)
    small_box = Limits(max_width=319, max_height=319)

    assert read_clip(numbered_mp4, max_frames=1, limits=portrait_box).frames
    with pytest.raises(errors.FrameTooLarge) as caught:
        read_clip(numbered_mp4, max_frames=1, limits=small_box)

    assert caught.value.code == "frame_too_large"
    assert caught.value.status == 422
    assert caught.value.details["width"] == 320


def test_frames_growing_past_the_limit_midway_never_leave_the_decoder(
    clips: Path,
) -> None:
    # A stream may change its frame size at any key frame: the header shows only the
    # first size. Here 160x120 for a second, then 640x480 under a 320x240 limit.
    small = media.make_numbered_clip(
        clips / "switch-small.h264", frames=30, size=(160, 120), muxer="h264"
    )
    large = media.make_clip(
        clips / "switch-large.h264", seconds=0.5, size=(640, 480), extra=("-f", "h264")
    )
    switching = clips / "switch.h264"
    switching.write_bytes(small.read_bytes() + large.read_bytes())
    limits = Limits(max_width=320, max_height=240)

    clip = read_clip(switching, max_frames=64, limits=limits)

    # Only the small frames decode (the decoder drops the last few it was holding
    # back when the large ones are refused); unlimited, all 45 do.
    assert (clip.info.width, clip.info.height) == (160, 120)
    assert 24 <= clip.info.frame_count <= 30
    assert clip.frame_index.tolist() == list(range(clip.info.frame_count))
    assert numbers(clip) == clip.frame_index.tolist()
    assert all(frame.shape == (120, 160, 3) for frame in clip.frames)
    assert read_clip(switching, max_frames=64).info.frame_count == 45


def test_few_frames_over_a_long_time_are_too_long(clips: Path) -> None:
    # 60 frames: one second at 30 fps, then one a second for 29 s more.
    sparse = media.VideoFormat(
        "sparse-ts",
        ".ts",
        "h264",
        (
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-fps_mode", "passthrough"),
            *("-vf", "setpts='if(lt(N,30),N/30,1+(N-30))/TB'"),
        ),
    )
    path = media.make_numbered_clip(clips / "sparse.ts", video_format=sparse)

    with pytest.raises(errors.VideoTooLong) as caught:
        read_clip(path, max_frames=8)
    assert caught.value.details["duration_s"] > 20

    clip = read_clip(path, max_frames=8, limits=Limits(max_duration_s=60))
    assert clip.info.frame_count == 60
    assert clip.info.duration_s == pytest.approx(30, abs=0.1)


def test_default_frame_size_limit_refuses_wider_than_4096(clips: Path) -> None:
    wide = media.make_clip(
        clips / "wide.avi", seconds=0.1, size=(4112, 16), codec="mjpeg", pix_fmt=""
    )

    with pytest.raises(errors.FrameTooLarge):
        read_clip(wide, max_frames=1, limits=Limits())


@pytest.mark.parametrize("arguments", [{"max_frames": 0}, {"max_side": 0}])
def test_invalid_sampling_parameters_are_refused(
    numbered_mp4: Path, arguments: dict[str, int]
) -> None:
    request = {"max_frames": 4, **arguments}

    with pytest.raises(errors.InvalidParameter) as caught:
        read_clip(numbered_mp4, **request)

    assert caught.value.code == "invalid_parameter"


def test_limits_come_from_the_environment(
    numbered_mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN2TEXT_MAX_BYTES", "1000")
    monkeypatch.setenv("SIGN2TEXT_MAX_DURATION_S", "1.5")
    monkeypatch.setenv("SIGN2TEXT_MAX_FRAME_SIZE", "640x480")

    assert Limits.from_env() == Limits(
        max_bytes=1000, max_duration_s=1.5, max_width=640, max_height=480
    )
    with pytest.raises(errors.VideoTooLarge):
        read_clip(numbered_mp4, max_frames=1)

    monkeypatch.setenv("SIGN2TEXT_MAX_BYTES", "")
    with pytest.raises(errors.VideoTooLong):
        read_clip(numbered_mp4, max_frames=1)


def test_default_limits() -> None:
    limits = Limits.from_env({})

    assert limits == Limits()
    assert limits.max_bytes == 32 * 1024 * 1024
    assert limits.max_duration_s == 20
    assert (limits.max_width, limits.max_height) == (4096, 4096)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGN2TEXT_MAX_BYTES", "lots"),
        ("SIGN2TEXT_MAX_BYTES", "0"),
        ("SIGN2TEXT_MAX_DURATION_S", "-3"),
        ("SIGN2TEXT_MAX_DURATION_S", "inf"),
        ("SIGN2TEXT_MAX_FRAME_SIZE", "4096"),
        ("SIGN2TEXT_MAX_FRAME_SIZE", "0x100"),
    ],
)
def test_bad_limit_in_environment_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=name):
        Limits.from_env({name: value})


@pytest.mark.parametrize(
    "settings",
    [
        {"max_bytes": 0},
        {"max_duration_s": 0.0},
        {"max_duration_s": float("nan")},
        {"max_width": 0},
        {"max_height": -1},
    ],
)
def test_limits_refuse_impossible_values(settings: dict[str, float]) -> None:
    with pytest.raises(errors.ConfigurationError):
        Limits(**settings)  # type: ignore[arg-type]


def test_no_temp_file_survives_success_or_failure(
    private_tmp: Path, numbered_mp4: Path, clips: Path, faststart_mp4: Path
) -> None:
    header_only = media.header_only_mp4(faststart_mp4, clips / "header-only-tmp.mp4")
    failures = {
        b"\x00" * 4096: errors.NotAVideo,
        header_only.read_bytes(): errors.NoFrames,
    }

    assert read_clip(numbered_mp4.read_bytes(), max_frames=3).frames
    assert list(private_tmp.iterdir()) == []
    for upload, error in failures.items():
        with pytest.raises(error):
            read_clip(upload, max_frames=3)
        assert list(private_tmp.iterdir()) == []
    with pytest.raises(errors.VideoTooLong):
        read_clip(
            numbered_mp4.read_bytes(),
            max_frames=3,
            limits=Limits(max_duration_s=1.0),
        )
    assert list(private_tmp.iterdir()) == []


def test_upload_file_is_private_and_removed_on_error(private_tmp: Path) -> None:
    with pytest.raises(RuntimeError), video_file(b"clip bytes") as path:
        assert path.parent == private_tmp
        assert path.read_bytes() == b"clip bytes"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        raise RuntimeError("the caller failed")

    assert not path.exists()
    assert list(private_tmp.iterdir()) == []


def test_video_file_yields_a_path_source_as_it_is(numbered_mp4: Path) -> None:
    with video_file(numbered_mp4) as path:
        assert path == numbered_mp4
    with video_file(str(numbered_mp4)) as path:
        assert path == numbered_mp4
    assert numbered_mp4.exists()


@pytest.mark.parametrize(
    ("frame_count", "max_frames", "expected"),
    [
        (0, 5, []),
        (3, 5, [0, 1, 2]),
        (5, 5, [0, 1, 2, 3, 4]),
        (10, 4, [0, 3, 6, 9]),
        (100, 1, [0]),
        (100, 2, [0, 99]),
    ],
)
def test_sample_indices(frame_count: int, max_frames: int, expected: list[int]) -> None:
    indices = sample_indices(frame_count, max_frames)

    assert indices.dtype == np.int64
    assert indices.tolist() == expected


@pytest.mark.parametrize("frame_count", [6, 64, 65, 127, 1000, 12345])
def test_sample_indices_are_distinct_increasing_and_span_the_clip(
    frame_count: int,
) -> None:
    indices = sample_indices(frame_count, 64)

    assert len(indices) == min(frame_count, 64)
    assert indices[0] == 0 and indices[-1] == frame_count - 1
    assert np.all(np.diff(indices) >= 1)
    gaps = np.diff(indices)
    assert gaps.max() - gaps.min() <= 1


@pytest.mark.shared
def test_real_clips_match_their_manifest(shared_dir: Path) -> None:
    clips_dir = shared_dir / "clips"
    with open(clips_dir / "manifest.csv", newline="") as file:
        rows = list(csv.DictReader(file))

    for row in rows:
        # One frame: the walk stops at the first, while the count still covers all.
        clip = read_clip(clips_dir / row["file"], max_frames=1, max_side=64)

        assert clip.info.frame_count == int(row["frames"]), row["file"]
        assert (clip.info.width, clip.info.height) == (
            int(row["width"]),
            int(row["height"]),
        ), row["file"]
        assert clip.info.fps == pytest.approx(float(row["fps"]), rel=1e-3)
        assert clip.frame_index.tolist() == [0]
        assert_rgb_frames(clip)


@pytest.mark.shared
def test_smallest_real_clips_give_every_sampled_frame(shared_dir: Path) -> None:
    clips_dir = shared_dir / "clips"
    with open(clips_dir / "manifest.csv", newline="") as file:
        rows = sorted(csv.DictReader(file), key=lambda row: int(row["bytes"]))

    for row in rows[:5]:
        clip = read_clip(clips_dir / row["file"], max_frames=16, max_side=128)

        expected = sample_indices(int(row["frames"]), 16).tolist()
        assert clip.frame_index.tolist() == expected, row["file"]
        assert max(clip.frames[0].shape[:2]) == 128


def test_broken_upload_prints_no_native_noise(clips: Path) -> None:
    broken = media.truncated_copy(
        media.make_numbered_clip(clips / "noisy.mp4"), clips / "noisy-cut.mp4", 0.5
    )
    script = (
        "import sys\n"
        "from sign2text_core import errors\n"
        "from sign2text_core.video import read_clip\n"
        "try:\n"
        "    read_clip(sys.argv[1], max_frames=4)\n"
        "except errors.NotAVideo:\n"
        "    print('refused')\n"
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPENCV_")
    }

    finished = subprocess.run(
        [sys.executable, "-c", script, str(broken)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )

    assert finished.stdout.strip() == "refused"
    assert finished.stderr == ""
