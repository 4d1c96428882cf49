"""Write the sample HTTP events in events/: API Gateway REST (v1), HTTP API (v2) and a
Lambda Function URL, each POSTing a small clip to /v1/classify as base64 multipart.

The clip is a synthetic ffmpeg test pattern (no person in it), so it classifies with
``no_hands`` true; it proves the path end to end, not the model. Usable with
``sam local invoke -e events/<file>`` and by the tests.

    .venv/bin/python scripts/make_events.py [--out events]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "sign2text-sample-boundary"
REQUEST_TIME = "03/Dec/2026:12:00:00 +0000"
REQUEST_EPOCH_MS = 1796299200000
ACCOUNT = "123456789012"
USER_AGENT = "curl/8.5.0"
SOURCE_IP = "198.51.100.7"


def make_clip(path: Path) -> bytes:
    """A 0.6-second 160x120 H.264 test pattern at 10 fps, bit-exact between runs."""
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=0.6",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-movflags",
        "+faststart",
        str(path),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return path.read_bytes()


def multipart_body(video: bytes, fields: dict[str, str]) -> bytes:
    """A multipart/form-data body with `fields` and the clip as the field 'video'."""
    lines: list[bytes] = []
    for name, value in fields.items():
        lines += [
            f"--{BOUNDARY}".encode(),
            f'Content-Disposition: form-data; name="{name}"'.encode(),
            b"",
            value.encode(),
        ]
    lines += [
        f"--{BOUNDARY}".encode(),
        b'Content-Disposition: form-data; name="video"; filename="clip.mp4"',
        b"Content-Type: video/mp4",
        b"",
        video,
        f"--{BOUNDARY}--".encode(),
        b"",
    ]
    return b"\r\n".join(lines)


def _headers(host: str, body: bytes) -> dict[str, str]:
    return {
        "accept": "application/json",
        "content-length": str(len(body)),
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "host": host,
        "user-agent": USER_AGENT,
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }


def rest_api_event(body: bytes, query: dict[str, str]) -> dict[str, Any]:
    """API Gateway REST API (payload format 1.0) proxy integration."""
    host = "abc123defg.execute-api.us-east-1.amazonaws.com"
    headers = _headers(host, body)
    return {
        "resource": "/v1/classify",
        "path": "/v1/classify",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123defg",
            "domainName": host,
            "domainPrefix": "abc123defg",
            "extendedRequestId": "Zx1sample0AMEbXg=",
            "httpMethod": "POST",
            "identity": {"sourceIp": SOURCE_IP, "userAgent": USER_AGENT},
            "path": "/Prod/v1/classify",
            "protocol": "HTTP/1.1",
            "requestId": "6f1c1c55-7a2e-4d6e-9b1a-0d3b0c1e2f01",
            "requestTime": REQUEST_TIME,
            "requestTimeEpoch": REQUEST_EPOCH_MS,
            "resourceId": "a1b2c3",
            "resourcePath": "/v1/classify",
            "stage": "Prod",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _v2_event(
    body: bytes, query: dict[str, str], *, host: str, route_key: str, api_id: str
) -> dict[str, Any]:
    raw_query = "&".join(f"{name}={value}" for name, value in query.items())
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": "/v1/classify",
        "rawQueryString": raw_query,
        "headers": _headers(host, body),
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": api_id,
            "http": {
                "method": "POST",
                "path": "/v1/classify",
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": "Zx1sample0AMEbXg=",
            "routeKey": route_key,
            "stage": "$default",
            "time": REQUEST_TIME,
            "timeEpoch": REQUEST_EPOCH_MS,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def http_api_event(body: bytes, query: dict[str, str]) -> dict[str, Any]:
    """API Gateway HTTP API (payload format 2.0)."""
    host = "k3m9p2q7r1.execute-api.us-east-1.amazonaws.com"
    return _v2_event(
        body, query, host=host, route_key="POST /v1/classify", api_id="k3m9p2q7r1"
    )


def function_url_event(body: bytes, query: dict[str, str]) -> dict[str, Any]:
    """Lambda Function URL (payload format 2.0, no routes)."""
    host = "q4w8e2r6t0y3u7i1o5p9a2s6d0f4g8h2.lambda-url.us-east-1.on.aws"
    return _v2_event(
        body,
        query,
        host=host,
        route_key="$default",
        api_id="q4w8e2r6t0y3u7i1o5p9a2s6d0f4g8h2",
    )


def write_events(folder: Path) -> list[Path]:
    """Write the three events into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        video = make_clip(Path(scratch) / "clip.mp4")

    events = {
        "apigw-rest-classify.json": rest_api_event(
            multipart_body(video, {}), {"top_k": "3"}
        ),
        "apigw-http-classify.json": http_api_event(
            multipart_body(video, {"top_k": "3"}), {"labels": "hello,yes,no"}
        ),
        "function-url-classify.json": function_url_event(
            multipart_body(video, {"labels": "hello,please,thankyou"}), {}
        ),
    }
    written = []
    for name, event in events.items():
        path = folder / name
        path.write_text(json.dumps(event, indent=2) + "\n")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "events")
    arguments = parser.parse_args()
    for path in write_events(arguments.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
