"""Bucket uploads: every clip uploaded to a bucket gets exactly one result document.

Object events arrive at least once, sometimes twice at the same moment, and the
processor makes that harmless:

1. **Skip** what is not ours to classify: objects under the results location (the
   processor never reads its own output) and objects that are not videos by name or
   content type.
2. **Done already?** The result for ``<key>`` lives at ``<results prefix><key>.json``
   and names the source version it was made from; when it names this version, stop.
3. **Claim** the work with a conditional create of ``<result key>.claim``. Only one
   worker can create it; a second delivery waits for the first one's result instead of
   classifying again, and raises ``ClaimHeld`` (so the platform retries later) if none
   appears within ``claim_wait_s``. A claim older than ``claim_ttl_s`` belonged to a
   worker that crashed: it is taken over with a conditional replace, so only one
   worker can take it over.
4. **Fetch** the object to a private temp file, refusing it as soon as it passes the
   size limit, and only at the version the event named (an older event for an object
   since overwritten is *superseded*: the newer upload's event does the work).
5. **Classify** with the labels from the object's ``sign2text-labels`` metadata, or the
   deployment default (``SIGN2TEXT_LABELS``) when it has none.
6. **Write** the document with a conditional create (or a conditional replace of the
   previous version's document), then delete the claim.

A clip that can never be classified (not a video, too large, too long, unknown label)
gets an error document with the error's code: retrying could not help. A failure that
may pass (the store unreachable or answering 5xx, the model busy) raises, and the
platform delivers the event again; steps 2 and 3 make that redelivery cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from sign2text_core import __version__
from sign2text_core.errors import ConfigurationError, EmptyUpload, Sign2TextError
from sign2text_core.limits import Limits
from sign2text_core.stores import (
    GCSStore,
    LocalStore,
    ObjectChanged,
    ObjectInfo,
    ObjectMissing,
    S3Store,
    Store,
    StoredDocument,
    StoreError,
    local_version,
)

logger = logging.getLogger(__name__)

RESULTS_BUCKET_ENV = "SIGN2TEXT_RESULTS_BUCKET"
RESULTS_PREFIX_ENV = "SIGN2TEXT_RESULTS_PREFIX"
CLAIM_TTL_ENV = "SIGN2TEXT_CLAIM_TTL_S"
CLAIM_WAIT_ENV = "SIGN2TEXT_CLAIM_WAIT_S"
DEFAULT_RESULTS_PREFIX = "results/"
# A claim must outlive the slowest classification (bounded by the function's timeout)
# and expire well before the platform gives up retrying (S3 retries an asynchronous
# call twice over about three minutes).
DEFAULT_CLAIM_TTL_S = 120.0
DEFAULT_CLAIM_WAIT_S = 20.0

LABELS_METADATA = "sign2text-labels"
GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
JSON_TYPE = "application/json"
CLAIM_SUFFIX = ".claim"

VIDEO_SUFFIXES = frozenset(
    {
        ".3g2",
        ".3gp",
        ".avi",
        ".flv",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    }
)

Classify = Callable[..., Any]
"""``classify(path, *, top_k, labels) -> Prediction``, like ``signs.classify``."""


class ClaimHeld(Exception):
    """Another worker is classifying this object and has not finished; retry later."""


class BucketEventFailed(Exception):
    """Some objects of an event could not be processed; the others were.

    Raised after every object of the event was tried, so the platform's retry redoes
    only the failed ones (the others find their result and stop).
    """

    def __init__(self, failures: Sequence[tuple[ObjectInfo, BaseException]]) -> None:
        self.failures = list(failures)
        names = ", ".join(f"{info.bucket}/{info.key}" for info, _ in self.failures)
        super().__init__(f"{len(self.failures)} object(s) failed: {names}")


@dataclass(frozen=True)
class ResultsLocation:
    """Where result documents go: a bucket (None = the source's) and a key prefix."""

    bucket: str | None = None
    prefix: str = DEFAULT_RESULTS_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix and self.bucket is None:
            raise ConfigurationError(
                f"{RESULTS_PREFIX_ENV} is empty and {RESULTS_BUCKET_ENV} is not set: "
                "results would land among the uploads and be classified in turn."
            )
        if self.prefix and not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")

    @classmethod
    def from_env(cls) -> ResultsLocation:
        bucket = os.environ.get(RESULTS_BUCKET_ENV) or None
        prefix = os.environ.get(RESULTS_PREFIX_ENV, DEFAULT_RESULTS_PREFIX)
        return cls(bucket=bucket, prefix=prefix.lstrip("/"))

    def bucket_for(self, source_bucket: str) -> str:
        return self.bucket or source_bucket

    def key_for(self, key: str) -> str:
        return f"{self.prefix}{key}.json"

    def holds(self, bucket: str, key: str) -> bool:
        """True when the object is in the results location (our own output)."""
        results_bucket = self.bucket_for(bucket)
        return bucket == results_bucket and key.startswith(self.prefix)


@dataclass(frozen=True)
class Outcome:
    """What happened to one object.

    ``status`` is one of: ``classified`` (result written), ``failed`` (error document
    written), ``exists`` (a result for this version was already there), ``duplicate``
    (another delivery wrote it while this one waited), ``skipped`` (not ours to
    classify), ``superseded`` (the object was overwritten since the event), ``missing``
    (the object is gone).
    """

    bucket: str
    key: str
    version: str | None
    status: str
    result_bucket: str | None = None
    result_key: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            name: value for name, value in asdict(self).items() if value is not None
        }


