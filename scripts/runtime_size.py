"""Print what deploying Sign2Text costs: installed size and cold-import time.

Installs requirements.txt alone into a fresh virtual environment (as the Lambda
image and the Cloud Functions build do), sums the installed files per package,
and times the cold start of each entry point: `import handler` and a first call
that needs no model, then a first classification, each in a fresh interpreter,
median of --repeat runs. For comparison it installs the previous service's stack,
PyTorch 2.13.0 (CPU build) with torchvision 0.28.0, into a second throwaway
environment and measures its size and the cold import of torch.

Usage (from the repository root; takes a few minutes, mostly pip):

    .venv/bin/python scripts/runtime_size.py [--repeat 5] [--skip-baseline]

Nothing is installed into the project's own .venv. Timings depend on what else
the machine is doing; the figures come from one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Files a fresh venv brings before anything is installed: not part of the bill.
VENV_BOOTSTRAP = {"pip", "setuptools", "wheel"}

# The previous service ran on PyTorch and torchvision. 2.13.0 is the CPU build
# pip takes on this machine; torchvision 0.28.0 is the release that requires it.
TORCH = "torch==2.13.0"
TORCHVISION = "torchvision==0.28.0"

# Each probe runs in a fresh interpreter from the repository root and prints how
# long its statements took and the process's peak RSS.
PROBE = """
import json, resource, time
start = time.perf_counter()
{statements}
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_s = usage.ru_utime + usage.ru_stime
rss_mb = usage.ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "cpu_s": cpu_s, "rss_mb": rss_mb}}))
"""

HEALTH_EVENT = {
    "version": "2.0",
    "routeKey": "GET /healthz",
    "rawPath": "/healthz",
    "rawQueryString": "",
    "headers": {"host": "localhost"},
    "requestContext": {
        "http": {"method": "GET", "path": "/healthz", "sourceIp": "127.0.0.1"},
        "requestId": "probe",
        "routeKey": "GET /healthz",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}

# The first call of each entry point with a request that needs no model, so the
# figure is what the platform pays before any work: imports and set-up.
FIRST_CALLS = {
    "import handler (nothing else)": "import handler",
    "lambda_handler: GET /healthz event": f"""
import handler
answer = handler.lambda_handler({HEALTH_EVENT!r}, None)
assert answer["statusCode"] == 200, answer
""",
    "sign2text_http: GET /healthz (Flask request)": """
import handler
from flask import Flask, request
with Flask("probe").test_request_context("/healthz"):
    body, status, headers = handler.sign2text_http(request)
assert status == 200, body
""",
    "sign2text_gcs: event of another type (ignored)": """
import handler
from cloudevents.http import CloudEvent
attributes = {
    "type": "google.cloud.storage.object.v1.deleted",
    "source": "//storage.googleapis.com/projects/_/buckets/uploads",
}
handler.sign2text_gcs(CloudEvent(attributes, {"bucket": "uploads", "name": "a.mp4"}))
""",
    "app: build the FastAPI app": "import handler\nhandler.app",
}

CLASSIFY_EVENT = ROOT / "events" / "apigw-http-classify.json"
FIRST_CLASSIFICATION = f"""
import json, handler
event = json.loads(open({str(CLASSIFY_EVENT)!r}).read())
answer = handler.lambda_handler(event, None)
assert answer["statusCode"] == 200, answer
"""

# The bucket path's worst case: a clip as long as the default limit allows, in
# full HD, classified by the core as the bucket function does after fetching it.
LONGEST_CLIP_SECONDS = 20.0
LONGEST_CLIP_SIZE = (1920, 1080)
LONGEST_CLIP_LABEL = "20 s, 1920x1080, H.264 at 8 Mbit/s"
CLASSIFY_CLIP = """
import handler, sign2text_core
prediction = sign2text_core.classify({clip!r})
"""


@dataclass
class Environment:
    """A throwaway virtual environment and its site-packages folder."""

    python: Path
    site_packages: Path


def make_environment(folder: Path) -> Environment:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Environment(python=python, site_packages=Path(site))


def pip_install(env: Environment, *args: str) -> None:
    command = [str(env.python), "-m", "pip", "install", "-q"]
    command += ["--disable-pip-version-check", *args]
    subprocess.run(command, check=True)


def package_sizes(site_packages: Path) -> dict[str, int]:
    """Bytes on disk per installed distribution, from each one's RECORD."""
    sizes: dict[str, int] = {}
    for record in site_packages.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0].lower().replace("_", "-")
        if name in VENV_BOOTSTRAP:
            continue
        sizes[name] = sum(_recorded_file_sizes(site_packages, record))
    return sizes


