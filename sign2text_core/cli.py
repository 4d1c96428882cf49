"""The ``sign2text`` command: classify clips, evaluate a folder, run the local service.

Exit codes: 0 success, 1 a clip could not be classified (or a delegated command
failed), 2 bad usage or configuration (unknown label, bad bundle, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sign2text_core.errors import (
    ConfigurationError,
    InvalidParameter,
    NotFound,
    Sign2TextError,
    UnknownLabel,
)

logger = logging.getLogger("sign2text_core.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        code: int = args.run(args)
    except ConfigurationError as error:
        _say_error("configuration_error", str(error))
        return EXIT_USAGE
    except Sign2TextError as error:
        _say_error(error.code, error.message)
        usage = isinstance(error, InvalidParameter | UnknownLabel)
        return EXIT_USAGE if usage else EXIT_FAILED
    except OSError as error:
        failure = _file_error(Path(error.filename or "?"), error)
        _say_error(failure.code, failure.message)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a fault of ours: a line for the user, not a traceback
        logger.debug("command failed", exc_info=True)
        _say_error("internal_error", f"{type(error).__name__}: {error} (-v shows more)")
        return EXIT_FAILED
    return code


def _configure_logging(args: argparse.Namespace) -> None:
    """Debug lines with ``-v``, warnings otherwise, on stderr; ``serve`` instead
    prints each line as is on stdout, so its one JSON line per request stays JSON,
    exactly as under uvicorn, Lambda and Cloud Functions."""
    level = logging.DEBUG if args.verbose else logging.WARNING
    if args.command == "serve":
        logging.basicConfig(level=level, stream=sys.stdout, format="%(message)s")
    else:
        logging.basicConfig(
            level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sign2text", description="A video of one signed word in, the word out."
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug lines to stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="classify one or more clips")
    classify.add_argument("clips", nargs="+", type=Path, metavar="CLIP")
    classify.add_argument(
        "--top", type=int, default=5, metavar="K", help="labels to list"
    )
    classify.add_argument(
        "--json", action="store_true", help="one JSON object per clip"
    )
    classify.add_argument(
        "--overlay", type=Path, metavar="PNG", help="write a contact sheet"
    )
    _add_model_options(classify)
    _add_label_options(classify)
    classify.set_defaults(run=_run_classify)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy over <gloss>/<clip> videos"
    )
    evaluate.add_argument("folder", type=Path, metavar="DIR")
    evaluate.add_argument(
        "--json", type=Path, metavar="REPORT", help="write the report"
    )
    evaluate.add_argument(
        "--labels-from-dir",
        action="store_true",
        help="restrict the answers to the glosses in DIR that the model knows",
    )
    evaluate.add_argument(
        "--landmarks-from",
        type=Path,
        metavar="NPZ_DIR",
        help="read <gloss>/<clip>.npz landmarks instead of extracting them",
    )
    evaluate.add_argument(
        "--save-landmarks",
        type=Path,
        metavar="NPZ_DIR",
        help="also write each clip's landmarks there as <gloss>/<clip>.npz",
    )
    _add_model_options(evaluate)
    _add_label_options(evaluate)
    evaluate.set_defaults(run=_run_evaluate)

    landmarks = commands.add_parser("landmarks", help="save a clip's landmarks as .npz")
    landmarks.add_argument("clip", type=Path, metavar="CLIP")
    landmarks.add_argument("--out", type=Path, required=True, metavar="FILE.npz")
    _add_model_options(landmarks)
    landmarks.set_defaults(run=_run_landmarks)

    serve = commands.add_parser("serve", help="run the HTTP service locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(run=_run_serve)

    invoke = commands.add_parser("invoke", help="process a bucket event file once")
    invoke.add_argument("event_file", type=Path, metavar="EVENT_FILE")
    invoke.add_argument(
        "--root", type=Path, help="local folder standing in for buckets"
    )
    invoke.add_argument("--endpoint-url", help="S3-compatible endpoint (an emulator)")
    invoke.set_defaults(run=_run_invoke)

    watch = commands.add_parser(
        "watch", help="classify every clip dropped into a folder"
    )
    watch.add_argument("folder", type=Path, metavar="DIR")
    watch.add_argument(
        "--once", action="store_true", help="process what is there and stop"
    )
    watch.add_argument("--interval", type=float, default=1.0, metavar="S")
    watch.set_defaults(run=_run_watch)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="model bundle (default: SIGN2TEXT_MODEL_DIR)",
    )


def _add_label_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--labels", metavar="A,B,C", help="rank only these labels")
    group.add_argument(
        "--labels-file", type=Path, metavar="FILE", help="labels, one a line"
    )


def _run_classify(args: argparse.Namespace) -> int:
    from sign2text_core.signs import Classifier, resolve_vocabulary

    classifier = Classifier(args.model)
    labels = _labels(args)
    resolve_vocabulary(labels, classifier.bundle.labels)
    if args.top < 1:
        raise InvalidParameter(f"--top must be at least 1, not {args.top}")

    failures = 0
    for clip in args.clips:
        try:
            inspection = _inspect(classifier, clip, top_k=args.top, labels=labels)
        except Sign2TextError as error:
            failures += 1
            _report_clip_error(clip, error, as_json=args.json)
            continue
        if args.json:
            _print_json({"file": str(clip), **inspection.prediction.to_dict()})
        else:
            _print_prediction(clip, inspection.prediction)
        if args.overlay is not None:
            _write_overlay(
                _overlay_path(args.overlay, clip, len(args.clips)),
                inspection,
                classifier,
            )
    return EXIT_FAILED if failures else EXIT_OK


def _inspect(classifier: Any, clip: Path, **options: Any) -> Any:
    """The classifier's inspection of ``clip``, with file errors as service errors."""
    try:
        return classifier.inspect(clip, **options)
    except OSError as error:
        raise _file_error(clip, error) from error


