"""The HTTP contract over real servers: uvicorn serving ``handler:app`` and
functions-framework serving ``handler.sign2text_http``, both on 127.0.0.1 with the same
settings, sent real clips made by ffmpeg."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import handler
from adapters.runtime import reset_service
from scripts.make_events import BOUNDARY, http_api_event, multipart_body
from tests.web_servers import (
    API_KEY,
    BIN,
    CORS_ORIGIN,
    MAX_BYTES,
    SERVICE_ENV,
    Clips,
    Server,
    functions_framework_command,
    lambda_server,
    make_clips,
    running_server,
    uvicorn_command,
)

KEY = {"x-api-key": API_KEY}
SERVERS = {
    "uvicorn": uvicorn_command,
    "functions-framework": functions_framework_command,
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.mktemp("http-clips"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Both servers, running side by side for the whole module."""
    logs = tmp_path_factory.mktemp("logs")
    with (
        running_server(
            "uvicorn", uvicorn_command, SERVICE_ENV, logs / "uvicorn.log"
        ) as uvicorn,
        running_server(
            "functions-framework",
            functions_framework_command,
            SERVICE_ENV,
            logs / "functions-framework.log",
        ) as functions_framework,
    ):
        yield {"uvicorn": uvicorn, "functions-framework": functions_framework}


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's service configured like the servers, and forgotten afterwards."""
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    reset_service()
    yield
    reset_service()


@pytest.fixture(params=["uvicorn", "functions-framework", "lambda"])
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    """Each way to reach the API; "lambda" is handler.lambda_handler in this process."""
    if request.param == "lambda":
        request.getfixturevalue("service_env")
        return lambda_server()
    return servers[request.param]


@pytest.fixture(params=["uvicorn", "functions-framework"])
def live_server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    """Each server process listening on 127.0.0.1."""
    return servers[request.param]


