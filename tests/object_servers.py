"""Real object-store servers on 127.0.0.1 for the bucket tests, and proxies to break.

- ``moto_server`` (moto in server mode) speaks S3;
- ``gcp-storage-emulator`` speaks the Cloud Storage JSON API;
- ``TcpProxy`` forwards bytes to a server and can drop every connection on demand, to
  make a store fail the way a network does;
- ``GcsProxy`` forwards HTTP to the Cloud Storage emulator and adds what the emulator
  leaves out: it honours ``ifGenerationMatch`` (412 when the object is not at that
  generation, with 0 meaning "no live object") like Cloud Storage does, so conditional
  writes can be tested. It can drop connections too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


@contextlib.contextmanager
def serving(command: list[str], port: int, timeout_s: float = 20.0) -> Iterator[str]:
    """Run a server process until the block ends; yields its base URL."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process, timeout_s)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with serving(command, port) as url:
        yield url


@contextlib.contextmanager
def gcs_emulator() -> Iterator[str]:
    port = free_port()
    command = [
        str(BIN / "gcp-storage-emulator"),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "-q",
    ]
    with serving(command, port) as url:
        yield url


class TcpProxy:
    """Forwards TCP connections to ``upstream_port``; ``drop()`` breaks them all."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._dropping = threading.Event()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def drop(self) -> None:
        """Close every open connection and refuse new ones until ``restore()``."""
        self._dropping.set()
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._dropping.clear()

    def close(self) -> None:
        self._closed.set()
        self.drop()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._dropping.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(source, target), daemon=True
                ).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class GcsProxy:
    """HTTP proxy in front of the Cloud Storage emulator that enforces preconditions."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.dropping = threading.Event()
        # Conditional requests are checked and forwarded one at a time, so the
        # check and the write are atomic, as they are on Cloud Storage.
        self.conditional_lock = threading.Lock()
        self.requests = 0
        handler = type("Handler", (_GcsProxyHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def drop(self) -> None:
        self.dropping.set()

    def restore(self) -> None:
        self.dropping.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=30
        )
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def generation(self, bucket: str, name: str) -> int:
        """The live generation of an object, or 0 when there is none."""
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        status, _, body = self.forward("GET", path, {}, b"")
        if status == 404:
            return 0
        return int(json.loads(body)["generation"])


class _GcsProxyHandler(BaseHTTPRequestHandler):
    proxy: GcsProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        self.proxy.requests += 1
        if self.proxy.dropping.is_set():
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in ("host", "connection", "content-length")
        }
        expected = parse_qs(urlsplit(self.path).query).get("ifGenerationMatch")
        if expected is None:
            self._reply(*self.proxy.forward(self.command, self.path, headers, body))
            return
        with self.proxy.conditional_lock:
            target = _target(self.path, body)
            if target is not None and self.proxy.generation(*target) != int(
                expected[0]
            ):
                self._precondition_failed()
                return
            self._reply(*self.proxy.forward(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in (
                "transfer-encoding",
                "connection",
                "content-length",
            ):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _precondition_failed(self) -> None:
        error = {"error": {"code": 412, "message": "Precondition Failed"}}
        body = json.dumps(error).encode()
        self._reply(412, [("Content-Type", "application/json")], body)


def _target(path: str, body: bytes) -> tuple[str, str] | None:
    """The (bucket, object name) a Cloud Storage JSON API request acts on."""
    parts = urlsplit(path)
    segments = parts.path.split("/")
    if "b" not in segments:
        return None
    bucket = unquote(segments[segments.index("b") + 1])
    if "o" in segments and segments.index("o") + 1 < len(segments):
        return bucket, unquote(segments[segments.index("o") + 1])
    name = parse_qs(parts.query).get("name")
    if name:
        return bucket, name[0]
    return bucket, _name_from_multipart(body)


def _name_from_multipart(body: bytes) -> str:
    """The object name in the JSON part of a multipart upload."""
    start = body.index(b"{")
    metadata, _ = json.JSONDecoder().raw_decode(body[start:].decode("utf-8", "replace"))
    return str(metadata["name"])


def s3_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client for a local server, with short timeouts and few retries."""
    import boto3
    from botocore.config import Config

    settings: dict[str, Any] = {
        "connect_timeout": 2,
        "read_timeout": 10,
        "retries": {"max_attempts": 2, "mode": "standard"},
        **config,
    }
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**settings),
    )


def gcs_client(endpoint_url: str) -> Any:
    """A google-cloud-storage client for a local emulator, anonymous credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="sign2text-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint_url},
    )