def _file_error(path: Path, error: OSError) -> Sign2TextError:
    if isinstance(error, FileNotFoundError):
        return NotFound(f"No such file: {path}")
    return InvalidParameter(f"Cannot read {path}: {error.strerror or error}")


def _run_evaluate(args: argparse.Namespace) -> int:
    from sign2text_core.evaluate import evaluate
    from sign2text_core.signs import Classifier

    classifier = Classifier(args.model)
    bar = ProgressBar(sys.stderr)
    report = evaluate(
        classifier,
        args.folder,
        labels=_labels(args),
        labels_from_dir=args.labels_from_dir,
        landmarks_from=args.landmarks_from,
        save_landmarks=args.save_landmarks,
        progress=bar.update,
    )
    bar.close()

    document = report.to_dict()
    _print_report(document)
    if args.json is not None:
        _write_text(args.json, json.dumps(document, indent=2) + "\n")
    return EXIT_OK


def _run_landmarks(args: argparse.Namespace) -> int:
    from sign2text_core.signs import Classifier

    classifier = Classifier(args.model)
    if classifier.bundle.landmarks is None:
        raise InvalidParameter(
            f"Bundle {classifier.bundle.name} does not use landmarks."
        )

    # The landmarks of exactly the frames the model sees (mirrored if it mirrors).
    inspection = _inspect(classifier, args.clip, top_k=1)
    assert inspection.landmarks is not None
    inspection.save_landmarks(args.out)
    frames = len(inspection.landmarks)
    print(f"{args.out}: landmarks of {frames} frames of {args.clip}")
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:
    from sign2text_core.local import serve

    serve(args.host, args.port)
    return EXIT_OK


def _run_invoke(args: argparse.Namespace) -> int:
    from sign2text_core.buckets import invoke_event_file

    return int(
        invoke_event_file(
            args.event_file, root=args.root, endpoint_url=args.endpoint_url
        )
    )


def _run_watch(args: argparse.Namespace) -> int:
    from sign2text_core.buckets import watch_folder

    return int(watch_folder(args.folder, once=args.once, interval_s=args.interval))


def _labels(args: argparse.Namespace) -> list[str] | None:
    """The labels given by ``--labels`` or ``--labels-file``, or None."""
    from sign2text_core.signs import parse_labels

    if args.labels is not None:
        return parse_labels(args.labels)
    if args.labels_file is not None:
        try:
            text = args.labels_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidParameter(
                f"Cannot read --labels-file {args.labels_file}: {error}"
            ) from error
        return [label for line in text.splitlines() for label in parse_labels(line)]
    return None