def _recorded_file_sizes(site_packages: Path, record: Path) -> list[int]:
    sizes = []
    with record.open(newline="") as rows:
        for row in csv.reader(rows):
            path = (site_packages / row[0]).resolve()
            if path.is_file():
                sizes.append(path.stat().st_size)
    return sizes


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def time_probe(
    python: Path, code: str, repeat: int, cwd: Path
) -> tuple[float, float, float] | str:
    """Medians of wall seconds, CPU seconds and peak RSS (MB) of `code`, each run in
    a fresh interpreter. CPU time includes the interpreter's start-up.

    Returns the error text instead when the probe fails.
    """
    seconds, cpu, rss = [], [], []
    for _ in range(repeat):
        run = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, cwd=cwd
        )
        if run.returncode != 0:
            return run.stderr.strip().splitlines()[-1]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        seconds.append(result["seconds"])
        cpu.append(result["cpu_s"])
        rss.append(result["rss_mb"])
    return statistics.median(seconds), statistics.median(cpu), statistics.median(rss)


def measure_runtime(work: Path, repeat: int) -> list[str]:
    env = make_environment(work / "runtime")
    pip_install(env, "-r", str(ROOT / "requirements.txt"))
    sizes = package_sizes(env.site_packages)

    lines = ["## Runtime requirements (requirements.txt, fresh venv)", ""]
    lines += _size_table(sizes, top=10)
    lines += ["", f"Code and model bundle copied beside them: {_copied_size()}", ""]
    lines += [f"## Cold start (median of {repeat} fresh interpreters)", ""]
    lines += ["| first call | wall time | CPU time | peak RSS |"]
    lines += ["| --- | --: | --: | --: |"]
    for label, statements in FIRST_CALLS.items():
        code = PROBE.format(statements=statements)
        lines.append(_timing_row(label, time_probe(env.python, code, repeat, ROOT)))
    if CLASSIFY_EVENT.is_file():
        code = PROBE.format(statements=FIRST_CLASSIFICATION)
        label = f"lambda_handler: first classification ({CLASSIFY_EVENT.name})"
        lines.append(_timing_row(label, time_probe(env.python, code, repeat, ROOT)))
    clip = make_longest_clip(work)
    code = PROBE.format(statements=CLASSIFY_CLIP.format(clip=str(clip)))
    label = f"first classification of the longest clip ({LONGEST_CLIP_LABEL})"
    lines.append(_timing_row(label, time_probe(env.python, code, repeat, ROOT)))
    return lines


def make_longest_clip(work: Path) -> Path:
    """A clip at the default duration limit, in full HD: the most a clip may cost."""
    sys.path.insert(0, str(ROOT))
    from tests.media import make_clip

    return make_clip(
        work / "longest.mp4",
        seconds=LONGEST_CLIP_SECONDS,
        size=LONGEST_CLIP_SIZE,
        # A phone's bitrate, which keeps the file under the default size limit.
        extra=[
            "-preset",
            "ultrafast",
            "-b:v",
            "8M",
            "-maxrate",
            "8M",
            "-bufsize",
            "16M",
        ],
    )


def measure_baseline(work: Path, repeat: int) -> list[str]:
    env = make_environment(work / "baseline")
    # torch first, alone, so that pip settles on the CPU build before
    # torchvision asks for "torch==2.13.0".
    pip_install(env, TORCH)
    pip_install(env, TORCHVISION)
    sizes = package_sizes(env.site_packages)

    lines = [f"## Previous service: {TORCH} (CPU) + {TORCHVISION}, fresh venv", ""]
    lines += _size_table(sizes, top=10)
    lines += ["", "| cold import | wall time | CPU time | peak RSS |"]
    lines += ["| --- | --: | --: | --: |"]
    for imports in ("import torch; torch.zeros(1)", "import torch, torchvision"):
        code = PROBE.format(statements=imports)
        lines.append(_timing_row(imports, time_probe(env.python, code, repeat, work)))
    return lines


def _size_table(sizes: dict[str, int], top: int) -> list[str]:
    ranked = sorted(sizes.items(), key=lambda item: item[1], reverse=True)
    rows = ["| package | installed |", "| --- | --: |"]
    rows += [f"| {name} | {_mb(size)} |" for name, size in ranked[:top]]
    rest = sum(size for _, size in ranked[top:])
    if rest:
        rows.append(f"| {len(ranked) - top} others | {_mb(rest)} |")
    rows.append(
        f"| **total ({len(ranked)} packages)** | **{_mb(sum(sizes.values()))}** |"
    )
    return rows


def _copied_size() -> str:
    parts = []
    for name in ("handler.py", "adapters", "sign2text_core", "models"):
        path = ROOT / name
        if path.is_dir():
            parts.append(f"{name}/ {_mb(folder_size(path))}")
        elif path.is_file():
            parts.append(f"{name} {_mb(path.stat().st_size)}")
        else:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def _timing_row(label: str, timing: tuple[float, float, float] | str) -> str:
    if isinstance(timing, str):
        return f"| {label} | failed: {timing} | | |"
    seconds, cpu_s, rss_mb = timing
    figures = f"{seconds * 1000:.0f} ms | {cpu_s * 1000:.0f} ms | {rss_mb:.0f} MB"
    return f"| {label} | {figures} |"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sign2text-size-") as folder:
        work = Path(folder)
        lines = measure_runtime(work, args.repeat)
        if not args.skip_baseline:
            lines += ["", *measure_baseline(work, args.repeat)]
    lines += ["", f"Python {sys.version.split()[0]} on {os.uname().machine}."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
