"""Labels of resources (Orthanc 1.12): ``/{level}/{id}/labels[/{label}]`` and
``GET /tools/labels``. ``/tools/find`` filters on them (:mod:`.tools`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import UnknownResource
from ..user_data import check_label
from .responses import OrthancJSON, kernel_of, level_of


async def list_labels(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)

    def work() -> list[str]:
        return k.extras.labels(k.row(level, request.path_params["id"]).internal_id)

    return OrthancJSON(await run_in_threadpool(work))


async def get_label(request: Request) -> Response:
    """200 (empty) when the resource has the label, 404 otherwise (Orthanc 1.12)."""
    k = kernel_of(request)
    level = level_of(request)
    label = check_label(request.path_params["label"])

    def work() -> None:
        row = k.row(level, request.path_params["id"])
        if label not in k.extras.labels(row.internal_id):
            raise UnknownResource(f"{level.title.lower()} {row.public_id} has no label "
                                  f"{label!r}")

    await run_in_threadpool(work)
    return Response(b"", media_type="text/plain")


async def put_label(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    label = check_label(request.path_params["label"])
    await run_in_threadpool(
        lambda: k.extras.add_label(k.row(level, request.path_params["id"]), label))
    return Response(b"", media_type="text/plain")


async def delete_label(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    label = check_label(request.path_params["label"])
    await run_in_threadpool(
        lambda: k.extras.remove_label(k.row(level, request.path_params["id"]), label))
    return Response(b"", media_type="text/plain")


async def all_labels(request: Request) -> Response:
    return OrthancJSON(await run_in_threadpool(kernel_of(request).extras.all_labels))


routes = [
    Route("/tools/labels", all_labels, methods=["GET"]),
    Route("/{level}/{id}/labels", list_labels, methods=["GET"]),
    Route("/{level}/{id}/labels/{label}", get_label, methods=["GET"]),
    Route("/{level}/{id}/labels/{label}", put_label, methods=["PUT"]),
    Route("/{level}/{id}/labels/{label}", delete_label, methods=["DELETE"]),
]
