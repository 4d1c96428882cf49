"""Lanes: work offered to the worker, taken back when the worker is busy."""

from __future__ import annotations

import threading

import pytest

from sign2text_core.landmarks.lanes import SEQUENTIAL, Lanes


def thread_name() -> str:
    return threading.current_thread().name


def test_offered_work_runs_on_the_worker_when_it_is_free() -> None:
    started = threading.Event()

    def work() -> str:
        started.set()
        return thread_name()

    with Lanes(parallel=True) as lanes:
        pending = lanes.offer(work)
        assert started.wait(timeout=10)
        assert pending.result() != threading.current_thread().name


def test_offered_work_is_taken_back_while_the_worker_is_busy() -> None:
    release = threading.Event()
    with Lanes(parallel=True) as lanes:
        blocker = lanes.offer(lambda: release.wait(timeout=10))
        assert lanes.worker_busy()

        taken_back = lanes.offer(thread_name).result()

        assert taken_back == threading.current_thread().name
        release.set()
        assert blocker.result() is True
    assert not lanes.worker_busy()


def test_the_worker_is_idle_once_its_work_is_done() -> None:
    with Lanes(parallel=True) as lanes:
        lanes.offer(thread_name).result()
        assert not lanes.worker_busy()


def test_map_keeps_the_order_of_its_items() -> None:
    with Lanes(parallel=True) as lanes:
        squares = lanes.map(lambda item: item * item, [3, 1, 2, 5])
    assert squares == [9, 1, 4, 25]
    assert SEQUENTIAL.map(lambda item: -item, [1, 2]) == [-1, -2]
    assert SEQUENTIAL.map(lambda item: item, []) == []


def test_without_a_worker_everything_runs_here_in_order() -> None:
    here, there = SEQUENTIAL.both(thread_name, thread_name)
    assert here == there == threading.current_thread().name
    assert not SEQUENTIAL.worker_busy()


def test_an_error_in_offered_work_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("broken piece of work")

    with Lanes(parallel=True) as lanes, pytest.raises(ValueError, match="broken"):
        lanes.offer(fail).result()
