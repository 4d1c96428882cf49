"""Load and cold start of the HTTP API, against `uvicorn handler:app` on this machine.

Starts the server on a free 127.0.0.1 port (or uses --url), then drives 8 and then 32
concurrent clients, each POSTing the same clip to /v1/classify in a loop for a bounded
time. A client that gets 503 (busy) waits --backoff seconds before its next request, as
a polite client honouring Retry-After would. Prints requests/s, latency percentiles,
answers by status and the server's peak resident memory.

Cold start, each in a fresh interpreter: the time to import ``handler`` for each entry
point (bare, the FastAPI app, the Lambda handler's first HTTP answer, the Cloud
Function's first answer), and the server's time to its first answer and first
classification.

    .venv/bin/python benchmarks/load.py [--seconds 20] [--clients 8 32] [--clip PATH]

Figures are only as quiet as the machine: run it alone for numbers worth quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Phase:
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    ok_latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    elapsed_s: float = 0.0


def make_clip(folder: Path) -> Path:
    """A 1-second 320x240 H.264 test pattern at 30 fps (no hands in it)."""
    path = folder / "load.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error"]
    command += ["-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """A memory figure of a process from /proc (Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def local_server(
    env: dict[str, str],
) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """uvicorn serving handler:app: its URL, process and seconds to first answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "uvicorn"), "handler:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
            if process.poll() is not None:
                raise RuntimeError("the server exited before answering")
        yield url, process, time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def drive(
    url: str, video: bytes, phase: Phase, backoff_s: float, pid: int | None
) -> None:
    """Run `phase.clients` clients for `phase.seconds`, recording every answer."""
    deadline = time.perf_counter() + phase.seconds
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = http.post(
                        url + "/v1/classify",
                        content=video,
                        headers={"content-type": "video/mp4"},
                    )
                    status = str(response.status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                latency_ms = (time.perf_counter() - started) * 1000
                with lock:
                    phase.latencies_ms.append(latency_ms)
                    phase.statuses[status] += 1
                    if status == "200":
                        phase.ok_latencies_ms.append(latency_ms)
                if status == "503":
                    time.sleep(backoff_s)

    def watch_memory() -> None:
        while pid is not None and not done.is_set():
            phase.peak_rss_mb = max(phase.peak_rss_mb, rss_mb(pid))
            done.wait(0.1)

    watcher = threading.Thread(target=watch_memory, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=phase.clients) as pool:
        for _ in range(phase.clients):
            pool.submit(client)
    phase.elapsed_s = time.perf_counter() - started
    done.set()
    watcher.join()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[
        round(fraction * 100) - 1
    ]


def report_phase(phase: Phase) -> None:
    total = sum(phase.statuses.values())
    ok = phase.statuses.get("200", 0)
    statuses = ", ".join(
        f"{status}: {count}" for status, count in sorted(phase.statuses.items())
    )
    print(f"\n{phase.clients} clients, {phase.elapsed_s:.1f} s")
    print(f"  requests/s      {total / phase.elapsed_s:8.2f}   (all answers)")
    print(f"  classified/s    {ok / phase.elapsed_s:8.2f}   (200 answers)")
    for name, values in (("200", phase.ok_latencies_ms), ("all", phase.latencies_ms)):
        p50, p95, p99 = (percentile(values, q) for q in (0.50, 0.95, 0.99))
        print(f"  latency {name:<4} ms  p50 {p50:7.0f}  p95 {p95:7.0f}  p99 {p99:7.0f}")
    print(f"  answers         {statuses}")
    print(f"  server RSS peak {phase.peak_rss_mb:8.0f} MiB (sampled every 0.1 s)")


COLD_IMPORTS = {
    "import handler": "import handler",
    "handler.app (FastAPI, uvicorn)": "import handler; handler.app",
    "lambda_handler, first HTTP answer": textwrap.dedent(
        """
        import handler
        event = {"version": "2.0", "routeKey": "$default", "rawPath": "/healthz",
                 "rawQueryString": "", "headers": {"host": "x.lambda-url.on.aws"},
                 "requestContext": {"http": {"method": "GET", "path": "/healthz",
                 "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "b"}},
                 "isBase64Encoded": False}
        assert handler.lambda_handler(event, None)["statusCode"] == 200
        """
    ),
    "sign2text_http, first answer (Flask loaded first)": textwrap.dedent(
        """
        import time
        from flask import Request
        from werkzeug.test import EnvironBuilder
        __started = time.perf_counter()
        import handler
        request = Request(EnvironBuilder(path="/healthz").get_environ())
        assert handler.sign2text_http(request)[1] == 200
        """
    ),
}

COLD_TIMER = """
import time
__started = time.perf_counter()
{code}
print(time.perf_counter() - __started)
"""


def cold_import_s(code: str, repeats: int) -> float:
    """The median time of `code` in a fresh interpreter (the interpreter's own
    start-up excluded)."""
    times = []
    for _ in range(repeats):
        script = COLD_TIMER.format(code=code)
        run = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True
        )
        if run.returncode != 0:
            raise RuntimeError(run.stderr)
        times.append(float(run.stdout.split()[-1]))
    return statistics.median(times)


def report_cold_start(
    url: str, video: bytes, server_ready_s: float, repeats: int
) -> None:
    print(f"\nCold start (median of {repeats} fresh interpreters)")
    for name, code in COLD_IMPORTS.items():
        print(f"  {name:<52} {cold_import_s(code, repeats) * 1000:7.0f} ms")
    rows = [("uvicorn start to first /healthz answer", server_ready_s)]
    first_s, _ = timed_classify(url, video)
    warm_s, warm = timed_classify(url, video)
    rows += [
        ("first /v1/classify (loads the model)", first_s),
        ("second /v1/classify (warm)", warm_s),
    ]
    for name, seconds in rows:
        print(f"  {name:<52} {seconds * 1000:7.0f} ms")
    print(f"  stages of the warm one (ms): {json.dumps(warm.get('timings_ms'))}")


def timed_classify(url: str, video: bytes) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    response = httpx.post(
        url + "/v1/classify",
        content=video,
        headers={"content-type": "video/mp4"},
        timeout=120,
    )
    elapsed_s = time.perf_counter() - started
    document: dict[str, object] = response.json()
    return elapsed_s, document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--clip", type=Path, help="default: a synthetic 1 s clip")
    parser.add_argument("--backoff", type=float, default=0.25, help="wait after a 503")
    parser.add_argument("--repeats", type=int, default=3, help="cold-import runs")
    parser.add_argument(
        "--concurrency", help="SIGN2TEXT_MAX_CONCURRENCY for the server"
    )
    arguments = parser.parse_args()

    env = {}
    if arguments.concurrency:
        env["SIGN2TEXT_MAX_CONCURRENCY"] = arguments.concurrency
    with tempfile.TemporaryDirectory() as scratch:
        clip = arguments.clip or make_clip(Path(scratch))
        video = clip.read_bytes()

    print(f"clip: {clip.name}, {len(video)} bytes; {os.cpu_count()} CPUs")
    with local_server(env) as (url, process, ready_s):
        report_cold_start(url, video, ready_s, arguments.repeats)
        for clients in arguments.clients:
            phase = Phase(clients=clients, seconds=arguments.seconds)
            drive(url, video, phase, arguments.backoff, process.pid)
            report_phase(phase)
        print(f"\nserver RSS high-water mark {rss_mb(process.pid, 'VmHWM'):.0f} MiB")


if __name__ == "__main__":
    main()
