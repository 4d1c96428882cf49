"""S3 uploads, end to end: moto in server mode on 127.0.0.1 and the real classifier."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from sign2text_core import signs
from sign2text_core.buckets import (
    BucketEventFailed,
    BucketProcessor,
    ResultsLocation,
    handle_s3_event,
    invoke_event_file,
)
from sign2text_core.stores import S3Store
from tests.bucket_cases import (
    BATCH_SIZE,
    CountingClassify,
    Upload,
    check_document,
    make_batch,
    outcome_statuses,
)
from tests.media import make_clip
from tests.object_servers import TcpProxy, moto_server, s3_client

MAX_BYTES = 10_000_000


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def client(moto_url: str) -> Any:
    return s3_client(moto_url)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> list[Upload]:
    return make_batch(tmp_path_factory.mktemp("s3-batch"))


def upload(client: Any, bucket: str, uploads: Sequence[Upload]) -> dict[str, str]:
    """Put every upload; the ETag of each key, unquoted."""
    client.create_bucket(Bucket=bucket)
    etags = {}
    for item in uploads:
        answer = client.put_object(
            Bucket=bucket,
            Key=item.key,
            Body=item.body,
            ContentType=item.content_type,
            Metadata=dict(item.metadata),
        )
        etags[item.key] = answer["ETag"].strip('"')
    return etags


def record(bucket: str, key: str, etag: str | None, size: int) -> dict[str, Any]:
    """An S3 ObjectCreated record shaped like S3's, key form-encoded as S3 does."""
    found: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size}
    if etag is not None:
        found["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T18:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": found,
        },
    }


def results(client: Any, bucket: str, prefix: str = "results/") -> dict[str, bytes]:
    """Every object under the prefix: result documents and claims left behind."""
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    keys = [entry["Key"] for entry in listing.get("Contents", [])]
    return {
        key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys
    }


def documents_only(stored: dict[str, bytes]) -> dict[str, bytes]:
    return {key: body for key, body in stored.items() if key.endswith(".json")}


def processor(client: Any, classify: CountingClassify, **options: Any) -> Any:
    return BucketProcessor(
        S3Store(client=client),
        results=ResultsLocation(bucket=None, prefix="results/"),
        classify=classify,
        max_bytes=MAX_BYTES,
        **options,
    )


def test_every_upload_gets_one_document_even_when_each_event_comes_twice_at_once(
    client: Any, batch: list[Upload]
) -> None:
    bucket = "uploads-main"
    etags = upload(client, bucket, batch)
    classify = CountingClassify()
    worker = processor(client, classify)
    events = [
        {"Records": [record(bucket, item.key, etags[item.key], len(item.body))]}
        for item in batch
    ]

    with ThreadPoolExecutor(max_workers=6) as pool:
        twice = [event for event in events for _ in range(2)]
        answers = list(pool.map(lambda e: handle_s3_event(e, processor=worker), twice))

    statuses = outcome_statuses(answers)
    written = [s for s in statuses if s in ("classified", "failed")]
    assert len(written) == BATCH_SIZE
    assert len([s for s in statuses if s in ("duplicate", "exists")]) == BATCH_SIZE
    stored = results(client, bucket)
    assert sorted(stored) == sorted(f"results/{item.key}.json" for item in batch)
    for item in batch:
        document = json.loads(stored[f"results/{item.key}.json"])
        check_document(document, item, bucket, etags[item.key])
    # Every object that has bytes was classified once (the empty one is refused
    # before classification): the second delivery never ran the classifier.
    assert classify.calls == len([item for item in batch if item.body])

    everything = {"Records": [r for event in events for r in event["Records"]]}
    again = handle_s3_event(everything, processor=worker)
    assert outcome_statuses([again]) == ["exists"] * BATCH_SIZE

    own_output = {
        "Records": [
            record(bucket, key, None, len(body)) for key, body in stored.items()
        ]
    }
    ignored = handle_s3_event(own_output, processor=worker)
    assert outcome_statuses([ignored]) == ["skipped"] * BATCH_SIZE
    assert results(client, bucket) == stored
    assert classify.calls == len([item for item in batch if item.body])


