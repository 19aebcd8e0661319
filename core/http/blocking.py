"""The threads that run the REST API's blocking work (index, files, peers) for the
event loop.

Starlette's ``run_in_threadpool`` (anyio) costs 110-120 µs of CPU per call on this kind
of machine: a capacity limiter, a cancel scope, a ``concurrent.futures`` future wrapped
in an asyncio one. A call here costs 55-65 µs, near the two thread switches it cannot
avoid (~35 µs): the call is queued with an asyncio future, an idle thread runs it and
hands the outcome back with one ``call_soon_threadsafe``. A ``POST /instances`` of a
small file, its ingest left out, went from 207 to 150-174 µs of CPU in process
(docs/performance.md, tenth round).

Semantics are anyio's: the function runs in the caller's context (``contextvars``), at
most :data:`MAX_THREADS` at once (more wait their turn), a thread is started when every
other one is busy and ends after :data:`IDLE_EXIT` seconds without a call. One
difference: a caller cancelled while its function runs stops waiting; the function runs
to its end and its outcome is dropped.
:meth:`BlockingCalls.close` lets running calls finish (the server's stop waits for
in-flight work before closing the index).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["IDLE_EXIT", "MAX_THREADS", "BlockingCalls"]

T = TypeVar("T")

MAX_THREADS = 40  # as anyio's default thread limiter
IDLE_EXIT = 10.0  # seconds a thread waits for a call before it ends, as anyio's

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context,
              Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class BlockingCalls:
    def __init__(self, max_threads: int = MAX_THREADS, idle_exit: float = IDLE_EXIT,
                 name: str = "isengard-http-call"):
        self._max_threads = max_threads
        self._idle_exit = idle_exit
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # calls queued or running
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads there are now."""
        with self._lock:
            return len(self._threads)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in one of the threads; its result or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is stopping")
            self._busy += 1
            if self._busy > len(self._threads) and len(self._threads) < self._max_threads:
                thread = threading.Thread(target=self._serve, daemon=True,
                                          name=f"{self._name}-{len(self._threads) + 1}")
                self._threads.append(thread)
                thread.start()
            self._calls.put((loop, future, contextvars.copy_context(), fn, args, kwargs))
        return await future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new calls, let the queued and running ones finish (at most ``timeout``
        seconds in all), stop the threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._calls.put(None)  # after the calls already queued
        end = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        with self._lock:
            self._threads = [thread for thread in self._threads if thread.is_alive()]

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                call = self._calls.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    # Every queued call is counted in _busy (both under the lock): leave
                    # only if the threads left are enough for them.
                    if self._busy < len(self._threads):
                        self._threads.remove(me)
                        return
                continue
            if call is None:
                return
            loop, future, context, fn, args, kwargs = call
            try:
                outcome, failed = context.run(fn, *args, **kwargs), False
            except BaseException as exc:  # handed to the caller, as anyio does
                outcome, failed = exc, True
            del call, fn, args, kwargs  # nothing of the call kept while idle
            with self._lock:
                self._busy -= 1
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, failed)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
            del future, outcome


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.cancelled():
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
