"""The jobs engine, without sockets: states, priorities, cancel/pause/resume/resubmit,
persistence across a restart."""

from __future__ import annotations

import threading
import time

import pytest

from isengard.errors import BadRequest, UnknownResource
from isengard.index import SQLiteIndex
from isengard.jobs import JobFailed, JobsEngine


def wait_state(engine: JobsEngine, job_id: str, state: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = engine.get(job_id)
        if job["State"] == state:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {job['State']}, expected {state}")
        time.sleep(0.01)


@pytest.fixture
def index(tmp_path):
    idx = SQLiteIndex(tmp_path / "index.sqlite", durable=False)
    yield idx
    idx.close()


class Gate:
    """A job that reports progress until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.runs = 0

    def __call__(self, job):
        self.runs += 1
        self.started.set()
        step = 0
        while not self.release.is_set():
            job.progress(step % 50, 100)
            step += 1
            time.sleep(0.005)
        job.progress(100, 100)
        return {"Done": True, **job.parameters}


def test_success_and_json_shape(index):
    engine = JobsEngine(index, workers=1)
    engine.register("Echo", lambda job: {"Echoed": job.parameters["x"]})
    engine.start()
    try:
        job = engine.run_sync("Echo", {"x": 42}, priority=5)
    finally:
        engine.stop()
    assert job["State"] == "Success" and job["Content"] == {"Echoed": 42}
    assert job["Progress"] == 100 and job["Priority"] == 5 and job["ErrorCode"] == 0
    assert job["ErrorDescription"] == "Success" and job["Type"] == "Echo"
    assert {"ID", "CreationTime", "CompletionTime", "EffectiveRuntime", "Timestamp"} <= set(job)


def test_failure_records_code_and_details(index):
    def failing(job):
        raise JobFailed("peer refused", (9, "Error in the network protocol"), {"Sent": 0})

    engine = JobsEngine(index, workers=1)
    engine.register("Failing", failing)
    engine.register("Crashing", lambda job: 1 / 0)
    engine.start()
    try:
        failed = engine.run_sync("Failing", {})
        crashed = engine.run_sync("Crashing", {})
    finally:
        engine.stop()
    assert (failed["State"], failed["ErrorCode"], failed["ErrorDetails"]) == (
        "Failure", 9, "peer refused")
    assert failed["Content"] == {"Sent": 0}
    assert crashed["State"] == "Failure" and "ZeroDivisionError" in crashed["ErrorDetails"]


def test_cancel_pause_resume_resubmit(index):
    gate = Gate()
    engine = JobsEngine(index, workers=1)
    engine.register("Gate", gate)
    engine.start()
    try:
        job_id = engine.submit("Gate", {})
        gate.started.wait(5)
        engine.pause(job_id)
        wait_state(engine, job_id, "Paused")
        engine.resume(job_id)
        wait_state(engine, job_id, "Running")
        engine.cancel(job_id)
        cancelled = wait_state(engine, job_id, "Failure")
        assert cancelled["ErrorDescription"] == "Canceled job"
        gate.release.set()
        engine.resubmit(job_id)
        assert wait_state(engine, job_id, "Success")["Content"] == {"Done": True}
        with pytest.raises(BadRequest):
            engine.resubmit(job_id)  # only failed jobs
        with pytest.raises(UnknownResource):
            engine.cancel("nope")
    finally:
        gate.release.set()
        engine.stop()


def test_priority_orders_pending_jobs(index):
    order: list[str] = []
    engine = JobsEngine(index, workers=1)
    engine.register("Record", lambda job: order.append(job.parameters["name"]) or {})
    low = engine.submit("Record", {"name": "low"}, priority=0)
    high = engine.submit("Record", {"name": "high"}, priority=10)
    engine.start()
    try:
        wait_state(engine, low, "Success")
        wait_state(engine, high, "Success")
    finally:
        engine.stop()
    assert order == ["high", "low"]


def test_jobs_survive_a_restart(tmp_path):
    path = tmp_path / "index.sqlite"
    gate = Gate()
    first_index = SQLiteIndex(path, durable=False)
    first = JobsEngine(first_index, workers=1)
    first.register("Gate", gate)
    first.start()
    running = first.submit("Gate", {"n": 1})
    gate.started.wait(5)
    first.stop()  # interrupted while running
    first_index.close()

    gate.release.set()
    second_index = SQLiteIndex(path, durable=False)
    second = JobsEngine(second_index, workers=1)
    second.register("Gate", gate)
    second.start()
    try:
        assert wait_state(second, running, "Success")["Content"] == {"Done": True, "n": 1}
        assert gate.runs == 2
    finally:
        second.stop()
        second_index.close()


def test_history_is_bounded(index):
    engine = JobsEngine(index, workers=1, history=3)
    engine.register("Noop", lambda job: {})
    engine.start()
    try:
        for _ in range(6):
            engine.run_sync("Noop", {})
    finally:
        engine.stop()
    assert len(engine.list()) == 3


def test_unknown_job_type(index):
    with pytest.raises(BadRequest, match="unknown job type"):
        JobsEngine(index).submit("Nope", {})
