"""``/jobs``: the jobs engine over REST, as Orthanc exposes it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking

from ..errors import BadRequest, UnknownResource
from .responses import OrthancJSON, query_flag


def _jobs(request: Request) -> Any:
    return request.app.state.kernel.jobs


async def list_jobs(request: Request) -> Response:
    jobs = await run_blocking(request, _jobs(request).list)
    if query_flag(request, "expand"):
        return OrthancJSON(jobs)
    return OrthancJSON([j["ID"] for j in jobs])


async def get_job(request: Request) -> Response:
    return OrthancJSON(await run_blocking(request, _jobs(request).get, request.path_params["id"]))


async def job_action(request: Request) -> Response:
    action = request.path_params["action"]
    engine = _jobs(request)
    handler = {"cancel": engine.cancel, "pause": engine.pause, "resume": engine.resume,
               "resubmit": engine.resubmit}.get(action)
    if handler is None:
        raise UnknownResource(f"unknown URI {request.url.path}")
    await run_blocking(request, handler, request.path_params["id"])
    return OrthancJSON({})


def submit_or_run(request: Request, job_type: str, parameters: dict[str, Any],
                  body: dict[str, Any], content: dict[str, Any] | None = None) -> Any:
    """Orthanc's convention: ``"Synchronous": true`` (the default) waits and answers the
    job's content; ``"Asynchronous": true`` answers ``{"ID", "Path"}`` at once."""
    engine = _jobs(request)
    priority = body.get("Priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise BadRequest("'Priority' must be an integer")
    asynchronous = bool(body.get("Asynchronous", False)) or body.get("Synchronous") is False
    if asynchronous:
        job_id = engine.submit(job_type, parameters, priority=priority, content=content)
        return {"ID": job_id, "Path": f"/jobs/{job_id}"}
    job = engine.run_sync(job_type, parameters, priority=priority, content=content)
    if job["State"] != "Success":
        raise JobError(job)
    return job["Content"]


class JobError(Exception):
    """A synchronous job failed: answered with the job's error (see app.py)."""

    def __init__(self, job: dict[str, Any]):
        super().__init__(job.get("ErrorDetails") or job["ErrorDescription"])
        self.job = job


routes = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    Route("/jobs/{id}/{action}", job_action, methods=["POST"]),
]
