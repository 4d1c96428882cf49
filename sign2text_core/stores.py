"""Object stores the bucket processor reads clips from and writes results to.

Three stores implement one small protocol: Amazon S3 (boto3), Google Cloud Storage
(google-cloud-storage) and a local folder (each bucket a subfolder of a root). The cloud
SDKs are imported only when their store is first used, so importing this module costs
nothing on a platform that never needs them.

Every store promises the same things:

- an object's *version* is an opaque string that changes whenever the object is written
  (the S3 ETag, the Cloud Storage generation, the local file's mtime and size);
- ``create`` writes only if nothing is at the key yet, and ``replace`` / ``delete`` only
  if the object is still at the version the caller read, both atomically on the server,
  so two workers racing for the same key cannot both win;
- a failure that may pass on its own (connection refused or dropped, timeout, a 5xx or a
  throttling answer) raises ``StoreUnavailable``, so callers can let the platform retry.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mimetypes
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sign2text_core.errors import VideoTooLarge

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class StoreError(Exception):
    """Base of the failures a store reports in its own words."""


class StoreUnavailable(StoreError):
    """The store could not be reached or answered with a server error; retry later."""


class ObjectMissing(StoreError):
    """The object is not (or no longer) in the bucket."""


class ObjectChanged(StoreError):
    """The object was overwritten since the version the caller asked for."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object, without its bytes."""

    bucket: str
    key: str
    version: str | None
    size: int | None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDocument:
    """A small object read whole (a result or a claim), with the version it had."""

    body: bytes
    version: str


class Store(Protocol):
    """What the bucket processor needs from a place that holds objects."""

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's facts, or None when there is no such object."""

    def fetch(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        version: str | None,
        max_bytes: int,
    ) -> ObjectInfo:
        """Stream the object's bytes into ``sink`` and return its facts.

        Raises ``ObjectMissing`` when it is gone, ``ObjectChanged`` when ``version``
        is given and is no longer current, and ``errors.VideoTooLarge`` as soon as
        more than ``max_bytes`` arrive (before reading the rest).
        """

    def read(self, bucket: str, key: str) -> StoredDocument | None:
        """A small object's bytes and version, or None when there is none."""

    def create(
        self, bucket: str, key: str, body: bytes, content_type: str
    ) -> str | None:
        """Write only if the key is free; the new version, or None if it was taken."""

    def replace(
        self, bucket: str, key: str, body: bytes, content_type: str, *, expected: str
    ) -> str | None:
        """Overwrite only if still at version ``expected``; the new version, or None."""

    def delete(self, bucket: str, key: str, *, expected: str | None = None) -> bool:
        """Delete (only if still at ``expected`` when given); False if not deleted."""