def test_objects_that_are_not_videos_get_no_document(client: Any) -> None:
    bucket = "uploads-other"
    notes = Upload("notes.txt", b"a lesson plan", content_type="text/plain")
    picture = Upload("picture", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    etags = upload(client, bucket, [notes, picture])
    classify = CountingClassify()
    event = {
        "Records": [
            record(bucket, "notes.txt", etags["notes.txt"], 13),
            # No suffix: the content type S3 holds decides.
            record(bucket, "picture", etags["picture"], 8),
        ]
    }

    answer = handle_s3_event(event, processor=processor(client, classify))

    assert outcome_statuses([answer]) == ["skipped", "skipped"]
    assert results(client, bucket) == {}
    assert classify.calls == 0


def test_a_store_failing_midway_raises_and_a_redelivery_finishes_the_job(
    client: Any, moto_url: str, batch: list[Upload]
) -> None:
    bucket = "uploads-flaky"
    good = [item for item in batch if item.error_code is None][:6]
    etags = upload(client, bucket, good)
    proxy = TcpProxy(int(moto_url.rsplit(":", 1)[1]))
    classify = CountingClassify()
    # The third classification finishes just as the network goes down, so its
    # result cannot be written and its claim cannot be released.
    classify.after_call = lambda calls: proxy.drop() if calls == 3 else None
    flaky = s3_client(proxy.url)
    worker = processor(flaky, classify, claim_ttl_s=1.0, claim_wait_s=15.0)
    event = {
        "Records": [
            record(bucket, item.key, etags[item.key], len(item.body)) for item in good
        ]
    }

    try:
        with pytest.raises(BucketEventFailed) as failed:
            handle_s3_event(event, processor=worker)
        assert len(failed.value.failures) == 4
        before = documents_only(results(client, bucket))
        assert len(before) == 2

        proxy.restore()
        classify.after_call = None
        answer = handle_s3_event(event, processor=worker)
    finally:
        proxy.close()

    assert outcome_statuses([answer]) == ["exists"] * 2 + ["classified"] * 4
    after = results(client, bucket)
    assert sorted(after) == sorted(f"results/{item.key}.json" for item in good)
    assert {key: after[key] for key in before} == before
    for item in good:
        check_document(
            json.loads(after[f"results/{item.key}.json"]), item, bucket, etags[item.key]
        )
    # Six objects, and the third once more: its first result was never written.
    assert classify.calls == 7


def test_queue_messages_report_only_the_failed_ones(
    client: Any, tmp_path: Path
) -> None:
    bucket = "uploads-queued"
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.3, fps=10, size=(160, 120))
    etags = upload(client, bucket, [Upload("queued clip.mp4", clip.read_bytes())])
    notification = {
        "Records": [record(bucket, "queued clip.mp4", etags["queued clip.mp4"], 1)]
    }
    broken = {"Records": [record("no-such-bucket", "lost.mp4", "0" * 32, 1)]}
    event = {
        "Records": [
            {
                "messageId": "m1",
                "eventSource": "aws:sqs",
                "body": json.dumps(notification),
            },
            {"messageId": "m2", "eventSource": "aws:sqs", "body": json.dumps(broken)},
            {
                "messageId": "m3",
                "eventSource": "aws:sqs",
                "body": '{"Event": "s3:TestEvent"}',
            },
        ]
    }

    answer = handle_s3_event(event, processor=processor(client, CountingClassify()))

    assert answer["batchItemFailures"] == [{"itemIdentifier": "m2"}]
    assert outcome_statuses([answer]) == ["classified"]
    assert list(results(client, bucket)) == ["results/queued clip.mp4.json"]


