"""Cloud Storage uploads end to end: gcp-storage-emulator on 127.0.0.1, real classifier.

The emulator ignores ``ifGenerationMatch``; the tests reach it through ``GcsProxy``,
which enforces it as Cloud Storage does, so conditional writes are really conditional.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sign2text_core.buckets import (
    GCS_FINALIZED,
    BucketProcessor,
    ResultsLocation,
    handle_gcs_event,
    invoke_event_file,
)
from sign2text_core.stores import GCSStore, StoreUnavailable
from tests.bucket_cases import (
    BATCH_SIZE,
    CountingClassify,
    Upload,
    check_document,
    make_batch,
)
from tests.media import make_clip
from tests.object_servers import GcsProxy, gcs_client, gcs_emulator

MAX_BYTES = 10_000_000


@pytest.fixture(scope="module")
def proxy() -> Iterator[GcsProxy]:
    with gcs_emulator() as url:
        proxy = GcsProxy(url)
        try:
            yield proxy
        finally:
            proxy.close()


@pytest.fixture(scope="module")
def client(proxy: GcsProxy) -> Any:
    return gcs_client(proxy.url)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> list[Upload]:
    return make_batch(tmp_path_factory.mktemp("gcs-batch"))


def upload(client: Any, bucket_name: str, uploads: Sequence[Upload]) -> list[dict]:
    """Upload every object; the "finalized" event data Cloud Storage would send."""
    bucket = client.create_bucket(bucket_name)
    events = []
    for item in uploads:
        blob = bucket.blob(item.key)
        blob.metadata = dict(item.metadata) or None
        blob.upload_from_string(item.body, content_type=item.content_type)
        events.append(event_data(blob))
    return events


def event_data(blob: Any) -> dict[str, Any]:
    data = {
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "metageneration": "1",
        "contentType": blob.content_type,
        "size": str(blob.size),
    }
    if blob.metadata:
        data["metadata"] = blob.metadata
    return data


def attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": GCS_FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
        "id": f"{data['name']}-{data['generation']}",
    }


def deliver(data: dict[str, Any], worker: BucketProcessor) -> str:
    answer = handle_gcs_event(attributes(data), data, processor=worker)
    return str(answer["objects"][0]["status"])


def results(client: Any, bucket: str, prefix: str = "results/") -> dict[str, bytes]:
    """Every object under the prefix: result documents and claims left behind."""
    names = [blob.name for blob in client.list_blobs(bucket, prefix=prefix)]
    # Fresh blobs: the emulator's media links do not quote names ("%", "?").
    return {
        name: client.bucket(bucket).blob(name).download_as_bytes() for name in names
    }


def processor(
    client: Any, classify: CountingClassify, retry_s: float = 2.0, **options: Any
) -> Any:
    return BucketProcessor(
        GCSStore(client=client, retry_deadline_s=retry_s),
        results=ResultsLocation(bucket=None, prefix="results/"),
        classify=classify,
        max_bytes=MAX_BYTES,
        **options,
    )


def test_every_upload_gets_one_document_even_when_each_event_comes_twice_at_once(
    client: Any, batch: list[Upload]
) -> None:
    bucket = "uploads-main"
    events = upload(client, bucket, batch)
    classify = CountingClassify()
    worker = processor(client, classify)

    with ThreadPoolExecutor(max_workers=6) as pool:
        twice = [data for data in events for _ in range(2)]
        statuses = list(pool.map(lambda data: deliver(data, worker), twice))

    written = [s for s in statuses if s in ("classified", "failed")]
    assert len(written) == BATCH_SIZE, statuses
    assert len([s for s in statuses if s in ("duplicate", "exists")]) == BATCH_SIZE
    stored = results(client, bucket)
    assert sorted(stored) == sorted(f"results/{item.key}.json" for item in batch)
    for item, data in zip(batch, events, strict=True):
        document = json.loads(stored[f"results/{item.key}.json"])
        check_document(document, item, bucket, data["generation"])
    assert classify.calls == len([item for item in batch if item.body])

    again = [deliver(data, worker) for data in events]
    assert again == ["exists"] * BATCH_SIZE

    own_output = [
        event_data(blob) for blob in client.list_blobs(bucket, prefix="results/")
    ]
    assert [deliver(data, worker) for data in own_output] == ["skipped"] * BATCH_SIZE
    assert results(client, bucket) == stored
    assert classify.calls == len([item for item in batch if item.body])


def test_a_store_failing_midway_raises_and_a_redelivery_finishes_the_job(
    client: Any, proxy: GcsProxy, batch: list[Upload]
) -> None:
    bucket = "uploads-flaky"
    good = [item for item in batch if item.error_code is None][:6]
    events = upload(client, bucket, good)
    classify = CountingClassify()
    classify.after_call = lambda calls: proxy.drop() if calls == 3 else None
    worker = processor(
        client, classify, retry_s=0.5, claim_ttl_s=1.0, claim_wait_s=15.0
    )

    failed = 0
    try:
        for data in events:
            try:
                deliver(data, worker)
            except StoreUnavailable:
                failed += 1
    finally:
        proxy.restore()
    before = {k: v for k, v in results(client, bucket).items() if k.endswith(".json")}
    assert failed == 4
    assert len(before) == 2

    classify.after_call = None
    redelivered = [deliver(data, worker) for data in events]

    assert redelivered == ["exists"] * 2 + ["classified"] * 4
    after = results(client, bucket)
    assert sorted(after) == sorted(f"results/{item.key}.json" for item in good)
    assert {key: after[key] for key in before} == before
    for item, data in zip(good, events, strict=True):
        document = json.loads(after[f"results/{item.key}.json"])
        check_document(document, item, bucket, data["generation"])
    assert classify.calls == 7


def test_an_event_for_an_overwritten_object_is_superseded(
    client: Any, tmp_path: Path
) -> None:
    bucket = "uploads-versions"
    first = make_clip(tmp_path / "first.mp4", seconds=0.3, fps=10, size=(160, 120))
    second = make_clip(tmp_path / "second.mp4", seconds=0.3, fps=10, size=(176, 144))
    [old] = upload(client, bucket, [Upload("clip.mp4", first.read_bytes())])
    blob = client.bucket(bucket).blob("clip.mp4")
    blob.upload_from_string(second.read_bytes(), content_type="video/mp4")
    classify = CountingClassify()
    worker = processor(client, classify)

    statuses = [deliver(old, worker), deliver(event_data(blob), worker)]

    assert statuses == ["superseded", "classified"]
    document = json.loads(results(client, bucket)["results/clip.mp4.json"])
    assert document["source"]["version"] == str(blob.generation)
    assert classify.calls == 1


def test_other_cloud_event_types_are_ignored(client: Any) -> None:
    deleted = {"type": "google.cloud.storage.object.v1.deleted"}
    data = {"bucket": "uploads-main", "name": "gone.mp4", "generation": "1"}

    answer = handle_gcs_event(deleted, data, processor=processor(client, None))

    assert answer == {"objects": []}


def test_invoke_runs_a_cloud_event_file_against_an_endpoint(
    client: Any, proxy: GcsProxy, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.3, fps=10, size=(160, 120))
    labels = {"sign2text-labels": "now,down"}
    [data] = upload(
        client,
        "uploads-invoke",
        [Upload("a b/clip+1.mp4", clip.read_bytes(), metadata=labels)],
    )
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({**attributes(data), "data": data}))

    code = invoke_event_file(event_file, root=None, endpoint_url=proxy.url)

    assert code == 0
    document = json.loads(
        results(client, "uploads-invoke")["results/a b/clip+1.mp4.json"]
    )
    assert document["labels_from"] == "object metadata"
    assert document["prediction"]["label"] in ("now", "down")
