"""How the server shares storage associations with its worker processes
(:meth:`WorkerPool.assign`): it moves associations until it serves at most one more
than the least loaded worker, and only to workers that are ready."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from isengard.config import Settings
from isengard.dimse_workers import WorkerPool


def _pool(count: int, *ready: int) -> WorkerPool:
    pool = WorkerPool(Settings(), count, on_change=lambda: None, notify_changes=False,
                      on_event=lambda: None)
    for number in ready:
        pool.workers[number - 1].ready = True
    return pool


def _associations(count: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(move_to=None) for _ in range(count)]


def _moved(associations: list[SimpleNamespace]) -> list[int]:
    return [a.move_to.number for a in associations if a.move_to is not None]


@pytest.mark.parametrize(("here", "moved"), [
    (1, []), (2, [1]), (3, [1]), (4, [1, 1]), (5, [1, 1]), (8, [1, 1, 1, 1])])
def test_one_worker_takes_half(here, moved):
    associations = _associations(here)
    _pool(1, 1).assign(associations)
    assert _moved(associations) == moved


def test_two_workers_take_a_third_each():
    associations = _associations(6)
    pool = _pool(2, 1, 2)
    pool.assign(associations)
    assert sorted(_moved(associations)) == [1, 1, 2, 2]
    assert [w.pending for w in pool.workers] == [2, 2]


def test_what_a_worker_serves_counts():
    pool = _pool(1, 1)
    pool.workers[0].active = 2
    associations = _associations(3)
    pool.assign(associations)
    assert _moved(associations) == []  # 3 here against 2 there: balanced enough
    associations = _associations(5)
    pool.assign(associations)
    assert _moved(associations) == [1]


def test_nothing_moves_to_a_worker_not_ready():
    associations = _associations(4)
    _pool(2).assign(associations)
    assert _moved(associations) == []
    _pool(2, 2).assign(associations)
    assert _moved(associations) == [2, 2]


def test_a_move_to_a_worker_that_stopped_fails_and_is_uncounted():
    pool = _pool(1, 1)
    associations = _associations(4)
    pool.assign(associations)
    worker = pool.workers[0]
    worker.ready = False  # stopped meanwhile (idle, dead, the server stopping)
    assert pool.send(worker, None, {}) is False  # type: ignore[arg-type]
    pool.cancel(worker)  # the other ended before it could move
    assert (worker.pending, worker.active) == (0, 0)