@dataclass(frozen=True)
class _Claim:
    bucket: str
    key: str
    version: str


def looks_like_video(key: str, content_type: str | None) -> bool:
    """True when the name has a video suffix or the content type is video/*."""
    if content_type and content_type.lower().startswith("video/"):
        return True
    return PurePosixPath(key).suffix.lower() in VIDEO_SUFFIXES


def labels_from_metadata(metadata: Mapping[str, str]) -> list[str] | None:
    """The object's requested vocabulary, or None to use the deployment default.

    S3 lowercases user metadata names; Cloud Storage keeps them as written, so the
    name is matched ignoring case. A present but blank value is an empty list, which
    classification refuses as an invalid parameter.
    """
    for name, value in metadata.items():
        if name.lower() == LABELS_METADATA:
            return [part.strip() for part in value.split(",") if part.strip()]
    return None


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be positive")
    return seconds


def _default_max_bytes() -> int:
    return int(Limits.from_env().max_bytes)


def _default_classify(path: str, *, top_k: int, labels: list[str] | None) -> Any:
    from sign2text_core import signs

    return signs.classify(path, top_k=top_k, labels=labels)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class BucketProcessor:
    """Turns one object reference into at most one result document (see module doc).

    Args:
        store: where the objects and the results live.
        results: the results location; from the environment when None.
        classify: ``classify(path, *, top_k, labels)`` returning a Prediction; the
            default bundle's classifier when None.
        max_bytes: the largest object fetched; ``Limits.from_env()`` when None.
        claim_ttl_s: age after which a claim is presumed abandoned.
        claim_wait_s: how long a second delivery waits for the first one's result.
        trust_versions: False to ignore the versions events name and process each
            object as it is now (for hand-written events).
    """

    def __init__(
        self,
        store: Store,
        *,
        results: ResultsLocation | None = None,
        classify: Classify | None = None,
        max_bytes: int | None = None,
        top_k: int = 5,
        claim_ttl_s: float | None = None,
        claim_wait_s: float | None = None,
        poll_s: float = 0.2,
        trust_versions: bool = True,
    ) -> None:
        self.store = store
        self.results = results or ResultsLocation.from_env()
        self._classify = classify or _default_classify
        self._max_bytes = max_bytes
        self.top_k = top_k
        self.claim_ttl_s = claim_ttl_s or _env_seconds(
            CLAIM_TTL_ENV, DEFAULT_CLAIM_TTL_S
        )
        self.claim_wait_s = claim_wait_s or _env_seconds(
            CLAIM_WAIT_ENV, DEFAULT_CLAIM_WAIT_S
        )
        self.poll_s = poll_s
        self.trust_versions = trust_versions

    @property
    def max_bytes(self) -> int:
        if self._max_bytes is None:
            self._max_bytes = _default_max_bytes()
        return self._max_bytes

    def process(self, ref: ObjectInfo) -> Outcome:
        """Make sure the object has its result document; say what was done.

        Raises ``StoreUnavailable`` or ``ClaimHeld`` (or a non-permanent
        ``Sign2TextError``) when the platform should deliver the event again.
        """
        started = time.perf_counter()
        outcome = self._process(ref)
        logger.info(
            "bucket object %s",
            json.dumps({**outcome.to_dict(), "total_ms": _elapsed_ms(started)}),
        )
        return outcome

    def _process(self, ref: ObjectInfo) -> Outcome:
        if not self.trust_versions:
            ref = replace(ref, version=None)
        if self.results.holds(ref.bucket, ref.key):
            return self._outcome(ref, "skipped", reason="in the results location")

        completed = self._complete(ref)
        if completed is None:
            return self._outcome(ref, "missing", reason="no such object")
        ref = completed
        if not looks_like_video(ref.key, ref.content_type):
            return self._outcome(ref, "skipped", reason="not a video")

        result_bucket = self.results.bucket_for(ref.bucket)
        result_key = self.results.key_for(ref.key)
        if _finished(self.store.read(result_bucket, result_key), ref.version):
            return self._outcome(ref, "exists")

        claim = self._claim(result_bucket, result_key, ref.version)
        if claim is None:
            return self._outcome(ref, "duplicate")
        try:
            return self._classify_claimed(ref, result_bucket, result_key)
        finally:
            self._release(claim)

    def _complete(self, ref: ObjectInfo) -> ObjectInfo | None:
        """Ask the store for what the event left out: the version, the content type."""
        knows_kind = ref.content_type is not None or looks_like_video(ref.key, None)
        if ref.version is not None and knows_kind:
            return ref
        info = self.store.head(ref.bucket, ref.key)
        if info is None:
            return None
        return replace(
            ref,
            version=ref.version or info.version,
            size=info.size,
            content_type=info.content_type,
            metadata=info.metadata,
        )

    def _classify_claimed(
        self, ref: ObjectInfo, result_bucket: str, result_key: str
    ) -> Outcome:
        # The claim may have been free because another worker just finished.
        previous = self.store.read(result_bucket, result_key)
        if _finished(previous, ref.version):
            return self._outcome(ref, "duplicate")

        try:
            document = self._document(ref)
        except ObjectChanged:
            return self._outcome(ref, "superseded", reason="overwritten since")
        except ObjectMissing:
            return self._outcome(ref, "missing", reason="deleted since")

        body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        if previous is None:
            written = self.store.create(result_bucket, result_key, body, JSON_TYPE)
        else:
            written = self.store.replace(
                result_bucket, result_key, body, JSON_TYPE, expected=previous.version
            )
        if written is None:
            return self._outcome(ref, "duplicate", reason="written by another worker")
        status = "failed" if "error" in document else "classified"
        return self._outcome(ref, status, reason=_error_code(document))

    def _document(self, ref: ObjectInfo) -> dict[str, Any]:
        """The result (or error) document for the object at ``ref.version``."""
        timings: dict[str, float] = {}
        source: dict[str, Any] = {
            "bucket": ref.bucket,
            "key": ref.key,
            "version": ref.version,
        }
        document: dict[str, Any] = {"source": source}
        try:
            with self._fetched(ref, timings) as (path, info):
                source["size"] = info.size
                source["content_type"] = info.content_type
                labels = labels_from_metadata(info.metadata)
                if labels is not None:
                    document["labels_from"] = "object metadata"
                started = time.perf_counter()
                prediction = self._classify(str(path), top_k=self.top_k, labels=labels)
                timings["classify"] = _elapsed_ms(started)
            answer = prediction.to_dict()
            document["prediction"] = answer
            document["model"] = answer.get("model")
            document["labels_from"] = _labels_source(labels, answer)
        except Sign2TextError as error:
            if not error.permanent:
                raise
            document.update(error.to_dict())
        document["timings_ms"] = timings
        document["time"] = _now_iso()
        document["processor"] = {"name": "sign2text", "version": __version__}
        return document

    @contextlib.contextmanager
    def _fetched(
        self, ref: ObjectInfo, timings: dict[str, float]
    ) -> Iterator[tuple[Path, ObjectInfo]]:
        """The object's bytes in a private temp file, removed afterwards."""
        started = time.perf_counter()
        suffix = PurePosixPath(ref.key).suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            suffix = ".video"
        with tempfile.TemporaryDirectory(prefix="sign2text-") as folder:
            path = Path(folder) / f"object{suffix}"
            with path.open("wb") as sink:
                info = self.store.fetch(
                    ref.bucket,
                    ref.key,
                    sink,
                    version=ref.version,
                    max_bytes=self.max_bytes,
                )
            timings["fetch"] = _elapsed_ms(started)
            if path.stat().st_size == 0:
                raise EmptyUpload("The object is empty: upload the video's bytes.")
            yield path, info

    def _claim(
        self, bucket: str, result_key: str, version: str | None
    ) -> _Claim | None:
        """Claim the object's work; None when another worker finished it meanwhile.

        Raises ClaimHeld when another worker holds a live claim for longer than
        ``claim_wait_s`` without writing the result.
        """
        claim_key = result_key + CLAIM_SUFFIX
        deadline = time.monotonic() + self.claim_wait_s
        while True:
            body = self._claim_body(version)
            token = self.store.create(bucket, claim_key, body, JSON_TYPE)
            if token is not None:
                return _Claim(bucket, claim_key, token)

            held = self.store.read(bucket, claim_key)
            if held is not None and self._is_stale(held):
                token = self.store.replace(
                    bucket, claim_key, body, JSON_TYPE, expected=held.version
                )
                if token is not None:
                    logger.warning("took over an abandoned claim on %s", claim_key)
                    return _Claim(bucket, claim_key, token)
            elif held is not None:
                if _finished(self.store.read(bucket, result_key), version):
                    return None
                time.sleep(self.poll_s)

            if time.monotonic() > deadline:
                raise ClaimHeld(f"{bucket}/{claim_key} is held by another worker")

    def _claim_body(self, version: str | None) -> bytes:
        now = time.time()
        claim = {
            "version": version,
            "owner": uuid.uuid4().hex,
            "claimed_at": now,
            "expires_at": now + self.claim_ttl_s,
        }
        return json.dumps(claim).encode("utf-8")

    @staticmethod
    def _is_stale(held: StoredDocument) -> bool:
        try:
            expires_at = float(json.loads(held.body)["expires_at"])
        except (ValueError, KeyError, TypeError):
            return True
        return time.time() > expires_at

    def _release(self, claim: _Claim) -> None:
        try:
            self.store.delete(claim.bucket, claim.key, expected=claim.version)
        except StoreError as error:
            # Harmless: the claim expires after claim_ttl_s, and the result (if it
            # was written) already stops every later delivery before claiming.
            logger.warning("could not release claim %s: %s", claim.key, error)

    def _outcome(
        self, ref: ObjectInfo, status: str, reason: str | None = None
    ) -> Outcome:
        holds = status not in ("skipped", "missing", "superseded")
        return Outcome(
            bucket=ref.bucket,
            key=ref.key,
            version=ref.version,
            status=status,
            result_bucket=self.results.bucket_for(ref.bucket) if holds else None,
            result_key=self.results.key_for(ref.key) if holds else None,
            reason=reason,
        )


