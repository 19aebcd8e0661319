"""``PUT`` and ``DELETE /{level}/{id}/metadata/{name}``: user-defined metadata (the
``GET`` routes are in :mod:`.resources`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequest, UnknownResource
from ..user_data import user_metadata_name
from .responses import kernel_of, level_of


async def put_metadata(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    try:
        value = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the value of a metadata must be UTF-8 text: {exc}") from exc

    def work() -> None:
        row = k.row(level, request.path_params["id"])
        name = user_metadata_name(request.path_params["name"], k.settings.user_metadata)
        k.extras.set_metadata(row, name, value)

    await run_in_threadpool(work)
    return Response(b"", media_type="text/plain")  # Orthanc: 200, empty text


async def delete_metadata(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)

    def work() -> None:
        row = k.row(level, request.path_params["id"])
        name = user_metadata_name(request.path_params["name"], k.settings.user_metadata)
        if not k.extras.delete_metadata(row, name):
            raise UnknownResource(f"{level.title.lower()} {row.public_id} has no metadata "
                                  f"{name!r}")

    await run_in_threadpool(work)
    return Response(b"", media_type="text/plain")


routes = [
    Route("/{level}/{id}/metadata/{name}", put_metadata, methods=["PUT"]),
    Route("/{level}/{id}/metadata/{name}", delete_metadata, methods=["DELETE"]),
]
