"""The REST API's threads for blocking work (core/http/blocking.py)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from isengard.http.blocking import BlockingCalls

WAIT = 10  # seconds before a test gives up waiting for a thread (never reached when it passes)


def run(coro):
    return asyncio.run(coro)


def test_result_exception_arguments_and_context_reach_the_caller():
    calls = BlockingCalls()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def work(a, b=0):
        return a + b, var.get(), threading.current_thread().name

    def fail():
        raise KeyError("missing")

    async def main():
        var.set("the caller's")
        result = await calls.run(work, 1, b=2)
        with pytest.raises(KeyError, match="missing"):
            await calls.run(fail)
        return result

    try:
        total, seen, thread = run(main())
    finally:
        calls.close(WAIT)
    assert total == 3
    assert seen == "the caller's"
    assert thread.startswith("isengard-http-call-")
    assert thread != threading.current_thread().name


def test_a_thread_is_started_while_every_other_one_is_busy_up_to_the_limit():
    calls = BlockingCalls(max_threads=2)
    running = 0
    most = 0
    lock = threading.Lock()
    both_running = threading.Barrier(2, timeout=WAIT)

    def work():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        both_running.wait()  # breaks (and fails the test) unless two run at once
        time.sleep(0.05)
        with lock:
            running -= 1
        return True

    async def main():
        return await asyncio.gather(*(calls.run(work) for _ in range(4)))

    try:
        assert run(main()) == [True] * 4
    finally:
        calls.close(WAIT)
    assert most == 2
    assert calls.threads == 0  # close() ended them


def test_a_cancelled_caller_stops_waiting_and_the_call_still_runs_to_its_end():
    calls = BlockingCalls()
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def work():
        started.set()
        release.wait(WAIT)
        finished.set()
        return "dropped"

    async def main():
        task = asyncio.ensure_future(calls.run(work))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        # The loop is still running when the outcome comes back: it is dropped quietly.
        return await calls.run(lambda: "next")

    try:
        assert run(main()) == "next"
    finally:
        calls.close(WAIT)
    assert finished.is_set()


def test_close_lets_running_calls_finish_then_refuses_new_ones():
    calls = BlockingCalls()
    started = threading.Event()
    finished = threading.Event()

    def slow():
        started.set()
        time.sleep(0.1)
        finished.set()

    async def start_and_close():
        task = asyncio.ensure_future(calls.run(slow))
        while not started.is_set():
            await asyncio.sleep(0.005)
        await asyncio.get_running_loop().run_in_executor(None, calls.close, WAIT)
        assert finished.is_set()  # close() returned only once the call had finished
        await task
        with pytest.raises(RuntimeError, match="stopping"):
            await calls.run(slow)

    run(start_and_close())
    calls.close(WAIT)  # idempotent


def test_idle_threads_end_and_new_calls_start_another():
    calls = BlockingCalls(idle_exit=0.05)

    async def main():
        assert await calls.run(lambda: 1) == 1
        deadline = time.monotonic() + WAIT
        while calls.threads and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert calls.threads == 0
        assert await calls.run(lambda: 2) == 2

    try:
        run(main())
    finally:
        calls.close(WAIT)


def test_the_sdk_runs_blocking_work_in_the_applications_threads_or_starlettes():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from isengard_sdk import run_blocking

    async def endpoint(request):
        name = await run_blocking(request, lambda: threading.current_thread().name)
        return PlainTextResponse(name)

    app = Starlette(routes=[Route("/", endpoint)])

    async def get() -> str:
        scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/",
                 "query_string": b"", "root_path": "", "headers": [], "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return b"".join(m.get("body", b"") for m in sent).decode()

    assert not run(get()).startswith("plugin-test")  # Starlette's threads
    calls = BlockingCalls(name="plugin-test")
    app.state.blocking_calls = calls
    try:
        assert run(get()).startswith("plugin-test-")
    finally:
        calls.close(WAIT)
