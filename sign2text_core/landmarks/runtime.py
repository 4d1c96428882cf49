"""ONNX Runtime sessions for the landmark networks, created once per process.

Every network file gets one ``onnxruntime.InferenceSession`` per intra-op thread
count, created on first use and shared by every thread afterwards
(``InferenceSession.run`` is safe to call concurrently). ``SIGN2TEXT_ORT_THREADS`` is
the number of threads one request may keep busy with ONNX Runtime; the landmark stage
divides it between its two lanes (see ``sign2text_core.landmarks``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sign2text_core.errors import ConfigurationError, ModelUnavailable

logger = logging.getLogger(__name__)

THREADS_ENV = "SIGN2TEXT_ORT_THREADS"

# More intra-op threads than this stops paying off for these small networks, and a
# big host would otherwise spawn dozens of threads per session.
MAX_DEFAULT_THREADS = 4

_lock = threading.Lock()
_sessions: dict[tuple[str, int], ort.InferenceSession] = {}


def available_cpus() -> int:
    """CPUs this process may run on (respects container and affinity limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def ort_threads() -> int:
    """Threads per request: ``SIGN2TEXT_ORT_THREADS`` or the CPUs, capped.

    Raises:
        ConfigurationError: the variable is set but is not a positive integer.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return min(available_cpus(), MAX_DEFAULT_THREADS)
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigurationError(
            f"{THREADS_ENV}={raw!r} is not valid: give a positive whole number"
        )
    return threads


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Each call is one small graph; parallel branches inside it are rare.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle worker threads would otherwise spin between the many small calls of a clip,
    # burning the cores that the decoder and other requests of this instance need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def get_session(
    model_path: str | os.PathLike[str], *, threads: int | None = None
) -> ort.InferenceSession:
    """The process-wide session for ``model_path``, created on first use.

    Args:
        model_path: an ONNX file.
        threads: intra-op threads; ``None`` means :func:`ort_threads`.

    Raises:
        ModelUnavailable: the file is missing or onnxruntime cannot load it.
        ConfigurationError: ``SIGN2TEXT_ORT_THREADS`` is invalid.
    """
    path = Path(model_path).resolve()
    thread_count = ort_threads() if threads is None else threads
    key = (str(path), thread_count)

    cached = _sessions.get(key)
    if cached is not None:
        return cached

    with _lock:
        cached = _sessions.get(key)
        if cached is None:
            cached = _create_session(path, thread_count)
            _sessions[key] = cached
    return cached


def _create_session(path: Path, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelUnavailable(f"Landmark network {path.name} is missing.")

    started = time.perf_counter()
    try:
        created = ort.InferenceSession(
            str(path),
            sess_options=session_options(threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as error:  # onnxruntime raises several unrelated types
        raise ModelUnavailable(
            f"Landmark network {path.name} cannot be loaded."
        ) from error

    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "onnx session created",
        extra={"model": path.name, "threads": threads, "load_ms": round(elapsed_ms, 1)},
    )
    return created


def clear_sessions() -> None:
    """Forget every cached session (for tests and benchmarks)."""
    with _lock:
        _sessions.clear()


def fixed_batch(session: ort.InferenceSession) -> int | None:
    """The batch size the graph's first input insists on, or None when dynamic."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def run_batch(session: ort.InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
    """Run ``batch`` (first axis = items) and return every output, batched alike.

    Graphs with a fixed batch of 1 are run once per item; graphs with a dynamic
    batch take the whole batch in one call.
    """
    input_name = session.get_inputs()[0].name
    if len(batch) == 0:
        raise ValueError("run_batch needs at least one item")

    if fixed_batch(session) != 1 or len(batch) == 1:
        outputs: Sequence[np.ndarray] = session.run(None, {input_name: batch})
        return list(outputs)

    per_item = [
        session.run(None, {input_name: batch[i : i + 1]}) for i in range(len(batch))
    ]
    return [np.concatenate(parts, axis=0) for parts in zip(*per_item, strict=True)]
