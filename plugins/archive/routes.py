"""The REST routes of ZIP archives and DICOMDIR media, as Orthanc 1.10 serves them.

- ``GET|POST /{patients|studies|series}/{id}/archive`` — ``{id}.zip``;
- ``GET|POST /{patients|studies|series}/{id}/media`` — with a DICOMDIR (``?extended``);
- ``POST /tools/create-archive``, ``/tools/create-media``, ``/tools/create-media-extended``
  — several resources of any level, ``Archive.zip``. The body is
  ``{"Resources": [ids…], "Synchronous": true, "Extended": …}`` or the older bare list.

Archives are synchronous: the ZIP is the answer, streamed as it is produced. The
asynchronous flavour (a job, then ``GET /jobs/{id}/archive``) waits for the jobs
engine and is refused with 501 until then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from isengard_sdk import Context, HttpError, ResourceLevel

from .content import archive_entries, media_entries
from .plan import ArchivePlan, resolve_any, resolve_plan
from .zipstream import zip_stream

__all__ = ["build_routes"]

BAD_FILE_FORMAT = (15, "Bad file format")  # what Orthanc answers for an unusable body
_ROUTE_LEVELS = (ResourceLevel.PATIENT, ResourceLevel.STUDY, ResourceLevel.SERIES)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _options(body: Any) -> dict[str, Any]:
    """Check the synchronous/transcoding options shared by every route."""
    if not isinstance(body, dict):
        return {}
    if _truthy(body.get("Asynchronous")) or body.get("Synchronous") is False:
        raise HttpError(501, "asynchronous archives (a job, then GET /jobs/{id}/archive) are "
                             "not available yet in Isengard: send \"Synchronous\": true (or "
                             "omit it) to receive the ZIP as the answer",
                        orthanc=(2, "Not implemented yet"))
    if body.get("Transcode"):
        _no_transcoding()
    return body


def _no_transcoding() -> None:
    raise HttpError(501, "transcoding the files of an archive is not available yet in "
                         "Isengard: omit \"Transcode\" to get the files as stored",
                    orthanc=(2, "Not implemented yet"))


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

    def _stream(self, plan: ArchivePlan, media: bool, extended: bool) -> Iterator[bytes]:
        services, log = self.context.services, self.context.log
        entries = (media_entries(services, plan, log, extended=extended) if media
                   else archive_entries(services, plan, log))
        return zip_stream(entries, compress=self.compress)

    def _plan_one(self, level: ResourceLevel, resource_id: str) -> ArchivePlan:
        body = self.context.services.get_resource(level, resource_id)
        if body is None:
            raise HttpError(404, f"unknown {level.title.lower()} {resource_id}")
        return resolve_plan(self.context.services, [(level, body)])

    def _plan_many(self, ids: list[str]) -> ArchivePlan:
        services = self.context.services
        return resolve_plan(services, [resolve_any(services, i) for i in ids])

    async def resource(self, request: Request, level: ResourceLevel, media: bool
                       ) -> Response:
        """``GET|POST /{level}/{id}/archive`` and ``…/media``."""
        if request.method == "POST":
            options = _options(await _json_body(request, required=True))
            extended = _truthy(options.get("Extended"))
        else:
            if request.query_params.get("transcode"):
                _no_transcoding()
            extended = "extended" in request.query_params and \
                request.query_params["extended"].lower() not in ("false", "0")
        resource_id = request.path_params["id"]
        plan = await run_in_threadpool(self._plan_one, level, resource_id)
        return _zip_response(self._stream(plan, media, extended), f"{resource_id}.zip")

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
        plan = await run_in_threadpool(self._plan_many, list(ids))
        return _zip_response(self._stream(plan, media, extended), "Archive.zip")


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
    return routes