def _finished(document: StoredDocument | None, version: str | None) -> bool:
    """True when a stored result was made from this version of the object."""
    if document is None:
        return False
    try:
        source = json.loads(document.body)["source"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(source.get("version") == version)


def _labels_source(labels: list[str] | None, answer: Mapping[str, Any]) -> str:
    """Where the vocabulary a prediction was chosen from came from."""
    if labels is not None:
        return "object metadata"
    if answer.get("vocabulary", {}).get("restricted"):
        return "deployment default"
    return "model"


def _error_code(document: Mapping[str, Any]) -> str | None:
    error = document.get("error")
    return str(error["code"]) if isinstance(error, Mapping) else None


@dataclass(frozen=True)
class _Delivery:
    """One object named by an event, with the queue message that carried it."""

    ref: ObjectInfo
    message_id: str | None = None


def s3_deliveries(event: Mapping[str, Any]) -> list[_Delivery]:
    """Every created object an S3-side event names, in order.

    Understands S3 notification records (keys are form-encoded there), the same
    records inside SQS or SNS messages, and EventBridge "Object Created" events.
    Records of other kinds (deletions, S3's test event) name nothing.
    """
    if event.get("source") == "aws.s3" and "detail" in event:
        return _malformed_is_empty(_eventbridge_deliveries, event)

    deliveries: list[_Delivery] = []
    for record in event.get("Records") or []:
        deliveries.extend(_malformed_is_empty(_record_deliveries, record))
    return deliveries


def _record_deliveries(record: Mapping[str, Any]) -> list[_Delivery]:
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:s3":
        return _notification_deliveries(record)
    if source == "aws:sqs":
        inner = _json_or_empty(record.get("body"))
        message_id = record.get("messageId")
        return [_Delivery(found.ref, message_id) for found in s3_deliveries(inner)]
    if source == "aws:sns":
        inner = _json_or_empty(record.get("Sns", {}).get("Message"))
        return s3_deliveries(inner)
    return []


def _malformed_is_empty(
    parse: Callable[[Mapping[str, Any]], list[_Delivery]], part: Any
) -> list[_Delivery]:
    """A record that lacks what S3 always sends names nothing; retrying cannot help."""
    try:
        return parse(part)
    except (KeyError, TypeError, AttributeError) as error:
        logger.warning("ignored a malformed S3 event record: %r", error)
        return []


def _notification_deliveries(record: Mapping[str, Any]) -> list[_Delivery]:
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return []
    s3 = record["s3"]
    found = s3["object"]
    ref = ObjectInfo(
        bucket=s3["bucket"]["name"],
        key=unquote_plus(found["key"]),
        version=found.get("eTag") or found.get("etag"),
        size=found.get("size"),
    )
    return [_Delivery(ref)]


def _eventbridge_deliveries(event: Mapping[str, Any]) -> list[_Delivery]:
    if event.get("detail-type") != "Object Created":
        return []
    detail = event["detail"]
    found = detail["object"]
    ref = ObjectInfo(
        bucket=detail["bucket"]["name"],
        # Decoded like the notification records' keys.
        key=unquote_plus(found["key"]),
        version=found.get("etag"),
        size=found.get("size"),
    )
    return [_Delivery(ref)]


def _json_or_empty(text: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        logger.warning("ignored a queued message that is not an S3 event")
        return {}
    return parsed


def is_bucket_event(event: Mapping[str, Any]) -> bool:
    """True for the events ``handle_s3_event`` understands.

    Those are S3 notifications, S3 notifications inside SQS or SNS messages, and
    EventBridge events from S3.
    """
    if event.get("source") == "aws.s3" and "detail" in event:
        return True
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return False
    first = records[0]
    source = first.get("eventSource") or first.get("EventSource")
    return source in ("aws:s3", "aws:sqs", "aws:sns")


def gcs_object(
    attributes: Mapping[str, Any], data: Mapping[str, Any]
) -> ObjectInfo | None:
    """The object a Cloud Storage CloudEvent names, or None for other event types."""
    event_type = attributes.get("type")
    if event_type is not None and event_type != GCS_FINALIZED:
        return None
    size = data.get("size")
    generation = data.get("generation")
    return ObjectInfo(
        bucket=data["bucket"],
        key=data["name"],
        version=None if generation is None else str(generation),
        size=None if size is None else int(size),
        content_type=data.get("contentType"),
        metadata=dict(data.get("metadata") or {}),
    )


_processors: dict[str, BucketProcessor] = {}
_processors_lock = threading.Lock()


def default_processor(kind: str) -> BucketProcessor:
    """The process-wide processor for ``"s3"`` or ``"gcs"``, created on first use."""
    with _processors_lock:
        if kind not in _processors:
            store: Store = S3Store() if kind == "s3" else GCSStore()
            _processors[kind] = BucketProcessor(store)
        return _processors[kind]


def handle_s3_event(
    event: Mapping[str, Any], *, processor: BucketProcessor | None = None
) -> dict[str, Any]:
    """Process every object an S3-side event names; return what happened to each.

    Every object is tried even when an earlier one fails. For messages from SQS the
    answer lists the failed messages as ``batchItemFailures`` (the event source
    mapping must report batch item failures), so only those are redelivered. For
    other events, ``BucketEventFailed`` is raised after the last object when any
    failed, and the platform's retry redoes only those.
    """
    processor = processor or default_processor("s3")
    outcomes: list[dict[str, Any]] = []
    failures: list[tuple[ObjectInfo, BaseException]] = []
    failed_messages: list[str] = []
    deliveries = s3_deliveries(event)
    for delivery in deliveries:
        try:
            outcomes.append(processor.process(delivery.ref).to_dict())
        except Exception as error:  # every object gets its try; all are re-raised
            logger.warning(
                "object %s/%s failed: %r", delivery.ref.bucket, delivery.ref.key, error
            )
            failures.append((delivery.ref, error))
            if delivery.message_id is not None:
                failed_messages.append(delivery.message_id)

    answer: dict[str, Any] = {"objects": outcomes}
    from_queue = any(delivery.message_id is not None for delivery in deliveries)
    if from_queue:
        unique = list(dict.fromkeys(failed_messages))
        answer["batchItemFailures"] = [{"itemIdentifier": mid} for mid in unique]
    elif failures:
        raise BucketEventFailed(failures) from failures[0][1]
    return answer


def handle_gcs_event(
    attributes: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    processor: BucketProcessor | None = None,
) -> dict[str, Any]:
    """Process the object a Cloud Storage "finalized" CloudEvent names.

    Transient failures raise, so the function answers 500 and Eventarc retries (when
    the trigger has retries enabled).
    """
    ref = gcs_object(attributes, data)
    if ref is None:
        logger.info("ignored a CloudEvent of type %s", attributes.get("type"))
        return {"objects": []}
    processor = processor or default_processor("gcs")
    return {"objects": [processor.process(ref).to_dict()]}


def invoke_event_file(
    path: Path,
    *,
    root: Path | None,
    endpoint_url: str | None,
    classify: Classify | None = None,
) -> int:
    """Run an event file through the bucket handler, as the platform would.

    An S3-side event goes to ``handle_s3_event``; a Cloud Storage CloudEvent in
    structured JSON (with ``specversion``) to ``handle_gcs_event``. With ``root``, each
    bucket is the folder ``root/<bucket>``; with ``endpoint_url``, the event's cloud
    at that address (moto, an emulator); otherwise the real cloud. Event files are
    written by hand, so the versions they name are ignored: the object is processed
    as it is now.

    Returns the exit code: 0 when every object was handled (a result, an error
    document, or a deliberate skip), 1 when one must be retried, 2 for an unreadable
    event file.
    """
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.error("cannot read event file %s: %s", path, error)
        return 2
    if not isinstance(event, dict):
        logger.error("event file %s does not hold a JSON object", path)
        return 2

    is_cloud_event = "specversion" in event
    store = _store_for(gcs=is_cloud_event, root=root, endpoint_url=endpoint_url)
    processor = BucketProcessor(store, classify=classify, trust_versions=False)
    try:
        if is_cloud_event:
            attributes = {
                name: value for name, value in event.items() if name != "data"
            }
            answer = handle_gcs_event(attributes, event["data"], processor=processor)
        else:
            answer = handle_s3_event(event, processor=processor)
    except (BucketEventFailed, ClaimHeld, StoreError) as error:
        logger.error("event %s must be retried: %s", path, error)
        return 1
    failed = answer.get("batchItemFailures") or []
    return 1 if failed else 0


def _store_for(*, gcs: bool, root: Path | None, endpoint_url: str | None) -> Store:
    if root is not None:
        return LocalStore(root)
    if gcs:
        return GCSStore(endpoint_url=endpoint_url)
    return S3Store(endpoint_url=endpoint_url)


def watch_folder(
    folder: Path,
    *,
    once: bool,
    interval_s: float,
    classify: Classify | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Treat a folder as a bucket: each clip dropped in gets ``results/<name>.json``.

    Polls every ``interval_s`` seconds; a file is classified once its size and
    modification time held still between two polls (so a copy in progress is not
    read half-written). With ``once``, classifies what is there now and returns.
    Otherwise runs until ``stop`` is set or the process is interrupted.

    Returns the exit code: 0, or 1 when some clip could not be processed (``once``),
    or 2 when the folder does not exist.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        logger.error("%s is not a folder", folder)
        return 2
    prefix = os.environ.get(RESULTS_PREFIX_ENV, DEFAULT_RESULTS_PREFIX).lstrip("/")
    results = ResultsLocation(bucket=None, prefix=prefix or DEFAULT_RESULTS_PREFIX)
    processor = BucketProcessor(
        LocalStore(folder.parent), results=results, classify=classify
    )
    watcher = _FolderWatcher(folder, processor)
    logger.info("watching %s; results go to %s", folder, folder / results.prefix)

    stop = stop or threading.Event()
    try:
        while True:
            failures = watcher.poll(settle=not once)
            if once:
                return 1 if failures else 0
            if stop.wait(interval_s):
                return 0
    except KeyboardInterrupt:
        return 0


class _FolderWatcher:
    """Remembers what a watched folder held at the last poll and what is done."""

    def __init__(self, folder: Path, processor: BucketProcessor) -> None:
        self.folder = folder
        self.processor = processor
        self._seen: dict[str, str] = {}
        self._done: dict[str, str] = {}

    def poll(self, *, settle: bool) -> int:
        """Process every settled, unprocessed file; the number that failed."""
        failures = 0
        current = dict(self._files())
        for key, signature in current.items():
            if self._done.get(key) == signature:
                continue
            if settle and self._seen.get(key) != signature:
                continue
            ref = ObjectInfo(bucket=self.folder.name, key=key, version=None, size=None)
            try:
                self.processor.process(ref)
            except (ClaimHeld, StoreError, OSError, Sign2TextError) as error:
                logger.warning("%s failed, will retry: %s", key, error)
                failures += 1
                continue
            self._done[key] = signature
        self._seen = current
        return failures

    def _files(self) -> Iterator[tuple[str, str]]:
        results_prefix = self.processor.results.prefix
        for directory, folders, files in os.walk(self.folder):
            folders[:] = sorted(name for name in folders if not name.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.folder).as_posix()
                if key.startswith(results_prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                yield key, local_version(stat)
