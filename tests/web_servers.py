"""Real HTTP servers on 127.0.0.1 for the HTTP tests, and the clips they send.

`uvicorn handler:app` and `functions-framework --target sign2text_http` run as child
processes on free ports, with the same ``SIGN2TEXT_*`` settings, and are stopped when
the tests are done.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.media import make_clip, run_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

API_KEY = "test-key-5b1f0c"
CORS_ORIGIN = "https://app.example"
MAX_BYTES = 2_000_000
MAX_DURATION_S = 4
MAX_FRAME_SIZE = (1280, 1280)

SERVICE_ENV = {
    "SIGN2TEXT_API_KEY": API_KEY,
    "SIGN2TEXT_CORS_ORIGINS": CORS_ORIGIN,
    "SIGN2TEXT_MAX_CONCURRENCY": "1",
    "SIGN2TEXT_MAX_BYTES": str(MAX_BYTES),
    "SIGN2TEXT_MAX_DURATION_S": str(MAX_DURATION_S),
    "SIGN2TEXT_MAX_FRAME_SIZE": "{}x{}".format(*MAX_FRAME_SIZE),
}
"""The settings every server under test gets (and the in-process service too)."""


@dataclass(frozen=True)
class Server:
    """A way to reach the API: a server process on 127.0.0.1, or Lambda in process."""

    name: str
    url: str
    client: httpx.Client
    process: subprocess.Popen[bytes] | None = None


class LambdaTransport(httpx.BaseTransport):
    """Sends each request through ``handler.lambda_handler`` as the HTTP API (payload
    2.0) event API Gateway would deliver, and turns its answer back into a response."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        import handler

        answer = handler.lambda_handler(http_api_event(request), None)

        body = answer.get("body") or ""
        content = (
            base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        )
        return httpx.Response(
            answer["statusCode"], headers=answer.get("headers", {}), content=content
        )


def http_api_event(request: httpx.Request) -> dict[str, object]:
    body = request.read()
    headers: dict[str, str] = {}
    for name, value in request.headers.multi_items():
        # API Gateway joins repeated headers with commas.
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.url.path,
        "rawQueryString": request.url.query.decode(),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.url.host,
            "http": {
                "method": request.method,
                "path": request.url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": "local-request",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def lambda_server() -> Server:
    transport = LambdaTransport()
    url = "https://lambda.invalid"
    return Server("lambda", url, httpx.Client(base_url=url, transport=transport))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(port: int) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        "handler:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def functions_framework_command(port: int) -> list[str]:
    return [
        str(BIN / "functions-framework"),
        "--target",
        "sign2text_http",
        "--source",
        "handler.py",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@contextmanager
def running_server(
    name: str,
    command_for_port: Callable[[int], list[str]],
    env: Mapping[str, str],
    log_path: Path,
) -> Iterator[Server]:
    """Start a server, wait until /healthz answers, and stop it afterwards."""
    port = free_port()
    command = command_for_port(port)
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        server = Server(name, url, httpx.Client(base_url=url, timeout=60), process)
        try:
            wait_until_ready(server, log_path)
            yield server
        finally:
            server.client.close()
            stop(process)


def wait_until_ready(server: Server, log_path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"{server.name} exited early:\n{output}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer within {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Clips:
    """Real media files made with ffmpeg: one good clip and one of each bad kind."""

    good: Path
    truncated: Path
    png: Path
    audio_only: Path
    too_long: Path
    huge_frame: Path
    too_large: Path


def make_clips(folder: Path) -> Clips:
    good = make_clip(folder / "good.mp4", seconds=0.4, fps=10, size=(160, 120))

    truncated = folder / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])

    png = folder / "frame.png"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(png)])

    audio_only = folder / "audio.m4a"
    tone = "sine=frequency=440:duration=1"
    run_ffmpeg(["-f", "lavfi", "-i", tone, "-c:a", "aac", str(audio_only)])

    too_long = make_clip(
        folder / "long.mp4", seconds=MAX_DURATION_S + 3, fps=5, size=(64, 48)
    )
    wide = (MAX_FRAME_SIZE[0] + 320, 32)
    huge_frame = make_clip(folder / "huge.mp4", seconds=0.2, fps=5, size=wide)

    too_large = folder / "large.mp4"
    too_large.write_bytes(good.read_bytes() + os.urandom(MAX_BYTES + 1024))
    return Clips(good, truncated, png, audio_only, too_long, huge_frame, too_large)
