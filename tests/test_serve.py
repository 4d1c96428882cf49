"""`sign2text serve`, the README's main command: the local emulator on the bundled
model, started as a user starts it and driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sign2text_core.bundle import load_bundle
from tests.web_servers import BIN, Server, running_server


def serve_command(port: int) -> list[str]:
    return [str(BIN / "sign2text"), "serve", "--host", "127.0.0.1", "--port", str(port)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server("sign2text serve", serve_command, {}, log_path) as server:
        yield server, log_path


def request_lines(log_path: Path) -> list[dict[str, object]]:
    """The JSON request lines the server printed (uvicorn's own lines are not JSON)."""
    lines = []
    for text in log_path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            line = json.loads(text)
            if line.get("event") == "http_request":
                lines.append(line)
    return lines


def test_serve_classifies_a_clip_with_the_bundled_model(
    served: tuple[Server, Path], small_clip: Path
) -> None:
    server, _ = served
    with small_clip.open("rb") as video:
        answer = server.client.post(
            "/v1/classify", params={"top_k": 3}, files={"video": video}
        )

    assert answer.status_code == 200, answer.text
    document = answer.json()
    known = set(load_bundle().labels)
    assert document["label"] in known
    assert document["top_k"][0]["label"] == document["label"]
    assert len(document["top_k"]) == 3
    assert {entry["label"] for entry in document["top_k"]} <= known


def test_serve_answers_bad_input_with_a_code_and_keeps_serving(
    served: tuple[Server, Path],
) -> None:
    server, _ = served
    empty = server.client.post("/v1/classify", files={"video": ("v.mp4", b"")})

    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "empty_upload"
    assert server.client.get("/healthz").status_code == 200


def test_serve_prints_one_json_line_per_request(served: tuple[Server, Path]) -> None:
    server, log_path = served
    before = len(request_lines(log_path))
    server.client.get("/v1/model")

    # The line is written before the answer is sent; allow the pipe a moment.
    deadline = time.monotonic() + 5
    while (
        len(lines := request_lines(log_path)) == before and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert len(lines) == before + 1
    assert lines[-1]["path"] == "/v1/model"
    assert lines[-1]["status"] == 200
