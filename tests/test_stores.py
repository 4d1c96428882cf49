"""Every store keeps the same promises: a local folder, S3 (moto) and Cloud Storage."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sign2text_core.errors import VideoTooLarge
from sign2text_core.stores import (
    GCSStore,
    LocalStore,
    ObjectChanged,
    ObjectMissing,
    S3Store,
    StoreUnavailable,
    copy_limited,
)
from tests.object_servers import (
    GcsProxy,
    TcpProxy,
    gcs_client,
    gcs_emulator,
    moto_server,
    s3_client,
)

BUCKET = "store-tests"
KEY = "nested/a b+c ü/clip.mp4"


class Backend:
    """A store under test, a way to put objects with metadata, and a way to break it."""

    def __init__(self, store: Any, put: Any, breaker: Any = None) -> None:
        self.store = store
        self.put = put
        self.breaker = breaker


@pytest.fixture(scope="module")
def s3_backend() -> Iterator[Backend]:
    with moto_server() as url:
        proxy = TcpProxy(int(url.rsplit(":", 1)[1]))
        client = s3_client(proxy.url)
        client.create_bucket(Bucket=BUCKET)

        def put(key: str, body: bytes, metadata: dict[str, str]) -> None:
            client.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata)

        yield Backend(S3Store(client=client), put, proxy)
        proxy.close()


@pytest.fixture(scope="module")
def gcs_backend() -> Iterator[Backend]:
    with gcs_emulator() as url:
        proxy = GcsProxy(url)
        client = gcs_client(proxy.url)
        bucket = client.create_bucket(BUCKET)

        def put(key: str, body: bytes, metadata: dict[str, str]) -> None:
            blob = bucket.blob(key)
            blob.metadata = metadata or None
            blob.upload_from_string(body)

        yield Backend(GCSStore(client=client, retry_deadline_s=1.0), put, proxy)
        proxy.close()


@pytest.fixture
def local_backend(tmp_path: Path) -> Backend:
    def put(key: str, body: bytes, metadata: dict[str, str]) -> None:
        path = tmp_path / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        for name, value in metadata.items():
            try:
                os.setxattr(path, f"user.{name}", value.encode())
            except OSError:
                pytest.skip("this file system keeps no user attributes")

    return Backend(LocalStore(tmp_path), put)


@pytest.fixture(params=["local", "s3", "gcs"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name = {"local": "local_backend", "s3": "s3_backend", "gcs": "gcs_backend"}
    return request.getfixturevalue(name[request.param])  # type: ignore[no-any-return]


def unique(key: str, request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}/{key}"


def test_create_writes_only_where_nothing_is(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("result.json", request)

    first = backend.store.create(BUCKET, key, b"first", "application/json")
    second = backend.store.create(BUCKET, key, b"second", "application/json")

    assert first is not None
    assert second is None
    stored = backend.store.read(BUCKET, key)
    assert stored is not None
    assert (stored.body, stored.version) == (b"first", first)


def test_only_one_of_many_racing_creates_wins(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("claim", request)
    start = threading.Barrier(8)

    def create(index: int) -> str | None:
        start.wait()
        return backend.store.create(BUCKET, key, str(index).encode(), "text/plain")  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(create, range(8)))

    winners = [index for index, version in enumerate(versions) if version]
    assert len(winners) == 1
    stored = backend.store.read(BUCKET, key)
    assert stored is not None
    assert stored.body == str(winners[0]).encode()


def test_replace_and_delete_only_at_the_version_read(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("claim", request)
    first = backend.store.create(BUCKET, key, b"one", "text/plain")
    assert first is not None

    second = backend.store.replace(BUCKET, key, b"two", "text/plain", expected=first)
    late = backend.store.replace(BUCKET, key, b"three", "text/plain", expected=first)

    assert second is not None
    assert late is None
    assert backend.store.delete(BUCKET, key, expected=first) is False
    assert backend.store.delete(BUCKET, key, expected=second) is True
    assert backend.store.read(BUCKET, key) is None
    assert (
        backend.store.replace(BUCKET, key, b"x", "text/plain", expected=second) is None
    )


def test_fetch_streams_the_object_with_its_facts(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique(KEY, request)
    body = bytes(range(256)) * 4096
    backend.put(key, body, {"sign2text-labels": "now,down"})
    info = backend.store.head(BUCKET, key)
    assert info is not None

    sink = io.BytesIO()
    fetched = backend.store.fetch(
        BUCKET, key, sink, version=info.version, max_bytes=len(body)
    )

    assert sink.getvalue() == body
    assert fetched.size == len(body)
    assert fetched.version == info.version
    assert dict(fetched.metadata) == {"sign2text-labels": "now,down"}


def test_fetch_refuses_what_is_too_large_changed_or_gone(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("clip.mp4", request)
    backend.put(key, b"x" * 5000, {})
    info = backend.store.head(BUCKET, key)
    assert info is not None

    with pytest.raises(VideoTooLarge):
        backend.store.fetch(BUCKET, key, io.BytesIO(), version=None, max_bytes=4999)
    backend.put(key, b"y" * 10, {})
    with pytest.raises(ObjectChanged):
        backend.store.fetch(
            BUCKET, key, io.BytesIO(), version=info.version, max_bytes=10**6
        )
    with pytest.raises(ObjectMissing):
        backend.store.fetch(
            BUCKET, unique("gone.mp4", request), io.BytesIO(), version=None, max_bytes=1
        )
    assert backend.store.head(BUCKET, unique("gone.mp4", request)) is None


def test_an_unreachable_store_is_unavailable_not_missing(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    if backend.breaker is None:
        pytest.skip("a folder cannot be unreachable")
    key = unique("result.json", request)

    backend.breaker.drop()
    try:
        with pytest.raises(StoreUnavailable):
            backend.store.read(BUCKET, key)
        with pytest.raises(StoreUnavailable):
            backend.store.create(BUCKET, key, b"{}", "application/json")
    finally:
        backend.breaker.restore()

    assert backend.store.read(BUCKET, key) is None


def test_the_size_limit_holds_while_streaming() -> None:
    pulled = []

    def chunks() -> Iterator[bytes]:
        for index in range(100):
            pulled.append(index)
            yield b"z" * 1000

    with pytest.raises(VideoTooLarge):
        copy_limited(chunks(), io.BytesIO(), max_bytes=2500)

    assert pulled == [0, 1, 2]


def test_a_folder_store_keeps_keys_inside_the_bucket(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    for key in ("../escape.json", "a//b", "/abs", "a/./b"):
        with pytest.raises(ObjectMissing):
            store.create("bucket", key, b"{}", "application/json")
    assert list(tmp_path.rglob("*.json")) == []
