"""The REST routes of ZIP archives and DICOMDIR media, as Orthanc 1.10 serves them.

- ``GET|POST /{patients|studies|series}/{id}/archive`` — ``{id}.zip``;
- ``GET|POST /{patients|studies|series}/{id}/media`` — with a DICOMDIR (``?extended``);
- ``POST /tools/create-archive``, ``/tools/create-media``, ``/tools/create-media-extended``
  — several resources of any level, ``Archive.zip``. The body is
  ``{"Resources": [ids…], "Synchronous": true, "Extended": …}`` or the older bare list.

Synchronous requests get the ZIP as the answer, streamed as it is produced.
``"Asynchronous": true`` (or ``"Synchronous": false``) queues an ``Archive`` job that
writes the ZIP to the plugin's folder; ``GET /jobs/{id}/archive`` serves it.

``"Transcode": "<transfer syntax UID>"`` in a body (``?transcode=`` on a GET) converts
every file to that syntax; a file that cannot be converted is archived as stored (as
Orthanc 1.10). An unknown UID is a 400 before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom.uid import UID
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from isengard_sdk import Context, HttpError, JobHandle, ResourceLevel
from isengard_sdk.http import run_blocking

from .content import archive_entries, media_entries
from .plan import ArchivePlan, resolve_any, resolve_plan
from .zipstream import zip_stream

__all__ = ["build_routes"]

BAD_FILE_FORMAT = (15, "Bad file format")  # what Orthanc answers for an unusable body
OUT_OF_RANGE = (3, "Parameter out of range")  # … and for an unknown transfer syntax
_ROUTE_LEVELS = (ResourceLevel.PATIENT, ResourceLevel.STUDY, ResourceLevel.SERIES)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _options(body: Any) -> dict[str, Any]:
    """Check the transcoding option shared by every route."""
    if not isinstance(body, dict):
        return {}
    if "Transcode" in body:
        if not isinstance(body["Transcode"], str):
            raise HttpError(400, "\"Transcode\" must be a string: the UID of a transfer "
                                 "syntax, e.g. \"1.2.840.10008.1.2.4.80\"",
                            orthanc=BAD_FILE_FORMAT)
        _transfer_syntax(body["Transcode"])
    return body


def _transfer_syntax(value: str) -> str:
    """``value`` if it is the UID of a transfer syntax (PS3.6 Annex A), else a 400."""
    if UID(value).type != "Transfer Syntax":
        raise HttpError(400, f"unknown transfer syntax {value!r} to transcode to: give a "
                             "transfer syntax UID, e.g. 1.2.840.10008.1.2.1 (uncompressed) "
                             "or 1.2.840.10008.1.2.4.80 (JPEG-LS lossless)",
                        orthanc=OUT_OF_RANGE)
    return value


def _asynchronous(options: dict[str, Any]) -> bool:
    return _truthy(options.get("Asynchronous")) or options.get("Synchronous") is False


async def _json_body(request: Request, *, required: bool) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise HttpError(400, "expected a JSON body", orthanc=BAD_FILE_FORMAT)
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}",
                        orthanc=BAD_FILE_FORMAT) from exc


def _zip_response(chunks: Iterator[bytes], filename: str) -> Response:
    # Orthanc sends the bare `filename=` parameter, without "attachment;".
    return StreamingResponse(chunks, media_type="application/zip",
                             headers={"Content-Disposition": f'filename="{filename}"'})


class ArchiveRoutes:
    """The endpoints, bound to the plugin's context."""

    def __init__(self, context: Context):
        self.context = context
        self.compress = bool(getattr(context.settings, "compress", False))

    def _stream(self, plan: ArchivePlan, media: bool, extended: bool,
                transcode: str | None) -> Iterator[bytes]:
        services, log = self.context.services, self.context.log
        entries = (media_entries(services, plan, log, extended=extended, transcode=transcode)
                   if media else archive_entries(services, plan, log, transcode=transcode))
        return zip_stream(entries, compress=self.compress)

    def _plan_one(self, level: ResourceLevel, resource_id: str) -> ArchivePlan:
        body = self.context.services.get_resource(level, resource_id)
        if body is None:
            raise HttpError(404, f"unknown {level.title.lower()} {resource_id}")
        return resolve_plan(self.context.services, [(level, body)])

    def _plan_many(self, ids: list[str]) -> ArchivePlan:
        services = self.context.services
        return resolve_plan(services, [resolve_any(services, i) for i in ids])

    def _submit(self, ids: list[str], media: bool, extended: bool,
                options: dict[str, Any]) -> Response:
        """Orthanc's asynchronous mode: a job now, the ZIP from /jobs/{id}/archive later."""
        priority = options.get("Priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise HttpError(400, "'Priority' must be an integer", orthanc=BAD_FILE_FORMAT)
        job_id = self.context.services.submit_job(
            ARCHIVE_JOB, {"Resources": ids, "Media": media, "Extended": extended,
                          "Transcode": options.get("Transcode")},
            priority=priority)
        return JSONResponse({"ID": job_id, "Path": f"/jobs/{job_id}"})

    def run_job(self, job: JobHandle) -> dict[str, Any]:
        """The ``Archive`` job: write the ZIP to the plugin's folder, then it is served
        by ``GET /jobs/{id}/archive``."""
        p = job.parameters
        plan = self._plan_many(list(p["Resources"]))
        total = max(plan.total_size, 1)
        target = archive_path(self.context, job.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        written = 0
        transcode = p.get("Transcode")
        with partial.open("wb") as out:
            for chunk in self._stream(plan, bool(p["Media"]), bool(p["Extended"]), transcode):
                out.write(chunk)
                written += len(chunk)
                job.progress(min(written, total), total)
        partial.replace(target)
        job.content.update({
            "ArchiveSize": str(written), "ArchiveSizeMB": written // MB,
            "Description": "REST API", "InstancesCount": len(plan.sizes),
            "UncompressedSize": str(plan.total_size),
            "UncompressedSizeMB": plan.total_size // MB})
        if transcode:
            job.content["Transcode"] = transcode
        return job.content

    async def job_archive(self, request: Request) -> Response:
        """``GET /jobs/{id}/archive``: the output of a finished ``Archive`` job."""
        path = archive_path(self.context, request.path_params["id"])
        if not path.is_file():
            raise HttpError(404, f"job {request.path_params['id']} has no archive: it is "
                                 "unknown, not an archive job, or not finished (GET "
                                 f"/jobs/{request.path_params['id']})")
        return FileResponse(path, media_type="application/zip",
                            headers={"Content-Disposition": 'filename="Archive.zip"'})

    async def resource(self, request: Request, level: ResourceLevel, media: bool
                       ) -> Response:
        """``GET|POST /{level}/{id}/archive`` and ``…/media``."""
        if request.method == "POST":
            options = _options(await _json_body(request, required=True))
            extended = _truthy(options.get("Extended"))
            transcode = options.get("Transcode")
            if _asynchronous(options):
                await run_blocking(request, self._plan_one, level, request.path_params["id"])
                return await run_blocking(request, self._submit, [request.path_params["id"]],
                                          media, extended, options)
        else:
            transcode = request.query_params.get("transcode")
            if transcode is not None:
                _transfer_syntax(transcode)
            extended = "extended" in request.query_params and \
                request.query_params["extended"].lower() not in ("false", "0")
        resource_id = request.path_params["id"]
        plan = await run_blocking(request, self._plan_one, level, resource_id)
        return _zip_response(self._stream(plan, media, extended, transcode),
                             f"{resource_id}.zip")

    async def create(self, request: Request, kind: str) -> Response:
        """``POST /tools/create-archive``, ``create-media``, ``create-media-extended``."""
        body = await _json_body(request, required=True)
        media = kind != "create-archive"
        if isinstance(body, list):
            ids, options = body, {}
        elif isinstance(body, dict) and isinstance(body.get("Resources"), list):
            ids, options = body["Resources"], _options(body)
        else:
            raise HttpError(400, "expected a list of resources to archive in the body: "
                                 "{\"Resources\": [\"<id>\", …]} or [\"<id>\", …]",
                            orthanc=BAD_FILE_FORMAT)
        if not all(isinstance(i, str) for i in ids):
            raise HttpError(400, "\"Resources\" must list Orthanc identifiers (strings)",
                            orthanc=BAD_FILE_FORMAT)
        default_extended = kind == "create-media-extended"
        extended = _truthy(options.get("Extended", default_extended))
        plan = await run_blocking(request, self._plan_many, list(ids))  # 404 before any job
        if _asynchronous(options):
            return await run_blocking(request, self._submit, list(ids), media, extended, options)
        return _zip_response(self._stream(plan, media, extended, options.get("Transcode")),
                             "Archive.zip")


def build_routes(context: Context) -> list[Route]:
    endpoints = ArchiveRoutes(context)

    def resource(level: ResourceLevel, media: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            return await endpoints.resource(request, level, media)
        return endpoint

    def create(kind: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await endpoints.create(request, kind)
        return endpoint

    routes = [
        Route(f"/{level.plural}/{{id}}/{kind}", resource(level, kind == "media"),
              methods=["GET", "POST"])
        for level in _ROUTE_LEVELS for kind in ("archive", "media")
    ]
    routes += [Route(f"/tools/{kind}", create(kind), methods=["POST"])
               for kind in ("create-archive", "create-media", "create-media-extended")]
    routes.append(Route("/jobs/{id}/archive", endpoints.job_archive, methods=["GET"]))
    return routes


ARCHIVE_JOB = "Archive"
MB = 1024 * 1024


def archive_path(context: Context, job_id: str) -> Path:
    if not all(c.isalnum() or c == "-" for c in job_id):
        raise HttpError(404, f"unknown job {job_id}")
    return context.data_dir / "jobs" / f"{job_id}.zip"
