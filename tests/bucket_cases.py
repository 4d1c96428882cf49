"""Uploads and checks shared by the S3 and Cloud Storage bucket tests.

A batch is 30 objects made by the tests: short real clips under keys with spaces,
``+``, unicode and nested prefixes, some asking for a vocabulary in their metadata, and
three bad ones (random bytes, an empty object, a PNG picture named like a video).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.media import make_clip, run_ffmpeg

BATCH_SIZE = 30
RESTRICTED = "now,down,can"


@dataclass(frozen=True)
class Upload:
    """One object to upload and what its result document must say."""

    key: str
    body: bytes
    content_type: str = "video/mp4"
    metadata: Mapping[str, str] = field(default_factory=dict)
    error_code: str | None = None


class CountingClassify:
    """The real classifier, counting how often it runs."""

    def __init__(self, classifier: Any = None) -> None:
        from sign2text_core import signs

        self._classify = signs.classify if classifier is None else classifier.classify
        self.calls = 0
        self._lock = threading.Lock()
        self.after_call: Any = None

    def __call__(self, path: str, *, top_k: int, labels: Any) -> Any:
        with self._lock:
            self.calls += 1
            calls = self.calls
        try:
            return self._classify(path, top_k=top_k, labels=labels)
        finally:
            if self.after_call is not None:
                self.after_call(calls)


def make_batch(folder: Path, count: int = BATCH_SIZE) -> list[Upload]:
    """``count`` uploads: ``count - 3`` good clips and three bad objects."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        "lessons/week 1/hello world.mp4",
        "lessons/week 1/c++ and+plus.mp4",
        "日本語/手話 ü.mp4",
        "deep/a/b/c/d/e.mp4",
        "100% done?.mp4",
    ]
    uploads = []
    for index in range(count - 3):
        name = names[index] if index < len(names) else f"clips/clip {index:02d}.mp4"
        # A few sizes and codecs, all tiny and short: the classifier runs for real.
        size = (160, 120) if index % 3 else (176, 144)
        codec = "libvpx" if index % 7 == 6 else "libx264"
        suffix = ".webm" if codec == "libvpx" else ".mp4"
        if codec == "libvpx":
            name = name.rsplit(".", 1)[0] + suffix
        clip = make_clip(
            folder / f"{index}{suffix}", seconds=0.3, fps=10, size=size, codec=codec
        )
        metadata = {"sign2text-labels": RESTRICTED} if index % 5 == 1 else {}
        if index == 8:
            metadata = {"sign2text-labels": "now,notaword"}
        uploads.append(
            Upload(
                key=name,
                body=clip.read_bytes(),
                content_type="video/webm" if suffix == ".webm" else "video/mp4",
                metadata=metadata,
                error_code="unknown_label" if index == 8 else None,
            )
        )

    picture = folder / "still.png"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(picture)]
    )
    uploads += [
        Upload("bad/random bytes.mp4", os.urandom(4096), error_code="not_a_video"),
        Upload("bad/empty.mp4", b"", error_code="empty_upload"),
        Upload("bad/still picture.mp4", picture.read_bytes(), error_code="not_a_video"),
    ]
    return uploads


def check_document(
    document: Mapping[str, Any], upload: Upload, bucket: str, version: str
) -> None:
    """Assert a result document is the right one for the upload."""
    assert document["source"]["bucket"] == bucket
    assert document["source"]["key"] == upload.key
    assert document["source"]["version"] == version
    assert document["time"].endswith("Z")
    assert "fetch" in document["timings_ms"] or upload.error_code == "empty_upload"
    if upload.error_code is not None:
        assert document["error"]["code"] == upload.error_code, document["error"]
        assert "prediction" not in document
        return

    prediction = document["prediction"]
    assert document["model"]["name"] == prediction["model"]["name"]
    assert document["timings_ms"]["classify"] > 0
    assert prediction["top_k"][0]["label"] == prediction["label"]
    assert prediction["clip"]["frame_count"] == 3
    if upload.metadata:
        assert document["labels_from"] == "object metadata"
        assert prediction["vocabulary"]["labels"] == RESTRICTED.split(",")
        assert prediction["label"] in RESTRICTED.split(",")
    else:
        assert document["labels_from"] == "model"
        assert prediction["vocabulary"]["restricted"] is False


def documents(bodies: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    return {key: json.loads(body) for key, body in bodies.items()}


def outcome_statuses(answers: Iterable[Mapping[str, Any]]) -> list[str]:
    return [entry["status"] for answer in answers for entry in answer["objects"]]