def post_form(
    server: Server,
    files: dict[str, Any] | None = None,
    data: dict[str, str] | None = None,
    *,
    path: str = "/v1/classify",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return server.client.post(
        path,
        files=files,
        data=data,
        params=params,
        headers=KEY if headers is None else headers,
        timeout=60,
    )


def post_raw(
    server: Server,
    body: bytes,
    content_type: str | None = "video/mp4",
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = dict(KEY if headers is None else headers)
    if content_type is not None:
        all_headers["content-type"] = content_type
    return server.client.post(
        "/v1/classify",
        content=body,
        params=params,
        headers=all_headers,
        timeout=60,
    )


def video_file(path: Path, content_type: str = "video/mp4") -> dict[str, Any]:
    return {"video": (path.name, path.read_bytes(), content_type)}


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert set(document) == {"error"}
    assert document["error"]["message"]
    code: str = document["error"]["code"]
    return code


def test_health_and_index_answer_without_an_api_key(server: Server) -> None:
    health = server.client.get("/healthz")
    index = server.client.get("/")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert index.json()["classify"] == "POST /v1/classify"


def test_openapi_and_docs_are_served(server: Server) -> None:
    schema = server.client.get("/openapi.json").json()
    docs = server.client.get("/docs")

    assert set(schema["paths"]) >= {"/v1/classify", "/sign", "/v1/model", "/healthz"}
    labels_parameter = schema["paths"]["/v1/classify"]["post"]["parameters"][1]
    assert labels_parameter["name"] == "labels"
    assert docs.headers["content-type"].startswith("text/html")
    assert "openapi.json" in docs.text


def test_model_document_names_the_model_its_labels_and_limits(server: Server) -> None:
    response = server.client.get("/v1/model", headers=KEY)

    document = response.json()
    assert response.status_code == 200
    assert document["name"] and document["version"]
    assert len(document["labels"]) == 250 and "hello" in document["labels"]
    assert document["limits"]["max_bytes"] == MAX_BYTES
    assert document["limits"]["max_concurrency"] == 1


def test_classify_multipart_answers_a_prediction(server: Server, clips: Clips) -> None:
    response = post_form(server, video_file(clips.good), {"top_k": "3"})

    document = response.json()
    assert response.status_code == 200, document
    assert document["top_k"][0]["label"] == document["label"]
    assert len(document["top_k"]) == 3
    assert document["clip"]["width"] == 160 and document["clip"]["height"] == 120
    assert document["no_hands"] is True  # a test pattern has no hands in it
    assert document["vocabulary"]["restricted"] is False
    assert response.headers["x-request-id"]


def test_classify_raw_body_with_labels_chooses_among_them(
    server: Server, clips: Clips
) -> None:
    params = {"labels": "hello, yes,hello", "top_k": "5"}
    response = post_raw(server, clips.good.read_bytes(), "video/mp4", params=params)

    document = response.json()
    assert response.status_code == 200, document
    assert {entry["label"] for entry in document["top_k"]} == {"hello", "yes"}
    assert document["vocabulary"]["size"] == 2  # the repeated label counts once
    assert sum(entry["score"] for entry in document["top_k"]) == pytest.approx(1, 1e-4)


def test_labels_as_a_form_field_and_a_single_label(
    server: Server, clips: Clips
) -> None:
    response = post_form(server, video_file(clips.good), {"labels": "please"})

    document = response.json()
    assert response.status_code == 200, document
    assert document["label"] == "please"
    assert document["score"] == pytest.approx(1.0)


def test_sign_route_answers_only_the_target(server: Server, clips: Clips) -> None:
    labels = {"labels": "yes,no"}
    response = post_form(server, video_file(clips.good), labels, path="/sign")

    assert response.status_code == 200
    assert set(response.json()) == {"target"}
    assert response.json()["target"] in ("yes", "no")


@dataclass(frozen=True)
class BadInput:
    """One bad request and the documented answer for it."""

    name: str
    send: Callable[[Server, Clips], httpx.Response]
    status: int
    code: str


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


BAD_INPUTS = [
    BadInput("empty raw body", lambda s, c: post_raw(s, b""), 400, "empty_upload"),
    BadInput(
        "empty video field",
        lambda s, c: post_form(s, {"video": ("clip.mp4", b"", "video/mp4")}),
        400,
        "empty_upload",
    ),
    BadInput(
        "missing video field",
        lambda s, c: post_form(s, {"notes": ("a.txt", b"hi", "text/plain")}),
        400,
        "missing_video",
    ),
    BadInput(
        "wrong field name",
        lambda s, c: post_form(s, {"file": ("clip.mp4", c.good.read_bytes())}),
        400,
        "missing_video",
    ),
    BadInput(
        "malformed multipart",
        lambda s, c: post_raw(s, b"--x\r\nno headers end", "multipart/form-data; b=x"),
        400,
        "malformed_request",
    ),
    BadInput(
        "unterminated multipart",
        lambda s, c: post_raw(
            s,
            b'--b\r\nContent-Disposition: form-data; name="video"\r\n\r\nabc',
            "multipart/form-data; boundary=b",
        ),
        400,
        "malformed_request",
    ),
    BadInput(
        "random bytes",
        lambda s, c: post_raw(s, os.urandom(50_000)),
        422,
        "not_a_video",
    ),
    BadInput(
        "truncated mp4",
        lambda s, c: post_form(s, video_file(c.truncated)),
        422,
        "not_a_video",
    ),
    BadInput(
        "png picture",
        lambda s, c: post_form(s, video_file(c.png, "image/png")),
        422,
        "not_a_video",
    ),
    BadInput(
        "audio only",
        lambda s, c: post_form(s, video_file(c.audio_only, "audio/mp4")),
        422,
        "not_a_video",
    ),
    BadInput(
        "over-size by content-length",
        lambda s, c: post_form(s, video_file(c.too_large)),
        413,
        "video_too_large",
    ),
    BadInput(
        "over-size chunked",
        lambda s, c: post_raw(s, _chunks(c.too_large.read_bytes())),  # type: ignore[arg-type]
        413,
        "video_too_large",
    ),
    BadInput(
        "over-size within the form allowance",
        lambda s, c: post_raw(s, c.good.read_bytes() + bytes(MAX_BYTES)),
        413,
        "video_too_large",
    ),
    BadInput(
        "over-long",
        lambda s, c: post_form(s, video_file(c.too_long)),
        422,
        "video_too_long",
    ),
    BadInput(
        "huge frame",
        lambda s, c: post_form(s, video_file(c.huge_frame)),
        422,
        "frame_too_large",
    ),
    BadInput(
        "json content type",
        lambda s, c: post_raw(s, b'{"video": "x"}', "application/json"),
        415,
        "unsupported_media_type",
    ),
    BadInput(
        "text content type",
        lambda s, c: post_raw(s, c.good.read_bytes(), "text/plain"),
        415,
        "unsupported_media_type",
    ),
    BadInput(
        "no content type",
        lambda s, c: post_raw(s, c.good.read_bytes(), None),
        415,
        "unsupported_media_type",
    ),
    *[
        BadInput(
            f"top_k={value!r}",
            lambda s, c, value=value: post_raw(  # type: ignore[misc]
                s, c.good.read_bytes(), params={"top_k": value}
            ),
            422,
            "invalid_parameter",
        )
        for value in ("abc", "0", "-1", "2.5", "", "1001", "9" * 40)
    ],
    BadInput(
        "top_k twice",
        lambda s, c: post_form(
            s, video_file(c.good), {"top_k": "2"}, params={"top_k": "3"}
        ),
        422,
        "invalid_parameter",
    ),
    BadInput(
        "unknown label",
        lambda s, c: post_form(
            s, video_file(c.good), {"labels": "hello,flibbertigibbet"}
        ),
        422,
        "unknown_label",
    ),
    BadInput(
        "empty labels",
        lambda s, c: post_raw(s, c.good.read_bytes(), params={"labels": " , "}),
        422,
        "invalid_parameter",
    ),
    BadInput(
        "no api key",
        lambda s, c: post_form(s, video_file(c.good), headers={}),
        401,
        "unauthorized",
    ),
    BadInput(
        "wrong api key",
        lambda s, c: post_form(s, video_file(c.good), headers={"x-api-key": "guess"}),
        401,
        "unauthorized",
    ),
    BadInput(
        "wrong api key for the model",
        lambda s, c: s.client.get("/v1/model", headers={"x-api-key": API_KEY + "x"}),
        401,
        "unauthorized",
    ),
    BadInput(
        "GET on classify",
        lambda s, c: s.client.get("/v1/classify", headers=KEY),
        405,
        "method_not_allowed",
    ),
    BadInput(
        "unknown route",
        lambda s, c: s.client.post("/v2/classify", headers=KEY),
        404,
        "not_found",
    ),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[bad.name for bad in BAD_INPUTS])
def test_bad_input_gets_its_documented_error(
    server: Server, clips: Clips, bad: BadInput
) -> None:
    response = bad.send(server, clips)

    assert (response.status_code, error_code(response)) == (bad.status, bad.code)


def test_unknown_label_error_lists_the_known_labels(
    server: Server, clips: Clips
) -> None:
    response = post_form(server, video_file(clips.good), {"labels": "hello,zzz"})

    details = response.json()["error"].get("details", {})
    assert "hello" in str(details) and "zzz" in response.text


def test_uvicorn_refuses_a_declared_oversize_body_before_it_arrives(
    servers: dict[str, Server],
) -> None:
    # Only the headers are sent: an answer proves the body was never waited for.
    url = httpx.URL(servers["uvicorn"].url)
    head = (
        "POST /v1/classify HTTP/1.1\r\n"
        f"host: {url.host}\r\n"
        f"x-api-key: {API_KEY}\r\n"
        "content-type: video/mp4\r\n"
        "content-length: 10000000000\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port), timeout=20) as connection:
        connection.sendall(head.encode())
        status_line = connection.recv(4096).split(b"\r\n", 1)[0]

    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"


def test_more_clips_than_slots_get_busy_with_retry_after(
    live_server: Server, clips: Clips
) -> None:
    # Only the servers: a Lambda instance is given one event at a time.
    video = clips.good.read_bytes()
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: post_raw(live_server, video), range(4)))

    statuses = sorted(response.status_code for response in responses)
    busy = [response for response in responses if response.status_code == 503]
    assert set(statuses) == {200, 503}, statuses
    assert all(error_code(response) == "busy" for response in busy)
    assert all(int(response.headers["retry-after"]) >= 1 for response in busy)


def test_cors_preflight_and_headers_for_the_configured_origin(server: Server) -> None:
    preflight_headers = {
        "origin": CORS_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key",
    }
    preflight = server.client.options("/v1/classify", headers=preflight_headers)
    stranger = server.client.get(
        "/healthz", headers={"origin": "https://elsewhere.example"}
    )
    allowed = server.client.get("/healthz", headers={"origin": CORS_ORIGIN})

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in stranger.headers
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN


def without_timings(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "timings_ms"}


def test_uvicorn_functions_framework_and_lambda_answer_the_same_json(
    servers: dict[str, Server], clips: Clips, service_env: None
) -> None:
    body = multipart_body(clips.good.read_bytes(), {"top_k": "4"})
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **KEY}
    params = {"labels": "hello,yes,no,please,thankyou"}

    answers = {}
    for name, running in servers.items():
        response = httpx.post(
            running.url + "/v1/classify",
            content=body,
            headers=headers,
            params=params,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        answers[name] = without_timings(response.json())
    event = http_api_event(body, params)
    event["headers"]["x-api-key"] = API_KEY
    reply = handler.lambda_handler(event, None)
    answers["lambda"] = without_timings(json.loads(reply["body"]))

    assert reply["statusCode"] == 200
    assert answers["uvicorn"]["vocabulary"]["size"] == 5
    assert answers["uvicorn"] == answers["functions-framework"] == answers["lambda"]


def test_schemathesis_finds_no_server_error_or_schema_violation(
    live_server: Server,
) -> None:
    command = [
        str(BIN / "schemathesis"),
        "run",
        live_server.url + "/openapi.json",
        "--header",
        f"x-api-key: {API_KEY}",
        "--checks",
        "all",
        # Random bytes are never a decodable clip, so valid-looking requests are
        # rightly refused: the one check that expects them accepted does not apply.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "10",
        "--workers",
        "1",
        "--seed",
        "20261203",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stdout[-4000:]
