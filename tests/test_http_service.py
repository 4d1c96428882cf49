"""The framework-free HTTP service in this process: parsing, settings, CORS, logs and
the deployment-wide default vocabulary, with the real classifier."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sign2text_core import errors, signs
from sign2text_core.limits import Limits
from sign2text_core.service import (
    MAX_FORM_PARTS,
    HttpRequest,
    Reply,
    Service,
    ServiceConfig,
    parse_form,
    read_upload,
)
from tests.media import make_clip


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("service-clips")
    return make_clip(
        folder / "clip.mp4", seconds=0.4, fps=10, size=(160, 120)
    ).read_bytes()


def config(**overrides: object) -> ServiceConfig:
    settings: dict[str, object] = {"limits": Limits(), "max_concurrency": 2}
    settings.update(overrides)
    return ServiceConfig(**settings)  # type: ignore[arg-type]


def raw_request(body: bytes, query: str = "", **headers: str) -> HttpRequest:
    all_headers = {"content-type": "video/mp4", **headers}
    return HttpRequest("POST", "/v1/classify", all_headers, query, body)


def form(*parts: tuple[str, str, bytes], boundary: str = "b0undary") -> bytes:
    lines: list[bytes] = []
    for name, filename, content in parts:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        lines += [f"--{boundary}".encode(), disposition.encode(), b"", content]
    lines += [f"--{boundary}--".encode(), b""]
    return b"\r\n".join(lines)


def test_the_environment_default_vocabulary_applies_unless_labels_are_given(
    monkeypatch: pytest.MonkeyPatch, clip_bytes: bytes
) -> None:
    monkeypatch.setenv("SIGN2TEXT_LABELS", "hello, yes")
    service = Service(config(), classifier=signs.Classifier())

    by_default = service.handle(raw_request(clip_bytes)).document()
    asked = service.handle(raw_request(clip_bytes, "labels=no,please,no")).document()
    model = service.handle(HttpRequest("GET", "/v1/model", {})).document()

    assert by_default["vocabulary"]["labels"] == ["hello", "yes"]
    assert {entry["label"] for entry in by_default["top_k"]} == {"hello", "yes"}
    assert asked["vocabulary"]["labels"] == ["no", "please"]
    assert model["default_labels"] == ["hello", "yes"]


def test_one_json_log_line_per_request_without_the_body(
    clip_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(config())
    with caplog.at_level(logging.INFO, logger="sign2text_core.service"):
        reply = service.handle(
            raw_request(clip_bytes, "top_k=2", **{"x-request-id": "r-1"})
        )
        service.handle(raw_request(b"not a video"))

    lines = [json.loads(record.getMessage()) for record in caplog.records]
    assert [line["status"] for line in lines] == [200, 422]
    assert [line["cold_start"] for line in lines] == [True, False]
    assert lines[0]["request_id"] == "r-1" == reply.headers["x-request-id"]
    assert lines[0]["label"] == reply.document()["label"]
    assert set(lines[0]["timings_ms"]) and lines[0]["clip"]["width"] == 160
    assert lines[1]["error"] == "not_a_video"
    assert "not a video" not in caplog.text


def test_a_request_id_that_is_not_a_plain_token_is_replaced() -> None:
    service = Service(config())

    reply = service.handle(HttpRequest("GET", "/healthz", {"x-request-id": "a b\n"}))

    assert reply.headers["x-request-id"] != "a b\n"
    assert len(reply.headers["x-request-id"]) == 32


def test_no_cors_headers_unless_origins_are_configured() -> None:
    service = Service(config())
    preflight = HttpRequest(
        "OPTIONS",
        "/v1/classify",
        {"origin": "https://app.example", "access-control-request-method": "POST"},
    )

    reply = service.handle(preflight)

    assert reply.status == 405
    assert "access-control-allow-origin" not in reply.headers


def test_any_origin_is_allowed_with_a_wildcard() -> None:
    service = Service(config(cors_origins=("*",)))

    reply = service.handle(
        HttpRequest("GET", "/healthz", {"origin": "https://a.example"})
    )

    assert reply.headers["access-control-allow-origin"] == "https://a.example"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_concurrency_setting_fails_at_start_up_naming_it(value: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="SIGN2TEXT_MAX_CONCURRENCY"):
        ServiceConfig.from_env({"SIGN2TEXT_MAX_CONCURRENCY": value})


def test_settings_are_read_from_the_environment() -> None:
    settings = ServiceConfig.from_env(
        {
            "SIGN2TEXT_MAX_CONCURRENCY": "3",
            "SIGN2TEXT_API_KEY": "k",
            "SIGN2TEXT_CORS_ORIGINS": " https://a.example ,https://b.example,",
        }
    )

    assert settings.max_concurrency == 3
    assert settings.api_key == "k"
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    service = Service(config(limits=Limits(max_bytes=1000)))

    with pytest.raises(errors.VideoTooLarge):
        service.check_declared_length({"content-length": str(1000 + 64 * 1024 + 1)})
    service.check_declared_length({"content-length": "1000"})


def test_form_parts_are_split_with_preamble_quoted_boundary_and_binary_content() -> (
    None
):
    video = b"\x00\r\n--b0undar\r\n\xff"
    body = b"preamble\r\n" + form(("top_k", "", b"3"), ("video", "c.mp4", video))
    request = raw_request(
        body, **{"content-type": 'multipart/form-data; boundary="b0undary"'}
    )

    upload = read_upload(request)

    assert upload.video == video
    assert upload.top_k == 3


def test_a_part_without_headers_is_ignored() -> None:
    body = (
        b"--x\r\n\r\nloose\r\n"
        b"--x\r\nContent-Disposition: form-data; name=video\r\n\r\nv\r\n--x--"
    )

    parts = parse_form(body, "x")

    assert [(part.name, part.content) for part in parts] == [
        (None, b"loose"),
        ("video", b"v"),
    ]


def test_too_many_form_parts_are_refused() -> None:
    body = form(*[(f"f{index}", "", b"1") for index in range(MAX_FORM_PARTS + 1)])

    with pytest.raises(errors.MalformedRequest):
        parse_form(body, "b0undary")


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ([("video", "a.mp4", b"1"), ("video", "b.mp4", b"2")], errors.InvalidParameter),
        (
            [("video", "a.mp4", b"1"), ("labels", "", b"\xff\xfe")],
            errors.InvalidParameter,
        ),
        ([("labels", "", b"hello")], errors.MissingVideo),
    ],
    ids=["two videos", "labels not utf-8", "labels but no video"],
)
def test_form_mistakes_have_their_own_errors(
    parts: list[tuple[str, str, bytes]], error: type[errors.Sign2TextError]
) -> None:
    request = raw_request(
        form(*parts), **{"content-type": "multipart/form-data; boundary=b0undary"}
    )

    with pytest.raises(error):
        read_upload(request)


def test_labels_are_comma_separated_and_may_repeat() -> None:
    upload = read_upload(raw_request(b"v", "labels=hello,%20yes&labels=no,,"))

    assert upload.labels == ["hello", "yes", "no"]


def test_replies_never_carry_nan_which_json_lacks() -> None:
    reply = Reply.json(200, {"fps": float("nan"), "nested": [float("inf"), 1.5]})

    assert json.loads(reply.body) == {"fps": None, "nested": [None, 1.5]}


def test_service_answers_every_route_it_documents(tmp_path: Path) -> None:
    service = Service(config(), documents={"/openapi.json": Reply.json(200, {})})

    statuses = {
        path: service.handle(HttpRequest("GET", path, {})).status
        for path in ("/", "/healthz", "/openapi.json", "/v1/model", "/nope")
    }

    assert statuses == {
        "/": 200,
        "/healthz": 200,
        "/openapi.json": 200,
        "/v1/model": 200,
        "/nope": 404,
    }


def test_fixed_documents_do_not_keep_one_request_s_headers() -> None:
    service = Service(
        config(cors_origins=("https://a.example",)),
        documents={"/openapi.json": Reply.json(200, {})},
    )

    first = service.handle(
        HttpRequest("GET", "/openapi.json", {"origin": "https://a.example"})
    )
    second = service.handle(HttpRequest("GET", "/openapi.json", {}))

    assert first.headers["access-control-allow-origin"] == "https://a.example"
    assert "access-control-allow-origin" not in second.headers
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
