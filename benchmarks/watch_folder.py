"""Watched folder: drop clips into ``sign2text watch``'s folder, time their results.

Makes ``--count`` short test-pattern clips with ffmpeg, starts ``watch_folder`` on an
empty folder in a thread (the default classifier, warmed up on one clip first), then
moves the clips into the folder, all at once or ``--rate`` per second. A move is
atomic, as a careful uploader's would be. Reports throughput (clips per second from
the first drop to the last result) and each clip's latency (drop to result document),
and the classifier's share of it from the documents' own timings.

    .venv/bin/python benchmarks/watch_folder.py
    .venv/bin/python benchmarks/watch_folder.py --count 100 --rate 2 --interval 0.2

Timings on a shared machine are noisy; the latency includes up to two polling
intervals (a file is taken once it held still between two polls).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sign2text_core import signs  # noqa: E402
from sign2text_core.buckets import watch_folder  # noqa: E402
from tests.media import make_clip  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="clips to drop")
    parser.add_argument("--seconds", type=float, default=0.5, help="clip length")
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--size", default="320x240", help="clip frame WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=0.0, help="drops/s, 0 = at once")
    parser.add_argument("--interval", type=float, default=0.2, help="poll every S s")
    return parser.parse_args()


def make_clips(folder: Path, args: argparse.Namespace) -> list[Path]:
    width, height = (int(side) for side in args.size.split("x"))
    started = time.perf_counter()
    clips = [
        make_clip(
            folder / f"clip-{index:03d}.mp4",
            seconds=args.seconds,
            fps=args.fps,
            size=(width, height),
        )
        for index in range(args.count)
    ]
    took = time.perf_counter() - started
    print(f"made {len(clips)} clips of {args.seconds} s at {args.size} in {took:.1f} s")
    return clips


def drop(clips: list[Path], inbox: Path, rate: float) -> dict[str, float]:
    """Move each clip into the inbox; the wall time of each drop."""
    dropped = {}
    for clip in clips:
        os.replace(clip, inbox / clip.name)
        dropped[clip.name] = time.time()
        if rate > 0:
            time.sleep(1 / rate)
    return dropped


def wait_for_results(
    inbox: Path, names: list[str], timeout_s: float
) -> dict[str, float]:
    """The wall time each result document appeared (polled every 20 ms)."""
    appeared: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(appeared) < len(names) and time.monotonic() < deadline:
        for name in names:
            if name not in appeared and (inbox / "results" / f"{name}.json").exists():
                appeared[name] = time.time()
        time.sleep(0.02)
    return appeared


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(inbox: Path, dropped: dict[str, float], appeared: dict[str, float]) -> None:
    latencies = [appeared[name] - dropped[name] for name in appeared]
    span = max(appeared.values()) - min(dropped.values())
    classify_ms, fetch_ms = [], []
    errors = 0
    for name in appeared:
        document = json.loads((inbox / "results" / f"{name}.json").read_text())
        errors += "error" in document
        classify_ms.append(document["timings_ms"].get("classify", 0.0))
        fetch_ms.append(document["timings_ms"].get("fetch", 0.0))

    print(f"results: {len(appeared)}/{len(dropped)} ({errors} error documents)")
    print(f"throughput: {len(appeared) / span:.2f} clips/s over {span:.1f} s")
    print(
        "latency drop->result (s): "
        f"p50 {percentile(latencies, 0.5):.2f}  p90 {percentile(latencies, 0.9):.2f}  "
        f"max {max(latencies):.2f}  min {min(latencies):.2f}"
    )
    print(
        f"per clip (ms): classify mean {statistics.mean(classify_ms):.0f}  "
        f"fetch (copy to temp) mean {statistics.mean(fetch_ms):.1f}"
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sign2text-watch-") as scratch:
        made = Path(scratch) / "made"
        inbox = Path(scratch) / "inbox"
        made.mkdir()
        inbox.mkdir()
        clips = make_clips(made, args)
        signs.classify(str(clips[0]))  # load the model before the clock starts

        stop = threading.Event()
        watcher = threading.Thread(
            target=watch_folder,
            args=(inbox,),
            kwargs={"once": False, "interval_s": args.interval, "stop": stop},
        )
        watcher.start()
        names = [clip.name for clip in clips]
        appeared: dict[str, float] = {}
        timer = threading.Thread(
            target=lambda: appeared.update(wait_for_results(inbox, names, 900))
        )
        try:
            timer.start()
            dropped = drop(clips, inbox, args.rate)
            timer.join()
        finally:
            stop.set()
            watcher.join()
        report(inbox, dropped, appeared)


if __name__ == "__main__":
    main()
