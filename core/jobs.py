"""The jobs engine: every long operation (sending to a modality, C-MOVE …) as a job.

Jobs live in the index (table ``jobs``), not in memory: they are listed by every process
sharing the index and survive a restart — a job that was running when the server
stopped is pending again when it starts. ``workers`` threads run pending jobs, highest
priority first. A job is a function ``run(job) -> content`` registered under its type;
it reports progress and checks for cancel/pause through :class:`RunningJob`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest, IsengardError, UnknownResource
from .index import SQLiteIndex

__all__ = ["JobFailed", "JobsEngine", "RunningJob"]

log = logging.getLogger("isengard.jobs")

PENDING, RUNNING, SUCCESS, FAILURE, PAUSED = "Pending", "Running", "Success", "Failure", "Paused"

# Orthanc's error codes used in job answers.
ERROR_SUCCESS = (0, "Success")
ERROR_CANCELED = (14, "Canceled job")  # ErrorCode_CanceledJob
ERROR_NETWORK = (9, "Error in the network protocol")
ERROR_INTERNAL = (-1, "Internal error")


def _now() -> str:
    t = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}"


class JobFailed(IsengardError):
    """Raised by a job to fail with an Orthanc error code and details."""

    def __init__(self, details: str, code: tuple[int, str] = ERROR_INTERNAL,
                 content: dict[str, Any] | None = None):
        super().__init__(details)
        self.code = code
        self.content = content or {}


class _Interrupted(Exception):
    def __init__(self, state: str):
        self.state = state


@dataclass
class RunningJob:
    """What a job function receives."""

    id: str
    type: str
    parameters: dict[str, Any]
    _engine: JobsEngine
    content: dict[str, Any]

    def progress(self, done: int, total: int) -> None:
        """Report progress (``done`` of ``total`` steps) and honour cancel/pause."""
        percent = 100 if total <= 0 else min(100, int(100 * done / total))
        self._engine._update(self.id, progress=percent, content=self.content)
        self.check()

    def check(self) -> None:
        requested = self._engine._requested.get(self.id)
        if requested:
            raise _Interrupted(requested)


JobFunction = Callable[[RunningJob], dict[str, Any]]


class JobsEngine:
    def __init__(self, index: SQLiteIndex, *, workers: int = 2, history: int = 10):
        self.index = index
        self.workers = max(1, workers)
        self.history = history
        self._types: dict[str, JobFunction] = {}
        self._requested: dict[str, str] = {}  # job id -> state asked for (Failure/Paused)
        self._wake = threading.Condition()
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def register(self, job_type: str, function: JobFunction) -> None:
        self._types[job_type] = function

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        with self.index.transaction() as conn:  # interrupted by the last stop: run again
            conn.execute("UPDATE jobs SET state = ? WHERE state = ?", (PENDING, RUNNING))
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"isengard-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for job_id in self._running_ids():
            self._requested[job_id] = PENDING  # resumed at the next start
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _running_ids(self) -> list[str]:
        return [r[0] for r in self.index.reader().execute(
            "SELECT id FROM jobs WHERE state = ?", (RUNNING,))]

    # -- API ---------------------------------------------------------------------------

    def submit(self, job_type: str, parameters: dict[str, Any], *, priority: int = 0,
               content: dict[str, Any] | None = None) -> str:
        if job_type not in self._types:
            raise BadRequest(f"unknown job type {job_type!r}")
        job_id = str(uuid.uuid4())
        now = _now()
        with self.index.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs(id, type, priority, state, creation_time, parameters, "
                "content, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, job_type, priority, PENDING, now, json.dumps(parameters),
                 json.dumps(content or {}), now))
        with self._wake:
            self._wake.notify()
        return job_id

    def run_sync(self, job_type: str, parameters: dict[str, Any], *,
                 priority: int = 0, content: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        """Submit and wait: returns the job JSON once it ended (Orthanc's
        ``"Synchronous": true`` requests are jobs too)."""
        job_id = self.submit(job_type, parameters, priority=priority, content=content)
        with self._done:
            while True:
                job = self.get(job_id)
                if job["State"] in (SUCCESS, FAILURE) or self._stop.is_set():
                    return job
                self._done.wait(1.0)

    def get(self, job_id: str) -> dict[str, Any]:
        row = self.index.reader().execute(
            "SELECT id, type, priority, state, progress, creation_time, completion_time, "
            "runtime, error_code, error_description, error_details, content, timestamp "
            "FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownResource(f"unknown job {job_id}")
        return self._json(row)

    def list(self) -> list[dict[str, Any]]:
        rows = self.index.reader().execute(
            "SELECT id, type, priority, state, progress, creation_time, completion_time, "
            "runtime, error_code, error_description, error_details, content, timestamp "
            "FROM jobs ORDER BY creation_time").fetchall()
        return [self._json(r) for r in rows]

    @staticmethod
    def _json(r: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Content": json.loads(r[11]),
            "CreationTime": r[5],
            "EffectiveRuntime": round(r[7], 3),
            "ErrorCode": r[8],
            "ErrorDescription": r[9],
            "ID": r[0],
            "Priority": r[2],
            "Progress": r[4],
            "State": r[3],
            "Timestamp": r[12],
            "Type": r[1],
        }
        if r[10]:
            body["ErrorDetails"] = r[10]
        if r[6]:
            body["CompletionTime"] = r[6]
        return dict(sorted(body.items()))

    def cancel(self, job_id: str) -> None:
        state = self.get(job_id)["State"]
        if state in (SUCCESS, FAILURE):
            return
        if state == RUNNING:
            self._requested[job_id] = FAILURE
            return
        self._finish(job_id, FAILURE, ERROR_CANCELED, "", None)

    def pause(self, job_id: str) -> None:
        state = self.get(job_id)["State"]
        if state == RUNNING:
            self._requested[job_id] = PAUSED
        elif state == PENDING:
            self._set_state(job_id, PAUSED, (PENDING,))

    def resume(self, job_id: str) -> None:
        if self.get(job_id)["State"] == PAUSED:
            self._set_state(job_id, PENDING, (PAUSED,))

    def resubmit(self, job_id: str) -> None:
        if self.get(job_id)["State"] != FAILURE:
            raise BadRequest(f"job {job_id} can only be resubmitted after a failure")
        with self.index.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, progress = 0, error_code = 0, "
                "error_description = 'Success', error_details = '', completion_time = NULL "
                "WHERE id = ?", (PENDING, job_id))
        with self._wake:
            self._wake.notify()

    def _set_state(self, job_id: str, state: str, only_from: tuple[str, ...]) -> None:
        marks = ",".join("?" * len(only_from))
        with self.index.transaction() as conn:
            conn.execute(f"UPDATE jobs SET state = ?, timestamp = ? WHERE id = ? AND state IN "
                         f"({marks})", (state, _now(), job_id, *only_from))
        with self._wake:
            self._wake.notify()

    # -- workers -----------------------------------------------------------------------

    def _claim(self) -> tuple[str, str, dict[str, Any], dict[str, Any]] | None:
        with self.index.transaction() as conn:
            row = conn.execute(
                "SELECT id, type, parameters, content FROM jobs WHERE state = ? "
                "ORDER BY priority DESC, creation_time LIMIT 1", (PENDING,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET state = ?, timestamp = ? WHERE id = ?",
                         (RUNNING, _now(), row[0]))
        return row[0], row[1], json.loads(row[2]), json.loads(row[3])

    def _worker(self) -> None:
        while not self._stop.is_set():
            claimed = self._claim()
            if claimed is None:
                with self._wake:
                    if not self._stop.is_set():
                        self._wake.wait(1.0)
                continue
            self._run(*claimed)

    def _run(self, job_id: str, job_type: str, parameters: dict[str, Any],
             content: dict[str, Any]) -> None:
        job = RunningJob(job_id, job_type, parameters, self, content)
        started = time.monotonic()
        function = self._types.get(job_type)
        try:
            if function is None:
                raise JobFailed(f"no handler for job type {job_type!r} in this server")
            result = function(job)
        except _Interrupted as stop:
            self._requested.pop(job_id, None)
            runtime = time.monotonic() - started
            if stop.state == FAILURE:
                self._finish(job_id, FAILURE, ERROR_CANCELED, "", job.content, runtime)
            else:
                self._update(job_id, state=stop.state, content=job.content, runtime=runtime)
            return
        except JobFailed as exc:
            content = {**job.content, **exc.content}
            log.warning("job %s (%s) failed: %s", job_id, job_type, exc)
            self._finish(job_id, FAILURE, exc.code, str(exc), content,
                         time.monotonic() - started)
            return
        except Exception as exc:
            log.exception("job %s (%s) failed", job_id, job_type)
            self._finish(job_id, FAILURE, ERROR_INTERNAL, f"{type(exc).__name__}: {exc}",
                         job.content, time.monotonic() - started)
            return
        self._finish(job_id, SUCCESS, ERROR_SUCCESS, "", result,
                     time.monotonic() - started, progress=100)

    def _update(self, job_id: str, *, progress: int | None = None, state: str | None = None,
                content: dict[str, Any] | None = None, runtime: float | None = None) -> None:
        sets, params = ["timestamp = ?"], [_now()]
        for column, value in (("progress", progress), ("state", state), ("runtime", runtime)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)  # type: ignore[arg-type]
        if content is not None:
            sets.append("content = ?")
            params.append(json.dumps(content))
        with self.index.transaction() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*params, job_id))

    def _finish(self, job_id: str, state: str, error: tuple[int, str], details: str,
                content: dict[str, Any] | None, runtime: float | None = None,
                progress: int | None = None) -> None:
        now = _now()
        with self.index.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, error_code = ?, error_description = ?, "
                "error_details = ?, completion_time = ?, timestamp = ?, "
                "content = COALESCE(?, content), runtime = COALESCE(?, runtime), "
                "progress = COALESCE(?, progress) WHERE id = ?",
                (state, error[0], error[1], details, now, now,
                 json.dumps(content) if content is not None else None, runtime, progress,
                 job_id))
            if self.history >= 0:  # keep the last `history` finished jobs
                conn.execute(
                    "DELETE FROM jobs WHERE state IN (?, ?) AND id NOT IN (SELECT id FROM jobs "
                    "WHERE state IN (?, ?) ORDER BY completion_time DESC LIMIT ?)",
                    (SUCCESS, FAILURE, SUCCESS, FAILURE, max(self.history, 1)))
        with self._done:
            self._done.notify_all()
