"""The cloud entry points in handler.py: Lambda routing for every event shape, the
Cloud Functions HTTP function without FastAPI, and imports that stay light."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

import handler
from adapters import lambda_http
from adapters.runtime import reset_service
from tests.media import make_clip
from tests.web_servers import MAX_BYTES, MAX_DURATION_S

ROOT = Path(__file__).resolve().parent.parent
EVENT_FILES = sorted((ROOT / "events").glob("*.json"))
API_EVENT_FILES = [
    path for path in EVENT_FILES if lambda_http.infer(json.loads(path.read_text()))
]
OTHER_EVENT_FILES = [path for path in EVENT_FILES if path not in API_EVENT_FILES]


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The in-process service with limits set and no API key, forgotten afterwards."""
    monkeypatch.delenv("SIGN2TEXT_API_KEY", raising=False)
    monkeypatch.delenv("SIGN2TEXT_CORS_ORIGINS", raising=False)
    monkeypatch.setenv("SIGN2TEXT_MAX_BYTES", str(MAX_BYTES))
    monkeypatch.setenv("SIGN2TEXT_MAX_DURATION_S", str(MAX_DURATION_S))
    reset_service()
    yield
    reset_service()


class LambdaContext:
    """The attributes of the context object the Lambda runtime passes."""

    function_name = "sign2text"
    memory_limit_in_mb = 3008

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def run_python(code: str, *, env: dict[str, str] | None = None) -> Any:
    """Run `code` in a fresh interpreter at the repository root; its stdout as JSON."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _labels(document: dict[str, Any]) -> set[str]:
    return {entry["label"] for entry in document["top_k"]}


EVENT_PARAMETERS = {
    # What each sample event asks for (see scripts/make_events.py).
    "apigw-rest-classify.json": lambda document: (
        len(document["top_k"]) == 3 and not document["vocabulary"]["restricted"]
    ),
    "apigw-http-classify.json": lambda document: (
        _labels(document) == {"hello", "yes", "no"}
    ),
    "function-url-classify.json": lambda document: (
        document["vocabulary"]["labels"] == ["hello", "please", "thankyou"]
    ),
}


@pytest.mark.parametrize("path", API_EVENT_FILES, ids=lambda path: path.name)
def test_every_api_event_in_events_is_classified(path: Path, lambda_env: None) -> None:
    event = json.loads(path.read_text())

    response = handler.lambda_handler(event, LambdaContext("req-" + path.stem))

    document = json.loads(response["body"])
    assert response["statusCode"] == 200, document
    assert document["top_k"][0]["label"] == document["label"]
    assert document["clip"]["frame_count"] > 0
    assert response["headers"]["x-request-id"] == "req-" + path.stem
    asked_for = EVENT_PARAMETERS.get(path.name)
    assert asked_for is None or asked_for(document), document


MALFORMED_EVENTS = {
    "empty object": {},
    "list": [],
    "string": "ping",
    "null": None,
    "no records": {"Records": []},
    "records that are not objects": {"Records": ["x"]},
    "dynamodb stream": {"Records": [{"eventSource": "aws:dynamodb"}]},
    "scheduled event": {"source": "aws.events", "detail-type": "Scheduled Event"},
    "cloud storage event": {"bucket": "b", "name": "clip.mp4", "generation": "1"},
}


@pytest.mark.parametrize("event", MALFORMED_EVENTS.values(), ids=list(MALFORMED_EVENTS))
def test_unknown_events_are_logged_and_ignored(
    event: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapters"):
        answer = handler.lambda_handler(event, LambdaContext("req-odd"))

    assert answer == {"status": "ignored", "reason": "not an HTTP or S3 object event"}
    logged = [json.loads(record.getMessage()) for record in caplog.records]
    assert logged and logged[-1]["event"] == "lambda_event_ignored"
    assert logged[-1]["request_id"] == "req-odd"


@pytest.mark.parametrize(
    "event",
    [
        {"requestContext": {"http": {}}},
        {"httpMethod": "GET", "requestContext": {}},
        {"requestContext": {"http": {"method": "GET"}}, "rawPath": "/healthz"},
    ],
    ids=["v2 without method", "v1 without path", "v2 without headers"],
)
def test_malformed_http_events_get_a_400(
    event: dict[str, Any], lambda_env: None
) -> None:
    answer = handler.lambda_handler(event, None)

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "malformed_request"


def test_lambda_answers_api_key_errors_like_the_servers(
    lambda_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN2TEXT_API_KEY", "lambda-key")
    reset_service()
    event = json.loads((ROOT / "events" / "apigw-http-classify.json").read_text())

    refused = handler.lambda_handler(event, None)
    event["headers"]["x-api-key"] = "lambda-key"
    model_event = {**event, "rawPath": "/v1/model", "body": None}
    model_event["requestContext"] = {
        **event["requestContext"],
        "http": {
            **event["requestContext"]["http"],
            "method": "GET",
            "path": "/v1/model",
        },
    }
    model = handler.lambda_handler(model_event, None)

    assert refused["statusCode"] == 401
    assert json.loads(refused["body"])["error"]["code"] == "unauthorized"
    assert model["statusCode"] == 200
    assert json.loads(model["body"])["limits"]["max_bytes"] == MAX_BYTES


AWS_SAMPLE_ANSWERS = {
    # The HTTP samples name routes this API does not have, except the Function URL
    # one, which asks for the index.
    "albEvent.json": ("http", 404),
    "apiGatewayProxyEvent.json": ("http", 404),
    "apiGatewayProxyV2Event.json": ("http", 404),
    "lambdaFunctionUrlEvent.json": ("http", 200),
    # Their buckets do not exist on the S3 server under test: each object is missing.
    "s3Event.json": ("objects", ["missing"]),
    "s3EventDecodedKey.json": ("objects", ["missing"]),
    "s3EventBridgeNotificationObjectCreatedEvent.json": ("objects", ["missing"]),
    "s3EventGlacier.json": ("objects", ["missing"]),
    "s3SqsEvent.json": ("objects", ["missing"]),
    # Deletions are not uploads: nothing to do.
    "s3EventDeleteObject.json": ("objects", []),
    # A Cloud Storage CloudEvent is not a Lambda event at all.
    "gcs-finalized.json": ("ignored", None),
}

ANSWER_EVERY_FILE = """
    import json, os, sys
    import boto3
    from tests.object_servers import moto_server

    with moto_server() as url:
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
        )
        s3 = boto3.client("s3")
        for bucket, key, clip in json.loads(os.environ["UPLOADS"]):
            if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=open(clip, "rb").read())

        import handler
        answers = {}
        for path in sys.argv[1:]:
            try:
                answers[path] = {"answer": handler.lambda_handler(
                    json.load(open(path)), None)}
            except Exception as error:
                answers[path] = {"raised": repr(error)}
    print(json.dumps(answers))