def test_an_event_for_an_overwritten_object_is_superseded_by_the_newer_one(
    client: Any, tmp_path: Path
) -> None:
    bucket = "uploads-versions"
    first = make_clip(tmp_path / "first.mp4", seconds=0.3, fps=10, size=(160, 120))
    second = make_clip(tmp_path / "second.mp4", seconds=0.3, fps=10, size=(176, 144))
    old = upload(client, bucket, [Upload("clip.mp4", first.read_bytes())])
    new = client.put_object(Bucket=bucket, Key="clip.mp4", Body=second.read_bytes())
    new_etag = new["ETag"].strip('"')
    classify = CountingClassify()
    worker = processor(client, classify)
    eventbridge = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": bucket},
            "object": {"key": "clip.mp4", "size": 1, "etag": new_etag},
        },
    }

    stale = handle_s3_event(
        {"Records": [record(bucket, "clip.mp4", old["clip.mp4"], 1)]}, processor=worker
    )
    fresh = handle_s3_event(eventbridge, processor=worker)

    assert outcome_statuses([stale, fresh]) == ["superseded", "classified"]
    document = json.loads(results(client, bucket)["results/clip.mp4.json"])
    assert document["source"]["version"] == new_etag
    assert document["prediction"]["clip"]["width"] == 176
    assert classify.calls == 1


def test_an_object_over_the_size_limit_gets_an_error_document_unread(
    client: Any, tmp_path: Path
) -> None:
    bucket = "uploads-large"
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0, fps=10, size=(160, 120))
    etags = upload(client, bucket, [Upload("large.mp4", clip.read_bytes())])
    classify = CountingClassify()
    worker = BucketProcessor(S3Store(client=client), classify=classify, max_bytes=1000)

    handle_s3_event(
        {"Records": [record(bucket, "large.mp4", etags["large.mp4"], 1)]},
        processor=worker,
    )

    document = json.loads(results(client, bucket)["results/large.mp4.json"])
    assert document["error"]["code"] == "video_too_large"
    assert classify.calls == 0


def test_the_deployment_default_vocabulary_applies_without_metadata(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN2TEXT_LABELS", "now, down")
    bucket = "uploads-default"
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.3, fps=10, size=(160, 120))
    etags = upload(client, bucket, [Upload("clip.mp4", clip.read_bytes())])

    # The default vocabulary is read when a classifier is made: make a new one.
    classifier = signs.Classifier()

    handle_s3_event(
        {"Records": [record(bucket, "clip.mp4", etags["clip.mp4"], 1)]},
        processor=processor(client, CountingClassify(classifier)),
    )

    document = json.loads(results(client, bucket)["results/clip.mp4.json"])
    assert document["labels_from"] == "deployment default"
    assert document["prediction"]["vocabulary"]["labels"] == ["now", "down"]


def test_results_can_go_to_their_own_bucket(client: Any, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.3, fps=10, size=(160, 120))
    etags = upload(client, "uploads-split", [Upload("in/clip.mp4", clip.read_bytes())])
    client.create_bucket(Bucket="results-split")
    worker = BucketProcessor(
        S3Store(client=client),
        results=ResultsLocation(bucket="results-split", prefix=""),
        classify=CountingClassify(),
        max_bytes=MAX_BYTES,
    )
    event = {
        "Records": [record("uploads-split", "in/clip.mp4", etags["in/clip.mp4"], 1)]
    }

    handle_s3_event(event, processor=worker)
    own = handle_s3_event(
        {"Records": [record("results-split", "in/clip.mp4.json", None, 1)]},
        processor=worker,
    )

    assert list(results(client, "results-split", prefix="")) == ["in/clip.mp4.json"]
    assert outcome_statuses([own]) == ["skipped"]


def test_invoke_runs_an_event_file_against_an_endpoint(
    client: Any, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.3, fps=10, size=(160, 120))
    upload(client, "uploads-invoke", [Upload("a b/clip+1.mp4", clip.read_bytes())])
    event_file = tmp_path / "event.json"
    # A hand-written event: its ETag is made up, the object as it is now counts.
    event = {"Records": [record("uploads-invoke", "a b/clip+1.mp4", "f" * 32, 1)]}
    event_file.write_text(json.dumps(event))

    code = invoke_event_file(event_file, root=None, endpoint_url=moto_url)

    assert code == 0
    stored = results(client, "uploads-invoke")
    document = json.loads(stored["results/a b/clip+1.mp4.json"])
    assert document["prediction"]["label"]