def _print_prediction(clip: Path, prediction: Any) -> None:
    runners_up = ", ".join(f"{e.label} {e.score:.1%}" for e in prediction.top_k[1:])
    hands = f"{prediction.frames_with_hands}/{prediction.frames_used} frames with hands"
    if prediction.frames_with_hands is None:
        hands = f"{prediction.frames_used} frames"
    warning = "  NO HANDS FOUND" if prediction.no_hands else ""
    print(f"{clip}: {prediction.label} {prediction.score:.1%}{warning}")
    if runners_up:
        print(f"  then: {runners_up}")
    print(
        f"  {hands}; "
        + ", ".join(f"{k} {v:.0f} ms" for k, v in prediction.timings_ms.items())
    )


def _print_report(document: dict[str, Any]) -> None:
    rows = document["results"]
    width = max(len(row["file"]) for row in rows)
    header = ("clip", "gloss", "answer", "score", "rank", "note")
    print(_table_row(header, width))
    for row in rows:
        note = _row_note(row)
        rank = "-" if row["rank"] is None else str(row["rank"])
        answer = row.get("label", "-")
        score = f"{row['score']:.2f}" if "score" in row else "-"
        cells = (row["file"], row["gloss"], answer, score, rank, note)
        print(_table_row(cells, width))

    known = document["known"]
    print()
    print(f"model {document['model']['name']} {document['model']['version']}; ", end="")
    vocabulary = document["vocabulary"]
    print(
        "full vocabulary" if vocabulary is None else f"vocabulary of {len(vocabulary)}"
    )
    print(
        f"top-1 {document['top1']:.1%} ({document['top1_count']}/{known})   "
        f"top-5 {document['top5']:.1%} ({document['top5_count']}/{known})   "
        f"over {known} clips of known glosses"
    )
    print(
        f"{document['unknown_glosses']} clips of unknown glosses, "
        f"{document['no_hands']} with no hands found, {document['errors']} errors"
    )


def _table_row(cells: tuple[str, ...], width: int) -> str:
    file, gloss, answer, score, rank, note = cells
    return f"{file:<{width}}  {gloss:<10} {answer:<12} {score:>6} {rank:>5}  {note}"


def _row_note(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"error {row['error']['code']}"
    notes = []
    if not row["known"]:
        notes.append("unknown gloss")
    if row.get("no_hands"):
        notes.append("no hands")
    if row["top1"]:
        notes.append("right")
    return ", ".join(notes)


def _report_clip_error(clip: Path, error: Sign2TextError, *, as_json: bool) -> None:
    if as_json:
        _print_json({"file": str(clip), **error.to_dict()})
    _say_error(error.code, f"{clip}: {error.message}")


def _overlay_path(requested: Path, clip: Path, clip_count: int) -> Path:
    if clip_count == 1:
        return requested
    return requested.with_name(
        f"{requested.stem}-{clip.stem}{requested.suffix or '.png'}"
    )


def _write_overlay(path: Path, inspection: Any, classifier: Any) -> None:
    from sign2text_core.overlay import contact_sheet, write_contact_sheet

    settings = classifier.bundle.landmarks
    sheet = contact_sheet(
        inspection.clip.frames,
        inspection.landmarks,
        inspection.prediction,
        lip_indices=settings.lip_indices if settings else (),
        pose_indices=settings.pose_indices if settings else (),
        frame_index=[int(index) for index in inspection.clip.frame_index],
    )
    write_contact_sheet(path, sheet)
    print(f"  contact sheet: {path}", file=sys.stderr)


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


def _say_error(code: str, message: str) -> None:
    print(f"sign2text: error {code}: {message}", file=sys.stderr)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidParameter(f"Cannot write {path}: {error.strerror}") from error


class ProgressBar:
    """A progress bar redrawn in place on a terminal; on a pipe or file, a plain line
    at every tenth of the way so logs stay readable."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._live = stream.isatty()
        self._last_tenth = -1

    def update(self, done: int, total: int, name: str) -> None:
        if not self._live:
            self._line(done, total)
            return
        filled = self._width * done // max(total, 1)
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(f"\r[{bar}] {done}/{total} {name[-40:]:<40}")
        self._stream.flush()

    def _line(self, done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._stream.write(f"progress {done}/{total}\n")
            self._stream.flush()

    def close(self) -> None:
        if self._live:
            self._stream.write("\n")
            self._stream.flush()