def copy_limited(chunks: Iterator[bytes], sink: BinaryIO, max_bytes: int) -> int:
    """Copy chunks into sink; raise VideoTooLarge as soon as max_bytes is passed."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > max_bytes:
            raise VideoTooLarge(
                f"The object is larger than the {max_bytes} bytes accepted.",
                max_bytes=max_bytes,
            )
        sink.write(chunk)
    return written


def _refuse_if_too_large(size: int | None, max_bytes: int) -> None:
    if size is not None and size > max_bytes:
        raise VideoTooLarge(
            f"The object has {size} bytes; this service accepts at most {max_bytes}.",
            size_bytes=size,
            max_bytes=max_bytes,
        )


class S3Store:
    """Amazon S3 (or anything speaking its API, such as moto) through boto3.

    The version is the ETag without its quotes. Conditional writes use S3's
    ``If-None-Match: *`` and ``If-Match`` headers.
    """

    TRANSIENT_CODES = frozenset(
        {
            "InternalError",
            "ServiceUnavailable",
            "SlowDown",
            "RequestTimeout",
            "Throttling",
            "ThrottlingException",
        }
    )

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        client: Any | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._client = client
        self._config = {
            "connect_timeout": connect_timeout_s,
            "read_timeout": read_timeout_s,
            "retries": {"max_attempts": max_attempts, "mode": "standard"},
        }
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3", endpoint_url=self._endpoint_url, config=Config(**self._config)
                )
            return self._client

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            with self._translated():
                answer = self.client.head_object(Bucket=bucket, Key=key)
        except ObjectMissing:
            return None
        return self._info(bucket, key, answer)

    def fetch(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        version: str | None,
        max_bytes: int,
    ) -> ObjectInfo:
        conditions = {"IfMatch": f'"{version}"'} if version else {}
        with self._translated():
            answer = self.client.get_object(Bucket=bucket, Key=key, **conditions)
            body = answer["Body"]
            try:
                _refuse_if_too_large(answer.get("ContentLength"), max_bytes)
                copy_limited(body.iter_chunks(CHUNK_BYTES), sink, max_bytes)
            finally:
                body.close()
        return self._info(bucket, key, answer)

    def read(self, bucket: str, key: str) -> StoredDocument | None:
        try:
            with self._translated():
                answer = self.client.get_object(Bucket=bucket, Key=key)
                body = answer["Body"].read()
        except ObjectMissing:
            return None
        return StoredDocument(body=body, version=str(answer["ETag"]).strip('"'))

    def create(
        self, bucket: str, key: str, body: bytes, content_type: str
    ) -> str | None:
        try:
            return self._put(bucket, key, body, content_type, IfNoneMatch="*")
        except ObjectChanged:
            return None

    def replace(
        self, bucket: str, key: str, body: bytes, content_type: str, *, expected: str
    ) -> str | None:
        try:
            return self._put(bucket, key, body, content_type, IfMatch=f'"{expected}"')
        except (ObjectChanged, ObjectMissing):
            return None

    def delete(self, bucket: str, key: str, *, expected: str | None = None) -> bool:
        conditions = {"IfMatch": f'"{expected}"'} if expected else {}
        try:
            with self._translated():
                self.client.delete_object(Bucket=bucket, Key=key, **conditions)
        except (ObjectMissing, ObjectChanged):
            return False
        return True

    def _put(
        self, bucket: str, key: str, body: bytes, content_type: str, **conditions: str
    ) -> str:
        with self._translated():
            answer = self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **conditions,
            )
        return str(answer["ETag"]).strip('"')

    @staticmethod
    def _info(bucket: str, key: str, answer: Mapping[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            bucket=bucket,
            key=key,
            version=_unquote(answer.get("ETag")),
            size=answer.get("ContentLength"),
            content_type=answer.get("ContentType"),
            metadata=dict(answer.get("Metadata") or {}),
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn botocore's failures into the store's own words."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
        )

        try:
            yield
        except ClientError as error:
            raise self._client_error(error) from error
        except (ConnectionError, HTTPClientError) as error:
            raise StoreUnavailable(f"S3 could not be reached: {error}") from error
        except BotoCoreError as error:
            if "IncompleteRead" in type(error).__name__:
                raise StoreUnavailable(f"S3 dropped a download: {error}") from error
            raise

    def _client_error(self, error: Any) -> Exception:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            # An operator's mistake (a wrong bucket name), never an object's state.
            return error  # type: ignore[no-any-return]
        if status == 404 or code in ("NoSuchKey", "NotFound", "404"):
            return ObjectMissing(str(error))
        if status in (409, 412) or code in ("PreconditionFailed", "412"):
            # 409 is S3's answer to a conditional write racing another one: either
            # way, this writer did not win.
            return ObjectChanged(str(error))
        if status >= 500 or code in self.TRANSIENT_CODES:
            return StoreUnavailable(f"S3 answered {status} {code}")
        return error  # type: ignore[no-any-return]


class GCSStore:
    """Google Cloud Storage through google-cloud-storage.

    The version is the object's generation. Conditional writes use
    ``if_generation_match`` (0 means "no live object"). Set ``STORAGE_EMULATOR_HOST`` to
    talk to an emulator with anonymous credentials.
    """

    READ_ATTEMPTS = 5

    def __init__(
        self,
        *,
        client: Any | None = None,
        project: str | None = None,
        endpoint_url: str | None = None,
        retry_deadline_s: float = 20.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._client = client
        self._project = project
        self._endpoint_url = endpoint_url
        self._retry_deadline_s = retry_deadline_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        from google.cloud import storage

        if not (self._endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST")):
            return storage.Client(project=self._project)

        # An emulator: no credentials to find, and a project name is only a label.
        from google.auth.credentials import AnonymousCredentials

        options = {"api_endpoint": self._endpoint_url} if self._endpoint_url else None
        return storage.Client(
            project=self._project or "sign2text-local",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=options,
        )

    def _options(self, **conditions: Any) -> dict[str, Any]:
        from google.cloud.storage.retry import DEFAULT_RETRY

        retry = DEFAULT_RETRY.with_timeout(self._retry_deadline_s)
        return {"retry": retry, "timeout": self._timeout_s, **conditions}

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        with self._translated():
            blob = self.client.bucket(bucket).get_blob(key, **self._options())
        return None if blob is None else self._info(blob)

    def fetch(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        version: str | None,
        max_bytes: int,
    ) -> ObjectInfo:
        with self._translated():
            blob = self.client.bucket(bucket).get_blob(key, **self._options())
        if blob is None:
            raise ObjectMissing(f"gs://{bucket}/{key} does not exist")
        info = self._info(blob)
        if version and info.version != version:
            raise ObjectChanged(f"gs://{bucket}/{key} is now at {info.version}")
        _refuse_if_too_large(info.size, max_bytes)

        limited = _LimitedSink(sink, max_bytes)
        with self._translated():
            self._fresh_blob(bucket, key).download_to_file(
                limited,
                raw_download=True,
                **self._options(if_generation_match=blob.generation),
            )
        return info

    def read(self, bucket: str, key: str) -> StoredDocument | None:
        # The object may be replaced or deleted between learning its generation and
        # downloading that generation; then look again.
        for _ in range(self.READ_ATTEMPTS):
            try:
                return self._read_once(bucket, key)
            except ObjectChanged:
                continue
            except ObjectMissing:
                return None
        raise StoreUnavailable(f"gs://{bucket}/{key} kept changing while read")

    def _read_once(self, bucket: str, key: str) -> StoredDocument | None:
        with self._translated():
            blob = self.client.bucket(bucket).get_blob(key, **self._options())
            if blob is None:
                return None
            generation = blob.generation
            body = self._fresh_blob(bucket, key).download_as_bytes(
                raw_download=True,
                **self._options(if_generation_match=generation),
            )
        return StoredDocument(body=body, version=str(generation))

    def _fresh_blob(self, bucket: str, key: str) -> Any:
        # A blob without the server's media link: the client builds the download
        # address from the name itself (emulators return links with unquoted names).
        return self.client.bucket(bucket).blob(key)

    def create(
        self, bucket: str, key: str, body: bytes, content_type: str
    ) -> str | None:
        return self._upload(bucket, key, body, content_type, generation=0)

    def replace(
        self, bucket: str, key: str, body: bytes, content_type: str, *, expected: str
    ) -> str | None:
        return self._upload(bucket, key, body, content_type, generation=int(expected))

    def delete(self, bucket: str, key: str, *, expected: str | None = None) -> bool:
        conditions = {"if_generation_match": int(expected)} if expected else {}
        try:
            with self._translated():
                blob = self.client.bucket(bucket).blob(key)
                blob.delete(**self._options(**conditions))
        except (ObjectMissing, ObjectChanged):
            return False
        return True

    def _upload(
        self, bucket: str, key: str, body: bytes, content_type: str, *, generation: int
    ) -> str | None:
        blob = self.client.bucket(bucket).blob(key)
        try:
            with self._translated():
                blob.upload_from_string(
                    body,
                    content_type=content_type,
                    **self._options(if_generation_match=generation),
                )
        except ObjectChanged:
            return None
        return str(blob.generation)

    @staticmethod
    def _info(blob: Any) -> ObjectInfo:
        return ObjectInfo(
            bucket=blob.bucket.name,
            key=blob.name,
            version=None if blob.generation is None else str(blob.generation),
            size=blob.size,
            content_type=blob.content_type,
            metadata=dict(blob.metadata or {}),
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn google-cloud-storage's failures into the store's own words."""
        import requests
        from google.api_core import exceptions as api

        try:
            yield
        except api.NotFound as error:
            raise ObjectMissing(str(error)) from error
        except api.PreconditionFailed as error:
            raise ObjectChanged(str(error)) from error
        except (api.ServerError, api.TooManyRequests, api.RetryError) as error:
            raise StoreUnavailable(f"Cloud Storage failed: {error}") from error
        except (requests.ConnectionError, requests.Timeout) as error:
            raise StoreUnavailable(f"Cloud Storage unreachable: {error}") from error


