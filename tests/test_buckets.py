"""The bucket processor on a local folder: event shapes, the emulator, the watcher."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from sign2text_core.buckets import (
    BucketProcessor,
    ClaimHeld,
    ResultsLocation,
    gcs_object,
    handle_s3_event,
    invoke_event_file,
    is_bucket_event,
    labels_from_metadata,
    looks_like_video,
    s3_deliveries,
    watch_folder,
)
from sign2text_core.errors import ConfigurationError
from sign2text_core.stores import LocalStore, ObjectInfo
from tests.bucket_cases import CountingClassify
from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def short_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_clip(path, seconds=0.3, fps=10, size=(160, 120))


def test_s3_notification_keys_are_decoded(shared_dir: Path) -> None:
    event = json.loads((shared_dir / "events/aws/s3Event.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = "lesson+1/caf%C3%A9+%2B+more.mp4"

    [delivery] = s3_deliveries(event)

    assert delivery.ref.key == "lesson 1/café + more.mp4"
    assert delivery.ref.version == "b21b84d653bb07b05b1e6b33684dc11b"


def test_aws_sample_events_name_only_created_objects(shared_dir: Path) -> None:
    samples = shared_dir / "events/aws"

    def keys(name: str) -> list[tuple[str, str | None]]:
        event = json.loads((samples / name).read_text())
        return [(d.ref.key, d.message_id) for d in s3_deliveries(event)]

    assert keys("s3Event.json") == [("b21b84d653bb07b05b1e6b33684dc11b", None)]
    assert keys("s3EventDeleteObject.json") == []
    assert len(keys("s3EventGlacier.json")) == 1
    assert keys("s3SqsEvent.json") == [
        ("test.pdf", "ca3e7a89-c358-40e5-8aa0-5da01403c267")
    ]
    assert keys("s3EventBridgeNotificationObjectCreatedEvent.json") == [
        ("IMG_m7fzo3.jpg", None)
    ]
    for http in ("apiGatewayProxyEvent.json", "apiGatewayProxyV2Event.json"):
        assert not is_bucket_event(json.loads((samples / http).read_text()))
    assert is_bucket_event(json.loads((samples / "s3SqsEvent.json").read_text()))


def test_malformed_records_name_nothing_and_the_rest_still_count() -> None:
    good = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "uploads"}, "object": {"key": "a.mp4"}},
    }
    event = {
        "Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"},
            "not a record",
            {"eventSource": "aws:sqs", "messageId": "m1", "body": "[1, 2]"},
            good,
        ]
    }

    assert [d.ref.key for d in s3_deliveries(event)] == ["a.mp4"]
    assert s3_deliveries({"source": "aws.s3", "detail": {}}) == []


def test_sample_event_files_parse() -> None:
    s3 = json.loads((EVENTS / "s3-put.json").read_text())
    cloud_event = json.loads((EVENTS / "gcs-finalized.json").read_text())

    [delivery] = s3_deliveries(s3)
    attributes = {name: v for name, v in cloud_event.items() if name != "data"}
    found = gcs_object(attributes, cloud_event["data"])

    assert delivery.ref.key == "uploads/lesson 1/hello.mp4"
    assert found is not None
    assert found.key == "uploads/lesson 1/hello.mp4"
    assert labels_from_metadata(found.metadata) == ["hello", "thankyou", "please"]


def test_videos_are_recognised_by_name_or_content_type() -> None:
    assert looks_like_video("a/b.MP4", None)
    assert looks_like_video("b21b84d653bb07b05b1e6b33684dc11b", "video/quicktime")
    assert not looks_like_video("results/a.mp4.json", "application/json")
    assert not looks_like_video("picture.png", "image/png")


def test_labels_metadata_is_matched_ignoring_case_and_blank_is_empty() -> None:
    assert labels_from_metadata({"Sign2Text-Labels": " now , down,"}) == ["now", "down"]
    assert labels_from_metadata({"sign2text-labels": " "}) == []
    assert labels_from_metadata({"other": "x"}) is None


def test_results_in_the_upload_bucket_need_a_prefix() -> None:
    with pytest.raises(ConfigurationError, match="SIGN2TEXT_RESULTS_PREFIX"):
        ResultsLocation(bucket=None, prefix="")
    assert ResultsLocation(bucket=None, prefix="out").prefix == "out/"
    assert ResultsLocation(bucket="results", prefix="").holds("results", "a.json")


def test_a_second_delivery_waits_then_raises_while_a_live_claim_is_held(
    tmp_path: Path,
) -> None:
    clip = short_clip(tmp_path / "uploads/clip.mp4")
    store = LocalStore(tmp_path)
    info = store.head("uploads", "clip.mp4")
    assert info is not None
    classify = CountingClassify()
    worker = BucketProcessor(
        store,
        classify=classify,
        max_bytes=10**7,
        claim_ttl_s=600.0,
        claim_wait_s=0.5,
    )
    # Another worker's claim, far from expiring.
    live = {"expires_at": time.time() + 600}
    store.create(
        "uploads", "results/clip.mp4.json.claim", json.dumps(live).encode(), "x"
    )

    with pytest.raises(ClaimHeld):
        worker.process(info)

    assert classify.calls == 0
    assert not (tmp_path / "uploads/results/clip.mp4.json").exists()
    assert clip.exists()


def test_invoke_maps_the_sample_s3_event_to_a_folder(tmp_path: Path) -> None:
    short_clip(tmp_path / "sign2text-uploads/uploads/lesson 1/hello.mp4")
    classify = CountingClassify()

    first = invoke_event_file(
        EVENTS / "s3-put.json", root=tmp_path, endpoint_url=None, classify=classify
    )
    again = invoke_event_file(
        EVENTS / "s3-put.json", root=tmp_path, endpoint_url=None, classify=classify
    )

    result = tmp_path / "sign2text-uploads/results/uploads/lesson 1/hello.mp4.json"
    document = json.loads(result.read_text())
    assert (first, again) == (0, 0)
    assert document["prediction"]["clip"]["frame_count"] == 3
    assert document["source"]["key"] == "uploads/lesson 1/hello.mp4"
    assert classify.calls == 1


def test_invoke_maps_the_sample_cloud_event_to_a_folder(tmp_path: Path) -> None:
    short_clip(tmp_path / "sign2text-uploads/uploads/lesson 1/hello.mp4")

    code = invoke_event_file(
        EVENTS / "gcs-finalized.json",
        root=tmp_path,
        endpoint_url=None,
        classify=CountingClassify(),
    )

    result = tmp_path / "sign2text-uploads/results/uploads/lesson 1/hello.mp4.json"
    assert code == 0
    assert json.loads(result.read_text())["prediction"]["label"]


def test_invoke_reports_unreadable_event_files(tmp_path: Path) -> None:
    broken = tmp_path / "event.json"
    broken.write_text("{not json")

    assert invoke_event_file(broken, root=tmp_path, endpoint_url=None) == 2
    assert invoke_event_file(tmp_path / "none.json", root=None, endpoint_url=None) == 2


def test_watch_once_classifies_every_clip_in_the_folder_once(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    short_clip(folder / "hello.mp4")
    short_clip(folder / "week 2/c++ ü.mp4")
    (folder / "notes.txt").write_text("not a clip")
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    classify = CountingClassify()

    first = watch_folder(folder, once=True, interval_s=0.1, classify=classify)
    second = watch_folder(folder, once=True, interval_s=0.1, classify=classify)

    results = sorted(
        path.relative_to(folder / "results").as_posix()
        for path in (folder / "results").rglob("*.json")
    )
    assert (first, second) == (0, 0)
    assert results == ["broken.mp4.json", "hello.mp4.json", "week 2/c++ ü.mp4.json"]
    broken = json.loads((folder / "results/broken.mp4.json").read_text())
    assert broken["error"]["code"] == "not_a_video"
    assert classify.calls == 3


def test_watch_picks_up_clips_dropped_in_while_it_runs(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    stop = threading.Event()
    classify = CountingClassify()
    watcher = threading.Thread(
        target=watch_folder,
        args=(folder,),
        kwargs={"once": False, "interval_s": 0.1, "classify": classify, "stop": stop},
    )
    watcher.start()
    try:
        clip = short_clip(tmp_path / "made/drop.mp4")
        shutil.copy(clip, folder / "drop.mp4")
        result = folder / "results/drop.mp4.json"
        deadline = time.monotonic() + 60
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        watcher.join(timeout=30)

    assert json.loads(result.read_text())["prediction"]["frames_used"] > 0
    assert classify.calls == 1


def test_watch_refuses_a_missing_folder(tmp_path: Path) -> None:
    assert watch_folder(tmp_path / "nowhere", once=True, interval_s=1.0) == 2


def test_local_events_go_through_the_s3_handler(tmp_path: Path) -> None:
    short_clip(tmp_path / "uploads/in/a b.mp4")
    worker = BucketProcessor(
        LocalStore(tmp_path), classify=CountingClassify(), max_bytes=10**7
    )
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "uploads"}, "object": {"key": "in/a+b.mp4"}},
    }

    answer = handle_s3_event({"Records": [record]}, processor=worker)

    [outcome] = answer["objects"]
    assert outcome["status"] == "classified"
    assert outcome["result_key"] == "results/in/a b.mp4.json"
    assert worker.process(ObjectInfo("uploads", "in/a b.mp4", None, None)).status == (
        "exists"
    )
