"""Assemble the Starlette application: plugin routes, then the kernel's REST API."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from isengard_sdk.errors import HttpError

from ..errors import (
    BadRequest,
    InstanceRejected,
    InvalidDicomError,
    UnknownDicomTag,
    UnknownResource,
)
from ..kernel import Kernel
from ..scu import PeerError
from ..user_data import CorruptedFile, Forbidden, UnknownName
from . import (
    content,
    create,
    instances,
    jobs,
    modalities,
    resources,
    system,
    tools,
)
from .blocking import BlockingCalls
from .jobs import JobError
from .responses import error_response
from .routing import RouteTable

__all__ = ["all_routes", "build_app"]

log = logging.getLogger("isengard.http")


async def _unknown_resource(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, str(exc))


async def _unknown_tag(request: Request, exc: Exception) -> Response:
    # Orthanc 1.10 answers an unknown tag name in a request with a 500 (its error 27).
    return error_response(request, 500, str(exc), orthanc=(27, "Unknown DICOM tag"))


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error_response(request, 400, str(exc))


async def _forbidden(request: Request, exc: Exception) -> Response:
    # Orthanc answers a write to a system metadata/attachment with a bare 403.
    return error_response(request, 403, str(exc))


async def _unknown_name(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, str(exc), orthanc=(7, "Accessing an inexistent item"))


async def _corrupted(request: Request, exc: Exception) -> Response:
    # Orthanc answers a failed verify-md5 with a bare 400.
    return error_response(request, 400, str(exc))


async def _bad_file(request: Request, exc: Exception) -> Response:
    client = request.client.host if request.client else "?"
    log.warning("%s %s from %s refused: %s", request.method, request.url.path, client, exc)
    return error_response(request, 400, str(exc), orthanc=(15, "Bad file format"))


async def _rejected(request: Request, exc: Exception) -> Response:
    client = request.client.host if request.client else "?"
    log.warning("%s %s from %s rejected: %s", request.method, request.url.path, client, exc)
    return error_response(request, 403, str(exc))


async def _peer_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PeerError)  # noqa: S101 - registered for this type only
    return error_response(request, 504 if exc.timeout else 502, str(exc),
                          orthanc=(9, "Error in the network protocol"))


async def _job_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JobError)  # noqa: S101 - registered for this type only
    job = exc.job
    status = 502 if job["ErrorCode"] == 9 else 500
    return error_response(request, status, str(exc),
                          orthanc=(job["ErrorCode"], job["ErrorDescription"]))


async def _plugin_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)  # noqa: S101 - registered for this type only
    return error_response(request, exc.status, exc.details, orthanc=exc.orthanc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    if exc.status_code == 404:
        return error_response(request, 404, f"unknown URI {request.url.path}")
    if exc.status_code == 405:
        return error_response(request, 405, f"{request.method} is not allowed on "
                              f"{request.url.path}", headers=dict(exc.headers or {}))
    return error_response(request, exc.status_code, str(exc.detail))


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, f"internal error: {type(exc).__name__}: {exc}")


def all_routes(plugin_routes: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """Every route, in the order they are tried: plugin routes first (the ``userdata``
    plugin's attachments, labels and metadata would otherwise be caught by resources'
    /{level}/{id}/{relative})."""
    return [*plugin_routes, *system.routes, *tools.routes, *instances.routes,
            *content.routes, *create.routes, *jobs.routes, *modalities.routes,
            *resources.routes]


def build_app(kernel: Kernel, plugin_routes: Sequence[BaseRoute] = ()) -> Starlette:
    app = Starlette(
        routes=[RouteTable(all_routes(plugin_routes))],
        exception_handlers={
            UnknownResource: _unknown_resource,
            UnknownDicomTag: _unknown_tag,
            BadRequest: _bad_request,
            Forbidden: _forbidden,
            UnknownName: _unknown_name,
            CorruptedFile: _corrupted,
            InvalidDicomError: _bad_file,
            InstanceRejected: _rejected,
            PeerError: _peer_error,
            JobError: _job_error,
            HttpError: _plugin_http_error,
            HTTPException: _http_exception,
            Exception: _internal,
        },
    )
    app.state.kernel = kernel
    app.state.blocking_calls = BlockingCalls()
    return app