class _LimitedSink:
    """A file-like sink that refuses to grow past a byte limit."""

    def __init__(self, sink: BinaryIO, max_bytes: int) -> None:
        self._sink = sink
        self._max_bytes = max_bytes
        self.written = 0

    def write(self, chunk: bytes) -> int:
        self.written += len(chunk)
        if self.written > self._max_bytes:
            raise VideoTooLarge(
                f"The object is larger than the {self._max_bytes} bytes this service "
                "accepts.",
                max_bytes=self._max_bytes,
            )
        return self._sink.write(chunk)

    def flush(self) -> None:
        self._sink.flush()

    def tell(self) -> int:
        return self.written


class LocalStore:
    """A folder of folders: ``root/<bucket>/<key>``, for the emulator and ``watch``.

    The version is the file's modification time and size. ``create`` is atomic through
    a hard link from a private temp file; ``replace`` and ``delete`` hold an advisory
    lock on ``root/<bucket>/.sign2text.lock`` while they compare versions. Files and
    folders whose name starts with a dot are invisible to the store's readers.
    """

    LOCK_NAME = ".sign2text.lock"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._thread_lock = threading.Lock()

    def path(self, bucket: str, key: str) -> Path:
        """The file for a key; refuses keys that would leave the bucket's folder."""
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ObjectMissing(f"{key!r} is not a key this store can hold")
        return self.root / bucket / Path(*parts)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self.path(bucket, key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return self._info(bucket, key, path, stat)

    def fetch(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        version: str | None,
        max_bytes: int,
    ) -> ObjectInfo:
        path = self.path(bucket, key)
        try:
            file = path.open("rb")
        except (FileNotFoundError, IsADirectoryError) as error:
            raise ObjectMissing(f"{path} does not exist") from error
        with file:
            info = self._info(bucket, key, path, os.fstat(file.fileno()))
            if version and info.version != version:
                raise ObjectChanged(f"{path} is now at {info.version}")
            _refuse_if_too_large(info.size, max_bytes)
            copy_limited(iter(lambda: file.read(CHUNK_BYTES), b""), sink, max_bytes)
        return info

    def read(self, bucket: str, key: str) -> StoredDocument | None:
        path = self.path(bucket, key)
        try:
            with path.open("rb") as file:
                body = file.read()
                version = local_version(os.fstat(file.fileno()))
        except FileNotFoundError:
            return None
        return StoredDocument(body=body, version=version)

    def create(
        self, bucket: str, key: str, body: bytes, content_type: str
    ) -> str | None:
        path = self.path(bucket, key)
        with self._staged(path, body) as staged:
            try:
                os.link(staged, path)
            except FileExistsError:
                return None
        return local_version(path.stat())

    def replace(
        self, bucket: str, key: str, body: bytes, content_type: str, *, expected: str
    ) -> str | None:
        path = self.path(bucket, key)
        with self._staged(path, body) as staged, self._locked(bucket):
            if self._current_version(path) != expected:
                return None
            os.replace(staged, path)
            return local_version(path.stat())

    def delete(self, bucket: str, key: str, *, expected: str | None = None) -> bool:
        path = self.path(bucket, key)
        with self._locked(bucket):
            current = self._current_version(path)
            if current is None or (expected and current != expected):
                return False
            path.unlink()
            return True

    @staticmethod
    def _info(bucket: str, key: str, path: Path, stat: os.stat_result) -> ObjectInfo:
        content_type, _ = mimetypes.guess_type(path.name)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            version=local_version(stat),
            size=stat.st_size,
            content_type=content_type,
            metadata=_local_metadata(path),
        )

    @staticmethod
    def _current_version(path: Path) -> str | None:
        try:
            return local_version(path.stat())
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _staged(self, path: Path, body: bytes) -> Iterator[Path]:
        """A complete temp file beside ``path``, removed afterwards if still there."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        staged.write_bytes(body)
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, bucket: str) -> Iterator[None]:
        folder = self.root / bucket
        folder.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, (folder / self.LOCK_NAME).open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


METADATA_XATTR_PREFIX = "user."


def _local_metadata(path: Path) -> dict[str, str]:
    """A local file's user extended attributes stand in for object metadata."""
    try:
        names = os.listxattr(path)
    except (OSError, AttributeError):
        return {}
    metadata = {}
    for name in names:
        if name.startswith(METADATA_XATTR_PREFIX):
            value = os.getxattr(path, name)
            metadata[name.removeprefix(METADATA_XATTR_PREFIX)] = value.decode("utf-8")
    return metadata


def local_version(stat: os.stat_result) -> str:
    """A local file's version: its modification time and size."""
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def _unquote(etag: str | None) -> str | None:
    return None if etag is None else etag.strip('"')