"""


def uploads_named_in(paths: list[Path], clip: Path) -> list[tuple[str, str, str]]:
    """(bucket, key, clip) for every object the project's own S3 events name."""
    uploads = []
    for path in paths:
        event = json.loads(path.read_text())
        for record in event.get("Records", []) if isinstance(event, dict) else []:
            s3 = record.get("s3", {})
            key = unquote_plus(s3.get("object", {}).get("key", ""))
            if key:
                uploads.append((s3["bucket"]["name"], key, str(clip)))
    return uploads


def test_every_aws_sample_event_is_answered_sensibly(
    shared_dir: Path, tmp_path: Path
) -> None:
    samples = sorted((shared_dir / "events" / "aws").glob("*.json"))
    paths = [str(path) for path in [*samples, *OTHER_EVENT_FILES]]
    script = textwrap.dedent(ANSWER_EVERY_FILE)
    clip = make_clip(tmp_path / "upload.mp4", seconds=0.4, fps=10, size=(160, 120))
    uploads = uploads_named_in(OTHER_EVENT_FILES, clip)

    run = subprocess.run(
        [sys.executable, "-c", script, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT),
            "UPLOADS": json.dumps(uploads),
        },
    )
    assert run.returncode == 0, run.stderr[-4000:]
    answers = json.loads(run.stdout.strip().splitlines()[-1])

    assert {Path(path).name for path in answers} >= set(AWS_SAMPLE_ANSWERS)
    for path, outcome in answers.items():
        assert "answer" in outcome, f"{path} raised {outcome.get('raised')}"
        expected = AWS_SAMPLE_ANSWERS.get(Path(path).name)
        answer = outcome["answer"]
        if expected is None:
            continue
        kind, value = expected
        if kind == "ignored":
            assert answer["status"] == "ignored", path
        elif kind == "http":
            assert answer["statusCode"] == value, path
            assert json.loads(answer["body"]), path
        else:
            statuses = [entry["status"] for entry in answer["objects"]]
            assert statuses == value, path


def test_importing_handler_loads_no_web_framework_and_no_model() -> None:
    loaded = run_python(
        """
        import json, sys
        import handler
        heavy = ["fastapi", "starlette", "flask", "mangum", "onnxruntime", "cv2",
                 "numpy", "boto3", "google.cloud.storage"]
        print(json.dumps([name for name in heavy if name in sys.modules]))
        """
    )

    assert loaded == []


def test_cloud_function_answers_without_importing_fastapi(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.4, fps=10, size=(160, 120))

    answers = run_python(
        f"""
        import io, json, sys
        from flask import Request
        from werkzeug.test import EnvironBuilder
        import handler

        def call(path, method="GET", **options):
            environ = EnvironBuilder(path=path, method=method, **options).get_environ()
            body, status, headers = handler.sign2text_http(Request(environ))
            return {{"status": status, "document": json.loads(body)}}

        video = open({str(clip)!r}, "rb").read()
        form = {{"video": (io.BytesIO(video), "c.mp4")}}
        answers = {{
            "health": call("/healthz"),
            "openapi": call("/openapi.json"),
            "random": call("/v1/classify", "POST", data=b"\\x00" * 999,
                           content_type="video/mp4"),
            "classify": call("/v1/classify?top_k=2", "POST",
                             data=form, content_type="multipart/form-data"),
            "sign": call("/sign", "POST", data=video, content_type="video/mp4",
                         query_string="labels=yes,no"),
        }}
        answers["loaded"] = [m for m in ("fastapi", "starlette", "mangum")
                             if m in sys.modules]
        print(json.dumps(answers))
        """
    )

    assert answers["loaded"] == []
    assert answers["health"]["status"] == 200
    assert "/v1/classify" in answers["openapi"]["document"]["paths"]
    assert answers["random"]["status"] == 422
    assert answers["random"]["document"]["error"]["code"] == "not_a_video"
    assert answers["classify"]["status"] == 200
    assert len(answers["classify"]["document"]["top_k"]) == 2
    assert answers["sign"]["document"]["target"] in ("yes", "no")


def test_cloud_storage_events_other_than_finalized_are_ignored() -> None:
    from cloudevents.http import CloudEvent

    event = CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.deleted",
            "source": "//storage.googleapis.com/projects/_/buckets/uploads",
        },
        {"bucket": "uploads", "name": "clip.mp4", "generation": "1"},
    )

    assert handler.sign2text_gcs(event) == {"objects": []}
