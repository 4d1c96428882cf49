"""Two lanes of work for one clip's landmarks: the calling thread and one worker.

The face chain and the hand chain of a clip need nothing from each other, and inside
the hand chain the look-ups of two followed hands, or a look-up and a palm detection,
are independent too. These networks are small: a second intra-op thread barely speeds
up one call (a face-mesh call takes as long on two as on one), so two independent
calls side by side, one intra-op thread each, keep two cores busier.

Work handed to the worker is an offer, not a promise: if the worker has not started
it by the time the caller wants the result, the caller does it itself instead of
waiting in a queue. Each piece of work is a pure function of its inputs, so the
results never depend on which thread ran what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class Pending(Generic[T]):
    """Work offered to the worker; :meth:`result` gets its answer from either lane."""

    def __init__(self, work: Callable[[], T], future: Future[T] | None) -> None:
        self._work = work
        self._future = future

    def result(self) -> T:
        """The work's answer: the worker's, or computed here if it had not begun."""
        if self._future is None or self._future.cancel():
            return self._work()
        return self._future.result()


class Lanes:
    """The calling thread plus, when ``parallel``, one worker thread.

    Use as a context manager, one per clip; the worker stops on exit. Without
    ``parallel`` every piece of work runs in the calling thread when its result is
    asked for.
    """

    def __init__(self, parallel: bool) -> None:
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sign2text-landmarks")
            if parallel
            else None
        )
        self._offered: list[Future[Any]] = []

    def __enter__(self) -> Lanes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def offer(self, work: Callable[[], T]) -> Pending[T]:
        """Start ``work`` on the worker if there is one; collect it with ``result``."""
        if self._executor is None:
            return Pending(work, None)
        future = self._executor.submit(work)
        self._offered = [*self._unfinished(), future]
        return Pending(work, future)

    def _unfinished(self) -> list[Future[Any]]:
        return [future for future in self._offered if not future.done()]

    def worker_busy(self) -> bool:
        """True while the worker runs or holds offered work (always, on the worker).

        Only the calling thread offers work, so when this says False there, the
        worker stays idle until that thread offers more.
        """
        return bool(self._unfinished())

    def both(self, here: Callable[[], T], there: Callable[[], U]) -> tuple[T, U]:
        """Run ``here`` in this thread and ``there`` on the worker, side by side."""
        pending = self.offer(there)
        return here(), pending.result()

    def map(self, work: Callable[[T], U], items: Sequence[T]) -> list[U]:
        """``[work(item) for item in items]``, the first here, the rest offered."""
        if not items:
            return []
        offered = [self.offer(_bind(work, item)) for item in items[1:]]
        first = work(items[0])
        return [first, *(pending.result() for pending in offered)]


def _bind(work: Callable[[T], U], item: T) -> Callable[[], U]:
    return lambda: work(item)


SEQUENTIAL = Lanes(parallel=False)
"""Lanes with no worker: everything runs in the calling thread, in order."""
